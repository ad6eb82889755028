// Decoder::random_init: a model from a config alone. Checked against the golden fixtures'
// checkpoints of the same configs (same tensors, shapes, parameter count), for determinism, for
// HF's init values, and for a finite forward on every architecture.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/golden_util.h"
#include "model/json_config.h"

namespace zoft::test {
namespace {

const char* const kArchs[] = {"opt", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3"};

void expect_same_shape(const Tensor& a, const Tensor& b, const std::string& what) {
  EXPECT_EQ(a.shape_string(), b.shape_string()) << what;
}

void expect_same_bytes(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes()), 0) << what;
}

TEST(RandomInit, SameTensorsAndParameterCountAsTheCheckpoint) {
  for (const char* arch : kArchs) {
    Decoder loaded = Decoder::load(golden_dir(arch), DType::F32);
    Decoder made = Decoder::random_init(golden_dir(arch), DType::F32, 1);
    const ModelWeights& a = made.weights();
    const ModelWeights& b = loaded.weights();
    EXPECT_EQ(made.arch().name, loaded.arch().name);
    EXPECT_EQ(a.parameter_count, b.parameter_count) << arch;
    expect_same_shape(a.embed_tokens, b.embed_tokens, arch);
    expect_same_shape(a.lm_head.weight, b.lm_head.weight, arch);
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (size_t i = 0; i < a.layers.size(); ++i) {
      const LayerWeights &x = a.layers[i], &y = b.layers[i];
      for (auto m :
           {&LayerWeights::q, &LayerWeights::k, &LayerWeights::v, &LayerWeights::qkv,
            &LayerWeights::o, &LayerWeights::gate, &LayerWeights::up, &LayerWeights::down}) {
        expect_same_shape((x.*m).weight, (y.*m).weight, arch);
        EXPECT_EQ((x.*m).bias == nullptr, (y.*m).bias == nullptr) << arch;
      }
      EXPECT_EQ(x.q_norm.weight == nullptr, y.q_norm.weight == nullptr) << arch;
      EXPECT_EQ(x.post_ffn_norm.weight == nullptr, y.post_ffn_norm.weight == nullptr) << arch;
    }
    // A tied head is the embedding table itself (same storage when dtypes agree).
    EXPECT_EQ(a.lm_head.weight.data == a.embed_tokens.data,
              b.lm_head.weight.data == b.embed_tokens.data)
        << arch;
  }
}

// The count from the config by hand, for two layouts (OPT: biases, learned positions, tied;
// Llama: no biases, gated MLP, untied head).
TEST(RandomInit, ParameterCountFromTheConfig) {
  {
    const int64_t V = 128, H = 64, I = 96, L = 2, P = 64 + 2;
    int64_t layer = 4 * (H * H + H) + 2 * (H * I) + I + H + 2 * 2 * H;
    Decoder opt = Decoder::random_init(golden_dir("opt"));
    EXPECT_EQ(opt.weights().parameter_count, V * H + P * H + L * layer + 2 * H);
  }
  {
    Decoder llama = Decoder::random_init(golden_dir("llama"));
    const ModelConfig& c = llama.config();
    const int64_t V = c.vocab_size, H = c.hidden_size, I = c.intermediate_size;
    int64_t layer = H * c.q_dim() * 2 + 2 * H * c.kv_dim() + 3 * H * I + 2 * H;
    EXPECT_EQ(llama.weights().parameter_count, 2 * V * H + c.num_layers * layer + H);
  }
}

TEST(RandomInit, DeterministicInSeedAndThreadCount) {
  ThreadPool::set_global_threads(1);
  Decoder a = Decoder::random_init(golden_dir("llama"), DType::F32, 7);
  ThreadPool::set_global_threads(2);
  Decoder b = Decoder::random_init(golden_dir("llama"), DType::F32, 7);
  Decoder c = Decoder::random_init(golden_dir("llama"), DType::F32, 8);
  ThreadPool::set_global_threads(0);
  expect_same_bytes(a.weights().embed_tokens, b.weights().embed_tokens, "embed");
  expect_same_bytes(a.weights().layers[1].down.weight, b.weights().layers[1].down.weight, "down");
  expect_same_bytes(a.weights().lm_head.weight, b.weights().lm_head.weight, "head");
  const Tensor& x = a.weights().layers[0].q.weight;
  const Tensor& y = c.weights().layers[0].q.weight;
  EXPECT_NE(std::memcmp(x.data, y.data, x.nbytes()), 0) << "another seed, other weights";
  // Two tensors of the same shape are not copies of each other.
  const Tensor& k0 = a.weights().layers[0].k.weight;
  const Tensor& v0 = a.weights().layers[0].v.weight;
  EXPECT_NE(std::memcmp(k0.data, v0.data, k0.nbytes()), 0);
}

TEST(RandomInit, Bf16IsTheF32DrawRounded) {
  Decoder f = Decoder::random_init(golden_dir("qwen3"), DType::F32, 3);
  Decoder h = Decoder::random_init(golden_dir("qwen3"), DType::BF16, 3);
  const Tensor& a = f.weights().layers[0].up.weight;
  const Tensor& b = h.weights().layers[0].up.weight;
  ASSERT_EQ(b.dtype, DType::BF16);
  ASSERT_EQ(a.numel(), b.numel());
  for (int64_t i = 0; i < a.numel(); ++i)
    ASSERT_EQ(f32_to_bf16(a.f32()[i]), b.ptr<uint16_t>()[i]) << i;
}

// HF's _init_weights: N(0, initializer_range) matrices, unit norms (zero where the norm stores
// gamma - 1), zero biases.
TEST(RandomInit, ValuesAsHuggingFaceInitialises) {
  Decoder opt = Decoder::random_init(golden_dir("opt"), DType::F32, 5);
  const LayerWeights& L = opt.weights().layers[0];
  const Tensor& fc1 = L.up.weight;
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < fc1.numel(); ++i) {
    sum += fc1.f32()[i];
    sq += double(fc1.f32()[i]) * fc1.f32()[i];
  }
  double n = double(fc1.numel()), mean = sum / n, std = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(std, 0.02, 0.001);  // init_std of the OPT config
  for (int64_t i = 0; i < 64; ++i) {
    EXPECT_EQ(L.attn_norm.weight[i], 1.0f);
    EXPECT_EQ(L.attn_norm.bias[i], 0.0f);
    EXPECT_EQ(L.q.bias[i], 0.0f);
  }
  Decoder gemma = Decoder::random_init(golden_dir("gemma3"), DType::F32, 5);
  EXPECT_EQ(gemma.weights().final_norm.weight[0], 0.0f);  // (1 + 0) * x/rms
  EXPECT_EQ(gemma.weights().checkpoint_bytes, 0u);
}

TEST(RandomInit, ForwardIsFiniteOnEveryArchitecture) {
  for (const char* arch : kArchs)
    for (DType dtype : {DType::F32, DType::BF16}) {
      Decoder model = Decoder::random_init(golden_dir(arch), dtype, 11);
      GoldenCase g = load_golden(arch, "left");
      const int64_t V = model.config().vocab_size;
      std::vector<float> logits(size_t(g.batch.rows() * V));
      model.logits(g.batch, logits.data());
      for (float x : logits) ASSERT_TRUE(std::isfinite(x)) << arch << " " << dtype_name(dtype);
      std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
      std::vector<float> loss(size_t(g.batch.rows()));
      model.token_losses(g.batch, targets.data(), loss.data());
      // Small random weights: the logits are nearly flat, so each loss is close to log V.
      for (size_t i = 0; i < loss.size(); ++i) {
        if (targets[i] < 0) continue;
        EXPECT_NEAR(loss[i], std::log(double(V)), 1.0) << arch;
      }
    }
}

TEST(RandomInit, FromAConfigInMemoryAndClearErrors) {
  nlohmann::json j = {{"model_type", "llama"},    {"vocab_size", 32},
                      {"hidden_size", 16},        {"num_hidden_layers", 1},
                      {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                      {"intermediate_size", 24},  {"max_position_embeddings", 16},
                      {"initializer_range", 0.5}};
  Decoder m = Decoder::random_init(JsonConfig::from_value(j, "mem"), DType::BF16);
  EXPECT_EQ(m.weights().parameter_count,
            2 * 32 * 16 + (16 * 16 * 2 + 2 * 16 * 8 + 3 * 16 * 24 + 2 * 16) + 16);
  j["initializer_range"] = -1;
  EXPECT_THROW(Decoder::random_init(JsonConfig::from_value(j, "mem")), Error);
  try {
    Decoder::random_init("/nonexistent/dir");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zoft::test
