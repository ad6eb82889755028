// libFuzzer target for the GGUF reader and what is built on it: any input must open cleanly or
// throw zoft::Error; then every metadata value is printed and read with every typed getter,
// every tensor must lie inside the file, every small dequantisable tensor is dequantised, and
// the tokenizer (tokenizer.ggml.*) and model import (config + tensors) run on the metadata.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/gguf.h"
#include "model/gguf_import.h"
#include "text/gguf_tokenizer.h"
#include "text/tokenizer.h"

namespace {

// Below 1 << 16 elements dequantize() stays on the calling thread (no thread pool per input).
constexpr int64_t kMaxDequantNumel = int64_t(1) << 16;
constexpr int64_t kMaxImportNumel = int64_t(1) << 20;

template <class F>
void expect_error_or_value(F&& f) {
  try {
    (void)f();
  } catch (const zoft::Error&) {
  }
}

void read_metadata(const zoft::GgufFile& g) {
  for (const std::string& key : g.keys()) {
    const zoft::GgufValue& v = g.value(key);
    if (g.find(key) != &v || !g.has(key)) zoft_fuzz::bug("find() / has() disagree with value()");
    (void)v.describe();
    (void)zoft::gguf_printable(key);
    if (v.type == zoft::GgufType::ARRAY && v.count > 0 && v.count <= 4096 && !v.packed.empty()) {
      if (v.elem_type == zoft::GgufType::F32 || v.elem_type == zoft::GgufType::F64) {
        (void)v.elem_f64(0);
        (void)v.elem_f64(v.count - 1);
      } else if (v.elem_type != zoft::GgufType::BOOL) {
        (void)v.elem_i64(v.count - 1);
        (void)v.elem_u64(0);
      }
    }
    expect_error_or_value([&] { return g.get_u32(key); });
    expect_error_or_value([&] { return g.get_i32(key); });
    expect_error_or_value([&] { return g.get_u64(key); });
    expect_error_or_value([&] { return g.get_f32(key); });
    expect_error_or_value([&] { return g.get_bool(key); });
    expect_error_or_value([&] { return g.get_string(key); });
    expect_error_or_value([&] { return g.get_string_array(key); });
    expect_error_or_value([&] { return g.get_i32_array(key); });
    expect_error_or_value([&] { return g.get_f32_array(key); });
  }
}

void read_tensors(const zoft::GgufFile& g) {
  const uint64_t file_size = g.file_size();
  for (const zoft::GgufTensorInfo& t : g.tensors()) {
    if (g.find_tensor(t.name) != &t) zoft_fuzz::bug("find_tensor() does not return the tensor");
    (void)t.shape_string();
    uint64_t begin = g.data_offset() + t.offset;
    if (begin < g.data_offset() || begin > file_size || t.nbytes > file_size - begin)
      zoft_fuzz::bug("a tensor's bytes lie outside the file");
    if (g.bytes_of(t.name).size() != t.nbytes) zoft_fuzz::bug("bytes_of() size != nbytes");
    if (t.numel < 0) zoft_fuzz::bug("negative numel");
    if (!zoft::ggml_can_dequantize(t.type) || t.numel >= kMaxDequantNumel) continue;
    std::vector<float> out(size_t(t.numel) + 1);
    out.back() = 1234.5f;
    g.dequantize(t.name, out.data());  // a dequantisable tensor that opened must dequantise
    if (out.back() != 1234.5f) zoft_fuzz::bug("dequantize() wrote past numel");
    zoft::OwnedTensor owned = g.to_f32(t.name);
    if (owned.view.numel() != t.numel) zoft_fuzz::bug("to_f32() numel differs");
  }
}

void read_tokenizer(const zoft::GgufFile& g) {
  zoft::text::TokenizerSpec spec = zoft::text::tokenizer_spec_from_gguf(g);
  std::string json;
  try {
    json = zoft::text::tokenizer_json_from_spec(spec);
  } catch (const zoft::Error&) {
  }
  zoft::text::Tokenizer tok(std::move(spec));
  const std::string text = "Hello world! <s> 12345 \xC3\xA9t\xC3\xA9 \xE2\x96\x81x\n\t  end";
  std::vector<int32_t> ids = tok.encode(text);
  (void)tok.decode(ids);
  (void)tok.decode(ids, true);
  for (int32_t id : ids) (void)tok.token_bytes(id);
  (void)tok.decode({-1, 0, 1, int32_t(tok.vocab_size()), 0x7fffffff});
  // The tokenizer.json written for the spec (zoft convert) must load and encode the same.
  if (!json.empty()) {
    std::optional<zoft::text::Tokenizer> again;
    try {
      again.emplace(zoft::text::Tokenizer::from_json(json, "written tokenizer.json"));
    } catch (const zoft::Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      zoft_fuzz::bug("the tokenizer.json written for a GGUF tokenizer does not load");
    }
    if (again->encode(text) != ids) zoft_fuzz::bug("the written tokenizer.json encodes differently");
  }
}

void import_model(const zoft::GgufFile& g) {
  (void)zoft::gguf_model_config(g).dump();
  int64_t total = 0;
  for (const zoft::GgufTensorInfo& t : g.tensors())
    if ((total += t.numel) > kMaxImportNumel) return;
  (void)zoft::import_gguf(g);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = zoft_fuzz::write_input(data, size, "input.gguf");
  std::unique_ptr<zoft::GgufFile> g;
  try {
    g = zoft::GgufFile::open(path);
  } catch (const zoft::Error&) {
    return 0;
  }
  if (g->file_size() != size) zoft_fuzz::bug("file_size() differs from the input's size");
  read_metadata(*g);
  read_tensors(*g);
  try {
    read_tokenizer(*g);
  } catch (const zoft::Error&) {
  }
  try {
    import_model(*g);
  } catch (const zoft::Error&) {
  }
  return 0;
}
