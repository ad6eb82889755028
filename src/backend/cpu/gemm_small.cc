// GEMM for one or two rows of x (decode with batch 1-2). Time goes into reading W once, so W
// is used in place instead of being packed (f32 both layouts, bf16 [N,K]; docs/gemm-choice.md
// has the measurements).
//
// Every output is summed in exactly the packed kernel's order (gemm_kernels.cc): blocks of
// kBlockSteps = 512 steps, each a multiply-add chain from zero, blocks then added to the running
// total (bias first). A row of x thus gets the same bits whatever M is, which data-parallel
// training relies on: a rank scoring one or two tokens must match the single process scoring them
// all.
#include <algorithm>
#include <vector>

#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"

#if !defined(ZOFT_GEMM_ISA) || !defined(__AVX512F__)
#error "gemm_small.cc is compiled per instruction set with AVX-512 flags (CMakeLists.txt)"
#endif

namespace zoft::cpu::detail::ZOFT_GEMM_ISA {

// Internal linkage: inline members compiled with AVX-512 flags must not become weak symbols the
// linker could pick for code that runs on any CPU (tools/check_isa_objects.py).
namespace {

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

// The two weight types of the [N,K] kernel. A step is what one lane of one multiply-add takes
// from a row of W: one f32, or one pair of bf16 (VDPBF16PS adds both products into the lane).
struct F32Steps {
  using W = float;
  using X = float;  // x as the kernel reads it: one value per step
  static const W* at(const W* row, int64_t s) { return row + s; }
  static __m512i load(const W* row, int64_t s, int64_t steps, int64_t) {
    return _mm512_maskz_loadu_epi32(simd::first_lanes(steps), row + s);
  }
  static __m512 madd(__m512 acc, X x, __m512i w) {
    return _mm512_fmadd_ps(_mm512_set1_ps(x), _mm512_castsi512_ps(w), acc);
  }
};

#if defined(__AVX512BF16__)
struct Bf16Steps {
  using W = uint16_t;
  using X = uint32_t;  // a pair of bf16, rounded as the packed kernel rounds x
  static const W* at(const W* row, int64_t s) { return row + 2 * s; }
  static __m512i load(const W* row, int64_t s, int64_t steps, int64_t K) {
    const int64_t halves = std::min(2 * steps, K - 2 * s);  // odd K: the last pair is padded
    const __mmask32 mask = halves >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << halves) - 1);
    return _mm512_maskz_loadu_epi16(mask, row + 2 * s);
  }
  static __m512 madd(__m512 acc, X x, __m512i w) {
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_set1_epi32(int(x)), (__m512bh)w);
  }
};
#endif

// y[m][n0, n0 + 16 G) for W [N,K], x as S steps per row: 16 rows of W at a time are read 16
// steps at a time and transposed in registers, so that each lane (one output n) runs its own
// multiply-add chain along k, in the packed kernel's order. A chain waits for its previous
// multiply-add; G groups of 16 rows take turns so that G chains are in flight at once.
template <class T, int M, int G>
static void dots(const typename T::X* x, int64_t S, int64_t K, const typename T::W* w,
                 const float* bias, float* y, int64_t N, int64_t n0) {
  int64_t cols[G];
  __mmask16 out_mask[G];
  for (int g = 0; g < G; ++g) {
    cols[g] = std::clamp<int64_t>(N - n0 - 16 * g, 0, 16);
    out_mask[g] = simd::first_lanes(cols[g]);
  }
  __m512 total[G][M];
  for (int64_t s0 = 0; s0 < S; s0 += kBlockSteps) {
    const int64_t s1 = std::min(S, s0 + kBlockSteps);
    __m512 acc[G][M];
    for (int g = 0; g < G; ++g)
      for (int m = 0; m < M; ++m) acc[g][m] = _mm512_setzero_ps();
    for (int64_t s = s0; s < s1; s += 16) {
      const int64_t steps = std::min<int64_t>(16, s1 - s);
      for (int g = 0; g < G; ++g) {
        __m512i r[16];
        for (int j = 0; j < 16; ++j) {
          const typename T::W* row = w + (n0 + 16 * g + j) * K;
          prefetch_ahead(T::at(row, s));
          r[j] = j < cols[g] ? T::load(row, s, steps, K) : _mm512_setzero_si512();
        }
        simd::transpose16x16(r);
        for (int64_t t = 0; t < steps; ++t)
          for (int m = 0; m < M; ++m) acc[g][m] = T::madd(acc[g][m], x[m * S + s + t], r[t]);
      }
    }
    for (int g = 0; g < G; ++g)
      for (int m = 0; m < M; ++m)
        total[g][m] = add_block(acc[g][m], total[g][m], s0 == 0,
                                bias ? bias + n0 + 16 * g : nullptr, out_mask[g]);
  }
  for (int g = 0; g < G; ++g)
    for (int m = 0; m < M; ++m)
      _mm512_mask_storeu_ps(y + m * N + n0 + 16 * g, out_mask[g], total[g][m]);
}

// Outputs per call of `dots`: kGroups x 16.
constexpr int kGroups = 4;

// y = x W^T for W [N,K], the row count M a template argument so that the accumulators stay in
// registers.
template <class T, int M>
static void dots_rows(const typename T::X* x, int64_t S, int64_t K, const typename T::W* w,
                      int64_t N, const float* bias, float* y) {
  constexpr int64_t kOut = 16 * kGroups;
  parallel_items((N + kOut - 1) / kOut, kOut * K * M, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) dots<T, M, kGroups>(x, S, K, w, bias, y, N, c * kOut);
  });
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

template <int M>
static void axpys_rows(const float* x, int64_t K, const float* w, int64_t N, const float* bias,
                       float* y) {
  parallel_items((N + 63) / 64, 64 * K * M, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) axpys64<M>(x, K, w, bias, y, N, c * 64);
  });
}

}  // namespace

void small_gemm_f32(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                    int64_t N, const float* bias, float* y) {
  static_assert(kSmallM == 2);
  if (weight_is_kn)
    M == 1 ? axpys_rows<1>(x, K, w, N, bias, y) : axpys_rows<2>(x, K, w, N, bias, y);
  else
    M == 1 ? dots_rows<F32Steps, 1>(x, K, K, w, N, bias, y)
           : dots_rows<F32Steps, 2>(x, K, K, w, N, bias, y);
}

#if defined(__AVX512BF16__)

void small_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                     const float* bias, float* y) {
  static_assert(kSmallM == 2);
  const int64_t S = (K + 1) / 2;
  thread_local std::vector<uint32_t> pairs;  // x rounded as the packed kernel rounds it
  if (pairs.size() < size_t(M * S)) pairs.resize(size_t(M * S));
  for (int64_t m = 0; m < M; ++m) round_bf16_pairs(x + m * K, K, S, pairs.data() + m * S);
  M == 1 ? dots_rows<Bf16Steps, 1>(pairs.data(), S, K, w, N, bias, y)
         : dots_rows<Bf16Steps, 2>(pairs.data(), S, K, w, N, bias, y);
}

#endif

}  // namespace zoft::cpu::detail::ZOFT_GEMM_ISA
