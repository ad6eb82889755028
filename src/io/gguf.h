// GGUF reader (llama.cpp's single-file model format, versions 2 and 3, little-endian).
//
// Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv × (string key, u32 type, value),
// n_tensors × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding to
// general.alignment (default 32), then the data section; tensor offsets are relative to it.
// Strings are u64 length + bytes. Everything is checked against the file size at open(), so a
// hostile file gives one Error line and never a crash or a huge allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "io/dequant.h"

namespace zoft {

class MappedFile;

// Values are the ids stored in the file; never renumber.
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType type);  // "u32", "string", "array", ...
// Bytes of one scalar of type id t in the file; 0 for STRING and ARRAY; -1 for an unknown id.
int gguf_value_size(uint32_t t);
// A key or name made safe for a one-line error message: control characters, quotes and (in
// invalid UTF-8) high bytes become \xNN; more than 120 bytes are cut with "...".
std::string gguf_printable(std::string_view s);

// One metadata value. Numeric arrays keep their packed little-endian elements (a vocabulary's
// 262144 scores stay one allocation); arrays of strings and of arrays are unpacked.
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t bits = 0;  // scalar: the raw value, zero-extended (reinterpret as the type says)
  std::string str;    // STRING

  GgufType elem_type = GgufType::U8;  // ARRAY
  uint64_t count = 0;                 // ARRAY: number of elements
  std::vector<uint8_t> packed;        // ARRAY of numbers / bools
  std::vector<std::string> strings;   // ARRAY of STRING
  std::vector<GgufValue> arrays;      // ARRAY of ARRAY

  bool is_integer() const;  // U8..I64 (not BOOL)
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
  // Scalar readers; callers check the type first (GgufFile's getters do).
  int64_t as_i64() const;   // signed / unsigned ≤ 32 bits, I64; U64 reinterpreted
  uint64_t as_u64() const;  // the raw bits for unsigned types
  double as_f64() const;    // F32 / F64
  // Element i of a numeric array as the element type says (i < count).
  int64_t elem_i64(uint64_t i) const;
  uint64_t elem_u64(uint64_t i) const;
  double elem_f64(uint64_t i) const;
  std::string describe() const;  // "u32 7", "string 'llama'", "array[string; 49152]"
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  int n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};  // GGUF order: ne[0] is the contiguous (innermost) dim
  int64_t numel = 0;
  uint64_t offset = 0;  // from the start of the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping, valid while the GgufFile lives

  // HF / PyTorch order (outermost first): a [vocab, hidden] embedding has ne = {hidden, vocab}.
  std::vector<int64_t> shape() const;
  std::string shape_string() const;  // "[262144, 640]", HF order
};

class GgufFile {
 public:
  // Parses and validates header, metadata and tensor infos; the data stays mapped, unread.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();

  const std::string& path() const;
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the data section
  uint64_t file_size() const;

  // --- metadata ---
  const std::vector<std::string>& keys() const { return keys_; }  // in file order
  bool has(std::string_view key) const;
  const GgufValue* find(std::string_view key) const;   // nullptr if absent
  const GgufValue& value(std::string_view key) const;  // throws if absent

  // Typed getters throw Error naming the file and key when the key is absent or its value does
  // not fit: integers of any width are accepted when the value is in range, F64 for f32.
  uint32_t get_u32(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  float get_f32(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;

  // Optional variants: nullopt when absent; present with a wrong type still throws.
  std::optional<uint32_t> opt_u32(std::string_view key) const;
  std::optional<int32_t> opt_i32(std::string_view key) const;
  std::optional<uint64_t> opt_u64(std::string_view key) const;
  std::optional<float> opt_f32(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  std::optional<std::string> opt_string(std::string_view key) const;
  std::optional<std::vector<std::string>> opt_string_array(std::string_view key) const;
  std::optional<std::vector<int32_t>> opt_i32_array(std::string_view key) const;
  std::optional<std::vector<float>> opt_f32_array(std::string_view key) const;

  // --- tensors ---
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // in file order
  const GgufTensorInfo* find_tensor(std::string_view name) const;          // nullptr if absent
  const GgufTensorInfo& tensor(std::string_view name) const;               // throws if absent
  std::span<const uint8_t> bytes_of(std::string_view name) const;          // raw stored bytes

  // Dequantises a whole tensor to f32 (numel floats at out), in parallel over blocks on the
  // global thread pool, so it must not be called from inside a parallel_for body (the pool is
  // not re-entrant); dequantize_row() is the single-threaded alternative. Throws for a type
  // that cannot be dequantised.
  void dequantize(std::string_view name, float* out) const;
  // The same into a fresh F32 tensor in HF order.
  OwnedTensor to_f32(std::string_view name) const;

 private:
  GgufFile() = default;
  void parse();

  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::unordered_map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace zoft
