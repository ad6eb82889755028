// One decoder layer for training: the forward of Decoder::layer_forward (same ops, same order,
// so the same numbers) writing its intermediates to LayerActs, and its backward, which walks
// the forward's steps in reverse.
#include <algorithm>
#include <cstring>

#include "backend/ops_backward.h"
#include "model/backprop.h"
#include "model/scratch.h"

namespace zoft {

namespace {

// Copies columns [begin, begin + width) of a [rows, stride] matrix into a [rows, width] one.
void take_columns(const float* src, int64_t rows, int64_t stride, int64_t begin, int64_t width,
                  float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * width, src + r * stride + begin, size_t(width) * sizeof(float));
}

// The reverse: a [rows, width] matrix into columns [begin, begin + width) of a [rows, stride] one.
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

// ---------------------------------------------------------------------------- forward

void Backprop::layer_forward(int64_t layer, const float* input, float* output, LayerActs& a) {
  std::memcpy(output, input, size_t(rows_ * c_.hidden_size) * sizeof(float));
  attention_block_forward(layer, input, output, a);
  mlp_block_forward(layer, output, a);
}

// h += attention(attn_norm(input)) (post-normed for sandwich norms).
void Backprop::attention_block_forward(int64_t layer, const float* input, float* h, LayerActs& a) {
  const LayerWeights& w = w_.layers[size_t(layer)];
  const int64_t M = rows_, H = c_.hidden_size, qd = c_.q_dim(), kd = c_.kv_dim();
  float* x = ensure_floats(a.attn_in, M * H);
  float* q = ensure_floats(a.q, M * qd);
  float* k = ensure_floats(a.k, M * kd);
  float* v = ensure_floats(a.v, M * kd);
  float* q_proj = c_.qk_norm ? ensure_floats(a.q_raw, M * qd) : q;
  float* k_proj = c_.qk_norm ? ensure_floats(a.k_raw, M * kd) : k;
  model_.norm(w.attn_norm, input, x, M, H);
  if (w.qkv.weight.data) {
    float* qkv = ensure_floats(model_.scratch_.qkv, M * (qd + 2 * kd));
    model_.linear(w.qkv, x, M, qkv);
    take_columns(qkv, M, qd + 2 * kd, 0, qd, q_proj);
    take_columns(qkv, M, qd + 2 * kd, qd, kd, k_proj);
    take_columns(qkv, M, qd + 2 * kd, qd + kd, kd, v);
  } else {
    model_.linear(w.q, x, M, q_proj);
    model_.linear(w.k, x, M, k_proj);
    model_.linear(w.v, x, M, v);
  }
  if (c_.qk_norm) {
    model_.norm(w.q_norm, q_proj, q, M * c_.num_heads, c_.head_dim);
    model_.norm(w.k_norm, k_proj, k, M * c_.num_kv_heads, c_.head_dim);
  }
  if (c_.positions == PositionKind::Rope) {
    const RopeTable& rope = c_.is_sliding(layer) ? model_.rope_local_ : model_.rope_global_;
    cpu::rope(q, state_.positions.data(), M, c_.num_heads, c_.head_dim, rope.rotary_dim,
              rope.inv_freq.data(), rope.attention_scaling);
    cpu::rope(k, state_.positions.data(), M, c_.num_kv_heads, c_.head_dim, rope.rotary_dim,
              rope.inv_freq.data(), rope.attention_scaling);
  }
  float* attn = ensure_floats(a.attn, M * qd);
  cpu::attention(q, k, v, state_.key_valid.data(), attn, attention_shape(), c_.attention_scale,
                 c_.layer_window[size_t(layer)], c_.attn_softcap);
  float* tmp = ensure_floats(model_.scratch_.tmp, M * H);
  if (w.post_attn_norm.weight) {
    float* o_out = ensure_floats(a.o_out, M * H);
    model_.linear(w.o, attn, M, o_out);
    model_.norm(w.post_attn_norm, o_out, tmp, M, H);
  } else {
    model_.linear(w.o, attn, M, tmp);
  }
  cpu::add_inplace(h, tmp, M * H);
  std::memcpy(ensure_floats(a.mid, M * H), h, size_t(M * H) * sizeof(float));
}

// h += mlp(ffn_norm(h)) (post-normed for sandwich norms).
void Backprop::mlp_block_forward(int64_t layer, float* h, LayerActs& a) {
  const LayerWeights& w = w_.layers[size_t(layer)];
  const int64_t M = rows_, H = c_.hidden_size, I = c_.intermediate_size;
  float* x = ensure_floats(a.mlp_in, M * H);
  float* up = ensure_floats(a.up, M * I);
  float* act = ensure_floats(a.act, M * I);
  model_.norm(w.ffn_norm, h, x, M, H);
  if (c_.gated_mlp) {
    float* gate = ensure_floats(a.gate, M * I);
    model_.linear(w.gate, x, M, gate);
    model_.linear(w.up, x, M, up);
    cpu::gated_activation(c_.activation, gate, up, I, act, M, I);
  } else {
    model_.linear(w.up, x, M, up);
    std::memcpy(act, up, size_t(M * I) * sizeof(float));
    cpu::activation(c_.activation, act, M * I);
  }
  float* tmp = ensure_floats(model_.scratch_.tmp, M * H);
  if (w.post_ffn_norm.weight) {
    float* down_out = ensure_floats(a.down_out, M * H);
    model_.linear(w.down, act, M, down_out);
    model_.norm(w.post_ffn_norm, down_out, tmp, M, H);
  } else {
    model_.linear(w.down, act, M, tmp);
  }
  cpu::add_inplace(h, tmp, M * H);
}

// ---------------------------------------------------------------------------- backward

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
