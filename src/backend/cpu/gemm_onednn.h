// Internal to backend/cpu: the onednn path's bf16 GEMM (gemm_onednn.cc), present in builds
// that found oneDNN (libdnnl-dev) and OpenMP (ZOFT_HAVE_DNNL).
#pragma once

#include <cstdint>
#include <string>

namespace zoft::cpu::detail {

#if defined(ZOFT_HAVE_DNNL)
constexpr bool kHaveOnednn = true;

// y[M,N] = bf16(x)[M,K] . W^T + bias for bf16 W ([N,K], or [K,N] when weight_is_kn), products
// accumulated in f32. Runs on the global thread pool.
void onednn_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool weight_is_kn,
                      int64_t N, const float* bias, float* y);

// oneDNN's name for the kernel it runs a bf16 matmul with here, e.g. "brg:avx512_core_amx".
std::string onednn_implementation();
#else
constexpr bool kHaveOnednn = false;
inline void onednn_gemm_bf16(const float*, int64_t, int64_t, const uint16_t*, bool, int64_t,
                             const float*, float*) {}
inline std::string onednn_implementation() {
  return "";
}
#endif

}  // namespace zoft::cpu::detail
