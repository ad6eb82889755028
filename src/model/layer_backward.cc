// The backward of one decoder layer: Decoder::layer_forward's steps in reverse, reading the
// intermediates it kept in LayerActs.
#include <algorithm>
#include <cstring>

#include "backend/ops_backward.h"
#include "model/backprop.h"
#include "model/scratch.h"

namespace zoft {

namespace {

// A [rows, width] matrix into columns [begin, begin + width) of a [rows, stride] one.
void put_columns(const float* src, int64_t rows, int64_t width, int64_t stride, int64_t begin,
                 float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * stride + begin, src + r * width, size_t(width) * sizeof(float));
}

}  // namespace

cpu::AttentionShape Backprop::attention_shape() const {
  cpu::AttentionShape shape;
  shape.batch = batch_.batch;
  shape.q_len = batch_.seq;
  shape.kv_len = batch_.seq;
  shape.kv_capacity = batch_.seq;
  shape.q_heads = c_.num_heads;
  shape.kv_heads = c_.num_kv_heads;
  shape.head_dim = c_.head_dim;
  return shape;
}

// dh: gradient at the layer's output on entry, at its input on return.
void Backprop::layer_backward(int64_t layer, const float* input, const LayerActs& a, float* dh) {
  mlp_block_backward(layer, a, dh);
  attention_block_backward(layer, input, a, dh);
}

void Backprop::mlp_block_backward(int64_t layer, const LayerActs& a, float* dh) {
  const LayerWeights& w = w_.layers[size_t(layer)];
  const LayerGrads& g = g_.layers[size_t(layer)];
  const int64_t M = rows_, H = c_.hidden_size, I = c_.intermediate_size;
  float* branch = ensure_floats(s_.branch, M * H);
  float* dx = ensure_floats(s_.dx, M * H);
  float* d_act = ensure_floats(s_.d_act, M * I);
  const float* d_down = dh;  // the residual passes dh to the branch unchanged
  if (w.post_ffn_norm.weight) {
    norm_backward(w.post_ffn_norm, g.post_ffn_norm, a.down_out.as<float>(), dh, branch, M, H);
    d_down = branch;
  }
  linear_backward(w.down, g.down, a.act.as<float>(), d_down, M, d_act);
  if (c_.gated_mlp) {
    float* d_gate = ensure_floats(s_.d_gate, M * I);
    float* d_up = ensure_floats(s_.d_up, M * I);
    cpu::gated_activation_backward(c_.activation, a.gate.as<float>(), a.up.as<float>(), I, d_act,
                                   d_gate, d_up, I, M, I);
    float* dx2 = ensure_floats(s_.dx2, M * H);
    linear_backward(w.gate, g.gate, a.mlp_in.as<float>(), d_gate, M, dx);
    linear_backward(w.up, g.up, a.mlp_in.as<float>(), d_up, M, dx2);
    cpu::add_inplace(dx, dx2, M * H);
  } else {
    cpu::activation_backward(c_.activation, a.up.as<float>(), d_act, d_act, M * I);
    linear_backward(w.up, g.up, a.mlp_in.as<float>(), d_act, M, dx);
  }
  norm_backward(w.ffn_norm, g.ffn_norm, a.mid.as<float>(), dx, branch, M, H);
  cpu::add_inplace(dh, branch, M * H);
}

void Backprop::attention_block_backward(int64_t layer, const float* input, const LayerActs& a,
                                        float* dh) {
  const LayerWeights& w = w_.layers[size_t(layer)];
  const LayerGrads& g = g_.layers[size_t(layer)];
  const int64_t M = rows_, H = c_.hidden_size, D = c_.head_dim;
  const int64_t qd = c_.q_dim(), kd = c_.kv_dim();
  float* branch = ensure_floats(s_.branch, M * H);
  float* d_attn = ensure_floats(s_.d_attn, M * qd);
  float* dq = ensure_floats(s_.dq, M * qd);
  float* dk = ensure_floats(s_.dk, M * kd);
  float* dv = ensure_floats(s_.dv, M * kd);
  const float* d_o = dh;
  if (w.post_attn_norm.weight) {
    norm_backward(w.post_attn_norm, g.post_attn_norm, a.o_out.as<float>(), dh, branch, M, H);
    d_o = branch;
  }
  linear_backward(w.o, g.o, a.attn.as<float>(), d_o, M, d_attn);
  cpu::attention_backward(a.q.as<float>(), a.k.as<float>(), a.v.as<float>(),
                          state_.key_valid.data(), a.attn.as<float>(), d_attn, dq, dk, dv,
                          attention_shape(), c_.attention_scale, c_.layer_window[size_t(layer)],
                          c_.attn_softcap);
  if (c_.positions == PositionKind::Rope) {
    const RopeTable& rope = c_.is_sliding(layer) ? model_.rope_local_ : model_.rope_global_;
    cpu::rope_backward(dq, state_.positions.data(), M, c_.num_heads, D, rope.rotary_dim,
                       rope.inv_freq.data(), rope.attention_scaling);
    cpu::rope_backward(dk, state_.positions.data(), M, c_.num_kv_heads, D, rope.rotary_dim,
                       rope.inv_freq.data(), rope.attention_scaling);
  }
  if (c_.qk_norm) {  // per-head norms: rows of head_dim
    float* tmp = ensure_floats(s_.norm_tmp, M * std::max(qd, kd));
    norm_backward(w.q_norm, g.q_norm, a.q_raw.as<float>(), dq, tmp, M * c_.num_heads, D);
    std::memcpy(dq, tmp, size_t(M * qd) * sizeof(float));
    norm_backward(w.k_norm, g.k_norm, a.k_raw.as<float>(), dk, tmp, M * c_.num_kv_heads, D);
    std::memcpy(dk, tmp, size_t(M * kd) * sizeof(float));
  }
  float* dx = ensure_floats(s_.dx, M * H);
  qkv_backward(layer, a, dx);
  norm_backward(w.attn_norm, g.attn_norm, input, dx, branch, M, H);
  cpu::add_inplace(dh, branch, M * H);
}

// From s_.dq / dk / dv (gradients at the projections' outputs) to dx at their shared input.
void Backprop::qkv_backward(int64_t layer, const LayerActs& a, float* dx) {
  const LayerWeights& w = w_.layers[size_t(layer)];
  const LayerGrads& g = g_.layers[size_t(layer)];
  const int64_t M = rows_, H = c_.hidden_size, qd = c_.q_dim(), kd = c_.kv_dim();
  const float* x = a.attn_in.as<float>();
  const float* dq = s_.dq.as<float>();
  const float* dk = s_.dk.as<float>();
  const float* dv = s_.dv.as<float>();
  if (w.qkv.weight.data) {
    const int64_t width = qd + 2 * kd;
    float* d_qkv = ensure_floats(s_.d_qkv, M * width);
    put_columns(dq, M, qd, width, 0, d_qkv);
    put_columns(dk, M, kd, width, qd, d_qkv);
    put_columns(dv, M, kd, width, qd + kd, d_qkv);
    linear_backward(w.qkv, g.qkv, x, d_qkv, M, dx);
    return;
  }
  float* dx2 = ensure_floats(s_.dx2, M * H);
  linear_backward(w.q, g.q, x, dq, M, dx);
  linear_backward(w.k, g.k, x, dk, M, dx2);
  cpu::add_inplace(dx, dx2, M * H);
  linear_backward(w.v, g.v, x, dv, M, dx2);
  cpu::add_inplace(dx, dx2, M * H);
}

}  // namespace zoft
