// Internal to backend/cpu: the packed AVX-512 GEMM kernels behind cpu::linear (gemm.cc), exposed
// so that bench/gemm.cc can time them against the libraries. docs/gemm-choice.md says why we
// have our own kernels at all (Debian's OpenBLAS has no bf16 GEMM and no Zen 5 kernels).
#pragma once

#include <cstdint>

namespace zoft::cpu::detail {

// True when this build has the packed kernels (compiled with AVX-512F / AVX-512 BF16).
bool have_packed_f32();
bool have_packed_bf16();

// y[M,N] = x[M,K] . W^T + bias, W given as [N,K] (weight_is_kn = false) or [K,N], row-major.
// Runs on the global thread pool; must not be called from inside a parallel_for body.
void packed_gemm_f32(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                     int64_t N, const float* bias, float* y);
// y[M,N] += x[M,K] . W^T (no bias): the weight gradient of linear_backward_weight.
void packed_gemm_f32_accumulate(const float* x, int64_t M, int64_t K, const float* w,
                                bool weight_is_kn, int64_t N, float* y);
// Same as packed_gemm_f32 with bf16 weights: x is rounded to bf16, products are accumulated in f32.
void packed_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool weight_is_kn,
                      int64_t N, const float* bias, float* y);

// K is summed in blocks of this many steps (the packed kernels' KC; a step is one k for f32, a
// pair of k for bf16); gemm_small.cc sums in the same order, so that a row's result does not
// depend on M.
constexpr int64_t kBlockSteps = 512;

// Up to this many rows of x, f32 W is read in place (gemm_small.cc) instead of packed.
constexpr int64_t kSmallM = 2;

// packed_gemm_f32 for M <= kSmallM (AVX-512 builds only).
void small_gemm_f32(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                    int64_t N, const float* bias, float* y);
// packed_gemm_bf16 for M <= kSmallM and W [N,K] (AVX-512 BF16 builds only).
void small_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                     const float* bias, float* y);

// dst[0, pairs) = bf16 pairs of src[0, 2 pairs), rounded to nearest even, as the bf16 kernels
// read x; floats at or past `count` read as 0 (odd K is padded). AVX-512 BF16 builds only.
void round_bf16_pairs(const float* src, int64_t count, int64_t pairs, uint32_t* dst);

}  // namespace zoft::cpu::detail
