// The CUDA implementations of the ops of backend/ops.h (built with ZOFT_CUDA only). Code above
// the backend calls ops:: (dispatched by the tensors' device); the GPU tests call these directly.
#pragma once

#include <cstdint>

#include "backend/op_types.h"
#include "core/tensor.h"

namespace zoft {

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
