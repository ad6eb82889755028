// Backward of layer_norm and rms_norm. With xhat = (x - shift) * rstd (shift = the row mean for
// layer_norm, 0 for rms_norm) and g = gamma (+ 1 with unit_offset), y = xhat * g (+ beta):
//   dx = rstd * (dy g - mean(dy g) - xhat * mean(dy g xhat))   (layer_norm)
//   dx = rstd * (dy g - xhat * mean(dy g xhat))                (rms_norm: no mean term)
//   dgamma += sum over rows of dy xhat,  dbeta += sum over rows of dy.
// Rows are split into one contiguous part per thread; each part sums its dgamma / dbeta into a
// buffer of its own and the parts are added in order at the end (no atomics, same bits for the
// same thread count).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/op_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"
#include "core/thread_pool.h"

#if !defined(ZOFT_OPS_ISA)
#error "norm_backward.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {
namespace norm_bwd {
// Internal linkage, for the reason in tools/check_isa_objects.py.
namespace {

// sum_i (x[i] - shift)^p for p = 1 or 2: 16 f32 lanes (AVX-512), a double accumulator otherwise.
static float shifted_sum(const float* x, int64_t n, float shift, bool squared) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  const __m512 s = simd::splat(shift);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), s);
    acc = squared ? _mm512_fmadd_ps(d, d, acc) : _mm512_add_ps(acc, d);
  }
  return simd::reduce_add(acc);
#else
  double acc = 0;
  for (int64_t i = 0; i < n; ++i)
    acc += squared ? double(x[i] - shift) * (x[i] - shift) : x[i] - shift;
  return float(acc);
#endif
}

// Row statistics as the forward computes them: the mean (layer_norm only; 0 for rms_norm) and
// 1 / sqrt(var + eps), the variance taken around the mean.
static void row_stats(const float* x, int64_t n, bool centered, float eps, float& shift,
                      float& rstd) {
  shift = centered ? shifted_sum(x, n, 0.0f, false) / float(n) : 0.0f;
  rstd = 1.0f / std::sqrt(shifted_sum(x, n, shift, true) / float(n) + eps);
}

// The two row sums of the backward: sum dy g and sum dy g xhat.
static void row_sums(const float* x, float shift, float rstd, const float* gamma, float offset,
                     const float* dy, int64_t n, float& sum_dyg, float& sum_dyg_xhat) {
#if defined(__AVX512F__)
  __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
  const __m512 s = simd::splat(shift), k = simd::splat(rstd), g0 = simd::splat(offset);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 g = _mm512_add_ps(_mm512_maskz_loadu_ps(m, gamma + i), g0);
    __m512 dyg = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), g);
    __m512 xhat = _mm512_mul_ps(_mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), s), k);
    a = _mm512_add_ps(a, dyg);
    b = _mm512_fmadd_ps(dyg, xhat, b);
  }
  sum_dyg = simd::reduce_add(a);
  sum_dyg_xhat = simd::reduce_add(b);
#else
  double a = 0, b = 0;
  for (int64_t i = 0; i < n; ++i) {
    float dyg = dy[i] * (gamma[i] + offset);
    a += dyg;
    b += double(dyg) * double((x[i] - shift) * rstd);
  }
  sum_dyg = float(a);
  sum_dyg_xhat = float(b);
#endif
}

// dx = rstd (dy g - mean_dyg - xhat mean_dyg_xhat); dgamma_part += dy xhat; dbeta_part += dy.
static void row_gradient(const float* x, float shift, float rstd, const float* gamma, float offset,
                         const float* dy, float mean_dyg, float mean_dyg_xhat, float* dx,
                         float* dgamma_part, float* dbeta_part, int64_t n) {
#if defined(__AVX512F__)
  const __m512 s = simd::splat(shift), k = simd::splat(rstd), g0 = simd::splat(offset);
  const __m512 ma = simd::splat(mean_dyg), mb = simd::splat(mean_dyg_xhat);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = simd::first_lanes(n - i);
    __m512 dyv = _mm512_maskz_loadu_ps(m, dy + i);
    __m512 g = _mm512_add_ps(_mm512_maskz_loadu_ps(m, gamma + i), g0);
    __m512 xhat = _mm512_mul_ps(_mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), s), k);
    __m512 inner = _mm512_fnmadd_ps(xhat, mb, _mm512_sub_ps(_mm512_mul_ps(dyv, g), ma));
    _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(inner, k));
    if (dgamma_part)
      _mm512_mask_storeu_ps(dgamma_part + i, m,
                            _mm512_fmadd_ps(dyv, xhat, _mm512_maskz_loadu_ps(m, dgamma_part + i)));
    if (dbeta_part)
      _mm512_mask_storeu_ps(dbeta_part + i, m,
                            _mm512_add_ps(dyv, _mm512_maskz_loadu_ps(m, dbeta_part + i)));
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = (x[i] - shift) * rstd, d = dy[i];
    dx[i] = rstd * (d * (gamma[i] + offset) - mean_dyg - xhat * mean_dyg_xhat);
    if (dgamma_part) dgamma_part[i] += d * xhat;
    if (dbeta_part) dbeta_part[i] += d;
  }
#endif
}

// Both norms; centered selects layer_norm.
static void backward(const float* x, const float* gamma, float offset, const float* dy, float* dx,
                     float* dgamma, float* dbeta, int64_t rows, int64_t dim, float eps,
                     bool centered) {
  if (rows <= 0 || dim <= 0) return;
  const int64_t parts = std::min<int64_t>(ThreadPool::global().size(), rows);
  // partial[p] = [dgamma part | dbeta part] of rows part p.
  std::vector<float> partial(size_t(parts * 2 * dim), 0.0f);
  parallel_items(parts, rows / parts * dim * 8, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* dgamma_part = dgamma ? partial.data() + p * 2 * dim : nullptr;
      float* dbeta_part = dbeta ? partial.data() + p * 2 * dim + dim : nullptr;
      for (int64_t r = rows * p / parts; r < rows * (p + 1) / parts; ++r) {
        const float* xr = x + r * dim;
        const float* dyr = dy + r * dim;
        float shift, rstd, sum_dyg, sum_dyg_xhat;
        row_stats(xr, dim, centered, eps, shift, rstd);
        row_sums(xr, shift, rstd, gamma, offset, dyr, dim, sum_dyg, sum_dyg_xhat);
        const float mean_dyg = centered ? sum_dyg / float(dim) : 0.0f;
        row_gradient(xr, shift, rstd, gamma, offset, dyr, mean_dyg, sum_dyg_xhat / float(dim),
                     dx + r * dim, dgamma_part, dbeta_part, dim);
      }
    }
  });
  for (int64_t p = 0; p < parts; ++p)
    for (int64_t i = 0; i < dim; ++i) {
      if (dgamma) dgamma[i] += partial[p * 2 * dim + i];
      if (dbeta) dbeta[i] += partial[p * 2 * dim + dim + i];
    }
}

}  // namespace
}  // namespace norm_bwd

void layer_norm_backward(const float* x, const float* gamma, const float* dy, float* dx,
                         float* dgamma, float* dbeta, int64_t rows, int64_t dim, float eps) {
  norm_bwd::backward(x, gamma, 0.0f, dy, dx, dgamma, dbeta, rows, dim, eps, true);
}

void rms_norm_backward(const float* x, const float* gamma, const float* dy, float* dx,
                       float* dgamma, int64_t rows, int64_t dim, float eps, bool unit_offset) {
  norm_bwd::backward(x, gamma, unit_offset ? 1.0f : 0.0f, dy, dx, dgamma, nullptr, rows, dim, eps,
                     false);
}

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
