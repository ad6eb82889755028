// Llama and its close relatives (Mistral, Qwen2, Qwen3): RMSNorm, SiLU-gated MLP, RoPE.
#include "model/arch_common.h"
#include "model/arch_tables.h"

namespace zoft {

static constexpr ArchTensorNames kLlamaNames = {
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
    .q_norm = nullptr,
    .k_norm = nullptr,
    .post_attn_norm = nullptr,
    .ffn_norm = "model.layers.{}.post_attention_layernorm",
    .gate_proj = "model.layers.{}.mlp.gate_proj",
    .up_proj = "model.layers.{}.mlp.up_proj",
    .down_proj = "model.layers.{}.mlp.down_proj",
    .post_ffn_norm = nullptr,
};

static ArchTensorNames qwen3_names() {
  ArchTensorNames names = kLlamaNames;
  names.q_norm = "model.layers.{}.self_attn.q_norm";
  names.k_norm = "model.layers.{}.self_attn.k_norm";
  return names;
}

static void read_llama_config(const JsonConfig& json, ModelConfig& c) {
  c.vocab_size = json.get_int("vocab_size");
  c.hidden_size = json.get_int("hidden_size");
  c.num_layers = json.get_int("num_hidden_layers");
  c.num_heads = json.get_int("num_attention_heads");
  c.num_kv_heads = json.get_int("num_key_value_heads", c.num_heads);
  c.head_dim = json.get_int("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.intermediate_size = json.get_int("intermediate_size");
  c.max_positions = json.get_int("max_position_embeddings", 4096);
  c.norm = NormKind::RMSNorm;
  c.norm_eps = float(json.get_float("rms_norm_eps", 1e-6));
  c.activation = parse_activation(json, json.get_string("hidden_act", "silu"));
  c.gated_mlp = true;
  c.tie_embeddings = json.get_bool("tie_word_embeddings", false);
  c.positions = PositionKind::Rope;
  c.rope = read_rope(json, 10000.0);
  c.rope_local = c.rope;
  // Qwen2 always has q/k/v biases; Llama and Mistral say so in attention_bias.
  bool qwen2 = c.model_type == "qwen2";
  c.attention_bias = qwen2 || json.get_bool("attention_bias", false);
  c.attention_out_bias = !qwen2 && json.get_bool("attention_bias", false);
  c.mlp_bias = json.get_bool("mlp_bias", false);
  c.qk_norm = c.model_type == "qwen3";
  // Mistral applies sliding_window to every layer; Qwen2/3 only with use_sliding_window.
  bool sliding = c.model_type == "mistral" ||
                 (json.get_bool("use_sliding_window", false) && c.model_type != "llama");
  read_layer_windows(json, c, sliding);
  read_special_ids(json, c);
}

const ArchTable kLlamaArch = {
    .name = "llama",
    .model_types = {"llama", "mistral", "qwen2"},
    .tensors = kLlamaNames,
    .weights_are_kn = false,
    .read_config = read_llama_config,
};

const ArchTable kQwen3Arch = {
    .name = "qwen3",
    .model_types = {"qwen3"},
    .tensors = qwen3_names(),
    .weights_are_kn = false,
    .read_config = read_llama_config,
};

}  // namespace zoft
