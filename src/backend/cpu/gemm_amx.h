// Internal to backend/cpu: the amx path's kernels on AMX tiles, the bf16 GEMM (gemm_amx.cc) and
// attention with bf16 products (attention_amx.cc), present in builds whose compiler knows the
// AMX intrinsics (ZOFT_HAVE_AMX_KERNEL).
#pragma once

#include <cstdint>

#include "backend/op_types.h"

namespace zoft::cpu::detail {

#if defined(ZOFT_HAVE_AMX_KERNEL)
constexpr bool kHaveAmxKernel = true;

// y[M,N] = bf16(x)[M,K] . W^T + bias for bf16 W ([N,K], or [K,N] when weight_is_kn), products
// accumulated in f32 by TDPBF16PS. Runs on the global thread pool. The caller has checked that
// this process may use AMX tiles (cpu_features().amx_bf16).
void amx_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool weight_is_kn,
                   int64_t N, const float* bias, float* y);

// Whether amx_attention takes this call: no softcap, head_dim a multiple of 32, at least 16
// queries (fewer, as in decoding, stay on the f32 kernel), at most 8192 keys, K and V of all
// sequences packed in at most 64 MiB (kept per calling thread between calls).
bool amx_attention_fits(const AttentionShape& shape, float softcap);

// cpu::attention's contract with q, k, v and the probabilities rounded to bf16 and the products
// summed in f32 on AMX tiles (shape.bf16_products). The caller has checked the shape.
void amx_attention(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                   float* out, const AttentionShape& shape, float scale, int64_t window);
#else
constexpr bool kHaveAmxKernel = false;
inline void amx_gemm_bf16(const float*, int64_t, int64_t, const uint16_t*, bool, int64_t,
                          const float*, float*) {}
inline bool amx_attention_fits(const AttentionShape&, float) {
  return false;
}
inline void amx_attention(const float*, const float*, const float*, const uint8_t*, float*,
                          const AttentionShape&, float, int64_t) {}
#endif

}  // namespace zoft::cpu::detail
