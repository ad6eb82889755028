// The decoder's forward on the GPU (a model placed with Decoder::to_device) against the CPU decoder
// on the golden fixtures of every architecture, padded and unpadded, f32 and bf16; and against HF's
// own logits. Skipped without a device.
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "gpu_test_util.h"
#include "model/decoder.h"
#include "model/golden_util.h"
#include "model/json_config.h"

namespace zoft::testing {
namespace {

using zoft::test::golden_dir;
using zoft::test::GoldenCase;
using zoft::test::load_golden;

struct Param {
  std::string model;
  DType dtype;
  std::string case_name;
};

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string s =
      info.param.model + "_" + dtype_name(info.param.dtype) + "_" + info.param.case_name;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

class DeviceGolden : public ::testing::TestWithParam<Param> {};

TEST_P(DeviceGolden, LogitsAndLossesMatchTheCpuDecoder) {
  ZOFT_REQUIRE_GPU();
  const Param& p = GetParam();
  GoldenCase g = load_golden(p.model, p.case_name);
  Decoder cpu_model = Decoder::load(golden_dir(p.model), p.dtype);
  Decoder gpu_model = cpu_model.to_device(Device::CUDA);
  const int64_t M = g.batch.rows(), V = cpu_model.config().vocab_size;
  const double tolerance = p.dtype == DType::BF16 ? 2e-2 : 1e-3;

  std::vector<float> cpu_logits(size_t(M * V)), gpu_logits(size_t(M * V));
  cpu_model.logits(g.batch, cpu_logits.data());
  gpu_model.logits(g.batch, gpu_logits.data());
  EXPECT_LE(test::masked_relative_error(gpu_logits, cpu_logits, g.batch.mask, V), tolerance)
      << "GPU vs CPU logits";
  // And against HF transformers itself, with the golden test's own bound (bf16 weights or
  // compute: 2e-2), plus the GPU's share.
  bool bf16 = p.dtype == DType::BF16 || cpu_model.weights().checkpoint_dtypes == "bf16";
  EXPECT_LE(test::masked_relative_error(gpu_logits, g.logits, g.batch.mask, V), bf16 ? 3e-2 : 1e-3)
      << "GPU vs HF logits";

  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  std::vector<float> cpu_loss(static_cast<size_t>(M)), gpu_loss(static_cast<size_t>(M));
  cpu_model.token_losses(g.batch, targets.data(), cpu_loss.data());
  gpu_model.token_losses(g.batch, targets.data(), gpu_loss.data());
  for (int64_t i = 0; i < M; ++i) {
    if (targets[size_t(i)] < 0) {
      EXPECT_EQ(gpu_loss[size_t(i)], 0.0f) << "row " << i << " has no target";
      continue;
    }
    EXPECT_NEAR(gpu_loss[size_t(i)], cpu_loss[size_t(i)],
                tolerance * std::max(1.0, double(std::fabs(cpu_loss[size_t(i)]))))
        << "token loss of row " << i;
  }
}

std::vector<Param> all_params() {
  std::vector<Param> out;
  for (const char* model : {"opt", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3",
                            "llama-sharded", "llama-bf16"})
    for (DType dtype : {DType::F32, DType::BF16})
      for (const char* c : {"nopad", "right", "left"}) out.push_back({model, dtype, c});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, DeviceGolden, ::testing::ValuesIn(all_params()),
                         param_name);

// Shapes beyond the tiny fixtures (hidden 512, 8 heads of 64, 300 tokens, vocab 1000), so the
// GEMMs, attention tiles and head chunks see realistic sizes: random_init models on both sides.
// The CPU side runs without a GPU too, which checks these configs wherever the test is built.
TEST(DevicePlacement, RandomInitModelsAtLargerShapes) {
  struct Case {
    std::string name;
    Decoder model;
    std::vector<float> cpu_logits;
  };
  std::vector<Case> cases;
  std::vector<std::vector<int32_t>> seqs = {std::vector<int32_t>(300), std::vector<int32_t>(170)};
  for (size_t s = 0; s < seqs.size(); ++s)
    for (size_t t = 0; t < seqs[s].size(); ++t) seqs[s][t] = int32_t((t * 37 + s * 11) % 1000);
  const TokenBatch right = TokenBatch::from_sequences(seqs, 0, false);
  const TokenBatch left = TokenBatch::from_sequences(seqs, 0, true);
  const int64_t V = 1000;
  for (const char* arch : {"opt", "llama", "gemma3"}) {
    nlohmann::json j = read_json_file(golden_dir(arch) + "/config.json");
    j["vocab_size"] = V;
    j["hidden_size"] = 512;
    j["num_attention_heads"] = 8;
    if (j.contains("head_dim")) j["head_dim"] = 64;
    if (j.contains("word_embed_proj_dim")) j["word_embed_proj_dim"] = 512;
    j[j.contains("ffn_dim") ? "ffn_dim" : "intermediate_size"] = 1024;
    j["max_position_embeddings"] = 512;
    if (j.contains("query_pre_attn_scalar")) j["query_pre_attn_scalar"] = 64;
    for (DType dtype : {DType::F32, DType::BF16}) {
      std::string name = std::string(arch) + " " + dtype_name(dtype);
      Case c{name, Decoder::random_init(JsonConfig::from_value(j, name), dtype, 2), {}};
      const TokenBatch& batch = std::string(arch) == "llama" ? left : right;
      c.cpu_logits.resize(size_t(batch.rows() * V));
      c.model.logits(batch, c.cpu_logits.data());
      cases.push_back(std::move(c));
    }
  }
  ZOFT_REQUIRE_GPU();
  for (Case& c : cases) {
    const TokenBatch& batch = c.name.rfind("llama", 0) == 0 ? left : right;
    Decoder gpu_model = c.model.to_device(Device::CUDA);
    std::vector<float> gpu_logits(c.cpu_logits.size());
    gpu_model.logits(batch, gpu_logits.data());
    bool bf16 = c.model.weights().compute_dtype == DType::BF16;
    EXPECT_LE(test::masked_relative_error(gpu_logits, c.cpu_logits, batch.mask, V),
              bf16 ? 2e-2 : 1e-3)
        << c.name;
  }
}

// Needs no GPU: without one, the error says so instead of failing somewhere in CUDA.
TEST(DevicePlacementNoDevice, ClearErrorWithoutAGpu) {
  if (cuda::device_available()) GTEST_SKIP() << "a GPU is present: nothing to check here";
  Decoder model = Decoder::random_init(golden_dir("opt"));
  try {
    Decoder d = model.to_device(Device::CUDA);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zoft::testing
