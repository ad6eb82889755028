// Backward of cpu::linear (y = x . W^T + b).
//   dx = dy . W: cpu::linear itself with the weight's layout flipped (W [N,K] read as [K',N'] =
//     [N,K] is W^T^T), so the input gradient runs on the same packed kernels as the forward.
//   dW += dy^T . x: a GEMM summing over the M rows. The packed kernels read their left operand
//     in place row by row, so dy (or x, for a [K,N] weight) is transposed into scratch first
//     (a small cost next to the M*N*K products) and the other operand is read as a [K,N]-layout
//     weight, which the kernels pack by plain row copies.
// The avx2 path (isa.h) hands both to OpenBLAS sgemm, whose transpose flags do the same.
#include <cblas.h>

#include <algorithm>

#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/parallel.h"
#include "backend/ops_backward.h"
#include "core/error.h"

namespace zoft::cpu {
namespace linear_bwd {

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
  if (const detail::GemmKernels* kernels = detail::gemm_kernels(active_isa())) {
    if (!weight_is_kn)  // dW[N,K] += dy^T[N,M] . x[M,K]
      kernels->add_transposed_product(dy, M, N, x, K, dweight);
    else  // dW[K,N] += x^T[K,M] . dy[M,N]
      kernels->add_transposed_product(x, M, K, dy, N, dweight);
  } else if (!weight_is_kn) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(N), int(K), int(M), 1.0f, dy, int(N),
                x, int(K), 1.0f, dweight, int(K));
  } else {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(K), int(N), int(M), 1.0f, x, int(K),
                dy, int(N), 1.0f, dweight, int(N));
  }
}

}  // namespace zoft::cpu
