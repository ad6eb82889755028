// cpu::linear: checks the weight, then runs the GEMM of the active CPU path (isa.h).
// docs/gemm-choice.md has the benchmark behind the choice: our packed AVX-512 kernels
// (gemm_kernels.cc) for both f32 and bf16 where the CPU has them, bf16 on AMX tiles by our own
// kernel (gemm_amx.cc) where it has those; OpenBLAS sgemm otherwise
// (bf16 weights widened to f32 chunk by chunk, which gives the same products since a product of
// two bf16 is exact in f32).
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/gemm_amx.h"
#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/gemm_onednn.h"
#include "backend/cpu/ops.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace zoft::cpu {

// The per-instruction-set copies of the packed kernels that CMakeLists.txt compiled.
namespace detail {
#if defined(ZOFT_GEMM_HAVE_avx512)
namespace avx512 {
extern const GemmKernels kKernels;
}
#endif
#if defined(ZOFT_GEMM_HAVE_avx512_bf16)
namespace avx512_bf16 {
extern const GemmKernels kKernels;
}
#endif

const GemmKernels* gemm_kernels(Isa isa) {
  switch (isa) {
    case Isa::onednn:  // f32 weights: our own kernels, the best this CPU runs
    case Isa::amx:
      return cpu_features().avx512_bf16 ? gemm_kernels(Isa::avx512_bf16)
                                        : gemm_kernels(Isa::avx512);
#if defined(ZOFT_GEMM_HAVE_avx512)
    case Isa::avx512:
      return &avx512::kKernels;
#endif
#if defined(ZOFT_GEMM_HAVE_avx512_bf16)
    case Isa::avx512_bf16:
      return &avx512_bf16::kKernels;
#endif
    default:
      return nullptr;
  }
}
}  // namespace detail

// y[r, :] = bias (or 0): the starting value for a GEMM that accumulates (beta = 1).
static void fill_rows(float* y, int64_t M, int64_t N, const float* bias) {
  parallel_for(M, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      if (bias)
        std::copy(bias, bias + N, y + m * N);
      else
        std::fill(y + m * N, y + (m + 1) * N, 0.0f);
    }
  });
}

static void blas_linear_f32(const float* x, int64_t M, int64_t K, const float* w, bool kn,
                            int64_t N, const float* bias, float* y) {
  fill_rows(y, M, N, bias);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, kn ? CblasNoTrans : CblasTrans, int(M), int(N), int(K),
              1.0f, x, int(K), w, kn ? int(N) : int(K), 1.0f, y, int(N));
}

// bf16 weights without AVX-512 BF16: round x to bf16, widen W in chunks of about 4 M elements
// and let sgemm accumulate chunk after chunk into y.
static void blas_linear_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool kn,
                             int64_t N, const float* bias, float* y) {
  std::vector<float> xr(size_t(M * K));
  for (int64_t i = 0; i < M * K; ++i) xr[i] = bf16_to_f32(f32_to_bf16(x[i]));
  fill_rows(y, M, N, bias);
  const int64_t chunk_elems = int64_t(1) << 22;
  if (!kn) {  // rows [n0, n1) of W give columns [n0, n1) of y
    int64_t rows = std::max<int64_t>(1, chunk_elems / K);
    std::vector<float> wf(size_t(std::min(rows, N) * K));
    for (int64_t n0 = 0; n0 < N; n0 += rows) {
      int64_t n = std::min(rows, N - n0);
      convert_to_f32(w + n0 * K, DType::BF16, wf.data(), size_t(n * K));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(n), int(K), 1.0f, xr.data(),
                  int(K), wf.data(), int(K), 1.0f, y + n0, int(N));
    }
  } else {  // rows [k0, k1) of W add x[:, k0:k1] . W[k0:k1, :] to y
    int64_t rows = std::max<int64_t>(1, chunk_elems / N);
    std::vector<float> wf(size_t(std::min(rows, K) * N));
    for (int64_t k0 = 0; k0 < K; k0 += rows) {
      int64_t k = std::min(rows, K - k0);
      convert_to_f32(w + k0 * N, DType::BF16, wf.data(), size_t(k * N));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(k), 1.0f,
                  xr.data() + k0, int(K), wf.data(), int(N), 1.0f, y, int(N));
    }
  }
}

// OpenBLAS picks its kernel, edge handling and thread split by M, so a row's bits would depend on
// how many rows share the call, which data-parallel training must not see (docs/dist.md). Rows
// therefore go to OpenBLAS in chunks of exactly kBlasRows (the last one padded with zero rows):
// every call has the same shape, and within a call every output is one k-ordered chain.
constexpr int64_t kBlasRows = 16;

template <class Gemm>
static void in_fixed_row_chunks(const float* x, int64_t M, int64_t K, int64_t N, float* y,
                                Gemm gemm) {
  const int64_t full = M / kBlasRows * kBlasRows;
  for (int64_t m0 = 0; m0 < full; m0 += kBlasRows) gemm(x + m0 * K, y + m0 * N);
  if (full == M) return;
  const int64_t rows = M - full;
  std::vector<float> x_pad(size_t(kBlasRows * K), 0.0f), y_pad(size_t(kBlasRows * N));
  std::copy(x + full * K, x + M * K, x_pad.begin());
  gemm(x_pad.data(), y_pad.data());
  std::copy(y_pad.begin(), y_pad.begin() + rows * N, y + full * N);
}

void linear(const float* x, int64_t M, int64_t K, const Tensor& weight, bool weight_is_kn,
            const float* bias, float* y) {
  ZOFT_CHECK(weight.ndim == 2 && weight.is_contiguous(),
             "linear: weight must be a contiguous 2-d tensor, got {}", weight.shape_string());
  ZOFT_CHECK(weight.dtype == DType::F32 || weight.dtype == DType::BF16,
             "linear: weight dtype {} is not supported (f32 or bf16; convert f16 on load)",
             dtype_name(weight.dtype));
  const int64_t weight_k = weight_is_kn ? weight.dim(0) : weight.dim(1);
  const int64_t N = weight_is_kn ? weight.dim(1) : weight.dim(0);
  ZOFT_CHECK(weight_k == K, "linear: input has {} features but weight {} ({} layout) expects {}", K,
             weight.shape_string(), weight_is_kn ? "[in, out]" : "[out, in]", weight_k);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    fill_rows(y, M, N, bias);
    return;
  }
  const Isa isa = active_isa();
  const detail::GemmKernels* kernels = detail::gemm_kernels(isa);
  if (weight.dtype == DType::F32) {
    if (kernels && M <= detail::kSmallM)
      kernels->small_f32(x, M, K, weight.f32(), weight_is_kn, N, bias, y);
    else if (kernels)
      kernels->packed_f32(x, M, K, weight.f32(), weight_is_kn, N, bias, y);
    else
      in_fixed_row_chunks(x, M, K, N, y, [&](const float* xc, float* yc) {
        blas_linear_f32(xc, kBlasRows, K, weight.f32(), weight_is_kn, N, bias, yc);
      });
  } else {
    const uint16_t* w = weight.ptr<uint16_t>();
    if (isa == Isa::amx)
      detail::amx_gemm_bf16(x, M, K, w, weight_is_kn, N, bias, y);
    else if (isa == Isa::onednn)
      detail::onednn_gemm_bf16(x, M, K, w, weight_is_kn, N, bias, y);
    else if (kernels && kernels->packed_bf16 && M <= detail::kSmallM && !weight_is_kn)
      kernels->small_bf16(x, M, K, w, N, bias, y);
    else if (kernels && kernels->packed_bf16)
      kernels->packed_bf16(x, M, K, w, weight_is_kn, N, bias, y);
    else
      in_fixed_row_chunks(x, M, K, N, y, [&](const float* xc, float* yc) {
        blas_linear_bf16(xc, kBlasRows, K, w, weight_is_kn, N, bias, yc);
      });
  }
}

}  // namespace zoft::cpu
