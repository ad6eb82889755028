// Shared by the libFuzzer targets in fuzz/ (built by -DZOFT_FUZZ=ON, run by scripts/fuzz.sh).
//
// The readers take paths, so each input is written to one in-memory file (memfd, no disk
// traffic) that is reached through symlinks with whatever name the reader needs to see
// ("input.gguf", "input.jsonl.xz", ...) in a private temporary directory.
#pragma once

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

namespace zoft_fuzz {

// Stops the run: libFuzzer reports a crash and saves the input as a reproducer.
[[noreturn]] inline void bug(const char* what) {
  std::fprintf(stderr, "fuzz: %s\n", what);
  std::abort();
}

class InputFile {
 public:
  static InputFile& get() {
    static InputFile file;
    return file;
  }

  // Replaces the file's contents with `size` bytes and returns a path to it ending in `name`.
  std::string write(const uint8_t* data, size_t size, const std::string& name) {
    if (ftruncate(fd_, 0) != 0) bug("ftruncate failed");
    if (size && pwrite(fd_, data, size, 0) != ssize_t(size)) bug("pwrite failed");
    std::string path = dir_ + "/" + name;
    if (links_.insert(path).second) {
      std::string target = "/proc/self/fd/" + std::to_string(fd_);
      if (symlink(target.c_str(), path.c_str()) != 0) bug("symlink failed");
    }
    return path;
  }

  ~InputFile() {
    for (const std::string& path : links_) unlink(path.c_str());
    rmdir(dir_.c_str());
  }

 private:
  InputFile() {
    fd_ = memfd_create("zoft_fuzz_input", MFD_CLOEXEC);
    if (fd_ < 0) bug("memfd_create failed");
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/zoft_fuzz.XXXXXX";
    if (!mkdtemp(templ.data())) bug("mkdtemp failed");
    dir_ = templ;
  }

  int fd_ = -1;
  std::string dir_;
  std::set<std::string> links_;
};

inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  return InputFile::get().write(data, size, name);
}

// A fixture of the source tree (ZOFT_SOURCE_DIR is set by CMakeLists.txt).
inline std::string source_path(const std::string& relative) {
  return std::string(ZOFT_SOURCE_DIR) + "/" + relative;
}

}  // namespace zoft_fuzz
