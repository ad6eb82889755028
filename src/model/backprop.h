// First-order training of a Decoder (internal to model/): a forward pass that keeps what the
// backward needs, then the backward through the LM head, the final norm, the layers in reverse
// and the embeddings. One Backprop lives for one Decoder::loss_and_grad call.
//
// The training forward is the inference forward (Decoder::run_block / layer_forward), so its
// loss equals token_losses' bit for bit: layer_forward, given a LayerActs sink, writes the
// intermediates there instead of to scratch. With checkpointing Backprop keeps each block's
// input only and reruns layer_forward with a sink before that layer's backward.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/ops_backward.h"
#include "core/tensor.h"
#include "model/decoder.h"

namespace zoft {

// Where the gradient of each weight is accumulated (f32, laid out as the weight). Null: the
// model has no such tensor.
struct LinearGrads {
  float* weight = nullptr;
  float* bias = nullptr;
  float* lora_a = nullptr;  // the layer's LoRA adapter (LoRA training only)
  float* lora_b = nullptr;
};
struct NormGrads {
  float* weight = nullptr;
  float* bias = nullptr;
};
struct LayerGrads {
  NormGrads attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm;
  LinearGrads q, k, v, qkv, o, gate, up, down;
};
struct ModelGrads {
  float* embed_tokens = nullptr;  // also the LM head's when tied
  float* embed_positions = nullptr;
  NormGrads final_norm;
  float* lm_head = nullptr;
  std::vector<LayerGrads> layers;
};

// One layer's intermediate tensors, as Decoder::layer_forward made them ([rows, width] f32).
struct LayerActs {
  Buffer attn_in;       // attn_norm(input)
  Buffer q_raw, k_raw;  // projections before the per-head q/k norm (qk_norm only)
  Buffer q, k, v;       // attention inputs: after qk norm and rope
  Buffer attn;          // attention output
  Buffer o_out;         // o_proj output (post_attn_norm only: its input)
  Buffer mid;           // the residual stream after the attention block
  Buffer mlp_in;        // ffn_norm(mid)
  Buffer gate, up;      // MLP pre-activations (gate: gated MLP only)
  Buffer act;           // activation output, input of down_proj
  Buffer down_out;      // down_proj output (post_ffn_norm only: its input)
};

// Gradient work space of one layer's backward, reused across layers.
struct GradScratch {
  Buffer branch;               // [rows, hidden]: gradient through a norm into the residual stream
  Buffer dx, dx2;              // [rows, hidden]: gradient at a projection's input
  Buffer d_act, d_gate, d_up;  // [rows, intermediate]
  Buffer d_attn, dq;           // [rows, q_dim]
  Buffer dk, dv;               // [rows, kv_dim]
  Buffer d_qkv;                // [rows, q_dim + 2 kv_dim] (fused projection only)
  Buffer norm_tmp;             // [rows, max(q_dim, kv_dim)] (per-head norm)
};

class Backprop {
 public:
  Backprop(Decoder& model, const TokenBatch& batch, std::vector<Buffer>& grads,
           const BackwardOptions& options);
  // Forward, loss, backward; returns the summed loss.
  double run(const int32_t* targets, float loss_scale);

 private:
  // decoder_backward.cc
  void bind_gradients(std::vector<Buffer>& grads);
  void bind_lora_gradients(std::vector<Buffer>& grads);
  void forward();
  double head_backward(const int32_t* targets, const std::vector<int64_t>& rows, float loss_scale,
                       float* d_hidden);
  void embeddings_backward(const float* dh);
  void norm_backward(const NormWeights& w, const NormGrads& g, const float* x, const float* dy,
                     float* dx, int64_t rows, int64_t dim) const;
  void linear_backward(const LinearWeights& w, const LinearGrads& g, const float* x,
                       const float* dy, int64_t rows, float* dx) const;
  void recompute_layer(int64_t layer, LayerActs& a);

  // layer_backward.cc
  void layer_backward(int64_t layer, const float* input, const LayerActs& a, float* dh);
  void mlp_block_backward(int64_t layer, const LayerActs& a, float* dh);
  void attention_block_backward(int64_t layer, const float* input, const LayerActs& a, float* dh);
  void qkv_backward(int64_t layer, const LayerActs& a, float* dx);
  cpu::AttentionShape attention_shape() const;

  Decoder& model_;
  const ModelConfig& c_;
  const ModelWeights& w_;
  const TokenBatch& batch_;
  const BackwardOptions options_;
  const int64_t rows_;
  KvCache cache_;       // one layer, capacity seq: each layer's keys and values in turn
  ForwardState state_;  // hidden: the running activations, then the final hidden states
  ModelGrads g_;
  std::vector<Buffer> block_inputs_;  // input of layer i; [L]: input of the final norm
  std::vector<LayerActs> acts_;       // one per layer, or one reused with checkpointing
  GradScratch s_;
  int64_t lowest_layer_ = 0;  // the backward stops below it (LoRA: the lowest adapted layer)
};

}  // namespace zoft
