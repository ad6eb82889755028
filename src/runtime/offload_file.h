// The offload file: the weights of the blocks that stream from disk, one region per block,
// read and written whole with pread / pwrite. Reads may be served by the page cache, which the
// kernel can evict and which is not part of the process's RSS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zoft::runtime {

class OffloadFile {
 public:
  // Creates DIR/zoft-offload-<pid>-<n>.bin (DIR is created if missing) of `size` bytes. Unless
  // `keep`, the name is unlinked at once, so the file disappears when the process exits, however
  // it exits (a SIGKILL leaves nothing behind).
  OffloadFile(const std::string& dir, uint64_t size, bool keep);
  ~OffloadFile();
  OffloadFile(const OffloadFile&) = delete;
  OffloadFile& operator=(const OffloadFile&) = delete;

  // Whole transfers (short reads/writes and EINTR are retried); errors throw naming the file,
  // the offset and what to do. Safe to call from several threads on disjoint ranges.
  void read(void* dst, size_t n, uint64_t offset) const;
  void write(const void* src, size_t n, uint64_t offset) const;
  void sync() const;  // fdatasync
  // Copies n bytes at `offset` to another file descriptor at `to_offset` inside the kernel
  // (copy_file_range; a bounce buffer where that is not supported).
  void copy_to(int to_fd, uint64_t to_offset, size_t n, uint64_t offset) const;
  // Uncached sequential read bandwidth in MB/s over up to `limit` bytes from the start: the
  // range is synced and dropped from the page cache first, so this is the device, not RAM.
  double measure_read_mbps(uint64_t limit) const;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  bool kept() const { return keep_; }

 private:
  int fd_ = -1;
  std::string path_;
  uint64_t size_ = 0;
  bool keep_ = false;
};

}  // namespace zoft::runtime
