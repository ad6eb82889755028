// Metric sinks: one JSON object per line (metrics.jsonl) and TensorBoard event files that
// TensorBoard's own reader loads (scalars only).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace zoft {

// CRC-32C (Castagnoli), as TFRecord framing uses it.
uint32_t crc32c(const void* data, size_t n);

// Writes events.out.tfevents.<time>.<host> in `dir` (created if needed).
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Appends {"step": N, "tag": value, ...} lines to a file; flushed per line so a crash keeps
// everything logged before it.
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void write(int64_t step, const std::map<std::string, double>& values);

 private:
  std::FILE* file_ = nullptr;
};

// Resuming from the checkpoint of `step`: rewrites a metrics.jsonl (atomically) without the rows
// of later steps, which the resumed run logs again, and without a torn last line. A missing file
// is left missing.
void drop_rows_after(const std::string& path, int64_t step);

}  // namespace zoft
