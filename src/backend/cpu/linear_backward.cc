// Backward of cpu::linear (y = x . W^T + b).
//   dx = dy . W: cpu::linear itself with the weight's layout flipped (W [N,K] read as [K',N'] =
//     [N,K] is W^T^T), so the input gradient runs on the same packed kernels as the forward.
//   dW += dy^T . x: a GEMM summing over the M rows. The packed kernels read their left operand
//     in place row by row, so dy (or x, for a [K,N] weight) is transposed into scratch first
//     (a small cost next to the M*N*K products) and the other operand is read as a [K,N]-layout
//     weight, which the kernels pack by plain row copies.
// Builds without AVX-512 hand both to OpenBLAS sgemm, whose transpose flags do the same.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/cpu/simd.h"
#include "backend/ops_backward.h"
#include "core/error.h"

namespace zoft::cpu {
namespace linear_bwd {

#if defined(__AVX512F__)
// dst[C,R] = the C columns of src[R, ld] transposed: 16 x 16 blocks transposed in registers,
// column blocks over the pool.
static void transpose(const float* src, int64_t R, int64_t ld, int64_t C, float* dst) {
  const int64_t col_blocks = (C + 15) / 16;
  parallel_items(col_blocks, 16 * R, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c0 = cb * 16, nc = std::min<int64_t>(16, C - c0);
      const __mmask16 cols = simd::first_lanes(nc);
      for (int64_t r0 = 0; r0 < R; r0 += 16) {
        const int64_t nr = std::min<int64_t>(16, R - r0);
        __m512i v[16];
        for (int64_t i = 0; i < 16; ++i)
          v[i] = i < nr ? _mm512_maskz_loadu_epi32(cols, src + (r0 + i) * ld + c0)
                        : _mm512_setzero_si512();
        simd::transpose16x16(v);
        for (int64_t j = 0; j < nc; ++j)
          _mm512_mask_storeu_epi32(dst + (c0 + j) * R + r0, simd::first_lanes(nr), v[j]);
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
    detail::packed_gemm_f32_accumulate(scratch.data(), n, M, b, true, B, out + c0 * B);
  }
}
#endif

// dbias[n] += sum_m dy[m, n], column blocks over the pool (each column summed by one thread).
static void add_column_sums(const float* dy, int64_t M, int64_t N, float* dbias) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (N + kCols - 1) / kCols;
  parallel_items(blocks, kCols * M, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t n0 = blk * kCols, n1 = std::min(N, n0 + kCols);
      float sums[kCols] = {};
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = n0; n < n1; ++n) sums[n - n0] += dy[m * N + n];
      for (int64_t n = n0; n < n1; ++n) dbias[n] += sums[n - n0];
    }
  });
}

}  // namespace linear_bwd

void linear_backward_input(const float* dy, int64_t M, int64_t N, const Tensor& weight,
                           bool weight_is_kn, float* dx) {
  ZOFT_CHECK(weight.ndim == 2, "linear_backward_input: weight must be 2-d, got {}",
             weight.shape_string());
  const int64_t weight_n = weight_is_kn ? weight.dim(1) : weight.dim(0);
  ZOFT_CHECK(weight_n == N,
             "linear_backward_input: gradient has {} features but weight {} ({} layout) has {}", N,
             weight.shape_string(), weight_is_kn ? "[in, out]" : "[out, in]", weight_n);
  // dx[M,K] = dy[M,N] . W[N,K]: a linear whose weight, read in the other layout, has N inputs.
  linear(dy, M, N, weight, !weight_is_kn, nullptr, dx);
}

void linear_backward_weight(const float* dy, const float* x, int64_t M, int64_t N, int64_t K,
                            bool weight_is_kn, float* dweight, float* dbias) {
  ZOFT_CHECK(M >= 0 && N >= 0 && K >= 0, "linear_backward_weight: negative extent M={} N={} K={}",
             M, N, K);
  if (dbias && M > 0) linear_bwd::add_column_sums(dy, M, N, dbias);
  if (M == 0 || N == 0 || K == 0) return;
#if defined(__AVX512F__)
  if (!weight_is_kn)  // dW[N,K] += dy^T[N,M] . x[M,K]
    linear_bwd::add_transposed_product(dy, M, N, x, K, dweight);
  else  // dW[K,N] += x^T[K,M] . dy[M,N]
    linear_bwd::add_transposed_product(x, M, K, dy, N, dweight);
#else
  if (!weight_is_kn)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(N), int(K), int(M), 1.0f, dy, int(N),
                x, int(K), 1.0f, dweight, int(K));
  else
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(K), int(N), int(M), 1.0f, x, int(K),
                dy, int(N), 1.0f, dweight, int(N));
#endif
}

}  // namespace zoft::cpu
