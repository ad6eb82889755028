// Whole-file read-only memory maps, and atomic whole-file writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace zoft {

// A read-only mmap of a whole file. Weights are used in place from the page cache (DESIGN.md,
// decision 4), so the mapping is shared: every view taken from it keeps a shared_ptr alive
// through its owner (SafetensorsFile, Checkpoint).
class MappedFile {
 public:
  // Throws Error naming the path if it cannot be opened, is not a regular file, or cannot be
  // mapped. An empty file is legal: data() is then null and size() 0.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Writes a file so that a crash or an error at any point leaves either the old file or the new
// one, never a torn one: <path>.tmp.<pid> is written and fsync-ed, renamed over path, and the
// directory fsync-ed so that the rename itself is durable. On error the temp file is removed.
// Streaming interface for large files (safetensors); write_file_atomic() for small ones.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);  // creates the temp file
  ~AtomicFileWriter();                                 // removes the temp file unless committed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* bytes, size_t n);
  void commit();  // fsync, close, rename over path, fsync the directory

 private:
  std::string path_, tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes any bytes atomically (config.json and friends), as AtomicFileWriter does.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace zoft
