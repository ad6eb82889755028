// The score tile of a flash-style attention, shared by the forward (Q K^T) and the backward
// (Q K^T, dO V^T): c[i][0, 64) = factor * sum_d a[i][d] bt[d][0, 64) for `rows` rows of a (lda
// apart) against a transposed tile bt of 64 columns (rows ldb apart); c rows are 64 apart.
// The sum runs over d in order, one FMA chain per output, so both passes see the same scores.
#pragma once

#include <algorithm>
#include <cstdint>

#include "backend/cpu/simd.h"

namespace zoft::cpu {
// Internal linkage: the file is compiled once per instruction set (op_kernels.h), and an inline
// function of external linkage would be merged across the copies (tools/check_isa_objects.py).
namespace {

constexpr int64_t kKeyTileWidth = 64;  // = 4 vectors of 16 lanes

#if defined(__AVX512F__)
constexpr int kKeyTileRows = 6;  // rows per register tile: 6 x 4 accumulators

template <int ROWS>
inline void key_tile_kernel(const float* a, int64_t lda, const float* bt, int64_t ldb, int64_t D,
                            float factor, float* c) {
  __m512 acc[ROWS][4];
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; ++d) {
    __m512 b[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) b[v] = _mm512_loadu_ps(bt + d * ldb + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; ++r) {
      __m512 x = _mm512_set1_ps(a[r * lda + d]);
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
    }
  }
  const __m512 f = simd::splat(factor);
#pragma GCC unroll 8
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v)
      _mm512_storeu_ps(c + r * kKeyTileWidth + 16 * v, _mm512_mul_ps(acc[r][v], f));
}

inline void rows_times_key_tile(const float* a, int64_t lda, int64_t rows, const float* bt,
                                int64_t ldb, int64_t D, float factor, float* c) {
  for (int64_t r = 0; r < rows; r += kKeyTileRows) {
    const float* ar = a + r * lda;
    float* cr = c + r * kKeyTileWidth;
    switch (std::min<int64_t>(kKeyTileRows, rows - r)) {
      case 1:
        key_tile_kernel<1>(ar, lda, bt, ldb, D, factor, cr);
        break;
      case 2:
        key_tile_kernel<2>(ar, lda, bt, ldb, D, factor, cr);
        break;
      case 3:
        key_tile_kernel<3>(ar, lda, bt, ldb, D, factor, cr);
        break;
      case 4:
        key_tile_kernel<4>(ar, lda, bt, ldb, D, factor, cr);
        break;
      case 5:
        key_tile_kernel<5>(ar, lda, bt, ldb, D, factor, cr);
        break;
      default:
        key_tile_kernel<6>(ar, lda, bt, ldb, D, factor, cr);
        break;
    }
  }
}

#else  // base copy

inline void rows_times_key_tile(const float* a, int64_t lda, int64_t rows, const float* bt,
                                int64_t ldb, int64_t D, float factor, float* c) {
  for (int64_t i = 0; i < rows; ++i) {
    float acc[kKeyTileWidth] = {};
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < kKeyTileWidth; ++j) acc[j] += a[i * lda + d] * bt[d * ldb + j];
    for (int64_t j = 0; j < kKeyTileWidth; ++j) c[i * kKeyTileWidth + j] = acc[j] * factor;
  }
}

#endif

}  // namespace
}  // namespace zoft::cpu
