// The op interface: one declaration per op. Each op has a CPU implementation in backend/cpu/
// and (when built with ZOFT_CUDA) a CUDA one in backend/cuda/ taking device pointers; tests in
// tests/backend/ compare every implementation with a double-precision reference.
//
// Conventions: activations are f32, row-major, contiguous. Large weight matrices are Tensors in
// f32 or bf16; the weight dtype selects the compute mode of a GEMM (bf16 weights => inputs are
// rounded to bf16 and products are accumulated in f32, as cuBLAS / oneDNN bf16 GEMMs do).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace zoft {

enum class Device : uint8_t { CPU, CUDA };

enum class Activation : uint8_t {
  ReLU,
  GeluErf,   // 0.5 x (1 + erf(x / sqrt 2))            HF "gelu"
  GeluTanh,  // 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))  HF "gelu_new", "gelu_pytorch_tanh"
  SiLU,      // x * sigmoid(x)                        HF "silu"
};

// The extent of one attention call (q_len, kv_len, heads, head_dim); see cpu::attention.
struct AttentionShape {
  int64_t batch = 1;
  int64_t q_len = 1;        // T: queries per sequence
  int64_t kv_len = 1;       // S: keys in use per sequence, S = q_offset + T
  int64_t kv_capacity = 1;  // rows allocated per sequence in k / v (>= kv_len)
  int64_t q_heads = 1;
  int64_t kv_heads = 1;  // q_heads % kv_heads == 0 (grouped-query attention)
  int64_t head_dim = 1;
};

// Throws Error unless the heads group evenly and q_len <= kv_len <= kv_capacity (every backend's
// attention checks its shape with this).
void check_attention_shape(const AttentionShape& shape);

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

// The same ops on a CUDA GPU (src/backend/cuda/, built with ZOFT_CUDA; these declarations have no
// definition otherwise). Every pointer is a DEVICE pointer; every op is enqueued on the one
// current stream of backend/cuda/context.h and returns without waiting, except where it must
// read a result back to throw (embedding, cross_entropy, candidate_log_probs check their ids).
// Semantics are those of the cpu:: op of the same name; results agree within float tolerance,
// not bit for bit (other summation orders, cuBLASLt GEMMs).
namespace cuda {

// True when the CUDA runtime reports at least one device (cudaGetDeviceCount); false, without
// throwing, on machines without a GPU or driver.
bool device_available();

// A weight matrix in device memory: [rows, cols] row-major, contiguous; f32, bf16 or f16.
struct DeviceMatrix {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
};

// y[M,N] = x[M,K] . W^T + bias, W [N,K] or [K,N] (weight_is_kn). bf16 / f16 weights: x is
// rounded to the weight dtype and products are summed in f32 (cuBLASLt, f32 compute); f32
// weights: a true f32 GEMM (TF32 off). The algorithm depends on (N, K, dtype, layout) only, so
// a row's result does not depend on M.
void linear(const float* x, int64_t M, int64_t K, const DeviceMatrix& weight, bool weight_is_kn,
            const float* bias, float* y);

void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                int64_t dim, float eps);
void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim, float eps,
              bool unit_offset);
void add_inplace(float* y, const float* x, int64_t n);
void activation(Activation kind, float* x, int64_t n);
void gated_activation(Activation kind, const float* gate, const float* up, int64_t in_row_stride,
                      float* out, int64_t rows, int64_t dim);
// positions and inv_freq in device memory.
void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, const float* inv_freq, float attention_scaling);
// head_dim <= 256.
void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid, float* out,
               const AttentionShape& shape, float scale, int64_t window, float softcap);
void softcap(float* x, int64_t n, float cap);
// table [vocab, dim]; an id outside [0, vocab) throws Error and leaves out untouched.
void embedding(const DeviceMatrix& table, const int32_t* ids, int64_t rows, float scale,
               float* out);
void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                   float* loss);
// Scoring a few candidate tokens per row without copying [rows, vocab] logits back:
// out[r, c] = logits[r, candidates[r, c]] - logsumexp(logits[r]) for c < n_candidates.
// A candidate outside [0, vocab) throws Error.
void candidate_log_probs(const float* logits, int64_t rows, int64_t vocab,
                         const int32_t* candidates, int64_t n_candidates, float* out);

}  // namespace cuda
}  // namespace zoft
