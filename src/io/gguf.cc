// GGUF parsing and validation, tensor access (metadata getters: gguf_metadata.cc).
#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/mapped_file.h"

namespace zoft {

namespace {

// Real files nest arrays at most once; deeper input could only serve to blow the stack.
constexpr int kMaxArrayDepth = 8;
// A nested array costs ~140 bytes of GgufValue per 12 bytes of file; capping their number keeps
// a hostile file from turning its size into a 12x larger allocation.
constexpr uint64_t kMaxNestedArrays = uint64_t(1) << 20;

// Smallest number of bytes each record can take, to reject counts the file cannot hold before
// anything is allocated for them.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims 0, type, offset

// Two tensors whose bytes overlap would alias each other's weights (a write through one view
// changes the other); llama.cpp never writes such a file, so it is refused.
void check_no_overlap(const std::string& path, const std::vector<GgufTensorInfo>& tensors) {
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : tensors)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& a = *by_offset[i - 1];
    const GgufTensorInfo& b = *by_offset[i];
    if (a.offset + a.nbytes > b.offset)
      fail("{}: tensors '{}' (bytes {}..{}) and '{}' (from byte {}) overlap in the data section",
           path, gguf_printable(a.name), a.offset, a.offset + a.nbytes, gguf_printable(b.name),
           b.offset);
  }
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    int len;
    uint32_t cp, min;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (n - i < size_t(len)) return false;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace

int gguf_value_size(uint32_t t) {
  switch (GgufType(t)) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
      return 8;
    case GgufType::STRING:
    case GgufType::ARRAY:
      return 0;
  }
  return -1;
}

std::string gguf_printable(std::string_view s) {
  std::string out;
  bool escape_high = !valid_utf8(s);
  for (size_t i = 0; i < s.size() && i < 120; ++i) {
    unsigned char c = s[i];
    if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\' || (escape_high && c >= 0x80))
      out += fmt::format("\\x{:02x}", c);
    else
      out += char(c);
  }
  if (s.size() > 120) out += "...";
  return out;
}

namespace {

// Bounds-checked little-endian cursor over the mapping. `where` names the record being read so
// that a truncation error says which key or tensor it hit.
struct Reader {
  const uint8_t* base;
  uint64_t size;
  uint64_t pos = 0;
  const std::string& path;
  std::string where;
  uint64_t nested_arrays = 0;  // over the whole file, see kMaxNestedArrays

  uint64_t remaining() const { return size - pos; }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail("{}: truncated: {} of {} needs {} bytes at offset {} but the file has {} bytes", path,
           what, where, n, pos, size);
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail("{}: {} of {} claims {} bytes at offset {} but only {} remain in the file", path, what,
           where, len, pos, remaining());
    std::string s(reinterpret_cast<const char*>(base + pos), size_t(len));
    pos += len;
    return s;
  }
  uint32_t read_type(const char* what) {
    uint32_t t = read<uint32_t>(what);
    if (gguf_value_size(t) < 0)
      fail("{}: {} has unknown metadata value type id {} (expected 0..12)", path, where, t);
    return t;
  }

  GgufValue read_value(GgufType type, int depth);
};

GgufValue Reader::read_value(GgufType type, int depth) {
  GgufValue v;
  v.type = type;
  if (type == GgufType::STRING) {
    v.str = read_string("string value");
    return v;
  }
  if (type != GgufType::ARRAY) {
    int n = gguf_value_size(uint32_t(type));
    need(uint64_t(n), "value");
    std::memcpy(&v.bits, base + pos, size_t(n));  // little-endian: low bytes first
    pos += uint64_t(n);
    if (type == GgufType::BOOL && v.bits > 1)
      fail("{}: {} is a bool with byte value {} (expected 0 or 1)", path, where, v.bits);
    return v;
  }
  if (depth >= kMaxArrayDepth)
    fail("{}: {} nests arrays more than {} deep", path, where, kMaxArrayDepth);
  v.elem_type = GgufType(read_type("array element type"));
  v.count = read<uint64_t>("array length");
  int esize = gguf_value_size(uint32_t(v.elem_type));
  uint64_t min_elem = esize > 0 ? uint64_t(esize) : v.elem_type == GgufType::STRING ? 8 : 12;
  if (v.count > remaining() / min_elem)
    fail("{}: {} is an array of {} {} elements, more than the remaining {} bytes can hold", path,
         where, v.count, gguf_type_name(v.elem_type), remaining());
  if (esize > 0) {
    uint64_t n = v.count * uint64_t(esize);  // ≤ remaining(), checked above
    v.packed.assign(base + pos, base + pos + n);
    pos += n;
    if (v.elem_type == GgufType::BOOL)
      for (uint64_t i = 0; i < v.count; ++i)
        if (v.packed[i] > 1)
          fail("{}: {} element {} is a bool with byte value {} (expected 0 or 1)", path, where, i,
               v.packed[i]);
  } else if (v.elem_type == GgufType::STRING) {
    v.strings.reserve(size_t(v.count));
    for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(read_string("array string"));
  } else {
    nested_arrays += v.count;
    if (nested_arrays > kMaxNestedArrays)
      fail("{}: {} brings the file's nested arrays to more than {}, expected far fewer", path,
           where, kMaxNestedArrays);
    v.arrays.reserve(size_t(v.count));
    for (uint64_t i = 0; i < v.count; ++i)
      v.arrays.push_back(read_value(GgufType::ARRAY, depth + 1));
  }
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType type) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  uint32_t t = uint32_t(type);
  return t < 13 ? names[t] : "unknown";
}

// ---------------------------------------------------------------------------------------------
// GgufTensorInfo

std::vector<int64_t> GgufTensorInfo::shape() const {
  std::vector<int64_t> s;
  for (int i = n_dims - 1; i >= 0; --i) s.push_back(ne[i]);
  return s;
}

std::string GgufTensorInfo::shape_string() const {
  std::string s = "[";
  for (int i = n_dims - 1; i >= 0; --i) s += fmt::format("{}{}", ne[i], i ? ", " : "");
  return s + "]";
}

// ---------------------------------------------------------------------------------------------
// GgufFile: parsing

GgufFile::~GgufFile() = default;

const std::string& GgufFile::path() const {
  return file_->path();
}
uint64_t GgufFile::file_size() const {
  return file_->size();
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->file_ = MappedFile::open(path);
  f->parse();
  return f;
}

void GgufFile::parse() {
  const std::string& p = file_->path();
  Reader r{file_->data(), file_->size(), 0, p, "the header"};

  if (r.size < 4) fail("{}: not a GGUF file: {} bytes, too short for the 'GGUF' magic", p, r.size);
  if (std::memcmp(r.base, "GGUF", 4) != 0)
    fail("{}: not a GGUF file: magic bytes are {:02x} {:02x} {:02x} {:02x}, expected 'GGUF'", p,
         r.base[0], r.base[1], r.base[2], r.base[3]);
  r.pos = 4;
  version_ = r.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    // A big-endian writer stores 3 as 0x03000000; say so rather than "version 50331648".
    if (version_ != 0 && (version_ & 0xFFFF) == 0)
      fail(
          "{}: big-endian GGUF (version field {:#x}) is not supported: convert it to "
          "little-endian",
          p, version_);
    fail("{}: GGUF version {} is not supported (expected 2 or 3)", p, version_);
  }
  uint64_t n_tensors = r.read<uint64_t>("tensor count");
  uint64_t n_kv = r.read<uint64_t>("metadata count");
  if (n_kv > r.remaining() / kMinKvBytes)
    fail("{}: header claims {} metadata entries, more than the {}-byte file can hold", p, n_kv,
         r.size);
  if (n_tensors > r.remaining() / kMinTensorInfoBytes)
    fail("{}: header claims {} tensors, more than the {}-byte file can hold", p, n_tensors, r.size);

  keys_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    r.where = fmt::format("metadata entry {}", i);
    std::string key = r.read_string("key");
    if (!valid_utf8(key))
      fail("{}: metadata entry {} has a key that is not valid UTF-8: '{}'", p, i,
           gguf_printable(key));
    if (key.empty()) fail("{}: metadata entry {} has an empty key", p, i);
    r.where = fmt::format("metadata key '{}'", gguf_printable(key));
    GgufType type = GgufType(r.read_type("value type"));
    GgufValue v = r.read_value(type, 0);
    if (kv_.count(key)) fail("{}: metadata key '{}' appears twice", p, gguf_printable(key));
    keys_.push_back(key);
    kv_.emplace(std::move(key), std::move(v));
  }

  // ggml requires a power of two; anything else would make every offset check meaningless.
  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->as_i64() <= 0 || a->as_i64() > (1 << 30) ||
        (a->as_i64() & (a->as_i64() - 1)) != 0)
      fail("{}: metadata key 'general.alignment' is {}, expected a power of two", p, a->describe());
    alignment_ = uint64_t(a->as_i64());
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    r.where = fmt::format("tensor info {}", i);
    GgufTensorInfo t;
    t.name = r.read_string("name");
    if (!valid_utf8(t.name))
      fail("{}: tensor info {} has a name that is not valid UTF-8: '{}'", p, i,
           gguf_printable(t.name));
    std::string pn = gguf_printable(t.name);
    r.where = fmt::format("tensor '{}'", pn);
    uint32_t n_dims = r.read<uint32_t>("n_dims");
    if (n_dims > 4) fail("{}: tensor '{}' has {} dimensions, expected at most 4", p, pn, n_dims);
    t.n_dims = int(n_dims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = r.read<uint64_t>("dimension");
      if (ne > uint64_t(std::numeric_limits<int64_t>::max()))
        fail("{}: tensor '{}' dimension {} is {}, expected a non-negative int64", p, pn, d, ne);
      t.ne[d] = int64_t(ne);
      if (__builtin_mul_overflow(numel, t.ne[d], &numel))
        fail("{}: tensor '{}' has dimensions whose product overflows int64", p, pn);
    }
    t.numel = numel;
    uint32_t type_id = r.read<uint32_t>("type");
    const GgmlTypeInfo* info = ggml_type_info(type_id);
    if (!info) fail("{}: tensor '{}' has unknown GGML type id {}", p, pn, type_id);
    t.type = GgmlType(type_id);
    if (t.ne[0] % info->block_size != 0)
      fail(
          "{}: tensor '{}' of type {} has a row of {} elements, expected a multiple of the "
          "block size {}",
          p, pn, info->name, t.ne[0], info->block_size);
    uint64_t nbytes;
    if (__builtin_mul_overflow(uint64_t(numel / info->block_size), uint64_t(info->type_size),
                               &nbytes) ||
        nbytes > r.size)
      fail("{}: tensor '{}' of shape {} and type {} needs more bytes than the {}-byte file has", p,
           pn, t.shape_string(), info->name, r.size);
    t.nbytes = size_t(nbytes);
    t.offset = r.read<uint64_t>("data offset");
    if (t.offset % alignment_ != 0)
      fail("{}: tensor '{}' has data offset {}, expected a multiple of the alignment {}", p, pn,
           t.offset, alignment_);
    if (tensor_index_.count(t.name)) fail("{}: tensor '{}' appears twice", p, pn);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment (it may be absent when every
  // tensor is empty); pos ≤ size < 2^63 and alignment ≤ 2^30, so this cannot overflow.
  data_offset_ = (r.pos + alignment_ - 1) / alignment_ * alignment_;
  for (GgufTensorInfo& t : tensors_) {
    if (t.nbytes == 0) continue;
    uint64_t avail = data_offset_ <= r.size ? r.size - data_offset_ : 0;
    if (t.offset > avail || t.nbytes > avail - t.offset)
      fail(
          "{}: tensor '{}' data ({} bytes at offset {} of the data section at {}) extends past "
          "the end of the {}-byte file: the file is truncated",
          p, gguf_printable(t.name), t.nbytes, t.offset, data_offset_, r.size);
    t.data = r.base + data_offset_ + t.offset;
  }
  check_no_overlap(p, tensors_);
}

// ---------------------------------------------------------------------------------------------
// GgufFile: tensors

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) fail("{}: no tensor named '{}'", path(), gguf_printable(name));
  return *t;
}

std::span<const uint8_t> GgufFile::bytes_of(std::string_view name) const {
  const GgufTensorInfo& t = tensor(name);
  return {t.data, t.nbytes};
}

void GgufFile::dequantize(std::string_view name, float* out) const {
  const GgufTensorInfo& t = tensor(name);
  if (!ggml_can_dequantize(t.type))
    fail(
        "{}: tensor '{}' has type {}, which cannot be dequantised (supported: F32, F16, BF16, "
        "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K)",
        path(), gguf_printable(name), ggml_type_name(t.type));
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(t.type));
  int64_t bs = info->block_size, ts = info->type_size;
  int64_t n_blocks = t.numel / bs;
  // Below ~64K elements the pool's wake-up costs more than the work.
  if (t.numel < (int64_t(1) << 16)) {
    dequantize_row(t.type, t.data, out, t.numel);
    return;
  }
  parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
    dequantize_row(t.type, t.data + b0 * ts, out + b0 * bs, (b1 - b0) * bs);
  });
}

OwnedTensor GgufFile::to_f32(std::string_view name) const {
  const GgufTensorInfo& t = tensor(name);
  std::vector<int64_t> shape = t.shape();
  OwnedTensor o;
  o.buffer = Buffer(size_t(t.numel) * sizeof(float));
  o.view = Tensor::with_shape(o.buffer.data(), DType::F32, shape.data(), t.n_dims);
  dequantize(name, o.buffer.as<float>());
  return o;
}

}  // namespace zoft
