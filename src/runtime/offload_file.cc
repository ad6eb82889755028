#include "runtime/offload_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace zoft::runtime {

namespace {

std::atomic<int> g_files{0};

[[noreturn]] void io_fail(const std::string& path, const char* op, uint64_t offset, int err) {
  fail(
      "offload file {}: {} failed at offset {}: {} (check free space and permissions in the "
      "offload directory, or raise --max-memory cpu= so that less streams)",
      path, op, offset, std::strerror(err));
}

}  // namespace

OffloadFile::OffloadFile(const std::string& dir, uint64_t size, bool keep)
    : size_(size), keep_(keep) {
  namespace fs = std::filesystem;
  if (dir.empty())
    fail(
        "this placement streams weights from disk: give an offload directory (--offload-dir DIR "
        "or placement.offload_dir)");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("offload directory {}: cannot create it: {}", dir, ec.message());
  path_ = (fs::path(dir) / ("zoft-offload-" + std::to_string(getpid()) + "-" +
                            std::to_string(g_files.fetch_add(1)) + ".bin"))
              .string();
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) fail("offload file {}: cannot create it: {}", path_, std::strerror(errno));
  if (!keep_) ::unlink(path_.c_str());
  if (::ftruncate(fd_, off_t(size)) != 0) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (keep_) ::unlink(path_.c_str());
    fail("offload file {}: cannot make it {} bytes long: {}", path_, size, std::strerror(err));
  }
}

OffloadFile::~OffloadFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OffloadFile::read(void* dst, size_t n, uint64_t offset) const {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd_, p, n, off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) io_fail(path_, "read", offset, errno);
    if (got == 0) io_fail(path_, "read (unexpected end of file)", offset, EIO);
    p += got, n -= size_t(got), offset += uint64_t(got);
  }
}

void OffloadFile::write(const void* src, size_t n, uint64_t offset) const {
  auto* p = static_cast<const uint8_t*>(src);
  while (n > 0) {
    ssize_t put = ::pwrite(fd_, p, n, off_t(offset));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) io_fail(path_, "write", offset, put < 0 ? errno : ENOSPC);
    p += put, n -= size_t(put), offset += uint64_t(put);
  }
}

void OffloadFile::sync() const {
  if (::fdatasync(fd_) != 0) io_fail(path_, "fdatasync", 0, errno);
}

void OffloadFile::copy_to(int to_fd, uint64_t to_offset, size_t n, uint64_t offset) const {
  off64_t in = off64_t(offset), out = off64_t(to_offset);
  while (n > 0) {
    ssize_t done = ::copy_file_range(fd_, &in, to_fd, &out, n, 0);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) break;  // not supported here (EXDEV, EINVAL, ...): fall back below
    n -= size_t(done);
  }
  std::vector<uint8_t> bounce(std::min<size_t>(n, size_t(4) << 20));
  while (n > 0) {
    size_t step = std::min(n, bounce.size());
    read(bounce.data(), step, uint64_t(in));
    const uint8_t* p = bounce.data();
    for (size_t left = step; left > 0;) {
      ssize_t put = ::pwrite(to_fd, p, left, out);
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) fail("checkpoint write failed: {}", std::strerror(put < 0 ? errno : ENOSPC));
      p += put, left -= size_t(put), out += put;
    }
    in += off64_t(step), n -= step;
  }
}

double OffloadFile::measure_read_mbps(uint64_t limit) const {
  uint64_t n = std::min(limit, size_);
  if (n == 0) return 0;
  sync();
  ::posix_fadvise(fd_, 0, off_t(n), POSIX_FADV_DONTNEED);
  std::vector<uint8_t> buffer(size_t(1) << 20);
  auto start = std::chrono::steady_clock::now();
  for (uint64_t at = 0; at < n; at += buffer.size())
    read(buffer.data(), size_t(std::min<uint64_t>(buffer.size(), n - at)), at);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return double(n) / 1e6 / std::max(s, 1e-9);
}

}  // namespace zoft::runtime
