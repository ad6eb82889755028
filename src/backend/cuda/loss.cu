// cross_entropy and candidate_log_probs: one block per row, chunked over the vocabulary. Each
// thread keeps an online logsumexp (running max m, sum s of exp(x - m)) over its strided share of
// the row, so the row is read once; the block then merges the threads' (m, s) pairs.
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace zoft::cuda::kernels {
namespace {

constexpr int kRowThreads = 512;

// logsumexp of row[0, vocab) for the whole block (every thread gets it).
__device__ float row_logsumexp(const float* row, int64_t vocab, float* scratch) {
  float m = -INFINITY, s = 0.0f;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    float x = row[i];
    if (x == -INFINITY) continue;  // adds 0; would be exp(-inf - -inf) = NaN while m = -inf
    if (x > m) {  // rescale what was summed so far (exp(-inf) = 0 on the first element)
      s = s * expf(m - x);
      m = x;
    }
    s += expf(x - m);
  }
  const float row_max = block_max(m, scratch);
  // A thread that saw only -inf (or nothing) contributes 0, not exp(-inf - -inf) = NaN.
  const float mine = m == -INFINITY ? 0.0f : s * expf(m - row_max);
  const float total = block_sum(mine, scratch);
  return logf(total) + row_max;
}

__device__ void flag_bad(int64_t* first_bad, int64_t r) {
  atomicMin(reinterpret_cast<unsigned long long*>(first_bad), (unsigned long long)r);
}

__global__ void cross_entropy_kernel(const float* logits, const int32_t* targets, int64_t vocab,
                                     float* loss, int64_t* first_bad) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int32_t target = targets[r];
  if (target >= vocab) {  // block-uniform: the whole block leaves together
    if (threadIdx.x == 0) flag_bad(first_bad, r);
    return;
  }
  if (target < 0) {  // ignored position
    if (threadIdx.x == 0) loss[r] = 0.0f;
    return;
  }
  const float* row = logits + r * vocab;
  const float lse = row_logsumexp(row, vocab, scratch);
  if (threadIdx.x == 0) loss[r] = lse - row[target];
}

__global__ void candidates_kernel(const float* logits, int64_t vocab, const int32_t* candidates,
                                  int64_t n_candidates, float* out, int64_t* first_bad) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* row = logits + r * vocab;
  const float lse = row_logsumexp(row, vocab, scratch);
  for (int64_t c = threadIdx.x; c < n_candidates; c += blockDim.x) {
    const int32_t id = candidates[r * n_candidates + c];
    if (id < 0 || id >= vocab) {
      flag_bad(first_bad, r * n_candidates + c);
      continue;
    }
    out[r * n_candidates + c] = row[id] - lse;
  }
}

}  // namespace

void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                   float* loss, int64_t* first_bad, cudaStream_t stream) {
  if (rows == 0) return;
  cross_entropy_kernel<<<unsigned(rows), kRowThreads, 0, stream>>>(logits, targets, vocab, loss,
                                                                   first_bad);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void candidate_log_probs(const float* logits, int64_t rows, int64_t vocab,
                         const int32_t* candidates, int64_t n_candidates, float* out,
                         int64_t* first_bad, cudaStream_t stream) {
  if (rows == 0 || n_candidates == 0) return;
  candidates_kernel<<<unsigned(rows), kRowThreads, 0, stream>>>(logits, vocab, candidates,
                                                                n_candidates, out, first_bad);
  ZOFT_CUDA_CHECK_LAUNCH();
}

}  // namespace zoft::cuda::kernels
