// GGUF reader tests: fixtures from tools/make_gguf_fixtures.py (gguf-py is the reference),
// hostile files built byte by byte, and (when the env vars point at them) the real models.
#include "io/gguf.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "core/error.h"

namespace zoft {
namespace {

std::string fixture(const char* name) {
  return std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/gguf/" + name;
}

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Fixture: every metadata type

TEST(Gguf, MetadataOfEveryType) {
  auto f = GgufFile::open(fixture("meta.gguf"));
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->get_string("general.architecture"), "zoft-test");
  EXPECT_EQ(f->keys().front(), "general.architecture");
  EXPECT_EQ(f->get_u32("t.u8"), 200u);
  EXPECT_EQ(f->get_i32("t.i8"), -100);
  EXPECT_EQ(f->get_u32("t.u16"), 60000u);
  EXPECT_EQ(f->get_i32("t.i16"), -30000);
  EXPECT_EQ(f->get_u32("t.u32"), 4000000000u);
  EXPECT_EQ(f->get_i32("t.i32"), -2000000000);
  EXPECT_EQ(f->get_f32("t.f32"), 0.25f);
  EXPECT_TRUE(f->get_bool("t.bool"));
  EXPECT_EQ(f->get_string("t.string"), "h\xc3\xa9llo \xe2\x9c\x93");
  EXPECT_EQ(f->get_u64("t.u64"), uint64_t(1) << 40);
  EXPECT_EQ(f->value("t.i64").as_i64(), -(int64_t(1) << 40));
  EXPECT_EQ(f->get_f32("t.f64"), -1.5f);
  EXPECT_EQ(f->value("t.u8").type, GgufType::U8);
  EXPECT_EQ(f->value("t.f64").type, GgufType::F64);

  EXPECT_EQ(f->get_string_array("t.arr.string"),
            (std::vector<std::string>{"a", "", "\xc4\xa0Hello", "<0x0A>"}));
  EXPECT_EQ(f->get_i32_array("t.arr.u8"), (std::vector<int32_t>{1, 2, 255}));
  EXPECT_EQ(f->get_i32_array("t.arr.i8"), (std::vector<int32_t>{-1, 2, -128}));
  EXPECT_EQ(f->get_i32_array("t.arr.u16"), (std::vector<int32_t>{1, 65535}));
  EXPECT_EQ(f->get_i32_array("t.arr.i16"), (std::vector<int32_t>{-1, 32767}));
  EXPECT_EQ(f->get_i32_array("t.arr.i32"), (std::vector<int32_t>{3, -1, 2147483647}));
  EXPECT_EQ(f->get_f32_array("t.arr.f32"), (std::vector<float>{0.5f, -2.0f, 1e-3f}));
  EXPECT_EQ(f->get_f32_array("t.arr.f64"), (std::vector<float>{0.5f, -2.5f}));
  const GgufValue& u64 = f->value("t.arr.u64");
  EXPECT_EQ(u64.elem_type, GgufType::U64);
  EXPECT_EQ(u64.elem_u64(1), uint64_t(1) << 40);
  const GgufValue& b = f->value("t.arr.bool");
  ASSERT_EQ(b.count, 3u);
  EXPECT_EQ(b.elem_u64(0) + 2 * b.elem_u64(1) + 4 * b.elem_u64(2), 5u);

  const GgufValue& nested = f->value("t.arr.nested");
  ASSERT_EQ(nested.elem_type, GgufType::ARRAY);
  ASSERT_EQ(nested.arrays.size(), 2u);
  EXPECT_EQ(nested.arrays[1].elem_type, GgufType::I32);
  EXPECT_EQ(nested.arrays[1].count, 3u);
  EXPECT_EQ(nested.arrays[1].elem_i64(2), 5);
  const GgufValue& ns = f->value("t.arr.nested_str");
  ASSERT_EQ(ns.arrays.size(), 2u);
  EXPECT_EQ(ns.arrays[0].strings, (std::vector<std::string>{"x", "y"}));
}

TEST(Gguf, GettersCheckTypesAndRanges) {
  auto f = GgufFile::open(fixture("meta.gguf"));
  EXPECT_THROW(f->get_u32("t.i8"), Error);   // -100 is not a u32
  EXPECT_THROW(f->get_i32("t.u32"), Error);  // 4e9 does not fit
  EXPECT_THROW(f->get_i32_array("t.arr.u32"), Error);
  EXPECT_THROW(f->get_i32_array("t.arr.i64"), Error);  // 2^40 does not fit
  EXPECT_THROW(f->get_string("t.u8"), Error);
  EXPECT_THROW(f->get_bool("t.u8"), Error);
  EXPECT_THROW(f->get_f32("t.string"), Error);
  EXPECT_THROW(f->get_string_array("t.arr.i32"), Error);
  EXPECT_FALSE(f->opt_u32("no.such.key").has_value());
  EXPECT_EQ(f->opt_u32("t.u16").value(), 60000u);
  EXPECT_EQ(f->opt_string("t.string").value(), f->get_string("t.string"));
  EXPECT_THROW(f->opt_u32("t.string"), Error);  // present with a wrong type still throws
  EXPECT_FALSE(f->has("no.such.key"));
  try {
    f->get_u32("no.such.key");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("meta.gguf: metadata key 'no.such.key' is missing"),
              std::string::npos)
        << e.what();
  }
  try {
    f->get_string("t.u8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'t.u8' is u8 200, expected a string"), std::string::npos)
        << e.what();
  }
}

TEST(Gguf, TensorInfosAndDimOrder) {
  auto f = GgufFile::open(fixture("meta.gguf"));
  ASSERT_EQ(f->tensors().size(), 2u);
  const GgufTensorInfo& cube = f->tensor("cube");
  EXPECT_EQ(cube.n_dims, 3);
  EXPECT_EQ(cube.ne[0], 4);
  EXPECT_EQ(cube.ne[2], 2);
  EXPECT_EQ(cube.shape(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(cube.shape_string(), "[2, 3, 4]");
  EXPECT_EQ(cube.numel, 24);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->tensor("vec").offset % 64, 0u);
  EXPECT_EQ(f->bytes_of("vec").size(), 12u);
  OwnedTensor t = f->to_f32("cube");
  EXPECT_EQ(t.view.shape_string(), "[2, 3, 4]");
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t.view.f32()[i], float(i));
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
  EXPECT_THROW(f->tensor("nope"), Error);
}

// ---------------------------------------------------------------------------------------------
// Fixture: one tensor per type against gguf.quants.dequantize, bit for bit

TEST(Gguf, DequantiseMatchesGgufPyExactly) {
  auto f = GgufFile::open(fixture("quants.gguf"));
  const char* names[] = {"F32",  "F16",  "BF16", "Q4_0", "Q4_1", "Q5_0",
                         "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "Q8_K"};
  for (const char* name : names) {
    SCOPED_TRACE(name);
    const GgufTensorInfo& t = f->tensor(name);
    EXPECT_STREQ(ggml_type_name(t.type), name);
    OwnedTensor got = f->to_f32(name);
    OwnedTensor ref = f->to_f32(std::string(name) + ".ref");
    ASSERT_EQ(got.view.shape_string(), "[2, 512]");
    ASSERT_EQ(ref.view.shape_string(), "[2, 512]");
    int mismatches = 0;
    for (int64_t i = 0; i < 1024; ++i) {
      uint32_t g = bits_of(got.view.f32()[i]), r = bits_of(ref.view.f32()[i]);
      if (g != r && mismatches++ < 3)
        ADD_FAILURE() << name << "[" << i << "] = " << got.view.f32()[i] << " (0x" << std::hex << g
                      << "), reference " << ref.view.f32()[i] << " (0x" << r << ")" << std::dec;
    }
    EXPECT_EQ(mismatches, 0);
    // One row through the low-level entry point gives the same values.
    std::vector<float> row(512);
    const GgmlTypeInfo* info = ggml_type_info(uint32_t(t.type));
    dequantize_row(t.type, t.data + 512 / info->block_size * info->type_size, row.data(), 512);
    EXPECT_EQ(std::memcmp(row.data(), ref.view.f32() + 512, 512 * 4), 0);
  }
}

TEST(Gguf, TypeTable) {
  EXPECT_EQ(ggml_type_info(12)->block_size, 256);
  EXPECT_EQ(ggml_type_info(12)->type_size, 144);
  EXPECT_STREQ(ggml_type_info(30)->name, "BF16");
  EXPECT_EQ(ggml_type_info(4), nullptr);  // removed Q4_2
  EXPECT_EQ(ggml_type_info(1000), nullptr);
  EXPECT_FALSE(ggml_can_dequantize(GgmlType::Q2_K));
  float out[256];
  uint8_t zeros[292] = {};
  EXPECT_THROW(dequantize_row(GgmlType::Q2_K, zeros, out, 256), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q4_0, zeros, out, 31), Error);
  dequantize_row(GgmlType::Q8_K, zeros, out, 256);
  EXPECT_EQ(out[255], 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Hostile files, built byte by byte

struct Bytes {
  std::string b;
  Bytes& u8(uint8_t v) { return raw(&v, 1); }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& raw(const void* p, size_t n) {
    b.append(static_cast<const char*>(p), n);
    return *this;
  }
  Bytes& str(std::string_view s) {
    u64(s.size());
    b.append(s);
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.append("GGUF");
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  Bytes& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(off);
  }
  Bytes& pad(size_t align = 32) {
    while (b.size() % align) b.push_back('\0');
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.append(n, '\0');
    return *this;
  }
};

class GgufHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "zoft_gguf_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& p : files_) unlink(p.c_str());
    rmdir(dir_.c_str());
  }
  std::string write(const std::string& bytes) {
    std::string path = dir_ + "/f" + std::to_string(files_.size()) + ".gguf";
    std::ofstream(path, std::ios::binary) << bytes;
    files_.push_back(path);
    return path;
  }
  // Opening must fail with one line that names the file and contains `expect`.
  void expect_error(const Bytes& bytes, const std::string& expect) {
    std::string path = write(bytes.b);
    try {
      GgufFile::open(path);
      ADD_FAILURE() << "opened without error; expected: " << expect;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(expect), std::string::npos) << msg;
      EXPECT_EQ(msg.rfind(path, 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(GgufHostile, HeaderErrors) {
  expect_error(Bytes{}, "too short");
  expect_error(Bytes{"GGU"}, "too short");
  expect_error(Bytes{std::string("GGML\3\0\0\0", 8)},
               "not a GGUF file: magic bytes are 47 47 4d 4c");
  expect_error(Bytes().header(0, 0, 1), "GGUF version 1 is not supported (expected 2 or 3)");
  expect_error(Bytes().header(0, 0, 4), "version 4");
  expect_error(Bytes().header(0, 0, 0x03000000), "big-endian");
  expect_error(Bytes{std::string("GGUF\3\0\0\0\0\0", 10)}, "truncated");
  expect_error(Bytes().header(uint64_t(1) << 62, 0), "header claims 4611686018427387904 tensors");
  expect_error(Bytes().header(0, ~uint64_t(0)), "metadata entries");
}

TEST_F(GgufHostile, MinimalFilesAreValid) {
  auto f = GgufFile::open(write(Bytes().header(0, 0).b));
  EXPECT_TRUE(f->tensors().empty());
  Bytes v2;
  v2.header(1, 1, 2).kv_u32("k", 7).tensor("w", {32}, 8, 0).pad().zeros(34);
  f = GgufFile::open(write(v2.b));
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->get_u32("k"), 7u);
  // An empty array is legal (gguf-py cannot write one).
  Bytes empty;
  empty.header(0, 1).str("a").u32(9).u32(5).u64(0);
  EXPECT_EQ(GgufFile::open(write(empty.b))->get_i32_array("a").size(), 0u);
}

TEST_F(GgufHostile, MetadataErrors) {
  expect_error(Bytes().header(0, 1).str("k").u32(13).u32(0), "unknown metadata value type id 13");
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(42).u64(1).u32(0),
               "unknown metadata value type id 42");
  expect_error(Bytes().header(0, 1).str("k").u32(8).u64(uint64_t(1) << 60),
               "string value of metadata key 'k' claims 1152921504606846976 bytes");
  expect_error(Bytes().header(0, 1).u64(~uint64_t(0)).zeros(16), "key of metadata entry 0 claims");
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(uint64_t(1) << 61).zeros(16),
               "is an array of 2305843009213693952 string elements");
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(4).u64(1000).zeros(16),
               "array of 1000 u32 elements");
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(9).u64(1000000).zeros(64),
               "array of 1000000 array elements");
  expect_error(Bytes().header(0, 1).str("k").u32(7).u8(2), "bool with byte value 2");
  expect_error(Bytes().header(0, 1).str("k").u32(4), "truncated: value of metadata key 'k'");
  expect_error(Bytes().header(0, 2).kv_u32("k", 1).kv_u32("k", 2), "key 'k' appears twice");
  expect_error(Bytes().header(0, 1).str("").u32(4).u32(0), "empty key");
  expect_error(Bytes().header(0, 1).str("a\xff").u32(4).u32(0), "not valid UTF-8: 'a\\xff'");
  expect_error(Bytes().header(0, 1).str("\xc0\xaf").u32(4).u32(0), "not valid UTF-8");  // overlong
  expect_error(Bytes().header(0, 1).str("\xed\xa0\x80").u32(4).u32(0), "not valid UTF-8");
  // A control character in a key is valid UTF-8 but must not break the one-line message.
  expect_error(Bytes().header(0, 2).kv_u32("a\nb", 1).kv_u32("a\nb", 1), "'a\\x0ab' appears");
  // Arrays nested deeper than any real file: an error, not a stack overflow.
  Bytes deep;
  deep.header(0, 1).str("k").u32(9);
  for (int i = 0; i < 10000; ++i) deep.u32(9).u64(1);
  expect_error(deep, "nests arrays more than 8 deep");
}

TEST_F(GgufHostile, AlignmentErrors) {
  expect_error(Bytes().header(0, 1).kv_u32("general.alignment", 48), "expected a power of two");
  expect_error(Bytes().header(0, 1).kv_u32("general.alignment", 0), "expected a power of two");
  expect_error(Bytes().header(1, 0).tensor("w", {8}, 0, 4).pad().zeros(64),
               "tensor 'w' has data offset 4, expected a multiple of the alignment 32");
  Bytes ok;  // alignment 16 makes offset 16 legal
  ok.header(1, 1).kv_u32("general.alignment", 16).tensor("w", {4}, 0, 16).pad(16).zeros(32);
  EXPECT_EQ(GgufFile::open(write(ok.b))->tensor("w").offset, 16u);
}

TEST_F(GgufHostile, TensorInfoErrors) {
  auto one = [](std::vector<uint64_t> ne, uint32_t type, uint64_t off = 0, size_t data = 64) {
    Bytes b;
    b.header(1, 0).tensor("w", std::move(ne), type, off).pad().zeros(data);
    return b;
  };
  expect_error(one({8}, 100), "tensor 'w' has unknown GGML type id 100");
  expect_error(one({8}, 4), "unknown GGML type id 4");
  expect_error(one({1, 1, 1, 1, 1}, 0), "has 5 dimensions, expected at most 4");
  expect_error(one({uint64_t(1) << 32, uint64_t(1) << 32}, 0), "product overflows int64");
  expect_error(one({~uint64_t(0)}, 0), "expected a non-negative int64");
  expect_error(one({uint64_t(1) << 40}, 0), "needs more bytes than the");
  expect_error(one({48}, 2), "row of 48 elements, expected a multiple of the block size 32");
  expect_error(one({32}, 0), "tensor 'w' data (128 bytes at offset 0 of the data section");
  expect_error(one({8}, 0, 64), "extends past the end");
  expect_error(one({8}, 0, uint64_t(1) << 63), "extends past the end");
  expect_error(Bytes().header(1, 0).str("wwwwwwwwww").u32(1).u64(8),
               "truncated: type of tensor 'wwwwwwwwww'");
  expect_error(Bytes().header(1, 0).str("\xff").u32(0).u32(0).u64(0), "not valid UTF-8");
  Bytes dup;
  dup.header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad().zeros(64);
  expect_error(dup, "tensor 'w' appears twice");
  // A type we cannot dequantise opens (sizes check out) and fails only when dequantised.
  auto f = GgufFile::open(write(one({256}, 10, 0, 84).b));
  EXPECT_EQ(f->bytes_of("w").size(), 84u);
  std::vector<float> out(256);
  try {
    f->dequantize("w", out.data());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w' has type Q2_K, which cannot be dequantised"),
              std::string::npos)
        << e.what();
  }
}

// Tensors whose bytes overlap would alias each other's weights: refused, whatever their order.
TEST_F(GgufHostile, OverlappingTensorsFail) {
  Bytes overlap;  // 'a' is 32 f32 = 128 bytes at 0; 'b' starts inside it, at 64
  overlap.header(2, 0).tensor("a", {32}, 0, 0).tensor("b", {8}, 0, 64).pad().zeros(192);
  expect_error(overlap, "tensors 'a' (bytes 0..128) and 'b' (from byte 64) overlap");
  Bytes reversed;  // the same, listed the other way round
  reversed.header(2, 0).tensor("b", {8}, 0, 64).tensor("a", {32}, 0, 0).pad().zeros(192);
  expect_error(reversed, "overlap in the data section");
  Bytes same;  // two names for one range
  same.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).pad().zeros(64);
  expect_error(same, "overlap");
  Bytes adjacent;  // touching is fine
  adjacent.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(64);
  EXPECT_EQ(GgufFile::open(write(adjacent.b))->tensors().size(), 2u);
}

// Every prefix of a valid file that cuts into what the tensors need must fail cleanly; the
// trailing padding after the last tensor may go.
TEST_F(GgufHostile, EveryTruncationFails) {
  for (const char* name : {"meta.gguf", "quants.gguf"}) {
    std::ifstream in(fixture(name), std::ios::binary);
    std::string full((std::istreambuf_iterator<char>(in)), {});
    auto f = GgufFile::open(fixture(name));
    size_t needed = 0;
    for (const GgufTensorInfo& t : f->tensors())
      needed = std::max<size_t>(needed, f->data_offset() + t.offset + t.nbytes);
    // Cutting one file shorter and shorter is much cheaper than writing every prefix anew.
    std::string path = write(full);
    // Every cut inside the header and infos; every 17th byte inside the 64 KB of tensor data.
    for (size_t n = full.size(); n-- > 0;) {
      if (n > f->data_offset() && n % 17 != 0 && n != needed - 1) continue;
      ASSERT_EQ(truncate(path.c_str(), off_t(n)), 0);
      if (n >= needed) {
        EXPECT_NO_THROW(GgufFile::open(path)) << name << " cut at " << n;
      } else {
        EXPECT_THROW(GgufFile::open(path), Error) << name << " cut at " << n;
      }
    }
  }
}

// Corrupting any single byte of the header, metadata or tensor infos gives a clean Error or a
// file that opens and dequantises; never a crash, a hang or a huge allocation (ASan checks).
TEST_F(GgufHostile, EveryByteFlip) {
  std::ifstream in(fixture("meta.gguf"), std::ios::binary);
  std::string full((std::istreambuf_iterator<char>(in)), {});
  size_t data_offset = GgufFile::open(fixture("meta.gguf"))->data_offset();
  std::string path = write(full);
  std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
  auto poke = [&](size_t i, char c) {  // in place: rewriting 1.4 KB per case is 5x slower
    io.seekp(std::streamoff(i));
    io.put(c);
    io.flush();
  };
  int opened = 0, failed = 0;
  for (size_t i = 0; i < data_offset; ++i) {
    for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0x80), uint8_t(full[i] ^ 1)}) {
      poke(i, char(v));
      try {
        auto f = GgufFile::open(path);
        for (const GgufTensorInfo& t : f->tensors())
          if (ggml_can_dequantize(t.type) && t.numel < (1 << 20)) f->to_f32(t.name);
        ++opened;
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        ++failed;
      }
    }
    poke(i, full[i]);
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(opened, 0);
}

TEST_F(GgufHostile, TooManyNestedArrays) {
  Bytes b;
  b.header(0, 1).str("k").u32(9).u32(9).u64(2000000);
  for (int i = 0; i < 2000000; ++i) b.u32(5).u64(0);
  expect_error(b, "nested arrays to more than 1048576");
}

// ---------------------------------------------------------------------------------------------
// Real models (ZOFT_GGUF_GEMMA / ZOFT_GGUF_SMOLLM = path of the .gguf; see docs/models.md)

void check_real_model(const char* env, const char* arch, uint32_t blocks, size_t n_tensors) {
  const char* path = std::getenv(env);
  if (!path || !*path) GTEST_SKIP() << env << " is not set";
  auto t0 = std::chrono::steady_clock::now();
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->get_string("general.architecture"), arch);
  EXPECT_EQ(f->get_u32(std::string(arch) + ".block_count"), blocks);
  EXPECT_EQ(f->tensors().size(), n_tensors);
  size_t vocab = f->get_string_array("tokenizer.ggml.tokens").size();
  EXPECT_EQ(f->get_i32_array("tokenizer.ggml.token_type").size(), vocab);
  EXPECT_LT(f->get_u32("tokenizer.ggml.bos_token_id"), vocab);
  EXPECT_LT(f->get_u32("tokenizer.ggml.eos_token_id"), vocab);

  struct Stats {
    int tensors = 0;
    double n = 0, sum = 0, sum2 = 0, max_abs = 0;
  };
  std::map<std::string, Stats> by_type;
  int64_t params = 0;
  for (const GgufTensorInfo& t : f->tensors()) {
    OwnedTensor x = f->to_f32(t.name);
    Stats& s = by_type[ggml_type_name(t.type)];
    s.tensors++;
    double sum = 0, sum2 = 0, max_abs = 0;
    for (int64_t i = 0; i < t.numel; ++i) {
      double v = x.view.f32()[i];
      ASSERT_TRUE(std::isfinite(v)) << t.name << "[" << i << "]";
      sum += v, sum2 += v * v, max_abs = std::max(max_abs, std::abs(v));
    }
    s.n += double(t.numel), s.sum += sum, s.sum2 += sum2, s.max_abs = std::max(s.max_abs, max_abs);
    params += t.numel;
    // Quantised weight matrices are not degenerate: some spread, no absurd magnitudes.
    if (t.n_dims == 2) {
      double mean = sum / double(t.numel), sd = std::sqrt(sum2 / double(t.numel) - mean * mean);
      EXPECT_GT(sd, 1e-4) << t.name;
      EXPECT_LT(max_abs, 1e3) << t.name;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %zu tensors, %lld parameters, opened + dequantised + scanned in %.2f s\n", path,
              f->tensors().size(), (long long)params, secs);
  for (const auto& [type, s] : by_type) {
    double mean = s.sum / s.n, sd = std::sqrt(s.sum2 / s.n - mean * mean);
    std::printf("  %-5s %4d tensors %11.0f values  mean %+.5f  std %.5f  max|x| %.3f\n",
                type.c_str(), s.tensors, s.n, mean, sd, s.max_abs);
  }
}

TEST(GgufRealModel, Gemma3_270M) {
  check_real_model("ZOFT_GGUF_GEMMA", "gemma3", 18, 236);
}
TEST(GgufRealModel, SmolLM2_135M) {
  check_real_model("ZOFT_GGUF_SMOLLM", "llama", 30, 272);
}

}  // namespace
}  // namespace zoft
