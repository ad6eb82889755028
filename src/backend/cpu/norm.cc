// layer_norm and rms_norm, one row at a time, rows spread over the pool.
// Row statistics use 16 f32 partial sums (avx512 copy) or a double accumulator (base copy); the
// variance is taken around the mean in a second pass, which avoids E[x^2] - E[x]^2 cancellation.
#include <cmath>

#include "backend/cpu/op_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"

#if !defined(ZOFT_OPS_ISA)
#error "norm.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

// sum_i (x[i] - shift)^2
static float sum_sq(const float* x, int64_t n, float shift) {
#if defined(__AVX512F__)
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  const __m512 s = simd::splat(shift);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {  // two accumulators hide the FMA latency
    __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), s);
    __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), s);
    acc0 = _mm512_fmadd_ps(d0, d0, acc0);
    acc1 = _mm512_fmadd_ps(d1, d1, acc1);
  }
  for (; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), s);
    acc0 = _mm512_fmadd_ps(d, d, acc0);
  }
  return simd::reduce_add(_mm512_add_ps(acc0, acc1));
#else
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += double(x[i] - shift) * double(x[i] - shift);
  return float(acc);
#endif
}

static float sum(const float* x, int64_t n) {
#if defined(__AVX512F__)
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_add_ps(acc0, _mm512_loadu_ps(x + i));
    acc1 = _mm512_add_ps(acc1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16)
    acc0 = _mm512_add_ps(acc0, _mm512_maskz_loadu_ps(simd::first_lanes(n - i), x + i));
  return simd::reduce_add(_mm512_add_ps(acc0, acc1));
#else
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += x[i];
  return float(acc);
#endif
}

// out[i] = (x[i] - shift) * scale * (gamma[i] + gamma_offset) + (beta ? beta[i] : 0)
static void normalize_row(const float* x, float shift, float scale, const float* gamma,
                          float gamma_offset, const float* beta, float* out, int64_t n) {
#if defined(__AVX512F__)
  const __m512 s = simd::splat(shift), k = simd::splat(scale), g0 = simd::splat(gamma_offset);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 g = _mm512_add_ps(_mm512_maskz_loadu_ps(m, gamma + i), g0);
    __m512 y =
        _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s), k), g);
    if (beta) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, beta + i));
    _mm512_mask_storeu_ps(out + i, m, y);
  }
#else
  for (int64_t i = 0; i < n; ++i)
    out[i] = (x[i] - shift) * scale * (gamma[i] + gamma_offset) + (beta ? beta[i] : 0.0f);
#endif
}

}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                int64_t dim, float eps) {
  parallel_items(rows, dim * 4, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = x + r * dim;
      float mean = sum(row, dim) / float(dim);
      float var = sum_sq(row, dim, mean) / float(dim);
      normalize_row(row, mean, 1.0f / std::sqrt(var + eps), gamma, 0.0f, beta, out + r * dim, dim);
    }
  });
}

void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim, float eps,
              bool unit_offset) {
  parallel_items(rows, dim * 3, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = x + r * dim;
      float mean_sq = sum_sq(row, dim, 0.0f) / float(dim);
      normalize_row(row, 0.0f, 1.0f / std::sqrt(mean_sq + eps), gamma, unit_offset ? 1.0f : 0.0f,
                    nullptr, out + r * dim, dim);
    }
  });
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
