// ModelConfig: everything the generic decoder needs to know about an architecture, filled from
// config.json by the architecture's table (model/arch_*.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"

namespace zoft {

enum class NormKind : uint8_t { LayerNorm, RMSNorm };
enum class PositionKind : uint8_t { Learned, Rope };

// HF rope_type: "default", "linear", "llama3" (others are refused with a clear error).
struct RopeConfig {
  std::string type = "default";
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_positions = 8192;
  double partial_rotary_factor = 1.0;
};

struct ModelConfig {
  std::string model_type;  // config.json "model_type"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_positions = 0;

  NormKind norm = NormKind::RMSNorm;
  float norm_eps = 1e-6f;
  bool norm_unit_offset = false;  // Gemma: weight is stored as (gamma - 1)
  Activation activation = Activation::SiLU;
  bool gated_mlp = true;        // act(gate(x)) * up(x) vs act(fc1(x))
  bool attention_bias = false;  // q/k/v biases
  bool attention_out_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;        // Qwen3, Gemma-3: RMSNorm over each head of q and k
  bool sandwich_norm = false;  // Gemma: extra norms after attention and after the MLP
  bool tie_embeddings = false;

  PositionKind positions = PositionKind::Rope;
  int64_t position_offset = 0;        // OPT's learned positions start at index 2
  RopeConfig rope;                    // full-attention layers
  RopeConfig rope_local;              // sliding-window layers (Gemma-3 uses another base)
  std::vector<int64_t> layer_window;  // per layer: 0 = full attention, else window size

  float embedding_scale = 1.0f;  // Gemma: sqrt(hidden_size)
  float attention_scale = 0.0f;  // 1/sqrt(head_dim) unless the config says otherwise
  float attn_softcap = 0.0f;
  float final_softcap = 0.0f;

  int32_t bos_id = -1, eos_id = -1, pad_id = -1;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  bool is_sliding(int64_t layer) const { return layer_window[size_t(layer)] > 0; }
};

}  // namespace zoft
