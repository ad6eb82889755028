// libFuzzer target for YAML task files (recipes/tasks/*.yaml): any input must give a task or
// throw zoft::Error, and a task must turn records into examples or throw zoft::Error.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "data/task.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  try {
    zoft::data::Task task = zoft::data::Task::from_yaml(yaml, "task.yaml");
    (void)task.name();
    std::vector<zoft::data::Record> records = {
        {{{"text", "  A fine review. "}, {"label", "great"}}, "r:1"},
        {{{"text", ""}, {"label", "other"}, {"x", "{}"}}, "r:2"},
        {{{"label", "0"}}, "r:3"},
        {{{"text", "t"}, {"sentence", "s"}, {"question", "q?"}, {"label", "1"}}, "r:4"},
    };
    for (const zoft::data::Record& r : records) {
      try {
        zoft::data::TaskExample ex = task.make_example(r);
        if (ex.label < -1 || ex.label >= int32_t(ex.candidates.size()))
          zoft_fuzz::bug("an example's label is not one of its candidates");
      } catch (const zoft::Error&) {
      }
    }
  } catch (const zoft::Error&) {
  }
  return 0;
}
