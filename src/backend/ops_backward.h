// Backward passes of the CPU ops (first-order training). Each is the vector-Jacobian product of
// the op of the same name in backend/ops.h, tested against a double-precision reference in
// tests/backend/backward_test.cc.
//
// Conventions: activation gradients (dx, dq, dk, dv, dgate, ...) are OVERWRITTEN; parameter
// gradients (dweight, dbias, dgamma, dbeta, dtable) are f32 and ACCUMULATED (+=), because a
// parameter's gradient sums over rows, micro-batches and uses (a tied embedding table is both
// the embedding and the LM head). The forward's inputs are passed back in (saved or recomputed
// by the caller); an op never keeps state between its forward and its backward.
#pragma once

#include <cstdint>

#include "backend/cpu/ops.h"

namespace zoft::cpu {

// y = x . W^T + b (cpu::linear).  dx[M,K] = dy[M,N] . W   (W f32 or bf16, products in f32).
// It is cpu::linear with the layout flipped, so bf16 weights round dy to bf16 as the forward
// rounds x (the gradient of a bf16 GEMM, as torch's bf16 autocast computes it).
void linear_backward_input(const float* dy, int64_t M, int64_t N, const Tensor& weight,
                           bool weight_is_kn, float* dx);

// dweight += dy^T . x  laid out as the weight is: [N,K], or [K,N] when weight_is_kn;
// dbias[N] += column sums of dy (dbias may be null).
void linear_backward_weight(const float* dy, const float* x, int64_t M, int64_t N, int64_t K,
                            bool weight_is_kn, float* dweight, float* dbias);

// x: the forward's input. dgamma / dbeta may be null (no gradient wanted).
void layer_norm_backward(const float* x, const float* gamma, const float* dy, float* dx,
                         float* dgamma, float* dbeta, int64_t rows, int64_t dim, float eps);
void rms_norm_backward(const float* x, const float* gamma, const float* dy, float* dx,
                       float* dgamma, int64_t rows, int64_t dim, float eps, bool unit_offset);

// x: the input of the activation. dx may alias dy.
void activation_backward(Activation kind, const float* x, const float* dy, float* dx, int64_t n);

// out = act(gate) * up (cpu::gated_activation). gate / up rows are in_row_stride apart; dgate /
// dup rows are out_row_stride apart (a fused [rows, 2*dim] gradient buffer is allowed).
void gated_activation_backward(Activation kind, const float* gate, const float* up,
                               int64_t in_row_stride, const float* dy, float* dgate, float* dup,
                               int64_t out_row_stride, int64_t rows, int64_t dim);

// The rotation's transpose, in place on the gradient dx [rows, heads, head_dim]; arguments as
// cpu::rope.
void rope_backward(float* dx, const int32_t* positions, int64_t rows, int64_t heads,
                   int64_t head_dim, int64_t rotary_dim, const float* inv_freq,
                   float attention_scaling);

// Arguments as cpu::attention plus its output `out` and the output gradient dout (both
// [B, T, Hq, D]). dq [B, T, Hq, D]; dk, dv [B, kv_capacity, Hkv, D], rows beyond kv_len zeroed.
// Scores are recomputed key tile by key tile: no T x T matrix, as in the forward.
void attention_backward(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                        const float* out, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionShape& shape, float scale, int64_t window, float softcap);

// y = cap * tanh(x / cap): dx = dy * (1 - (y / cap)^2), from the forward's OUTPUT y.
// dx may alias dy.
void softcap_backward(const float* y, const float* dy, float* dx, int64_t n, float cap);

// out[r] = table[ids[r]] * scale: dtable[ids[r], :] += scale * dout[r, :]  (dtable f32
// [vocab, dim]). Rows whose id is negative are skipped. The ids are those the forward checked
// (cpu::embedding throws on an id outside the table); there is no vocab here to check again.
void embedding_backward(const float* dout, const int32_t* ids, int64_t rows, int64_t dim,
                        float scale, float* dtable);

// loss[r] = logsumexp(logits[r]) - logits[r, target[r]] (cpu::cross_entropy):
// dlogits[r] = (softmax(logits[r]) - onehot(target[r])) * dloss[r]; zero where target < 0.
// dlogits may alias logits.
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* dloss,
                            int64_t rows, int64_t vocab, float* dlogits);

}  // namespace zoft::cpu
