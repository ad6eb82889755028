// Internal to backend/cpu: the amx path's bf16 GEMM (gemm_amx.cc), AMX tiles driven by our own
// kernel, present in builds whose compiler knows the AMX intrinsics (ZOFT_HAVE_AMX_KERNEL).
#pragma once

#include <cstdint>

namespace zoft::cpu::detail {

#if defined(ZOFT_HAVE_AMX_KERNEL)
constexpr bool kHaveAmxKernel = true;

// y[M,N] = bf16(x)[M,K] . W^T + bias for bf16 W ([N,K], or [K,N] when weight_is_kn), products
// accumulated in f32 by TDPBF16PS. Runs on the global thread pool. The caller has checked that
// this process may use AMX tiles (cpu_features().amx_bf16).
void amx_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool weight_is_kn,
                   int64_t N, const float* bias, float* y);
#else
constexpr bool kHaveAmxKernel = false;
inline void amx_gemm_bf16(const float*, int64_t, int64_t, const uint16_t*, bool, int64_t,
                          const float*, float*) {}
#endif

}  // namespace zoft::cpu::detail
