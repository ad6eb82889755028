// libFuzzer target for the safetensors reader: any input must open cleanly or throw zoft::Error,
// and every view of an opened file must lie inside the file. The same bytes are also read as a
// sharded checkpoint's model.safetensors.index.json (its shards resolve to this same file).
//
// Built with -DZOFT_FUZZ=ON and run by scripts/fuzz.sh; by hand:
//   ./scripts/fuzz.sh 60        # or: build/fuzz/fuzz_safetensors -max_total_time=60 DIR
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

namespace {

// Touches the first and last byte of a view so that ASan sees one outside the mapping.
void touch(const zoft::Tensor& t, size_t nbytes) {
  volatile uint8_t sink = 0;
  if (nbytes) {
    sink = sink + static_cast<const uint8_t*>(t.data)[0];
    sink = sink + static_cast<const uint8_t*>(t.data)[nbytes - 1];
  }
}

void read_file(const std::string& path, size_t size) {
  zoft::SafetensorsFile st = zoft::SafetensorsFile::open(path);
  for (const zoft::SafetensorsInfo& info : st.tensors()) {
    if (info.offset > size || info.nbytes > size - info.offset)
      zoft_fuzz::bug("a tensor's bytes lie outside the file");
    if (st.find(info.name) != &info) zoft_fuzz::bug("find() does not return the tensor");
    try {
      zoft::Tensor t = st.view(info);
      if (t.nbytes() != info.nbytes) zoft_fuzz::bug("view's nbytes differs from the header's");
      touch(t, info.nbytes);
    } catch (const zoft::Error&) {
    }
  }
}

void read_index(const std::string& path) {
  zoft::Checkpoint ck = zoft::Checkpoint::open(path);
  for (const std::string& name : ck.names()) {
    const zoft::SafetensorsInfo& info = ck.info(name);
    try {
      touch(ck.view(name), info.nbytes);
    } catch (const zoft::Error&) {
    }
  }
  (void)ck.total_bytes();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    read_file(zoft_fuzz::write_input(data, size, "model.safetensors"), size);
  } catch (const zoft::Error&) {
  }
  try {
    read_index(zoft_fuzz::write_input(data, size, "model.safetensors.index.json"));
  } catch (const zoft::Error&) {
  }
  return 0;
}
