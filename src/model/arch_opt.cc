// OPT: LayerNorm, ReLU MLP, learned positions offset by 2, biases everywhere.
#include "core/error.h"
#include "model/arch_common.h"
#include "model/arch_tables.h"

namespace zoft {

static constexpr ArchTensorNames kOptNames = {
    .embed_tokens = "model.decoder.embed_tokens",
    .embed_positions = "model.decoder.embed_positions",
    .final_norm = "model.decoder.final_layer_norm",
    .lm_head = "lm_head",
    .attn_norm = "model.decoder.layers.{}.self_attn_layer_norm",
    .q_proj = "model.decoder.layers.{}.self_attn.q_proj",
    .k_proj = "model.decoder.layers.{}.self_attn.k_proj",
    .v_proj = "model.decoder.layers.{}.self_attn.v_proj",
    .qkv_proj = nullptr,
    .o_proj = "model.decoder.layers.{}.self_attn.out_proj",
    .q_norm = nullptr,
    .k_norm = nullptr,
    .post_attn_norm = nullptr,
    .ffn_norm = "model.decoder.layers.{}.final_layer_norm",
    .gate_proj = nullptr,
    .up_proj = "model.decoder.layers.{}.fc1",
    .down_proj = "model.decoder.layers.{}.fc2",
    .post_ffn_norm = nullptr,
};

static void read_opt_config(const JsonConfig& json, ModelConfig& c) {
  c.vocab_size = json.get_int("vocab_size");
  c.hidden_size = json.get_int("hidden_size");
  c.num_layers = json.get_int("num_hidden_layers");
  c.num_heads = json.get_int("num_attention_heads");
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.intermediate_size = json.get_int("ffn_dim");
  c.max_positions = json.get_int("max_position_embeddings", 2048);
  if (!json.get_bool("do_layer_norm_before", true))
    fail("{}: OPT with do_layer_norm_before=false (post-norm, OPT-350m) is not supported yet",
         json.path());
  if (json.get_int("word_embed_proj_dim", c.hidden_size) != c.hidden_size)
    fail("{}: OPT with word_embed_proj_dim != hidden_size (OPT-350m) is not supported yet",
         json.path());
  c.norm = NormKind::LayerNorm;
  c.norm_eps = 1e-5f;
  c.activation = parse_activation(json, json.get_string("activation_function", "relu"));
  c.gated_mlp = false;
  bool bias = json.get_bool("enable_bias", true);
  c.attention_bias = c.attention_out_bias = c.mlp_bias = bias;
  c.tie_embeddings = json.get_bool("tie_word_embeddings", true);
  c.positions = PositionKind::Learned;
  c.position_offset = 2;
  read_layer_windows(json, c, false);
  read_special_ids(json, c);
}

const ArchTable kOptArch = {
    .name = "opt",
    .model_types = {"opt"},
    .tensors = kOptNames,
    .weights_are_kn = false,
    .read_config = read_opt_config,
};

}  // namespace zoft
