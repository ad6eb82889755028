// GGUF metadata values and the typed getters of GgufFile (parsing lives in gguf.cc).
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "io/gguf.h"

namespace zoft {

// ---------------------------------------------------------------------------------------------
// GgufValue

bool GgufValue::is_integer() const {
  return gguf_value_size(uint32_t(type)) > 0 && !is_float() && type != GgufType::BOOL;
}

static int64_t sign_extend(uint64_t bits, GgufType t) {
  switch (t) {
    case GgufType::I8:
      return int8_t(bits);
    case GgufType::I16:
      return int16_t(bits);
    case GgufType::I32:
      return int32_t(bits);
    default:
      return int64_t(bits);
  }
}

static double bits_to_f64(uint64_t bits, GgufType t) {
  if (t == GgufType::F32) {
    float f;
    uint32_t b = uint32_t(bits);
    std::memcpy(&f, &b, 4);
    return f;
  }
  if (t == GgufType::F64) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  bool is_signed =
      t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
  return is_signed ? double(sign_extend(bits, t)) : double(bits);
}

int64_t GgufValue::as_i64() const {
  return sign_extend(bits, type);
}
uint64_t GgufValue::as_u64() const {
  return bits;
}
double GgufValue::as_f64() const {
  return bits_to_f64(bits, type);
}

static uint64_t packed_bits(const GgufValue& v, uint64_t i) {
  int n = gguf_value_size(uint32_t(v.elem_type));
  // The reader only builds packed arrays of 1- to 8-byte scalars; say so to the compiler too.
  ZOFT_CHECK(n >= 1 && n <= 8, "GGUF array element type {} is not a packed scalar",
             int(v.elem_type));
  uint64_t bits = 0;
  std::memcpy(&bits, v.packed.data() + i * uint64_t(n), size_t(n));
  return bits;
}

int64_t GgufValue::elem_i64(uint64_t i) const {
  return sign_extend(packed_bits(*this, i), elem_type);
}
uint64_t GgufValue::elem_u64(uint64_t i) const {
  return packed_bits(*this, i);
}
double GgufValue::elem_f64(uint64_t i) const {
  return bits_to_f64(packed_bits(*this, i), elem_type);
}

std::string GgufValue::describe() const {
  switch (type) {
    case GgufType::STRING:
      return fmt::format("string '{}'", gguf_printable(str));
    case GgufType::ARRAY:
      return fmt::format("array[{}; {}]", gguf_type_name(elem_type), count);
    case GgufType::BOOL:
      return bits ? "bool true" : "bool false";
    case GgufType::F32:
    case GgufType::F64:
      return fmt::format("{} {}", gguf_type_name(type), as_f64());
    case GgufType::U64:
      return fmt::format("u64 {}", bits);
    default:
      return fmt::format("{} {}", gguf_type_name(type), as_i64());
  }
}

// ---------------------------------------------------------------------------------------------
// GgufFile: metadata getters

bool GgufFile::has(std::string_view key) const {
  return kv_.count(std::string(key)) != 0;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(std::string(key));
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::value(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: metadata key '{}' is missing", path(), gguf_printable(key));
  return *v;
}

namespace {

[[noreturn]] void wrong_type(const GgufFile& f, std::string_view key, const GgufValue& v,
                             const char* expected) {
  fail("{}: metadata key '{}' is {}, expected {}", f.path(), gguf_printable(key), v.describe(),
       expected);
}

template <class T>
bool integer_fits(const GgufValue& v) {
  if (!v.is_integer()) return false;
  if (v.type == GgufType::U64) return v.bits <= uint64_t(std::numeric_limits<T>::max());
  int64_t x = v.as_i64();
  if constexpr (std::is_unsigned_v<T>)
    return x >= 0 && uint64_t(x) <= uint64_t(std::numeric_limits<T>::max());
  else
    return x >= int64_t(std::numeric_limits<T>::min()) &&
           x <= int64_t(std::numeric_limits<T>::max());
}

template <class T>
T integer_value(const GgufValue& v) {
  return v.type == GgufType::U64 ? T(v.bits) : T(v.as_i64());
}

bool is_numeric(GgufType t) {
  return gguf_value_size(uint32_t(t)) > 0 && t != GgufType::BOOL;
}

}  // namespace

uint32_t GgufFile::get_u32(std::string_view key) const {
  const GgufValue& v = value(key);
  if (!integer_fits<uint32_t>(v)) wrong_type(*this, key, v, "an unsigned 32-bit integer");
  return integer_value<uint32_t>(v);
}

int32_t GgufFile::get_i32(std::string_view key) const {
  const GgufValue& v = value(key);
  if (!integer_fits<int32_t>(v)) wrong_type(*this, key, v, "a signed 32-bit integer");
  return integer_value<int32_t>(v);
}

uint64_t GgufFile::get_u64(std::string_view key) const {
  const GgufValue& v = value(key);
  if (!integer_fits<uint64_t>(v)) wrong_type(*this, key, v, "an unsigned integer");
  return integer_value<uint64_t>(v);
}

float GgufFile::get_f32(std::string_view key) const {
  const GgufValue& v = value(key);
  if (!is_numeric(v.type)) wrong_type(*this, key, v, "a number");
  return v.type == GgufType::U64 ? float(v.bits) : float(v.as_f64());
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::BOOL) wrong_type(*this, key, v, "a bool");
  return v.bits != 0;
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::STRING) wrong_type(*this, key, v, "a string");
  return v.str;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::ARRAY || v.elem_type != GgufType::STRING)
    wrong_type(*this, key, v, "an array of strings");
  return v.strings;
}

std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::ARRAY || !is_numeric(v.elem_type) || v.elem_type == GgufType::F32 ||
      v.elem_type == GgufType::F64)
    wrong_type(*this, key, v, "an array of integers");
  std::vector<int32_t> out(size_t(v.count));
  bool u64 = v.elem_type == GgufType::U64;
  for (uint64_t i = 0; i < v.count; ++i) {
    int64_t x = v.elem_i64(i);
    if ((u64 && v.elem_u64(i) > uint64_t(INT32_MAX)) || x < INT32_MIN || x > INT32_MAX)
      fail("{}: metadata key '{}' element {} is {}, expected a signed 32-bit integer", path(),
           gguf_printable(key), i, u64 ? std::to_string(v.elem_u64(i)) : std::to_string(x));
    out[i] = int32_t(x);
  }
  return out;
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue& v = value(key);
  if (v.type != GgufType::ARRAY || !is_numeric(v.elem_type))
    wrong_type(*this, key, v, "an array of numbers");
  std::vector<float> out(size_t(v.count));
  if (v.elem_type == GgufType::F32) {
    if (v.count) std::memcpy(out.data(), v.packed.data(), size_t(v.count) * 4);
    return out;
  }
  for (uint64_t i = 0; i < v.count; ++i)
    out[i] = v.elem_type == GgufType::U64 ? float(v.elem_u64(i)) : float(v.elem_f64(i));
  return out;
}

#define ZOFT_GGUF_OPT(T, name)                                        \
  std::optional<T> GgufFile::opt_##name(std::string_view key) const { \
    if (!has(key)) return std::nullopt;                               \
    return get_##name(key);                                           \
  }
ZOFT_GGUF_OPT(uint32_t, u32)
ZOFT_GGUF_OPT(int32_t, i32)
ZOFT_GGUF_OPT(uint64_t, u64)
ZOFT_GGUF_OPT(float, f32)
ZOFT_GGUF_OPT(bool, bool)
ZOFT_GGUF_OPT(std::string, string)
ZOFT_GGUF_OPT(std::vector<std::string>, string_array)
ZOFT_GGUF_OPT(std::vector<int32_t>, i32_array)
ZOFT_GGUF_OPT(std::vector<float>, f32_array)
#undef ZOFT_GGUF_OPT

}  // namespace zoft
