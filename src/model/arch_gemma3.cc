// Gemma-3 text: sandwich norms with (1 + w) RMSNorm, q/k norms, scaled embeddings,
// interleaved sliding-window layers with their own RoPE base, soft-capping.
#include <cmath>

#include "model/arch_common.h"
#include "model/arch_tables.h"

namespace zoft {

static constexpr ArchTensorNames kGemma3Names = {
    .embed_tokens = "model.embed_tokens",
    .embed_positions = nullptr,
    .final_norm = "model.norm",
    .lm_head = "lm_head",
    .attn_norm = "model.layers.{}.input_layernorm",
    .q_proj = "model.layers.{}.self_attn.q_proj",
    .k_proj = "model.layers.{}.self_attn.k_proj",
    .v_proj = "model.layers.{}.self_attn.v_proj",
    .qkv_proj = nullptr,
    .o_proj = "model.layers.{}.self_attn.o_proj",
    .q_norm = "model.layers.{}.self_attn.q_norm",
    .k_norm = "model.layers.{}.self_attn.k_norm",
    .post_attn_norm = "model.layers.{}.post_attention_layernorm",
    .ffn_norm = "model.layers.{}.pre_feedforward_layernorm",
    .gate_proj = "model.layers.{}.mlp.gate_proj",
    .up_proj = "model.layers.{}.mlp.up_proj",
    .down_proj = "model.layers.{}.mlp.down_proj",
    .post_ffn_norm = "model.layers.{}.post_feedforward_layernorm",
};

static void read_gemma3_config(const JsonConfig& json, ModelConfig& c) {
  c.vocab_size = json.get_int("vocab_size");
  c.hidden_size = json.get_int("hidden_size");
  c.num_layers = json.get_int("num_hidden_layers");
  c.num_heads = json.get_int("num_attention_heads");
  c.num_kv_heads = json.get_int("num_key_value_heads", c.num_heads);
  c.head_dim = json.get_int("head_dim", 256);
  c.intermediate_size = json.get_int("intermediate_size");
  c.max_positions = json.get_int("max_position_embeddings", 131072);
  c.norm = NormKind::RMSNorm;
  c.norm_eps = float(json.get_float("rms_norm_eps", 1e-6));
  c.norm_unit_offset = true;
  c.activation = parse_activation(json, json.get_string("hidden_activation", "gelu_pytorch_tanh"));
  c.gated_mlp = true;
  c.attention_bias = c.attention_out_bias = json.get_bool("attention_bias", false);
  c.qk_norm = true;
  c.sandwich_norm = true;
  c.tie_embeddings = json.get_bool("tie_word_embeddings", true);
  c.positions = PositionKind::Rope;
  // rope_parameters may be split by layer type (transformers 5); older configs give
  // rope_theta + rope_scaling for global layers and rope_local_base_freq for local ones.
  auto params = json.get_object("rope_parameters");
  auto full = params ? params->get_object("full_attention") : std::nullopt;
  auto local = params ? params->get_object("sliding_attention") : std::nullopt;
  if (full && local) {
    c.rope = read_rope_object(*full, 1e6);
    c.rope_local = read_rope_object(*local, 1e4);
  } else {
    c.rope = read_rope(json, 1e6);
    c.rope_local = RopeConfig{};
    c.rope_local.theta = json.get_float("rope_local_base_freq", 1e4);
  }
  // HF multiplies by sqrt(hidden) rounded to the weight dtype; in f32 this is exact enough.
  c.embedding_scale = float(std::sqrt(double(c.hidden_size)));
  c.attention_scale =
      float(1.0 / std::sqrt(json.get_float("query_pre_attn_scalar", double(c.head_dim))));
  c.attn_softcap = float(json.get_float("attn_logit_softcapping", 0.0));
  c.final_softcap = float(json.get_float("final_logit_softcapping", 0.0));
  read_layer_windows(json, c, true);
  read_special_ids(json, c);
}

const ArchTable kGemma3Arch = {
    .name = "gemma3",
    .model_types = {"gemma3_text", "gemma3"},
    .tensors = kGemma3Names,
    .weights_are_kn = false,
    .read_config = read_gemma3_config,
};

}  // namespace zoft
