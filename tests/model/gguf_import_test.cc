// GGUF import against transformers: tiny models written as llama.cpp writes them
// (tools/make_gguf_model_fixture.py) must give transformers' logits when loaded from the .gguf.
#include "model/gguf_import.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/gguf.h"
#include "model/golden_util.h"
#include "model/inspect.h"

namespace zoft::test {
namespace {

std::string gguf_fixture(const std::string& name) {
  return std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/gguf/" + name;
}

std::vector<float> reference(const std::string& name) {
  SafetensorsFile file = SafetensorsFile::open(gguf_fixture("gguf_models.safetensors"));
  Tensor t = file.view(name);
  return std::vector<float>(t.f32(), t.f32() + t.numel());
}

double relative_error(const std::vector<float>& ours, const std::vector<float>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (double(ours[i]) - ref[i]) * (double(ours[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return std::sqrt(diff / norm);
}

// Logits of the golden "nopad" batch (3 x 12 ids < 128) from a model loaded from `path`.
std::vector<float> nopad_logits(const std::string& path, DType dtype) {
  GoldenCase g = load_golden("llama", "nopad");
  Decoder model = Decoder::load(path, dtype);
  std::vector<float> logits(size_t(g.batch.rows() * model.config().vocab_size));
  model.logits(g.batch, logits.data());
  return logits;
}

// The reference logits come from transformers running the weights exactly as the file stores
// them (quantised ones dequantised by gguf-py), so f32 must agree to float rounding whatever
// the storage types; bf16 compute as the golden tests allow.
TEST(GgufImport, LlamaLogitsMatchTransformers) {
  std::vector<float> ref = reference("llama.logits");
  EXPECT_LE(relative_error(nopad_logits(gguf_fixture("llama-tiny.gguf"), DType::F32), ref), 1e-4);
  EXPECT_LE(relative_error(nopad_logits(gguf_fixture("llama-tiny.gguf"), DType::BF16), ref), 2e-2);
}

TEST(GgufImport, Gemma3LogitsMatchTransformers) {
  std::vector<float> ref = reference("gemma3.logits");
  EXPECT_LE(relative_error(nopad_logits(gguf_fixture("gemma3-tiny.gguf"), DType::F32), ref), 1e-4);
  EXPECT_LE(relative_error(nopad_logits(gguf_fixture("gemma3-tiny.gguf"), DType::BF16), ref), 2e-2);
}

// Against the unquantised weights the files' 4- and 5-bit tensors (a step of 1/15 .. 1/31 of
// each 32-value block's range) move the logits of these tiny random models by 6% (llama) and
// 16% (gemma3, more 4-bit tensors relative to its size); a wrong transform (rows left
// interleaved, norms left + 1) moves them by about 100%.
TEST(GgufImport, CloseToTheUnquantisedModel) {
  GoldenCase g = load_golden("llama", "nopad");
  EXPECT_LE(relative_error(nopad_logits(gguf_fixture("llama-tiny.gguf"), DType::F32), g.logits),
            0.1);
  EXPECT_LE(relative_error(nopad_logits(gguf_fixture("gemma3-tiny.gguf"), DType::F32),
                           reference("gemma3.logits_unquantised")),
            0.25);
}

// Layer 0's q/k are stored as F32: undoing llama.cpp's row permutation must give HF's exactly.
TEST(GgufImport, LlamaQueryKeyRowsAreRestored) {
  auto gguf = GgufFile::open(gguf_fixture("llama-tiny.gguf"));
  ImportedModel model = import_gguf(*gguf);
  SafetensorsFile hf = SafetensorsFile::open(golden_dir("llama") + "/model.safetensors");
  int checked = 0;
  for (const NamedOwnedTensor& t : model.tensors) {
    if (t.name != "model.layers.0.self_attn.q_proj.weight" &&
        t.name != "model.layers.0.self_attn.k_proj.weight" && t.name != "model.norm.weight")
      continue;
    Tensor want = hf.view(t.name);
    ASSERT_EQ(t.tensor.view.shape_string(), want.shape_string()) << t.name;
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_EQ(t.tensor.view.f32()[i], want.f32()[i]) << t.name << " element " << i;
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(GgufImport, LlamaConfig) {
  auto gguf = GgufFile::open(gguf_fixture("llama-tiny.gguf"));
  nlohmann::json c = import_gguf(*gguf).config;
  EXPECT_EQ(c["model_type"], "llama");
  EXPECT_EQ(c["tie_word_embeddings"], false);  // output.weight is present
  EXPECT_EQ(c["rms_norm_eps"], 1e-5);
  EXPECT_EQ(c["bos_token_id"], 1);
  EXPECT_EQ(c["eos_token_id"], 2);
  // rope_freqs.weight turned back into the golden model's rope_parameters.
  const nlohmann::json& rope = c["rope_scaling"];
  EXPECT_EQ(rope["rope_type"], "llama3");
  EXPECT_EQ(rope["factor"], 8.0);
  EXPECT_EQ(rope["low_freq_factor"], 1.0);
  EXPECT_EQ(rope["high_freq_factor"], 4.0);
  EXPECT_EQ(rope["original_max_position_embeddings"], 32);
}

TEST(GgufImport, Gemma3Config) {
  auto gguf = GgufFile::open(gguf_fixture("gemma3-tiny.gguf"));
  nlohmann::json c = import_gguf(*gguf).config;
  EXPECT_EQ(c["model_type"], "gemma3_text");
  EXPECT_EQ(c["query_pre_attn_scalar"], 32);  // head_dim, as llama.cpp assumes
  EXPECT_EQ(c["sliding_window"], 4);
  EXPECT_EQ(c["final_logit_softcapping"], 30.0);
  EXPECT_EQ(c["rope_scaling"]["rope_type"], "linear");
  EXPECT_EQ(c["rope_scaling"]["factor"], 8.0);
  EXPECT_EQ(c["rope_theta"], 1e6);
  EXPECT_EQ(c["rope_local_base_freq"], 1e4);
  std::vector<std::string> types = c["layer_types"];
  ASSERT_EQ(types.size(), 6u);
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(types[i], i == 5 ? "full_attention" : "sliding_attention") << "layer " << i;
  EXPECT_EQ(c["tie_word_embeddings"], true);
}

// A copy of a fixture with the u32 metadata value of `key` replaced (the file keeps its size).
std::string patched_fixture(const std::string& name, const std::string& key, uint32_t value) {
  std::ifstream in(gguf_fixture(name), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  size_t at = bytes.find(key);
  EXPECT_NE(at, std::string::npos) << key;
  uint32_t type = 0;
  std::memcpy(&type, bytes.data() + at + key.size(), 4);
  EXPECT_EQ(type, 4u) << key << " is not a u32";
  std::memcpy(bytes.data() + at + key.size() + 4, &value, 4);
  std::string path =
      ::testing::TempDir() + "zoft_patched_" + std::to_string(getpid()) + "_" + key + "_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// block_count sized one layer_types entry per block before anything checked it (2^31 took
// 17 GB and 40 s); now it is refused from the metadata.
TEST(GgufImport, BlockCountIsCheckedFirst) {
  for (uint32_t blocks : {20000u, 1u << 31}) {
    std::string path = patched_fixture("gemma3-tiny.gguf", "gemma3.block_count", blocks);
    auto gguf = GgufFile::open(path);
    std::string e = error_of([&] { gguf_model_config(*gguf); });
    std::remove(path.c_str());
    ASSERT_NE(e.find(fmt::format("gemma3.block_count must be between 1 and 10000, got {}", blocks)),
              std::string::npos)
        << e;
  }
}

// inspect reads tensor infos only (no dequantising) but checks their shapes as loading would.
TEST(GgufImport, InspectChecksShapesAgainstTheMetadata) {
  EXPECT_EQ(summarize_model(gguf_fixture("gemma3-tiny.gguf")).config.intermediate_size, 64);
  std::string path = patched_fixture("gemma3-tiny.gguf", "gemma3.feed_forward_length", 48);
  std::string e = error_of([&] { summarize_model(path); });
  std::remove(path.c_str());
  EXPECT_NE(e.find("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [64, 32] but "
                   "config.json implies [48, 32]"),
            std::string::npos)
      << e;
}

TEST(GgufImport, UnknownArchitectureIsRefused) {
  auto gguf = GgufFile::open(gguf_fixture("meta.gguf"));  // general.architecture = zoft-test
  try {
    import_gguf(*gguf);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'zoft-test' cannot be imported: supported are llama, "
                                         "gemma3"),
              std::string::npos)
        << e.what();
  }
}

TEST(GgufImport, DetectsGgufFiles) {
  EXPECT_TRUE(is_gguf_file(gguf_fixture("llama-tiny.gguf")));
  EXPECT_FALSE(is_gguf_file(gguf_fixture("gguf_models.safetensors")));
  EXPECT_FALSE(is_gguf_file(golden_dir("llama")));
  EXPECT_FALSE(is_gguf_file(gguf_fixture("no-such-file.gguf")));
}

}  // namespace
}  // namespace zoft::test
