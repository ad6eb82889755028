// safetensors reader / writer and checkpoint directories.
//
// Every input file is untrusted: the reader checks each field before using it, so that a
// truncated, corrupt or hostile file gives one Error line naming the file and the tensor, never a
// crash or an out-of-bounds read.
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"
#include "io/json_file.h"

namespace zoft {

using nlohmann::json;

// Same bound as HF's reader: a real header is a few hundred KB at most.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Element sizes of the dtypes the format defines (sub-byte F4/F6 types are not supported).
static int dtype_size_of(const std::string& name) {
  static const std::map<std::string, int> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
      {"F32", 4},  {"F64", 8}, {"I64", 8}, {"U64", 8},     {"C64", 8}};
  auto it = sizes.find(name);
  return it == sizes.end() ? 0 : it->second;
}

static const char* file_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

// Names come from untrusted files; keep error messages on one printable line.
static std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200)) {
    if (c >= 0x20 && c != 0x7f) {
      out += char(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (s.size() > 200) out += "...";
  return out;
}

static uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A non-negative JSON integer (floats such as 2.0 and negative numbers are rejected).
static bool as_u64(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = uint64_t(j.get<int64_t>());
    return true;
  }
  return false;
}

static SafetensorsInfo parse_entry(const std::string& path, const std::string& name,
                                   const json& entry, uint64_t data_start, uint64_t data_size) {
  std::string who = fmt::format("{}: tensor '{}'", path, printable(name));
  if (!entry.is_object()) fail("{}: expected an object {{dtype, shape, data_offsets}}", who);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) fail("{}: missing '{}'", who, key);

  SafetensorsInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) fail("{}: expected 'dtype' to be a string", who);
  info.dtype_name = dtype.get<std::string>();
  int elem = dtype_size_of(info.dtype_name);
  if (elem == 0) fail("{}: unknown dtype '{}'", who, printable(info.dtype_name));
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    if (info.dtype_name == file_dtype_name(d)) {
      info.has_dtype = true;
      info.dtype = d;
    }
  }

  // The element count is computed the way Tensor::numel() will compute it (left to right in
  // int64), so a shape accepted here can never overflow there.
  const json& shape = entry["shape"];
  if (!shape.is_array()) fail("{}: expected 'shape' to be an array of integers", who);
  int64_t numel = 1;
  for (const json& d : shape) {
    uint64_t v;
    if (!as_u64(d, v)) fail("{}: expected shape dimensions >= 0 integers, got {}", who, d.dump());
    if (v > uint64_t(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, int64_t(v), &numel))
      fail("{}: shape {} has too many elements", who, shape.dump());
    info.shape.push_back(int64_t(v));
  }
  uint64_t expected;
  if (__builtin_mul_overflow(uint64_t(numel), uint64_t(elem), &expected))
    fail("{}: shape {} is too large", who, shape.dump());

  const json& offsets = entry["data_offsets"];
  uint64_t begin, end;
  if (!offsets.is_array() || offsets.size() != 2 || !as_u64(offsets[0], begin) ||
      !as_u64(offsets[1], end))
    fail("{}: expected 'data_offsets' to be [begin, end], got {}", who, offsets.dump());
  if (begin > end) fail("{}: data_offsets [{}, {}] has begin > end", who, begin, end);
  if (end > data_size)
    fail("{}: data_offsets end {} is beyond the data section ({} bytes); file truncated?", who, end,
         data_size);
  if (end - begin != expected)
    fail("{}: {} {} needs {} bytes but data_offsets [{}, {}] span {}", who, info.dtype_name,
         shape.dump(), expected, begin, end, end - begin);
  info.offset = size_t(data_start + begin);
  info.nbytes = size_t(end - begin);
  return info;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile st;
  st.file_ = MappedFile::open(path);
  const uint8_t* bytes = st.file_->data();
  uint64_t size = st.file_->size();
  if (size < 8)
    fail("{}: file is {} bytes, shorter than the 8-byte header length; not a safetensors file",
         path, size);
  uint64_t header_size = read_u64_le(bytes);
  if (header_size > kMaxHeaderBytes)
    fail("{}: header length {} is absurd (limit {}); not a safetensors file", path, header_size,
         kMaxHeaderBytes);
  if (header_size > size - 8)
    fail("{}: header length {} exceeds the {} bytes after the length; file truncated?", path,
         header_size, size - 8);
  uint64_t data_start = 8 + header_size;
  uint64_t data_size = size - data_start;

  // nlohmann keeps only one of two equal keys; a callback sees every top-level key (depth 1)
  // so that duplicates can be reported instead of silently dropped.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json header;
  try {
    header = json::parse(text, text + header_size, on_event);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", path, json_error_text(e));
  }
  if (!header.is_object()) fail("{}: header is not a JSON object", path);
  if (!duplicate.empty())
    fail("{}: tensor '{}' appears twice in the header", path, printable(duplicate));

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail("{}: __metadata__ is not an object", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail("{}: __metadata__ '{}' is not a string", path, printable(m.key()));
        st.metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    st.tensors_.push_back(parse_entry(path, it.key(), *it, data_start, data_size));
  }

  // File order; then no two non-empty tensors may share a byte (a zero-sized tensor owns none).
  std::sort(st.tensors_.begin(), st.tensors_.end(),
            [](const SafetensorsInfo& a, const SafetensorsInfo& b) {
              if (a.offset != b.offset) return a.offset < b.offset;
              if (a.nbytes != b.nbytes) return a.nbytes < b.nbytes;
              return a.name < b.name;
            });
  const SafetensorsInfo* previous = nullptr;
  for (const SafetensorsInfo& t : st.tensors_) {
    if (t.nbytes == 0) continue;
    if (previous && t.offset < previous->offset + previous->nbytes)
      fail("{}: tensor '{}' overlaps tensor '{}' (file bytes [{}, {}) and [{}, {}))", path,
           printable(t.name), printable(previous->name), t.offset, t.offset + t.nbytes,
           previous->offset, previous->offset + previous->nbytes);
    previous = &t;
  }
  for (size_t i = 0; i < st.tensors_.size(); ++i) st.by_name_[st.tensors_[i].name] = i;
  return st;
}

const SafetensorsInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorsInfo* info = find(name);
  if (!info) fail("{}: tensor '{}' not found", path(), printable(name));
  return view(*info);
}

Tensor SafetensorsFile::view(const SafetensorsInfo& info) const {
  std::string who = fmt::format("{}: tensor '{}'", path(), printable(info.name));
  if (!info.has_dtype)
    fail("{}: dtype {} cannot be viewed as a float tensor (expected F32, F16 or BF16)", who,
         info.dtype_name);
  if (info.shape.size() > size_t(kMaxDims))
    fail("{}: has {} dimensions, at most {} are supported", who, info.shape.size(), kMaxDims);
  ZOFT_CHECK(info.offset + info.nbytes <= file_->size(), "{}: not part of this file", who);
  uint8_t* data = const_cast<uint8_t*>(file_->data()) + info.offset;
  // Reading a float through a misaligned pointer is undefined; HF's writer never does this.
  if (info.nbytes > 0 && reinterpret_cast<uintptr_t>(data) % dtype_size(info.dtype) != 0)
    fail("{}: data at file offset {} is not aligned to {} bytes; re-save the file", who,
         info.offset, dtype_size(info.dtype));
  return Tensor::with_shape(data, info.dtype, info.shape.data(), int(info.shape.size()));
}

// ---------------------------------------------------------------------------------------------

namespace fs = std::filesystem;

static bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ck;
  ck.path_ = path;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail("{}: no such file or directory", path);

  std::string index_path, single_path;
  if (fs::is_directory(status)) {
    fs::path dir(path);
    if (fs::exists(dir / "model.safetensors.index.json")) {
      index_path = (dir / "model.safetensors.index.json").string();
    } else if (fs::exists(dir / "model.safetensors")) {
      single_path = (dir / "model.safetensors").string();
    } else {
      std::vector<std::string> found;
      for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && e.path().extension() == ".safetensors")
          found.push_back(e.path().string());
      if (found.size() != 1)
        fail(
            "{}: expected model.safetensors or model.safetensors.index.json (found {} other "
            "*.safetensors files)",
            path, found.size());
      single_path = found[0];
    }
  } else if (ends_with(path, ".json")) {
    index_path = path;
  } else {
    single_path = path;
  }

  if (!single_path.empty()) {
    ck.files_.push_back(SafetensorsFile::open(single_path));
    const std::vector<SafetensorsInfo>& tensors = ck.files_[0].tensors();
    for (size_t i = 0; i < tensors.size(); ++i) ck.where_[tensors[i].name] = {0, i};
    return ck;
  }

  // Sharded: the index maps each tensor name to the shard file (next to the index) holding it.
  json index = read_json_file(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail("{}: expected an object with a 'weight_map' object", index_path);
  fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, size_t> shard_index;
  const json& weight_map = index["weight_map"];
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    std::string name = it.key();
    std::string who = fmt::format("{}: tensor '{}'", index_path, printable(name));
    if (!it->is_string()) fail("{}: expected the shard file name as a string", who);
    std::string shard = it->get<std::string>();
    // Shards live next to the index; a path out of the directory is a hostile index.
    fs::path rel(shard);
    bool escapes = shard.empty() || rel.is_absolute();
    for (const fs::path& part : rel) escapes = escapes || part == "..";
    if (escapes)
      fail("{}: shard '{}' is not a file name inside {}", who, printable(shard), dir.string());
    auto found = shard_index.find(shard);
    if (found == shard_index.end()) {
      fs::path shard_path = dir / rel;
      if (!fs::is_regular_file(shard_path, ec))
        fail("{}: shard file {} is missing", who, shard_path.string());
      ck.files_.push_back(SafetensorsFile::open(shard_path.string()));
      found = shard_index.emplace(shard, ck.files_.size() - 1).first;
    }
    const SafetensorsFile& file = ck.files_[found->second];
    const SafetensorsInfo* info = file.find(name);
    if (!info) fail("{}: not in its shard {}", who, file.path());
    ck.where_[name] = {found->second, size_t(info - file.tensors().data())};
  }
  return ck;
}

const SafetensorsInfo& Checkpoint::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail("{}: tensor '{}' not found in checkpoint", path_, printable(name));
  return files_[it->second.file].tensors()[it->second.index];
}

Tensor Checkpoint::view(const std::string& name) const {
  const SafetensorsInfo& i = info(name);
  return files_[where_.at(name).file].view(i);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, location] : where_) out.push_back(name);
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, location] : where_)
    total += files_[location.file].tensors()[location.index].nbytes;
  return total;
}

// ---------------------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Wider dtypes first keeps every tensor aligned to its element size; stable keeps the order.
  std::vector<const NamedTensor*> order;
  for (const NamedTensor& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const NamedTensor* a, const NamedTensor* b) {
    return dtype_size(a->tensor.dtype) > dtype_size(b->tensor.dtype);
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) m[key] = value;
    header["__metadata__"] = m;
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const NamedTensor* t : order) {
    std::string who = fmt::format("{}: tensor '{}'", path, printable(t->name));
    if (t->name.empty() || t->name == "__metadata__") fail("{}: invalid tensor name", who);
    if (!names.insert(t->name).second) fail("{}: name given twice", who);
    if (!t->tensor.is_contiguous()) fail("{}: expected a contiguous tensor", who);
    if (t->tensor.nbytes() > 0 && !t->tensor.data) fail("{}: has no data", who);
    std::vector<int64_t> shape(t->tensor.shape.begin(), t->tensor.shape.begin() + t->tensor.ndim);
    header[t->name] = {{"dtype", file_dtype_name(t->tensor.dtype)},
                       {"shape", shape},
                       {"data_offsets", {offset, offset + t->tensor.nbytes()}}};
    offset += t->tensor.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or value that is not UTF-8
    fail("{}: cannot write the header: {}", path, json_error_text(e));
  }
  // Data then starts 8-byte aligned in the file (and in the mmap when read back).
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  AtomicFileWriter out(path);
  out.write(length, 8);
  out.write(text.data(), text.size());
  for (const NamedTensor* t : order) out.write(t->tensor.data, t->tensor.nbytes());
  out.commit();
}

}  // namespace zoft
