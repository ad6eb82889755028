// f32 GEMM for one or two rows of x (decode with batch 1-2). Time goes into reading W once, so
// W is used in place instead of being packed: [N,K] as dot products along K, [K,N] as axpys
// along N. (Measured in bench: ~30% faster than the packed kernel at M = 1 for f32; for bf16
// weights, half the bytes, the packed kernel is as fast, so bf16 always packs.)
#include <algorithm>

#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"

namespace zoft::cpu::detail {

#if defined(__AVX512F__)

// y[m][n] = x[m] . W[n] + bias[n] for n in [n0, n1), W [N,K]. Four rows of W at a time, so
// that 4 M independent FMA chains hide the FMA latency.
static void dots(const float* x, int64_t M, int64_t K, const float* w, const float* bias, float* y,
                 int64_t N, int64_t n0, int64_t n1) {
  constexpr int kRows = 4;
  for (int64_t n = n0; n < n1; n += kRows) {
    const int rows = int(std::min<int64_t>(kRows, n1 - n));
    __m512 acc[kRows][kSmallM];
    for (int r = 0; r < kRows; ++r)
      for (int64_t m = 0; m < M; ++m) acc[r][m] = _mm512_setzero_ps();
    const float* row[kRows];
    for (int r = 0; r < kRows; ++r) row[r] = w + (n + std::min(r, rows - 1)) * K;
    for (int64_t k = 0; k < K; k += 16) {
      __mmask16 mask = simd::first_lanes(K - k);
      __m512 xv[kSmallM];
      for (int64_t m = 0; m < M; ++m) xv[m] = _mm512_maskz_loadu_ps(mask, x + m * K + k);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        __m512 wv = _mm512_maskz_loadu_ps(mask, row[r] + k);
        for (int64_t m = 0; m < M; ++m) acc[r][m] = _mm512_fmadd_ps(xv[m], wv, acc[r][m]);
      }
    }
    for (int r = 0; r < rows; ++r)
      for (int64_t m = 0; m < M; ++m)
        y[m * N + n + r] = simd::reduce_add(acc[r][m]) + (bias ? bias[n + r] : 0.0f);
  }
}

// y[m][n0, n0 + 64) = sum_k x[m][k] W[k][n0, ...) + bias, W [K,N]: 4 vectors x M rows in
// registers while W streams by.
static void axpys(const float* x, int64_t M, int64_t K, const float* w, const float* bias, float* y,
                  int64_t N, int64_t n0) {
  __mmask16 mask[4];
  __m512 acc[kSmallM][4];
  for (int v = 0; v < 4; ++v) {
    mask[v] = simd::first_lanes(N - n0 - 16 * v);
    __m512 b = bias ? _mm512_maskz_loadu_ps(mask[v], bias + n0 + 16 * v) : _mm512_setzero_ps();
    for (int64_t m = 0; m < M; ++m) acc[m][v] = b;
  }
  for (int64_t k = 0; k < K; ++k) {
    for (int v = 0; v < 4; ++v) {
      __m512 wv = _mm512_maskz_loadu_ps(mask[v], w + k * N + n0 + 16 * v);
      for (int64_t m = 0; m < M; ++m)
        acc[m][v] = _mm512_fmadd_ps(_mm512_set1_ps(x[m * K + k]), wv, acc[m][v]);
    }
  }
  for (int64_t m = 0; m < M; ++m)
    for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(y + m * N + n0 + 16 * v, mask[v], acc[m][v]);
}

void small_gemm_f32(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                    int64_t N, const float* bias, float* y) {
  if (!weight_is_kn) {
    parallel_items(N, K * M, [&](int64_t n0, int64_t n1) { dots(x, M, K, w, bias, y, N, n0, n1); });
  } else {
    parallel_items((N + 63) / 64, 64 * K * M, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) axpys(x, M, K, w, bias, y, N, c * 64);
    });
  }
}

#else

void small_gemm_f32(const float*, int64_t, int64_t, const float*, bool, int64_t, const float*,
                    float*) {}

#endif

}  // namespace zoft::cpu::detail
