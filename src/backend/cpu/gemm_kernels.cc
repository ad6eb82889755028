// Packed AVX-512 GEMM: y[M,N] = x[M,K] . W^T + bias, f32 (FMA) or bf16 (VDPBF16PS) weights.
// Compiled once per AVX-512 instruction set into namespace ZOFT_GEMM_ISA (gemm_kernels.h); the
// bf16 kernel exists in the copies compiled with AVX-512 BF16.
//
// The shape of the computation follows the classic BLIS/GotoBLAS layering:
//   - W is repacked, one block of KC steps x NCP panels at a time, into panels of NR = 16*NV
//     columns laid out [step][NR], so that the micro-kernel reads NV whole vectors per step;
//   - x is used in place (f32) or after one rounding pass to bf16 (bf16); the micro-kernel
//     broadcasts one element per row and step straight from MR row pointers;
//   - an MR x NR micro-kernel keeps MR*NV accumulators in registers over KC steps.
// A "step" is one k for f32 and one pair of k for bf16 (VDPBF16PS multiplies pairs of bf16 and
// adds both products into an f32 lane), so both kernels see their operands as 32-bit lanes and
// share the driver.
#include "backend/cpu/gemm_kernels.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

#if !defined(ZOFT_GEMM_ISA) || !defined(__AVX512F__)
#error "gemm_kernels.cc is compiled per instruction set with AVX-512 flags (CMakeLists.txt)"
#endif

namespace zoft::cpu::detail::ZOFT_GEMM_ISA {

// Internal linkage: inline members compiled with AVX-512 flags must not become weak symbols the
// linker could pick for code that runs on any CPU (tools/check_isa_objects.py).
namespace {

using simd::transpose16x16;

// Scratch memory per thread and slot, kept between calls (pool workers live as long as the
// process), so that a decode step does not allocate.
static void* thread_scratch(size_t bytes, int slot) {
  thread_local Buffer buffers[2];
  Buffer& buffer = buffers[slot];
  if (buffer.size() < bytes) buffer = Buffer(bytes);
  return buffer.data();
}

using simd::first_lanes;

// ---- f32 ----------------------------------------------------------------------------------

struct F32Kernel {
  using A = float;  // x element the micro-kernel broadcasts per row and step
  using W = float;
  static constexpr int kMR = 8, kNV = 3;  // 8 x 48 tile: 24 accumulators
  // Blocks of KC steps x NCP panels of W: 512 * 48 * 4 bytes = 96 KiB per panel, 384 KiB in all
  // (L2 is 1 MiB); the MR x KC slice of x they meet is 16 KiB (L1 is 48 KiB). Long KC blocks
  // keep the C tile in registers longer: each block costs one load and store of it.
  static constexpr int64_t kKC = kBlockSteps;
  static constexpr int64_t kNCP = 4;

  static __m512 broadcast(const float* a) { return _mm512_set1_ps(*a); }
  static __m512 madd(__m512 acc, __m512 a, __m512i b) {
    return _mm512_fmadd_ps(a, _mm512_castsi512_ps(b), acc);
  }

  // out[s][j] = W[n0 + j][k0 + s] for 16 columns (cols valid) and ns <= 16 steps, W is [N,K].
  static void pack16_nk(const float* w, int64_t K, int64_t n0, int64_t cols, int64_t k0, int64_t ns,
                        uint32_t* out, int64_t out_stride) {
    __m512i r[16];
    __mmask16 mask = first_lanes(ns);
    for (int j = 0; j < 16; ++j)
      r[j] =
          j < cols ? _mm512_maskz_loadu_epi32(mask, w + (n0 + j) * K + k0) : _mm512_setzero_si512();
    transpose16x16(r);
    for (int s = 0; s < ns; ++s) _mm512_storeu_si512(out + s * out_stride, r[s]);
  }
  // Same with W stored [K,N]: a plain copy of row pieces.
  static void pack16_kn(const float* w, int64_t N, int64_t n0, int64_t cols, int64_t k0, int64_t ns,
                        uint32_t* out, int64_t out_stride) {
    __mmask16 mask = first_lanes(cols);
    for (int s = 0; s < ns; ++s)
      _mm512_storeu_si512(out + s * out_stride,
                          _mm512_maskz_loadu_epi32(mask, w + (k0 + s) * N + n0));
  }
  static int64_t steps(int64_t K) { return K; }
};

// ---- bf16 ---------------------------------------------------------------------------------

#if defined(__AVX512BF16__)
// Lane mask for the first n lanes of a vector of 32 bf16.
static __mmask32 lanes32(int64_t n) {
  return n >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << std::max<int64_t>(n, 0)) - 1);
}

}  // namespace

// External: gemm_small.cc of the same instruction set calls it (gemm_kernels.h); a strong
// symbol, not a weak one, so tools/check_isa_objects.py is content.
void round_bf16_pairs(const float* src, int64_t count, int64_t pairs, uint32_t* dst) {
  for (int64_t k = 0; k < 2 * pairs; k += 32) {
    __m512 lo = _mm512_maskz_loadu_ps(first_lanes(count - k), src + k);
    __m512 hi = _mm512_maskz_loadu_ps(first_lanes(count - k - 16), src + k + 16);
    __m512i rounded = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    _mm512_mask_storeu_epi32(dst + k / 2, first_lanes(pairs - k / 2), rounded);
  }
}

namespace {

struct Bf16Kernel {
  using A = uint32_t;  // a pair of bf16 (k, k+1) of one row of x
  using W = uint16_t;
  static constexpr int kMR = 12, kNV = 2;      // 12 x 32 tile: 24 accumulators
  static constexpr int64_t kKC = kBlockSteps;  // steps = pairs of k: the same bytes as f32
  static constexpr int64_t kNCP = 4;

  static __m512i broadcast(const uint32_t* a) { return _mm512_set1_epi32(int(*a)); }
  static __m512 madd(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
  }

  // out[s][j] = (W[n0+j][2(s0+s)], W[n0+j][2(s0+s)+1]) as one 32-bit lane; k >= K reads 0.
  static void pack16_nk(const uint16_t* w, int64_t K, int64_t n0, int64_t cols, int64_t s0,
                        int64_t ns, uint32_t* out, int64_t out_stride) {
    __m512i r[16];
    __mmask32 mask = lanes32(std::min(2 * ns, K - 2 * s0));
    for (int j = 0; j < 16; ++j)
      r[j] = j < cols ? _mm512_maskz_loadu_epi16(mask, w + (n0 + j) * K + 2 * s0)
                      : _mm512_setzero_si512();
    transpose16x16(r);
    for (int s = 0; s < ns; ++s) _mm512_storeu_si512(out + s * out_stride, r[s]);
  }
  // W stored [K,N]: interleave rows 2s and 2s+1 into 32-bit lanes.
  static void pack16_kn(const uint16_t* w, int64_t N, int64_t n0, int64_t cols, int64_t s0,
                        int64_t ns, uint32_t* out, int64_t out_stride, int64_t K) {
    __mmask16 mask = first_lanes(cols);
    for (int s = 0; s < ns; ++s) {
      int64_t k = 2 * (s0 + s);
      __m256i lo = _mm256_maskz_loadu_epi16(mask, w + k * N + n0);
      __m256i hi =
          k + 1 < K ? _mm256_maskz_loadu_epi16(mask, w + (k + 1) * N + n0) : _mm256_setzero_si256();
      __m512i pair = _mm512_or_si512(_mm512_cvtepu16_epi32(lo),
                                     _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
      _mm512_storeu_si512(out + s * out_stride, pair);
    }
  }
  static int64_t steps(int64_t K) { return (K + 1) / 2; }

  static void round_pairs(const float* src, int64_t count, int64_t pairs, uint32_t* dst) {
    round_bf16_pairs(src, count, pairs, dst);
  }
};
#endif

// ---- shared driver ------------------------------------------------------------------------

// c[rows, cols] (=|+=) a[rows, steps] * b[steps, NR]: the register-tiled inner loop.
// Rows past `rows` repeat the last row (their results are dropped) so the loop has no branch.
template <class Kernel>
static void micro_kernel(const typename Kernel::A* a, int64_t lda, int rows, const uint32_t* b,
                         int64_t steps, float* c, int64_t ldc, int64_t cols, const float* bias,
                         bool accumulate) {
  constexpr int MR = Kernel::kMR, NV = Kernel::kNV, NR = 16 * NV;
  const typename Kernel::A* row[MR];
  for (int r = 0; r < MR; ++r) row[r] = a + std::min(r, rows - 1) * lda;
  // The C tile is read at the end, likely from L3 or memory: start fetching it now, so that the
  // loads overlap the KC steps below instead of stalling the store loop.
  for (int r = 0; r < rows; ++r)
    for (int64_t col = 0; col < cols; col += 16) _mm_prefetch(c + r * ldc + col, _MM_HINT_T0);
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();

  for (int64_t s = 0; s < steps; ++s) {
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(b + s * NR + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      auto av = Kernel::broadcast(row[r] + s);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = Kernel::madd(acc[r][v], av, bv[v]);
    }
  }

  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = first_lanes(cols - 16 * v);
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < NV; ++v) {
      float* out = c + r * ldc + 16 * v;
      __m512 sum = acc[r][v];
      if (accumulate)
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask[v], out));
      else if (bias)
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask[v], bias + 16 * v));
      _mm512_mask_storeu_ps(out, mask[v], sum);
    }
  }
}

// Packs steps [s0, s0 + ns) of the NR columns starting at n0 into out[ns][NR].
template <class Kernel>
static void pack_panel(const typename Kernel::W* w, bool kn, int64_t N, int64_t K, int64_t n0,
                       int64_t s0, int64_t ns, uint32_t* out) {
  constexpr int64_t NR = 16 * Kernel::kNV;
  for (int v = 0; v < Kernel::kNV; ++v) {
    int64_t cols = std::clamp<int64_t>(N - n0 - 16 * v, 0, 16);
    for (int64_t s = 0; s < ns; s += 16) {
      int64_t chunk = std::min<int64_t>(16, ns - s);
      uint32_t* dst = out + s * NR + 16 * v;
      if (cols == 0) {
        for (int64_t i = 0; i < chunk; ++i)
          _mm512_storeu_si512(dst + i * NR, _mm512_setzero_si512());
      } else if (!kn) {
        Kernel::pack16_nk(w, K, n0 + 16 * v, cols, s0 + s, chunk, dst, NR);
      } else if constexpr (std::is_same_v<typename Kernel::W, float>) {
        Kernel::pack16_kn(w, N, n0 + 16 * v, cols, s0 + s, chunk, dst, NR);
      } else {
        Kernel::pack16_kn(w, N, n0 + 16 * v, cols, s0 + s, chunk, dst, NR, K);
      }
    }
  }
}

// One thread's share: rows [m0, m1) x column panels [p0, p1). For each block of KC steps x NCP
// panels of W (packed, in L2), each MR-row slice of x (in L1 after its first use) meets every
// panel of the block before the next slice comes.
// x_f32 (bf16 only, may be null): a still holds garbage and this thread alone owns rows
// [m0, m1); each slice is rounded from x_f32 into a when the first column block needs it, so
// that reading x overlaps the arithmetic instead of costing a pass of its own.
template <class Kernel>
static void gemm_block(typename Kernel::A* a, int64_t lda, const float* x_f32,
                       const typename Kernel::W* w, bool kn, int64_t N, int64_t K,
                       const float* bias, bool accumulate, float* y, int64_t m0, int64_t m1,
                       int64_t p0, int64_t p1) {
  constexpr int64_t MR = Kernel::kMR, NR = 16 * Kernel::kNV;
  const int64_t S = Kernel::steps(K);
  auto* packed = static_cast<uint32_t*>(thread_scratch(Kernel::kNCP * Kernel::kKC * NR * 4, 0));
  for (int64_t nb = p0; nb < p1; nb += Kernel::kNCP) {
    int64_t nbe = std::min(nb + Kernel::kNCP, p1);
    for (int64_t s0 = 0; s0 < S; s0 += Kernel::kKC) {
      int64_t ns = std::min(Kernel::kKC, S - s0);
      for (int64_t p = nb; p < nbe; ++p)
        pack_panel<Kernel>(w, kn, N, K, p * NR, s0, ns, packed + (p - nb) * ns * NR);
      for (int64_t i = m0; i < m1; i += MR) {
        int rows = int(std::min(MR, m1 - i));
        if constexpr (std::is_same_v<typename Kernel::A, uint32_t>) {
          if (x_f32 && nb == p0)
            for (int64_t r = i; r < i + rows; ++r)
              Kernel::round_pairs(x_f32 + r * K + 2 * s0, K - 2 * s0, ns, a + r * lda + s0);
        }
        for (int64_t p = nb; p < nbe; ++p)
          micro_kernel<Kernel>(a + i * lda + s0, lda, rows, packed + (p - nb) * ns * NR, ns,
                               y + i * N + p * NR, N, std::min(NR, N - p * NR),
                               bias ? bias + p * NR : nullptr, accumulate || s0 > 0);
      }
    }
  }
}

// Splits the output over the pool into parts_m x parts_n blocks of row tiles x column panels.
// With x_f32 (bf16, lazy rounding) each thread must own whole rows, so rows are split first
// (each thread then packs all of W); otherwise column panels are split first, so that each
// thread packs only its share of W, and rows as well when there are fewer panels than threads.
template <class Kernel>
static void packed_gemm(typename Kernel::A* a, int64_t lda, const float* x_f32, int64_t M,
                        int64_t K, const typename Kernel::W* w, bool kn, int64_t N,
                        const float* bias, bool accumulate, float* y) {
  constexpr int64_t MR = Kernel::kMR, NR = 16 * Kernel::kNV;
  int64_t threads = ThreadPool::global().size();
  int64_t panels = (N + NR - 1) / NR, row_tiles = (M + MR - 1) / MR;
  int64_t parts_n, parts_m;
  if (x_f32) {
    parts_m = std::min(threads, row_tiles);
    parts_n = 1;
  } else {
    parts_n = std::min(threads, panels);
    parts_m = std::max<int64_t>(1, std::min(threads / parts_n, row_tiles));
  }
  parallel_for(parts_n * parts_m, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int64_t tn = t % parts_n, tm = t / parts_n;
      int64_t p0 = panels * tn / parts_n, p1 = panels * (tn + 1) / parts_n;
      int64_t m0 = row_tiles * tm / parts_m * MR,
              m1 = std::min(M, row_tiles * (tm + 1) / parts_m * MR);
      gemm_block<Kernel>(a, lda, x_f32, w, kn, N, K, bias, accumulate, y, m0, m1, p0, p1);
    }
  });
}

static void packed_gemm_f32(const float* x, int64_t M, int64_t K, const float* w, bool weight_is_kn,
                            int64_t N, const float* bias, float* y) {
  packed_gemm<F32Kernel>(const_cast<float*>(x), K, nullptr, M, K, w, weight_is_kn, N, bias, false,
                         y);
}

// dst[C,R] = the C columns of src[R, ld] transposed: 16 x 16 blocks transposed in registers,
// column blocks over the pool.
static void transpose(const float* src, int64_t R, int64_t ld, int64_t C, float* dst) {
  const int64_t col_blocks = (C + 15) / 16;
  parallel_items(col_blocks, 16 * R, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c0 = cb * 16, nc = std::min<int64_t>(16, C - c0);
      const __mmask16 cols = first_lanes(nc);
      for (int64_t r0 = 0; r0 < R; r0 += 16) {
        const int64_t nr = std::min<int64_t>(16, R - r0);
        __m512i v[16];
        for (int64_t i = 0; i < 16; ++i)
          v[i] = i < nr ? _mm512_maskz_loadu_epi32(cols, src + (r0 + i) * ld + c0)
                        : _mm512_setzero_si512();
        transpose16x16(v);
        for (int64_t j = 0; j < nc; ++j)
          _mm512_mask_storeu_epi32(dst + (c0 + j) * R + r0, first_lanes(nr), v[j]);
      }
    }
  });
}

// out[A, B] += a[M, A]^T . b[M, B]. The packed kernels read their left operand in place, so a
// is transposed first, a block of its columns at a time: the scratch stays under ~16 MiB even
// for a vocabulary-sized operand (the LM head's dy).
static void add_transposed_product(const float* a, int64_t M, int64_t A, const float* b, int64_t B,
                                   float* out) {
  thread_local std::vector<float> scratch;  // kept by the calling thread between calls
  const int64_t cols = std::max<int64_t>(16, (int64_t(1) << 22) / M / 16 * 16);
  scratch.resize(size_t(std::min(cols, A) * M));
  for (int64_t c0 = 0; c0 < A; c0 += cols) {
    const int64_t n = std::min(cols, A - c0);
    transpose(a + c0, M, A, n, scratch.data());
    packed_gemm<F32Kernel>(scratch.data(), M, nullptr, n, M, b, true, B, nullptr, true,
                           out + c0 * B);
  }
}

#if defined(__AVX512BF16__)
// x is rounded to bf16 into rows of S = ceil(K/2) pairs. With enough rows for every thread the
// rounding is folded into the GEMM (gemm_block); otherwise it is a pass of its own.
static void packed_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w,
                             bool weight_is_kn, int64_t N, const float* bias, float* y) {
  const int64_t S = Bf16Kernel::steps(K);
  auto* xb = static_cast<uint32_t*>(thread_scratch(size_t(M * S) * 4, 1));
  const int64_t threads = ThreadPool::global().size();
  if (M >= 4 * Bf16Kernel::kMR * threads) {
    packed_gemm<Bf16Kernel>(xb, S, x, M, K, w, weight_is_kn, N, bias, false, y);
    return;
  }
  parallel_items(M, K, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) Bf16Kernel::round_pairs(x + m * K, K, S, xb + m * S);
  });
  packed_gemm<Bf16Kernel>(xb, S, nullptr, M, K, w, weight_is_kn, N, bias, false, y);
}
#endif

}  // namespace

extern const GemmKernels kKernels;
const GemmKernels kKernels = {
    packed_gemm_f32,  small_gemm_f32,  add_transposed_product,
#if defined(__AVX512BF16__)
    packed_gemm_bf16, small_gemm_bf16,
#else
    nullptr,         nullptr,
#endif
};

}  // namespace zoft::cpu::detail::ZOFT_GEMM_ISA
