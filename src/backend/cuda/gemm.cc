// linear on cuBLASLt.
//
// Row-major y[M,N] = x[M,K] W^T is, read column-major, D[N,M] = op(A) B with B = x as a [K,M]
// column-major matrix and A = the weight buffer: nn.Linear's [N,K] row-major is [K,N]
// column-major, so op(A) = A^T; GPT-2's [K,N] row-major is [N,K] column-major, op(A) = A. No
// copy or transpose of the weight either way.
//
// bf16 / f16 weights: x is rounded to the weight's dtype first (one small kernel), products are
// summed in f32 (CUBLAS_COMPUTE_32F) into an f32 y. f32 weights: CUBLAS_COMPUTE_32F without the
// TF32 fast path, a true f32 GEMM. The bias is added by the BIAS epilogue when cuBLASLt offers
// one for the problem, else by a kernel after the GEMM.
//
// The algorithm is chosen once per (dtype, layout, N, K, bias, pointer alignments) for a fixed
// reference M and then reused for every M it supports: each output element is then summed by
// the same kernel in the same order whatever M is, so a row's bits do not depend on how many
// rows share the call (data-parallel ranks split rows; tests/backend/linear_test.cc).
#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "backend/cuda/check.h"
#include "backend/cuda/context.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"
#include "core/error.h"

namespace zoft::cuda {
namespace {

constexpr int64_t kReferenceM = 512;  // the M the heuristic sees; see the file comment

// Owners of the cuBLASLt descriptors of one call.
struct MatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  ~MatmulDesc() {
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

struct Layout {
  cublasLtMatrixLayout_t layout = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    ZOFT_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&layout, type, uint64_t(rows), uint64_t(cols), ld));
  }
  ~Layout() {
    if (layout) cublasLtMatrixLayoutDestroy(layout);
  }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
};

struct Preference {
  cublasLtMatmulPreference_t pref = nullptr;
  ~Preference() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
  }
};

// What selects an algorithm; M is deliberately absent.
struct PlanKey {
  DType dtype;
  bool kn;
  int64_t N, K;
  bool bias;
  uint32_t align_a, align_b, align_d;
  auto tie() const { return std::tie(dtype, kn, N, K, bias, align_a, align_b, align_d); }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

struct Plan {
  cublasLtMatmulAlgo_t algo;
  bool fused_bias;  // false: the bias is added by a kernel
};

// The largest power of two (at most 16) that divides the address: what cuBLASLt may assume.
uint32_t alignment(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 16;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

cudaDataType_t cuda_type(DType dtype) {
  return dtype == DType::BF16 ? CUDA_R_16BF : dtype == DType::F16 ? CUDA_R_16F : CUDA_R_32F;
}

void make_desc(MatmulDesc& d, bool kn, const float* bias) {
  ZOFT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t op_a = kn ? CUBLAS_OP_N : CUBLAS_OP_T, op_b = CUBLAS_OP_N;
  ZOFT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  ZOFT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  if (bias) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;  // bias type defaults to D's: f32
    ZOFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                     &epilogue, sizeof epilogue));
    ZOFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                     &bias, sizeof bias));
  }
}

// The three matrix layouts of one problem (C = D).
struct Layouts {
  Layout a, b, d;
  Layouts(DType dtype, bool kn, int64_t M, int64_t N, int64_t K)
      : a(cuda_type(dtype), kn ? N : K, kn ? K : N, kn ? N : K),
        b(cuda_type(dtype), K, M, K),
        d(CUDA_R_32F, N, M, N) {}
};

// cuBLASLt's first choice for the problem, or false when it has none.
bool find_algo(const MatmulDesc& desc, const Layouts& l, const PlanKey& key,
               cublasLtMatmulAlgo_t* algo) {
  Context& ctx = context();
  Preference p;
  ZOFT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p.pref));
  uint64_t workspace = ctx.workspace_bytes;
  ZOFT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      p.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d}};
  for (const auto& [attr, value] : aligns)
    ZOFT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p.pref, attr, &value, sizeof value));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(ctx.lt, desc.desc, l.a.layout, l.b.layout, l.d.layout,
                                     l.d.layout, p.pref, 1, &result, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  ZOFT_CUBLAS_CHECK(status);  // any other failure is an error, not "no algorithm"
  if (found == 0) return false;
  *algo = result.algo;
  return true;
}

// Whether algo (found for the reference M) runs this problem within the workspace. The check
// reports the workspace the algorithm needs at this M (split-K partials grow with M) but does
// not compare it with ours: that is done here.
bool algo_fits(const MatmulDesc& desc, const Layouts& l, const cublasLtMatmulAlgo_t& algo) {
  cublasLtMatmulHeuristicResult_t result{};
  return cublasLtMatmulAlgoCheck(context().lt, desc.desc, l.a.layout, l.b.layout, l.d.layout,
                                 l.d.layout, &algo, &result) == CUBLAS_STATUS_SUCCESS &&
         result.workspaceSize <= context().workspace_bytes;
}

// The cached plan for key (made on first use): bias fused if cuBLASLt can, else plain.
Plan plan_for(const PlanKey& key, const float* bias) {
  static std::mutex mutex;
  static std::map<PlanKey, Plan> plans;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = plans.find(key); it != plans.end()) return it->second;
  Layouts reference(key.dtype, key.kn, kReferenceM, key.N, key.K);
  Plan plan{};
  for (bool fused : {true, false}) {
    if (fused && !key.bias) continue;
    MatmulDesc desc;
    make_desc(desc, key.kn, fused ? bias : nullptr);
    if (find_algo(desc, reference, key, &plan.algo)) {
      plan.fused_bias = fused;
      plans.emplace(key, plan);
      return plan;
    }
  }
  fail("linear: cuBLASLt has no algorithm for a {} GEMM with N={} K={} ({} layout)",
       dtype_name(key.dtype), key.N, key.K, key.kn ? "[K,N]" : "[N,K]");
}

}  // namespace

void linear(const float* x, int64_t M, int64_t K, const DeviceMatrix& weight, bool weight_is_kn,
            const float* bias, float* y) {
  ZOFT_CHECK(
      weight.dtype == DType::F32 || weight.dtype == DType::BF16 || weight.dtype == DType::F16,
      "linear: weight dtype {} is not supported", dtype_name(weight.dtype));
  const int64_t weight_k = weight_is_kn ? weight.rows : weight.cols;
  const int64_t N = weight_is_kn ? weight.cols : weight.rows;
  ZOFT_CHECK(weight_k == K,
             "linear: input has {} features but weight [{}, {}] ({} layout) expects {}", K,
             weight.rows, weight.cols, weight_is_kn ? "[in, out]" : "[out, in]", weight_k);
  if (M == 0 || N == 0) return;
  Context& ctx = context();
  if (K == 0) {  // an empty sum: y = bias (or 0)
    kernels::bias_rows(y, bias, M, N, false, ctx.stream);
    return;
  }
  // 16-bit weights multiply 16-bit inputs: round x once into a pool buffer.
  const bool half = weight.dtype != DType::F32;
  PoolBuffer x_half(ctx.pool, half ? size_t(M * K) * 2 : 0);
  if (half) kernels::f32_to_half(x, x_half.data(), weight.dtype == DType::BF16, M * K, ctx.stream);
  const void* b_ptr = half ? x_half.data() : static_cast<const void*>(x);

  PlanKey key{weight.dtype,           weight_is_kn,     N,           K, bias != nullptr,
              alignment(weight.data), alignment(b_ptr), alignment(y)};
  Plan plan = plan_for(key, bias);
  MatmulDesc desc;
  make_desc(desc, weight_is_kn, plan.fused_bias ? bias : nullptr);
  Layouts layouts(weight.dtype, weight_is_kn, M, N, K);
  if (!algo_fits(desc, layouts, plan.algo)) {
    // Rare (an M the reference algorithm cannot tile): the best algorithm for this M. Rows of
    // such calls may differ in the last bits from the same rows in a call of another M.
    ZOFT_CHECK(find_algo(desc, layouts, key, &plan.algo),
               "linear: cuBLASLt has no algorithm for M={} N={} K={} ({})", M, N, K,
               dtype_name(weight.dtype));
  }
  const float alpha = 1.0f, beta = 0.0f;
  ZOFT_CUBLAS_CHECK(cublasLtMatmul(ctx.lt, desc.desc, &alpha, weight.data, layouts.a.layout, b_ptr,
                                   layouts.b.layout, &beta, y, layouts.d.layout, y,
                                   layouts.d.layout, &plan.algo, ctx.workspace, ctx.workspace_bytes,
                                   ctx.stream));
  if (bias && !plan.fused_bias) kernels::bias_rows(y, bias, M, N, true, ctx.stream);
}

}  // namespace zoft::cuda
