// libFuzzer target for data files: the input is read as JSONL, CSV, TSV and TXT (and, when it
// starts with the xz magic, as .jsonl.xz / .csv.xz); each must give records or throw
// zoft::Error. Every record must have an origin and unique-or-not fields that find() reaches.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/records.h"
#include "fuzz_util.h"

namespace {

void read(const uint8_t* data, size_t size, const char* name, zoft::data::ReadOptions options) {
  try {
    std::vector<zoft::data::Record> records =
        zoft::data::read_records(zoft_fuzz::write_input(data, size, name), options);
    for (const zoft::data::Record& r : records) {
      if (r.origin.empty()) zoft_fuzz::bug("a record without an origin");
      for (const auto& [key, value] : r.fields)
        if (!r.find(key)) zoft_fuzz::bug("find() misses a field of the record");
      (void)r.field_names();
      try {
        (void)r.get("\x01no such field");
      } catch (const zoft::Error&) {
      }
    }
  } catch (const zoft::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using zoft::data::FileFormat;
  zoft::data::ReadOptions options;  // kAuto: the format from the name
  read(data, size, "input.jsonl", options);
  read(data, size, "input.csv", options);
  read(data, size, "input.tsv", options);
  read(data, size, "input.txt", options);
  options.txt_whole_file = true;
  options.keep_linebreaks = false;
  read(data, size, "input.txt", options);
  options = {};
  options.format = FileFormat::kCsv;
  options.delimiter = ';';
  read(data, size, "input.data", options);
  static const uint8_t kXzMagic[6] = {0xFD, '7', 'z', 'X', 'Z', 0x00};
  if (size >= 6 && std::memcmp(data, kXzMagic, 6) == 0) {
    read(data, size, "input.jsonl.xz", {});
    read(data, size, "input.csv.xz", {});
  }
  return 0;
}
