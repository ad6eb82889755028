// Kernel launchers, one per kernel, defined in the .cu files of this directory. They take plain
// pointers and sizes, check nothing but the launch itself, and enqueue on `stream`; the ops in
// ops.cc / gemm.cc validate arguments first. Only this small header is shared with nvcc, which
// keeps the CUDA compile quick and free of fmt / the C++ error machinery.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace zoft::cuda::kernels {

// elementwise.cu
enum class Act : int { ReLU, GeluErf, GeluTanh, SiLU };  // the order of zoft::Activation
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream);
void activation(Act kind, float* x, int64_t n, cudaStream_t stream);
void gated_activation(Act kind, const float* gate, const float* up, int64_t in_row_stride,
                      float* out, int64_t rows, int64_t dim, cudaStream_t stream);
void softcap(float* x, int64_t n, float cap, cudaStream_t stream);
void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, const float* inv_freq, float attention_scaling, cudaStream_t stream);
// dst[i] = round-to-nearest-even(src[i]) as bf16 (is_bf16) or f16.
void f32_to_half(const float* src, void* dst, bool is_bf16, int64_t n, cudaStream_t stream);
// y[m, n] = bias[n] (bias null: 0), or y[m, n] += bias[n] when accumulate.
void bias_rows(float* y, const float* bias, int64_t M, int64_t N, bool accumulate,
               cudaStream_t stream);

// norm.cu
void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                int64_t dim, float eps, cudaStream_t stream);
void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim, float eps,
              float gamma_offset, cudaStream_t stream);

// attention.cu: shapes as in zoft::AttentionShape, q_offset = kv_len - q_len, head_dim <= 256.
struct AttentionArgs {
  const float *q, *k, *v;
  const uint8_t* key_valid;
  float* out;
  int64_t batch, q_len, kv_len, kv_capacity, q_heads, kv_heads, head_dim;
  float scale;
  int64_t window;
  float softcap;
};
constexpr int64_t kMaxHeadDim = 256;
void attention(const AttentionArgs& a, cudaStream_t stream);

// embedding.cu. dtype: 0 f32, 1 bf16, 2 f16.
// *first_bad = the smallest r with ids[r] outside [0, vocab), untouched when there is none.
void find_bad_ids(const int32_t* ids, int64_t rows, int64_t vocab, int64_t* first_bad,
                  cudaStream_t stream);
void embedding(const void* table, int dtype, int64_t dim, const int32_t* ids, int64_t rows,
               float scale, float* out, cudaStream_t stream);

// loss.cu: one block per row. *first_bad as above, for targets >= vocab / candidates outside
// [0, vocab).
void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                   float* loss, int64_t* first_bad, cudaStream_t stream);
void candidate_log_probs(const float* logits, int64_t rows, int64_t vocab,
                         const int32_t* candidates, int64_t n_candidates, float* out,
                         int64_t* first_bad, cudaStream_t stream);

}  // namespace zoft::cuda::kernels
