// A random Llama-architecture model of any size with the real Llama-2 tokenizer, written at test
// time (the 32k-token embedding would be too big to commit): the default shape for the trainer,
// resume and multi-rank tests, a ~100 MB one whose layers dwarf its embedding for the
// memory-budget test.
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace zoft::test {

struct LlamaShape {
  int64_t hidden = 32, intermediate = 64, layers = 2, heads = 2, kv_heads = 1, head_dim = 16;
  bool tied = true;
  int64_t vocab = 32000;  // the Llama-2 tokenizer's; more for another tokenizer (GPT-2: 50257)
};

inline std::string make_llama(const std::string& dir, const LlamaShape& s, uint64_t seed = 1) {
  namespace fs = std::filesystem;
  const int64_t V = s.vocab, H = s.hidden, I = s.intermediate, D = s.head_dim;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "config.json")
      << "{\"model_type\": \"llama\", \"vocab_size\": " << V << ", \"hidden_size\": " << H
      << ", \"intermediate_size\": " << I << ", \"num_hidden_layers\": " << s.layers
      << ", \"num_attention_heads\": " << s.heads << ", \"num_key_value_heads\": " << s.kv_heads
      << ", \"head_dim\": " << D << ", \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-5, "
      << "\"tie_word_embeddings\": " << (s.tied ? "true" : "false")
      << ", \"bos_token_id\": 1, \"eos_token_id\": 2, \"architectures\": [\"LlamaForCausalLM\"]}";
  std::string tok = std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/tokenizers/llama2/";
  fs::copy_file(tok + "tokenizer.json.xz", fs::path(dir) / "tokenizer.json.xz");
  fs::copy_file(tok + "tokenizer_config.json", fs::path(dir) / "tokenizer_config.json");

  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> storage;
  std::vector<NamedTensor> tensors;
  // std = gain / sqrt(fan_in) keeps activations O(1) through many layers.
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float std, float mean) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    storage.emplace_back(static_cast<size_t>(n));
    for (float& x : storage.back()) x = mean + std * normal(rng);
    tensors.push_back({name, Tensor::with_shape(storage.back().data(), DType::F32, shape.data(),
                                                int(shape.size()))});
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    add(name, {out, in}, 0.8f / std::sqrt(float(in)), 0.0f);
  };
  add("model.embed_tokens.weight", {V, H}, 0.5f, 0.0f);
  for (int64_t l = 0; l < s.layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, 0.1f, 1.0f);
    linear(p + "self_attn.q_proj.weight", s.heads * D, H);
    linear(p + "self_attn.k_proj.weight", s.kv_heads * D, H);
    linear(p + "self_attn.v_proj.weight", s.kv_heads * D, H);
    linear(p + "self_attn.o_proj.weight", H, s.heads * D);
    add(p + "post_attention_layernorm.weight", {H}, 0.1f, 1.0f);
    linear(p + "mlp.gate_proj.weight", I, H);
    linear(p + "mlp.up_proj.weight", I, H);
    linear(p + "mlp.down_proj.weight", H, I);
  }
  add("model.norm.weight", {H}, 0.1f, 1.0f);
  if (!s.tied) linear("lm_head.weight", V, H);
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
  return dir;
}

}  // namespace zoft::test
