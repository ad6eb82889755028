// A tiny random Llama-architecture model with the real Llama-2 tokenizer, written to a temp
// directory at test time (the 32k-token embedding would be too big to commit).
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace zoft::test {

inline std::string make_tiny_llama(const std::string& dir, uint64_t seed = 1) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int64_t V = 32000, H = 32, I = 64, L = 2, heads = 2, kv = 1, D = 16;
  std::ofstream(fs::path(dir) / "config.json") << R"({"model_type": "llama", "vocab_size": 32000,
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
    "architectures": ["LlamaForCausalLM"]})";
  std::string tok = std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/tokenizers/llama2/";
  fs::copy_file(tok + "tokenizer.json.xz", fs::path(dir) / "tokenizer.json.xz");
  fs::copy_file(tok + "tokenizer_config.json", fs::path(dir) / "tokenizer_config.json");

  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> storage;
  std::vector<NamedTensor> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float std, float mean) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    storage.emplace_back(static_cast<size_t>(n));
    for (float& x : storage.back()) x = mean + std * normal(rng);
    Tensor t = Tensor::with_shape(storage.back().data(), DType::F32, shape.data(), int(shape.size()));
    tensors.push_back({name, t});
  };
  add("model.embed_tokens.weight", {V, H}, 0.5f, 0.0f);
  for (int64_t l = 0; l < L; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, 0.1f, 1.0f);
    add(p + "self_attn.q_proj.weight", {heads * D, H}, 0.2f, 0.0f);
    add(p + "self_attn.k_proj.weight", {kv * D, H}, 0.2f, 0.0f);
    add(p + "self_attn.v_proj.weight", {kv * D, H}, 0.2f, 0.0f);
    add(p + "self_attn.o_proj.weight", {H, heads * D}, 0.2f, 0.0f);
    add(p + "post_attention_layernorm.weight", {H}, 0.1f, 1.0f);
    add(p + "mlp.gate_proj.weight", {I, H}, 0.2f, 0.0f);
    add(p + "mlp.up_proj.weight", {I, H}, 0.2f, 0.0f);
    add(p + "mlp.down_proj.weight", {H, I}, 0.15f, 0.0f);
  }
  add("model.norm.weight", {H}, 0.1f, 1.0f);
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
  return dir;
}

}  // namespace zoft::test
