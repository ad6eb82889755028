// Row reductions of a softmax, shared by cross_entropy and its backward so that both see the
// very same row maximum and normaliser.
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/cpu/simd.h"

namespace zoft::cpu {
// Internal linkage: the file is compiled once per instruction set (op_kernels.h).
namespace {

inline float row_max(const float* x, int64_t n) {
#if defined(__AVX512F__)
  __m512 best = simd::splat(-INFINITY);
  for (int64_t i = 0; i < n; i += 16)
    best = _mm512_max_ps(best, _mm512_mask_loadu_ps(best, simd::first_lanes(n - i), x + i));
  return simd::reduce_max(best);
#else
  float best = -INFINITY;
  for (int64_t i = 0; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
#endif
}

// sum_i exp(x[i] - shift)
inline double sum_exp(const float* x, int64_t n, float shift) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  const __m512 s = simd::splat(shift);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 e = simd::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
  }
  return simd::reduce_add(acc);
#else
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += std::exp(double(x[i] - shift));
  return acc;
#endif
}

}  // namespace
}  // namespace zoft::cpu
