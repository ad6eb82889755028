// Internal to backend/cpu: the packed GEMM kernels behind cpu::linear (gemm.cc) and its
// backward. docs/gemm-choice.md says why we have our own kernels at all (Debian's OpenBLAS has no
// bf16 GEMM and no Zen 5 kernels).
//
// gemm_kernels.cc and gemm_small.cc are compiled once per instruction set (CMakeLists.txt:
// avx512 = x86-64-v4, avx512_bf16 = x86-64-v4 + AVX-512 BF16), each copy in its own namespace
// named by ZOFT_GEMM_ISA, so that one binary carries them all; isa.cc picks one at run time.
#pragma once

#include <cstdint>

#include "backend/cpu/isa.h"

namespace zoft::cpu::detail {

// One instruction set's kernels. The functions run on the global thread pool and must not be
// called from inside a parallel_for body.
struct GemmKernels {
  // y[M,N] = x[M,K] . W^T + bias, W given as [N,K] (weight_is_kn = false) or [K,N], row-major.
  void (*packed_f32)(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                     int64_t N, const float* bias, float* y);
  // packed_f32 for M <= kSmallM: W read in place instead of packed (gemm_small.cc).
  void (*small_f32)(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                    int64_t N, const float* bias, float* y);
  // out[A, B] += a[M, A]^T . b[M, B]: the weight gradient of linear_backward_weight.
  void (*add_transposed_product)(const float* a, int64_t M, int64_t A, const float* b, int64_t B,
                                 float* out);
  // packed_f32 with bf16 weights: x is rounded to bf16, products are accumulated in f32.
  // Null where the instruction set has no bf16 dot product (gemm.cc then uses sgemm).
  void (*packed_bf16)(const float* x, int64_t M, int64_t K, const uint16_t* w, bool weight_is_kn,
                      int64_t N, const float* bias, float* y);
  // packed_bf16 for M <= kSmallM and W [N,K]; null with packed_bf16.
  void (*small_bf16)(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                     const float* bias, float* y);
};

// The kernels of one path; null for paths without packed kernels (avx2: OpenBLAS) and for
// instruction sets this build did not compile.
const GemmKernels* gemm_kernels(Isa isa);

// K is summed in blocks of this many steps (the packed kernels' KC; a step is one k for f32, a
// pair of k for bf16); gemm_small.cc sums in the same order, so that a row's result does not
// depend on M.
constexpr int64_t kBlockSteps = 512;

// Up to this many rows of x, f32 W is read in place (gemm_small.cc) instead of packed.
constexpr int64_t kSmallM = 2;

#if defined(ZOFT_GEMM_ISA)
// Shared by the two files of one instruction set's copy.
namespace ZOFT_GEMM_ISA {

void small_gemm_f32(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                    int64_t N, const float* bias, float* y);
void small_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                     const float* bias, float* y);

// dst[0, pairs) = bf16 pairs of src[0, 2 pairs), rounded to nearest even, as the bf16 kernels
// read x; floats at or past `count` read as 0 (odd K is padded).
void round_bf16_pairs(const float* src, int64_t count, int64_t pairs, uint32_t* dst);

}  // namespace ZOFT_GEMM_ISA
#endif

}  // namespace zoft::cpu::detail
