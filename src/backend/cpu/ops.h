// The CPU implementations of the ops of backend/ops.h (host pointers, the global thread pool).
// Code above the backend calls ops:: (dispatched by device); the backward (backend/ops_backward.h,
// CPU only) and the op tests call these directly.
#pragma once

#include <cstdint>

#include "backend/op_types.h"
#include "core/tensor.h"

namespace zoft {

namespace cpu {

// y[M,N] = x[M,K] . W^T + bias. W is [N,K] (nn.Linear), or [K,N] when weight_is_kn (GPT-2 Conv1D).
// bias may be null. W dtype f32 or bf16.
void linear(const float* x, int64_t M, int64_t K, const Tensor& weight, bool weight_is_kn,
            const float* bias, float* y);

// out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta   (beta may be null)
void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                int64_t dim, float eps);

// out[r] = x[r] / sqrt(mean(x^2) + eps) * (unit_offset ? 1 + gamma : gamma)   (Gemma: unit_offset)
void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim, float eps,
              bool unit_offset);

// y[i] += x[i]
void add_inplace(float* y, const float* x, int64_t n);

// x[i] = act(x[i])
void activation(Activation kind, float* x, int64_t n);

// out[r, j] = act(gate[r, j]) * up[r, j]; gate and up may be rows of a fused [rows, 2*dim]
// buffer, hence the separate row strides (in elements).
void gated_activation(Activation kind, const float* gate, const float* up, int64_t in_row_stride,
                      float* out, int64_t rows, int64_t dim);

// Rotary embedding in place, HF "rotate_half" layout: within each head the first rotary_dim
// elements are split into halves (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), with
// angle = positions[r] * inv_freq[i], cos/sin multiplied by attention_scaling.
// x is [rows, heads, head_dim]; inv_freq has rotary_dim / 2 entries.
void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, const float* inv_freq, float attention_scaling);

using zoft::AttentionShape;

// Causal attention without a T x T matrix (online softmax over key tiles).
// q, out: [B, T, Hq, D]; k, v: [B, kv_capacity, Hkv, D]. Query t sits at cache index
// q_offset + t with q_offset = kv_len - q_len; it sees key s iff s <= q_offset + t,
// key_valid[b * kv_len + s] != 0 (null: all valid), and, when window > 0,
// (q_offset + t) - s < window. Scores are q.k * scale, then softcap * tanh(score / softcap)
// when softcap > 0. A query that sees no key gets zeros.
void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid, float* out,
               const AttentionShape& shape, float scale, int64_t window, float softcap);

// x[i] = cap * tanh(x[i] / cap)
void softcap(float* x, int64_t n, float cap);

// out[r, :] = table[ids[r], :] * scale, table [vocab, dim] in f32 / bf16 / f16.
// ids outside [0, vocab) throw Error.
void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale, float* out);

// loss[r] = logsumexp(logits[r]) - logits[r, target[r]]; target < 0 => loss 0 (ignored).
void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                   float* loss);

}  // namespace cpu

}  // namespace zoft
