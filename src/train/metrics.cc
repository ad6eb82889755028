#include "train/metrics.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "io/mapped_file.h"

namespace zoft {

namespace {

std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

// TFRecord stores CRCs rotated and offset so that CRCs of CRCs stay well distributed.
uint32_t masked_crc(const void* data, size_t n) {
  uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// Minimal protobuf encoding: just the field kinds the Event / Summary messages need.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void put_tag(std::string& out, int field, int wire_type) {
  put_varint(out, uint64_t(field << 3 | wire_type));
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
template <class T>
void put_fixed(std::string& out, int field, T value) {
  put_tag(out, field, sizeof(T) == 8 ? 1 : 5);
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));  // little-endian host (x86-64, aarch64)
  out.append(raw, sizeof(T));
}

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
std::string event_header(int64_t step) {
  std::string e;
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  put_fixed(e, 1, now);
  put_tag(e, 2, 0);
  put_varint(e, uint64_t(step));
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc32c_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("{}: cannot create the TensorBoard directory: {}", dir, ec.message());
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  path_ = dir + "/events.out.tfevents." +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "." +
          host + "." + std::to_string(getpid());
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) fail("{}: cannot open for writing", path_);
  std::string first = event_header(0);
  put_bytes(first, 3, "brain.Event:2");
  write_record(first);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write_record(const std::string& event) {
  uint64_t length = event.size();
  uint32_t length_crc = masked_crc(&length, 8), data_crc = masked_crc(event.data(), event.size());
  std::fwrite(&length, 8, 1, file_);
  std::fwrite(&length_crc, 4, 1, file_);
  std::fwrite(event.data(), 1, event.size(), file_);
  std::fwrite(&data_crc, 4, 1, file_);
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  // Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
  std::string v;
  put_bytes(v, 1, tag);
  put_fixed(v, 2, float(value));
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = event_header(step);
  put_bytes(e, 5, summary);
  write_record(e);
}

void TensorBoardWriter::flush() {
  std::fflush(file_);
}

JsonlWriter::JsonlWriter(const std::string& path) {
  file_ = std::fopen(path.c_str(), "ab");
  if (!file_) fail("{}: cannot open for appending", path);
}

JsonlWriter::~JsonlWriter() {
  if (file_) std::fclose(file_);
}

void JsonlWriter::write(int64_t step, const std::map<std::string, double>& values) {
  std::string line = "{\"step\": " + std::to_string(step);
  for (const auto& [key, value] : values) {
    char number[64];
    if (std::isfinite(value))
      std::snprintf(number, sizeof(number), "%.9g", value);
    else
      std::snprintf(number, sizeof(number), "null");
    line += ", \"" + key + "\": " + number;
  }
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

// The step of one metrics.jsonl line, or nullopt for a line that is not a whole row.
static std::optional<int64_t> row_step(const std::string& line) {
  nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!row.is_object() || !row.contains("step") || !row["step"].is_number_integer())
    return std::nullopt;
  return row["step"].get<int64_t>();
}

void drop_rows_after(const std::string& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    std::optional<int64_t> s = in.eof() ? std::nullopt : row_step(line);  // eof: no '\n', torn
    if (s && *s <= step)
      kept += line + "\n";
    else
      dropped = true;
  }
  if (dropped) write_file_atomic(path, kept);
}

}  // namespace zoft
