// safetensors reader / writer and Checkpoint: round trips, and hostile files built by hand.
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <filesystem>

#include "io/io_test_util.h"
#include "io/json_file.h"

namespace zoft {
namespace {

using testing::expect_error;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

// A safetensors file from a raw header text and data section; the header is space-padded to a
// multiple of 8 unless `pad` is false, and `length` overrides the 8-byte header length.
std::string make_file(const std::string& header, const std::string& data = "", bool pad = true,
                      int64_t length = -1) {
  std::string h = header;
  if (pad) h.append((8 - h.size() % 8) % 8, ' ');
  uint64_t n = length >= 0 ? uint64_t(length) : h.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char(n >> (8 * i));
  return out + h + data;
}

// Writes a hand-made file and expects open() to fail naming the file and `parts`.
void expect_open_error(const TempDir& dir, const std::string& bytes,
                       std::initializer_list<std::string> parts) {
  std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  std::vector<std::string> all(parts);
  all.push_back(path);
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "no error for header " << bytes.substr(8);
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const std::string& part : all)
      EXPECT_NE(message.find(part), std::string::npos) << message << "\nmissing: " << part;
  }
}

// ---------------------------------------------------------------------------------------------
// Round trip

TEST(Safetensors, RoundTripAllDtypesAndMetadata) {
  TempDir dir;
  float w[6] = {1, -2, 3.5f, 4, 5, -6e-7f};
  uint16_t b[5] = {f32_to_bf16(1), f32_to_bf16(2), f32_to_bf16(-3), 0, 0x7fc0};
  uint16_t h[4] = {f32_to_f16(0.5f), f32_to_f16(-1), f32_to_f16(65504), 1};
  float scalar = 42;
  std::vector<NamedTensor> tensors = {
      {"model.bf16", Tensor(b, DType::BF16, {5})},  // odd size: would misalign what follows
      {"model.w", Tensor(w, DType::F32, {2, 3})},  {"model.h", Tensor(h, DType::F16, {2, 2})},
      {"scalar", Tensor(&scalar, DType::F32, {})}, {"empty", Tensor(nullptr, DType::F32, {0, 4})},
  };
  std::string path = dir.file("model.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "héllo \"quoted\""}});

  std::string raw = read_bytes(path);
  uint64_t header_size;
  std::memcpy(&header_size, raw.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + header_size + sizeof(w) + sizeof(b) + sizeof(h) + sizeof(scalar));

  SafetensorsFile st = SafetensorsFile::open(path);
  EXPECT_EQ(st.path(), path);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  EXPECT_EQ(st.metadata().at("note"), "héllo \"quoted\"");
  ASSERT_EQ(st.tensors().size(), 5u);
  // Wider dtypes first (alignment), otherwise the given order; the empty tensor sorts at its
  // offset, which is the end of the f32 group.
  std::vector<std::string> order;
  for (const SafetensorsInfo& i : st.tensors()) order.push_back(i.name);
  EXPECT_EQ(order,
            (std::vector<std::string>{"model.w", "scalar", "empty", "model.bf16", "model.h"}));

  // The mmap is where the views point: find it through one of them and the file size.
  const uint8_t* base =
      static_cast<const uint8_t*>(st.view("model.w").data) - st.find("model.w")->offset;
  for (const NamedTensor& t : tensors) {
    const SafetensorsInfo* info = st.find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_TRUE(info->has_dtype);
    EXPECT_EQ(info->dtype, t.tensor.dtype);
    EXPECT_EQ(info->dtype_name, t.tensor.dtype == DType::F32   ? "F32"
                                : t.tensor.dtype == DType::F16 ? "F16"
                                                               : "BF16");
    EXPECT_EQ(info->nbytes, t.tensor.nbytes());
    Tensor v = st.view(t.name);
    EXPECT_EQ(v.shape_string(), t.tensor.shape_string()) << t.name;
    EXPECT_EQ(v.dtype, t.tensor.dtype);
    EXPECT_TRUE(v.is_contiguous());
    // Zero copy: the view points into the mapped file, at the recorded offset, aligned.
    EXPECT_EQ(static_cast<const uint8_t*>(v.data), base + info->offset);
    EXPECT_LE(info->offset + info->nbytes, raw.size());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype), 0u) << t.name;
    if (t.tensor.nbytes()) {
      EXPECT_EQ(std::memcmp(v.data, t.tensor.data, t.tensor.nbytes()), 0) << t.name;
    }
    EXPECT_EQ(
        raw.substr(info->offset, info->nbytes),
        std::string(static_cast<const char*>(t.tensor.data ? t.tensor.data : ""), info->nbytes));
  }
  EXPECT_EQ(st.view("scalar").ndim, 0);
  EXPECT_EQ(st.view("scalar").f32()[0], 42.0f);
  EXPECT_EQ(st.find("absent"), nullptr);
}

TEST(Safetensors, SingleDtypeKeepsGivenOrderAndViewsOutliveCopies) {
  TempDir dir;
  float a[2] = {1, 2}, b[3] = {3, 4, 5}, c[1] = {6};
  std::string path = dir.file("x.safetensors");
  write_safetensors(path, {{"c", Tensor(c, DType::F32, {1})},
                           {"a", Tensor(a, DType::F32, {2})},
                           {"b", Tensor(b, DType::F32, {3, 1})}});
  Tensor view;
  {
    SafetensorsFile st = SafetensorsFile::open(path);
    EXPECT_EQ(st.tensors()[0].name, "c");
    EXPECT_EQ(st.tensors()[1].name, "a");
    EXPECT_EQ(st.tensors()[2].name, "b");
    EXPECT_TRUE(st.metadata().empty());
    SafetensorsFile copy = st;  // shares the mapping
    view = copy.view("b");
    EXPECT_EQ(view.f32()[2], 5.0f);
  }
  // Overwriting the file atomically does not disturb an existing mapping of the old one.
  SafetensorsFile st = SafetensorsFile::open(path);
  Tensor before = st.view("a");
  write_safetensors(path, {{"a", Tensor(b, DType::F32, {3})}});
  EXPECT_EQ(before.f32()[1], 2.0f);
  EXPECT_EQ(SafetensorsFile::open(path).view("a").f32()[2], 5.0f);
}

TEST(Safetensors, EmptyHeaderAndZeroSizedTensorsAreLegal) {
  TempDir dir;
  std::string path = dir.file("z.safetensors");
  write_bytes(path, make_file("{}"));
  EXPECT_TRUE(SafetensorsFile::open(path).tensors().empty());

  // Zero-sized tensors at the same offset as a real one and at the very end of the data.
  write_bytes(
      path,
      make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("c":{"dtype":"BF16","shape":[3,0],"data_offsets":[4,4]},)"
                R"("d":{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[4,4]}})",
                std::string(4, '\0')));
  SafetensorsFile st = SafetensorsFile::open(path);
  EXPECT_EQ(st.tensors().size(), 4u);
  EXPECT_EQ(st.view("c").numel(), 0);
  EXPECT_EQ(st.view("d").numel(), 0);
}

TEST(Safetensors, OtherDtypesAreListedButNotViewable) {
  TempDir dir;
  std::string path = dir.file("i.safetensors");
  write_bytes(path, make_file(R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                              R"("m":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]},)"
                              R"("big":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[20,24]},)"
                              R"("odd":{"dtype":"F32","shape":[1],"data_offsets":[25,29]}})",
                              std::string(29, '\0')));
  SafetensorsFile st = SafetensorsFile::open(path);
  const SafetensorsInfo* ids = st.find("ids");
  ASSERT_NE(ids, nullptr);
  EXPECT_FALSE(ids->has_dtype);
  EXPECT_EQ(ids->dtype_name, "I64");
  EXPECT_EQ(ids->nbytes, 16u);
  expect_error([&] { st.view("ids"); }, {path, "'ids'", "I64"});
  expect_error([&] { st.view("m"); }, {path, "'m'", "BOOL"});
  expect_error([&] { st.view("big"); }, {path, "'big'", "5 dimensions"});
  expect_error([&] { st.view("odd"); }, {path, "'odd'", "aligned"});
  expect_error([&] { st.view("nope"); }, {path, "'nope'", "not found"});
}

// ---------------------------------------------------------------------------------------------
// Hostile files: each must give one Error line naming the file (and the tensor where there is
// one), never a crash.

TEST(SafetensorsHostile, TooShortOrEmpty) {
  TempDir dir;
  expect_open_error(dir, "", {"0 bytes", "shorter"});
  expect_open_error(dir, "abcde", {"5 bytes", "shorter"});
  expect_error([&] { SafetensorsFile::open(dir.file("missing.safetensors")); },
               {dir.file("missing.safetensors"), "cannot open"});
  expect_error([&] { SafetensorsFile::open(dir.path()); }, {dir.path(), "not a regular file"});
}

TEST(SafetensorsHostile, HeaderLength) {
  TempDir dir;
  expect_open_error(dir, make_file("{}", "", true, 9), {"header length 9", "exceeds"});
  expect_open_error(dir, make_file("{}", "", true, int64_t(1) << 40), {"absurd"});
  expect_open_error(dir, make_file("{}", "", true, INT64_MAX), {"absurd"});
  std::string max_length(8, '\xff');  // 2^64-1: 8 + N must not wrap around
  expect_open_error(dir, max_length + "{}      ", {"absurd"});
  expect_open_error(dir, make_file("{}", "", true, 0), {"not valid JSON"});
}

TEST(SafetensorsHostile, HeaderNotJsonOrNotObject) {
  TempDir dir;
  expect_open_error(dir, make_file(R"({"a": )"), {"not valid JSON", "column"});
  expect_open_error(dir, make_file("\xff\xfe"), {"not valid JSON"});
  expect_open_error(dir, make_file(R"({"a\u0000b":1)"), {"not valid JSON"});
  expect_open_error(dir, make_file("[1, 2]"), {"not a JSON object"});
  expect_open_error(dir, make_file("42"), {"not a JSON object"});
  expect_open_error(dir, make_file(R"({"__metadata__": [1]})"), {"__metadata__"});
  expect_open_error(dir, make_file(R"({"__metadata__": {"k": 1}})"), {"__metadata__", "'k'"});
  expect_open_error(dir, make_file(R"({"w": 3})"), {"'w'", "expected an object"});
}

TEST(SafetensorsHostile, MissingOrWrongFields) {
  TempDir dir;
  std::string data(16, '\0');
  expect_open_error(dir, make_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", data),
                    {"'w'", "missing 'dtype'"});
  expect_open_error(dir, make_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", data),
                    {"'w'", "missing 'shape'"});
  expect_open_error(dir, make_file(R"({"w":{"dtype":"F32","shape":[1]}})", data),
                    {"'w'", "missing 'data_offsets'"});
  expect_open_error(dir,
                    make_file(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", data),
                    {"'w'", "unknown dtype 'F33'"});
  expect_open_error(dir, make_file(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", data),
                    {"'w'", "'dtype'"});
  expect_open_error(dir,
                    make_file(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", data),
                    {"'w'", "unknown dtype 'F4'"});
}

TEST(SafetensorsHostile, BadShapes) {
  TempDir dir;
  std::string data(16, '\0');
  auto with_shape = [&](const std::string& shape) {
    return make_file(R"({"w":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,4]}})",
                     data);
  };
  expect_open_error(dir, with_shape("[-1]"), {"'w'", "shape"});
  expect_open_error(dir, with_shape("[2.5]"), {"'w'", "shape"});
  expect_open_error(dir, with_shape("[1.0]"), {"'w'", "shape"});
  expect_open_error(dir, with_shape(R"(["1"])"), {"'w'", "shape"});
  expect_open_error(dir, with_shape("[[1]]"), {"'w'", "shape"});
  expect_open_error(dir, with_shape("4"), {"'w'", "'shape'"});
  expect_open_error(dir, with_shape("null"), {"'w'", "'shape'"});
  expect_open_error(dir, with_shape("[18446744073709551615]"), {"'w'", "too many elements"});
  // The element count overflows before the zero dimension is reached (Tensor::numel order).
  expect_open_error(dir, with_shape("[4294967296,4294967296,0]"), {"'w'", "too many elements"});
  // Fits in int64 elements, overflows in bytes.
  expect_open_error(dir, with_shape("[4611686018427387904]"), {"'w'", "too large"});
  // Wraps to exactly the 4 bytes on offer if the multiplication were unchecked (2^62 * 4 = 2^64).
  expect_open_error(dir, with_shape("[4611686018427387905]"), {"'w'", "too large"});
}

TEST(SafetensorsHostile, BadDataOffsets) {
  TempDir dir;
  std::string data(16, '\0');
  auto with_offsets = [&](const std::string& offsets) {
    return make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)" + offsets + "}}", data);
  };
  expect_open_error(dir, with_offsets("[4]"), {"'w'", "[begin, end]"});
  expect_open_error(dir, with_offsets("[0,4,8]"), {"'w'", "[begin, end]"});
  expect_open_error(dir, with_offsets("[-4,0]"), {"'w'", "[begin, end]"});
  expect_open_error(dir, with_offsets(R"(["0","4"])"), {"'w'", "[begin, end]"});
  expect_open_error(dir, with_offsets("[0.0,4.0]"), {"'w'", "[begin, end]"});
  expect_open_error(dir, with_offsets(R"({"a":0})"), {"'w'", "[begin, end]"});
  expect_open_error(dir, with_offsets("[8,4]"), {"'w'", "begin > end"});
  expect_open_error(dir, with_offsets("[16,20]"), {"'w'", "beyond the data section"});
  expect_open_error(dir, with_offsets("[0,18446744073709551615]"), {"'w'", "beyond"});
  expect_open_error(dir, with_offsets("[0,8]"), {"'w'", "needs 4 bytes", "span 8"});
  expect_open_error(dir, with_offsets("[0,0]"), {"'w'", "needs 4 bytes", "span 0"});
}

TEST(SafetensorsHostile, OverlapsAndDuplicates) {
  TempDir dir;
  std::string data(16, '\0');
  expect_open_error(dir,
                    make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              data),
                    {"'b'", "overlaps", "'a'"});
  expect_open_error(dir,
                    make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                              data),
                    {"'b'", "overlaps", "'a'"});
  expect_open_error(dir,
                    make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              data),
                    {"'a'", "twice"});
  // A duplicate key inside an entry or the metadata is not a duplicate tensor.
  std::string path = dir.file("ok.safetensors");
  write_bytes(path, make_file(R"({"__metadata__":{"x":"1"},"a":{"dtype":"F32","shape":[1],)"
                              R"("data_offsets":[0,4],"extra":{"a":1,"a":2}}})",
                              data));
  EXPECT_EQ(SafetensorsFile::open(path).tensors().size(), 1u);
}

TEST(SafetensorsHostile, NamesWithControlCharactersStayOnOneLine) {
  TempDir dir;
  expect_open_error(dir,
                    make_file(R"({"bad\nname":{"dtype":"X","shape":[],"data_offsets":[0,0]}})"),
                    {"bad\\x0aname"});
}

// Every truncation of a valid file fails cleanly; so does every single-byte corruption of its
// header (or the file still opens and its views stay inside the mapping).
TEST(SafetensorsHostile, EveryTruncationAndByteFlip) {
  TempDir dir;
  float w[3] = {1, 2, 3};
  uint16_t b[2] = {1, 2};
  std::string good = dir.file("good.safetensors");
  write_safetensors(good, {{"w", Tensor(w, DType::F32, {3})}, {"b", Tensor(b, DType::BF16, {2})}},
                    {{"k", "v"}});
  std::string raw = read_bytes(good);
  std::string path = dir.file("cut.safetensors");
  for (size_t n = 0; n < raw.size(); ++n) {
    write_bytes(path, raw.substr(0, n));
    EXPECT_THROW(SafetensorsFile::open(path), Error) << "prefix of " << n << " bytes";
  }
  uint64_t header_size;
  std::memcpy(&header_size, raw.data(), 8);
  for (size_t i = 0; i < 8 + header_size; ++i) {
    for (unsigned char flip : {0x01, 0x20, 0x80}) {
      std::string bad = raw;
      bad[i] = char(bad[i] ^ flip);
      write_bytes(path, bad);
      try {
        SafetensorsFile st = SafetensorsFile::open(path);
        for (const SafetensorsInfo& t : st.tensors()) {
          EXPECT_LE(t.offset + t.nbytes, bad.size());
          if (t.has_dtype && t.shape.size() <= size_t(kMaxDims) &&
              t.offset % dtype_size(t.dtype) == 0) {
            EXPECT_EQ(st.view(t.name).nbytes(), t.nbytes);
          }
        }
      } catch (const Error&) {
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directories

TEST(Checkpoint, SingleFileDirectoryAndPath) {
  TempDir dir;
  float w[4] = {1, 2, 3, 4};
  uint16_t b[2] = {5, 6};
  write_safetensors(dir.file("model.safetensors"),
                    {{"z.w", Tensor(w, DType::F32, {2, 2})}, {"a.b", Tensor(b, DType::BF16, {2})}});
  for (const std::string& path : {dir.path(), dir.file("model.safetensors")}) {
    Checkpoint ck = Checkpoint::open(path);
    EXPECT_EQ(ck.names(), (std::vector<std::string>{"a.b", "z.w"}));
    EXPECT_EQ(ck.total_bytes(), 20u);
    EXPECT_TRUE(ck.has("z.w"));
    EXPECT_FALSE(ck.has("q"));
    EXPECT_EQ(ck.info("a.b").dtype, DType::BF16);
    EXPECT_EQ(ck.view("z.w").f32()[3], 4.0f);
    expect_error([&] { ck.info("q"); }, {path, "tensor 'q' not found in checkpoint"});
    expect_error([&] { ck.view("q"); }, {path, "tensor 'q' not found in checkpoint"});
  }
}

TEST(Checkpoint, OtherSingleSafetensorsName) {
  TempDir dir;
  float w[1] = {7};
  write_safetensors(dir.file("adapter.safetensors"), {{"w", Tensor(w, DType::F32, {1})}});
  EXPECT_EQ(Checkpoint::open(dir.path()).view("w").f32()[0], 7.0f);
  write_safetensors(dir.file("other.safetensors"), {{"w", Tensor(w, DType::F32, {1})}});
  expect_error([&] { Checkpoint::open(dir.path()); }, {dir.path(), "model.safetensors"});
  TempDir empty;
  expect_error([&] { Checkpoint::open(empty.path()); }, {empty.path(), "model.safetensors"});
  expect_error([&] { Checkpoint::open(empty.file("nope")); }, {empty.file("nope"), "no such"});
}

struct ShardedFixture {
  TempDir dir;
  float a[2] = {1, 2}, b[3] = {3, 4, 5}, c[1] = {6};
  ShardedFixture() {
    write_safetensors(dir.file("model-00001-of-00002.safetensors"),
                      {{"a", Tensor(a, DType::F32, {2})}, {"b", Tensor(b, DType::F32, {3})}});
    write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                      {{"c", Tensor(c, DType::F32, {1})}});
  }
  std::string write_index(const std::string& weight_map) {
    std::string path = dir.file("model.safetensors.index.json");
    write_bytes(path, R"({"metadata":{"total_size":24},"weight_map":)" + weight_map + "}");
    return path;
  }
};

TEST(Checkpoint, Sharded) {
  ShardedFixture f;
  f.write_index(R"({"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",)"
                R"("c":"model-00002-of-00002.safetensors"})");
  for (const std::string& path : {f.dir.path(), f.dir.file("model.safetensors.index.json")}) {
    Checkpoint ck = Checkpoint::open(path);
    EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(ck.total_bytes(), 24u);
    EXPECT_EQ(ck.view("b").f32()[2], 5.0f);
    EXPECT_EQ(ck.view("c").f32()[0], 6.0f);
  }
}

TEST(Checkpoint, HostileIndex) {
  ShardedFixture f;
  std::string index =
      f.write_index(R"({"a":"model-00001-of-00002.safetensors","d":"missing.safetensors"})");
  expect_error([&] { Checkpoint::open(f.dir.path()); },
               {index, "'d'", "missing.safetensors", "missing"});
  f.write_index(
      R"({"a":"model-00001-of-00002.safetensors","c":"model-00001-of-00002.safetensors"})");
  expect_error([&] { Checkpoint::open(f.dir.path()); },
               {index, "'c'", "not in its shard", "model-00001-of-00002.safetensors"});
  f.write_index(R"({"a":"../model-00001-of-00002.safetensors"})");
  expect_error([&] { Checkpoint::open(f.dir.path()); }, {index, "'a'", "not a file name inside"});
  f.write_index(R"({"a":"/etc/passwd"})");
  expect_error([&] { Checkpoint::open(f.dir.path()); }, {index, "'a'", "not a file name inside"});
  f.write_index(R"({"a":3})");
  expect_error([&] { Checkpoint::open(f.dir.path()); }, {index, "'a'", "string"});
  f.write_index(R"([1])");
  expect_error([&] { Checkpoint::open(f.dir.path()); }, {index, "weight_map"});
  write_bytes(index, R"({"metadata":{}})");
  expect_error([&] { Checkpoint::open(f.dir.path()); }, {index, "weight_map"});
  write_bytes(index, R"({"weight_map":)");
  expect_error([&] { Checkpoint::open(f.dir.path()); }, {index, "invalid JSON"});
  // A shard that is itself corrupt is reported by its own path.
  f.write_index(R"({"a":"model-00001-of-00002.safetensors"})");
  write_bytes(f.dir.file("model-00001-of-00002.safetensors"), "abc");
  expect_error([&] { Checkpoint::open(f.dir.path()); },
               {"model-00001-of-00002.safetensors", "shorter"});
}

// ---------------------------------------------------------------------------------------------
// Atomic writes

int count_entries(const std::string& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(AtomicWrite, MissingDirectoryFailsWithoutLeftovers) {
  TempDir dir;
  float w[1] = {1};
  std::string path = dir.file("no/such/dir/model.safetensors");
  expect_error([&] { write_safetensors(path, {{"w", Tensor(w, DType::F32, {1})}}); }, {path});
  expect_error([&] { write_file_atomic(path, "x"); }, {path});
  EXPECT_EQ(count_entries(dir.path()), 0);
}

TEST(AtomicWrite, RenameOntoDirectoryFailsAndRemovesTemp) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("target"));
  std::filesystem::create_directory(dir.file("target/keep"));
  expect_error([&] { write_file_atomic(dir.file("target"), "data"); },
               {dir.file("target"), "rename"});
  EXPECT_EQ(count_entries(dir.path()), 1);
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("target/keep")));
}

// A write that fails midway (here: the file size limit is hit, as a full disk would) leaves the
// old file intact and no temp file behind.
TEST(AtomicWrite, FailureMidwayKeepsOldFile) {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  float small[2] = {1, 2};
  write_safetensors(path, {{"w", Tensor(small, DType::F32, {2})}});
  std::string old_bytes = read_bytes(path);

  std::vector<float> big(1 << 16, 3.0f);  // 256 KiB
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit limited = saved;
  limited.rlim_cur = 64 * 1024;
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of being killed
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  bool threw = false;
  std::string message;
  try {
    write_safetensors(path, {{"w", Tensor(big.data(), DType::F32, {int64_t(big.size())})}});
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, old_handler);

  EXPECT_TRUE(threw);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_EQ(read_bytes(path), old_bytes);
  EXPECT_EQ(count_entries(dir.path()), 1);
  EXPECT_EQ(SafetensorsFile::open(path).view("w").f32()[1], 2.0f);
}

TEST(AtomicWrite, ReplacesContent) {
  TempDir dir;
  std::string path = dir.file("config.json");
  write_file_atomic(path, "first");
  write_file_atomic(path, "second, longer");
  EXPECT_EQ(read_bytes(path), "second, longer");
  write_file_atomic(path, "");
  EXPECT_EQ(read_bytes(path), "");
  EXPECT_EQ(count_entries(dir.path()), 1);
}

TEST(AtomicWrite, RejectsBadTensorLists) {
  TempDir dir;
  float w[4] = {};
  std::string path = dir.file("m.safetensors");
  expect_error(
      [&] {
        write_safetensors(path,
                          {{"w", Tensor(w, DType::F32, {1})}, {"w", Tensor(w, DType::F32, {1})}});
      },
      {path, "'w'", "twice"});
  expect_error(
      [&] {
        write_safetensors(path, {{"", Tensor(w, DType::F32, {1})}});
      },
      {path, "name"});
  expect_error(
      [&] {
        write_safetensors(path, {{"__metadata__", Tensor(w, DType::F32, {1})}});
      },
      {path, "name"});
  Tensor strided(w, DType::F32, {2, 2});
  std::swap(strided.stride[0], strided.stride[1]);
  expect_error([&] { write_safetensors(path, {{"t", strided}}); }, {path, "'t'", "contiguous"});
  expect_error(
      [&] {
        write_safetensors(path, {{"n", Tensor(nullptr, DType::F32, {2})}});
      },
      {path, "'n'", "no data"});
  expect_error([&] { write_safetensors(path, {{"\xff", Tensor(w, DType::F32, {1})}}); }, {path});
  EXPECT_EQ(count_entries(dir.path()), 0);
}

}  // namespace
}  // namespace zoft
