// GPT-2: LayerNorm, tanh-GELU MLP, learned positions, fused c_attn, Conv1D ([in, out]) weights.
#include "model/arch_common.h"
#include "model/arch_tables.h"

namespace zoft {

static constexpr ArchTensorNames kGpt2Names = {
    .embed_tokens = "transformer.wte",
    .embed_positions = "transformer.wpe",
    .final_norm = "transformer.ln_f",
    .lm_head = "lm_head",
    .attn_norm = "transformer.h.{}.ln_1",
    .q_proj = nullptr,
    .k_proj = nullptr,
    .v_proj = nullptr,
    .qkv_proj = "transformer.h.{}.attn.c_attn",
    .o_proj = "transformer.h.{}.attn.c_proj",
    .q_norm = nullptr,
    .k_norm = nullptr,
    .post_attn_norm = nullptr,
    .ffn_norm = "transformer.h.{}.ln_2",
    .gate_proj = nullptr,
    .up_proj = "transformer.h.{}.mlp.c_fc",
    .down_proj = "transformer.h.{}.mlp.c_proj",
    .post_ffn_norm = nullptr,
};

static void read_gpt2_config(const JsonConfig& json, ModelConfig& c) {
  c.vocab_size = json.get_int("vocab_size");
  c.hidden_size = json.get_int("n_embd");
  c.num_layers = json.get_int("n_layer");
  c.num_heads = json.get_int("n_head");
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.intermediate_size = json.get_int("n_inner", 4 * c.hidden_size);
  c.max_positions = json.get_int("n_positions", 1024);
  c.norm = NormKind::LayerNorm;
  c.norm_eps = float(json.get_float("layer_norm_epsilon", 1e-5));
  c.activation = parse_activation(json, json.get_string("activation_function", "gelu_new"));
  c.gated_mlp = false;
  c.attention_bias = c.attention_out_bias = c.mlp_bias = true;
  c.tie_embeddings = json.get_bool("tie_word_embeddings", true);
  c.positions = PositionKind::Learned;
  c.position_offset = 0;
  read_layer_windows(json, c, false);
  read_special_ids(json, c);
}

const ArchTable kGpt2Arch = {
    .name = "gpt2",
    .model_types = {"gpt2"},
    .tensors = kGpt2Names,
    .weights_are_kn = true,
    .read_config = read_gpt2_config,
};

}  // namespace zoft
