// libFuzzer target for the safetensors reader: any input must open cleanly or throw zoft::Error,
// and every view of an opened file must lie inside the mapping.
//
// Not built by default. From the repository root:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_safetensors.cc \
//     src/io/safetensors.cc src/io/mapped_file.cc src/io/json_file.cc src/core/dtype.cc \
//     src/core/tensor.cc -lfmt -o build/fuzz_safetensors
//   mkdir -p build/fuzz_corpus && ./build/fuzz_safetensors build/fuzz_corpus -max_len=4096
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"

// The reader takes a path, so each input goes into an in-memory file (no disk traffic).
static int memory_fd() {
  static int fd = memfd_create("fuzz_safetensors", MFD_CLOEXEC);
  if (fd < 0) abort();
  return fd;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memory_fd();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != ssize_t(size)) abort();
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    zoft::SafetensorsFile st = zoft::SafetensorsFile::open(path);
    for (const zoft::SafetensorsInfo& info : st.tensors()) {
      if (info.offset + info.nbytes > size) abort();
      try {
        zoft::Tensor t = st.view(info);
        if (t.nbytes() != info.nbytes) abort();
        // Touch the first and last byte so that ASan sees any out-of-bounds view.
        volatile uint8_t sink = 0;
        if (info.nbytes) {
          sink = sink + static_cast<const uint8_t*>(t.data)[0];
          sink = sink + static_cast<const uint8_t*>(t.data)[info.nbytes - 1];
        }
      } catch (const zoft::Error&) {
      }
    }
  } catch (const zoft::Error&) {
  }
  return 0;
}
