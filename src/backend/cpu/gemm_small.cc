// GEMM for one or two rows of x (decode with batch 1-2). Time goes into reading W once, so W
// is used in place instead of being packed (f32 both layouts, bf16 [N,K]; docs/gemm-choice.md
// has the measurements).
//
// Every output is summed in exactly the packed kernel's order (gemm_kernels.cc): blocks of
// kKC = 512 k, each an FMA chain over k from zero, blocks then added to the running total (bias
// first). A row of x thus gets the same bits whatever M is, which data-parallel training
// relies on: a rank scoring one or two tokens must match the single process scoring them all.
#include <algorithm>
#include <vector>

#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"

namespace zoft::cpu::detail {

#if defined(__AVX512F__)

// W rows are read as 16 interleaved streams, more than the hardware prefetcher follows well:
// each row's next lines are prefetched by hand (measured: ~1.5x on a 671 MB LM head).
constexpr int64_t kPrefetchBytes = 256;

static void prefetch_ahead(const void* p) {
  _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
}

// total = acc + (first block ? bias : total), as the packed kernel's store does.
static __m512 add_block(__m512 acc, __m512 total, bool first, const float* bias, __mmask16 mask) {
  if (!first) return _mm512_add_ps(acc, total);
  if (!bias) return acc;
  return _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, bias));
}

// y[m][n0, n0 + 16) for W [N,K]: 16 rows of W are read 16 k at a time and transposed in
// registers, so that each lane (one output n) runs its own FMA chain along k.
template <int M>
static void dots16(const float* x, int64_t K, const float* w, const float* bias, float* y,
                   int64_t N, int64_t n0) {
  const int64_t cols = std::min<int64_t>(16, N - n0);
  const __mmask16 out_mask = simd::first_lanes(cols);
  __m512 total[M];
  for (int64_t k0 = 0; k0 < K; k0 += kBlockSteps) {
    const int64_t k1 = std::min(K, k0 + kBlockSteps);
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += 16) {
      const int64_t steps = std::min<int64_t>(16, k1 - k);
      const __mmask16 mask = simd::first_lanes(steps);
      __m512i r[16];
      for (int j = 0; j < 16; ++j) {
        prefetch_ahead(w + (n0 + j) * K + k);
        r[j] = j < cols ? _mm512_maskz_loadu_epi32(mask, w + (n0 + j) * K + k)
                        : _mm512_setzero_si512();
      }
      simd::transpose16x16(r);
      for (int64_t s = 0; s < steps; ++s)
        for (int m = 0; m < M; ++m)
          acc[m] =
              _mm512_fmadd_ps(_mm512_set1_ps(x[m * K + k + s]), _mm512_castsi512_ps(r[s]), acc[m]);
    }
    for (int m = 0; m < M; ++m)
      total[m] = add_block(acc[m], total[m], k0 == 0, bias ? bias + n0 : nullptr, out_mask);
  }
  for (int m = 0; m < M; ++m) _mm512_mask_storeu_ps(y + m * N + n0, out_mask, total[m]);
}

// y[m][n0, n0 + 64) for W [K,N]: 4 vectors x M rows in registers while W streams by.
template <int M>
static void axpys64(const float* x, int64_t K, const float* w, const float* bias, float* y,
                    int64_t N, int64_t n0) {
  __mmask16 mask[4];
  for (int v = 0; v < 4; ++v) mask[v] = simd::first_lanes(N - n0 - 16 * v);
  __m512 total[M][4];
  for (int64_t k0 = 0; k0 < K; k0 += kBlockSteps) {
    const int64_t k1 = std::min(K, k0 + kBlockSteps);
    __m512 acc[M][4];
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < 4; ++v) acc[m][v] = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; ++k) {
      for (int v = 0; v < 4; ++v) {
        __m512 wv = _mm512_maskz_loadu_ps(mask[v], w + k * N + n0 + 16 * v);
        for (int m = 0; m < M; ++m)
          acc[m][v] = _mm512_fmadd_ps(_mm512_set1_ps(x[m * K + k]), wv, acc[m][v]);
      }
    }
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < 4; ++v)
        total[m][v] = add_block(acc[m][v], total[m][v], k0 == 0,
                                bias ? bias + n0 + 16 * v : nullptr, mask[v]);
  }
  for (int m = 0; m < M; ++m)
    for (int v = 0; v < 4; ++v)
      _mm512_mask_storeu_ps(y + m * N + n0 + 16 * v, mask[v], total[m][v]);
}

// The row count is a template argument so that the accumulators stay in registers.
template <int M>
static void small_gemm_rows(const float* x, int64_t K, const float* w, bool weight_is_kn, int64_t N,
                            const float* bias, float* y) {
  if (!weight_is_kn) {
    parallel_items((N + 15) / 16, 16 * K * M, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) dots16<M>(x, K, w, bias, y, N, c * 16);
    });
  } else {
    parallel_items((N + 63) / 64, 64 * K * M, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) axpys64<M>(x, K, w, bias, y, N, c * 64);
    });
  }
}

void small_gemm_f32(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                    int64_t N, const float* bias, float* y) {
  static_assert(kSmallM == 2);
  if (M == 1)
    small_gemm_rows<1>(x, K, w, weight_is_kn, N, bias, y);
  else
    small_gemm_rows<2>(x, K, w, weight_is_kn, N, bias, y);
}

#if defined(__AVX512BF16__)

// y[m][n0, n0 + 16) for bf16 W [N,K], x as bf16 pairs (S = ceil(K/2) per row): dots16 with one
// step per pair of k, as VDPBF16PS adds both products of a pair into a lane.
template <int M>
static void dots16_bf16(const uint32_t* xp, int64_t S, int64_t K, const uint16_t* w,
                        const float* bias, float* y, int64_t N, int64_t n0) {
  const int64_t cols = std::min<int64_t>(16, N - n0);
  const __mmask16 out_mask = simd::first_lanes(cols);
  __m512 total[M];
  for (int64_t s0 = 0; s0 < S; s0 += kBlockSteps) {
    const int64_t s1 = std::min(S, s0 + kBlockSteps);
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t s = s0; s < s1; s += 16) {
      const int64_t steps = std::min<int64_t>(16, s1 - s);
      const int64_t halves = std::min(2 * steps, K - 2 * s);  // odd K: the last pair is padded
      const __mmask32 mask = halves >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << halves) - 1);
      __m512i r[16];
      for (int j = 0; j < 16; ++j) {
        prefetch_ahead(w + (n0 + j) * K + 2 * s);
        r[j] = j < cols ? _mm512_maskz_loadu_epi16(mask, w + (n0 + j) * K + 2 * s)
                        : _mm512_setzero_si512();
      }
      simd::transpose16x16(r);
      for (int64_t t = 0; t < steps; ++t)
        for (int m = 0; m < M; ++m)
          acc[m] = _mm512_dpbf16_ps(acc[m], (__m512bh)_mm512_set1_epi32(int(xp[m * S + s + t])),
                                    (__m512bh)r[t]);
    }
    for (int m = 0; m < M; ++m)
      total[m] = add_block(acc[m], total[m], s0 == 0, bias ? bias + n0 : nullptr, out_mask);
  }
  for (int m = 0; m < M; ++m) _mm512_mask_storeu_ps(y + m * N + n0, out_mask, total[m]);
}

void small_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                     const float* bias, float* y) {
  static_assert(kSmallM == 2);
  const int64_t S = (K + 1) / 2;
  thread_local std::vector<uint32_t> pairs;  // x rounded as the packed kernel rounds it
  if (pairs.size() < size_t(M * S)) pairs.resize(size_t(M * S));
  for (int64_t m = 0; m < M; ++m) round_bf16_pairs(x + m * K, K, S, pairs.data() + m * S);
  const uint32_t* xp = pairs.data();
  parallel_items((N + 15) / 16, 16 * K * M, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      if (M == 1)
        dots16_bf16<1>(xp, S, K, w, bias, y, N, c * 16);
      else
        dots16_bf16<2>(xp, S, K, w, bias, y, N, c * 16);
    }
  });
}

#else

void small_gemm_bf16(const float*, int64_t, int64_t, const uint16_t*, int64_t, const float*,
                     float*) {}

#endif

#else

void small_gemm_f32(const float*, int64_t, int64_t, const float*, bool, int64_t, const float*,
                    float*) {}
void small_gemm_bf16(const float*, int64_t, int64_t, const uint16_t*, int64_t, const float*,
                     float*) {}

#endif

}  // namespace zoft::cpu::detail
