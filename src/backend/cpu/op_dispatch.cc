// The public cpu:: entry points of the per-instruction-set ops (op_kernels.h): each forwards to
// the copy of the active kernel path (isa.h), chosen once per call by one atomic load.
#include "backend/cpu/op_kernels.h"
#include "core/error.h"

namespace zoft::cpu {
namespace detail {

// The copies CMakeLists.txt compiled.
#if defined(ZOFT_OPS_HAVE_base)
namespace base {
extern const OpKernels kOpKernels;
}
#endif
#if defined(ZOFT_OPS_HAVE_avx512)
namespace avx512 {
extern const OpKernels kOpKernels;
}
#endif

const OpKernels* op_kernels(Isa isa) {
  switch (isa) {
#if defined(ZOFT_OPS_HAVE_base)
    case Isa::avx2:
      return &base::kOpKernels;
#endif
#if defined(ZOFT_OPS_HAVE_avx512)
    case Isa::avx512:
    case Isa::avx512_bf16:
    case Isa::onednn:
    case Isa::amx:
      return &avx512::kOpKernels;
#endif
    default:
      return nullptr;
  }
}

}  // namespace detail

// isa_unavailable() refuses a path whose copy is missing, so active_isa() always has one.
static const detail::OpKernels& active() {
  const detail::OpKernels* kernels = detail::op_kernels(active_isa());
  ZOFT_CHECK(kernels, "CPU path {}: this build has no kernels for it", isa_name(active_isa()));
  return *kernels;
}

void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid, float* out,
               const AttentionShape& shape, float scale, int64_t window, float softcap) {
  active().attention(q, k, v, key_valid, out, shape, scale, window, softcap);
}

void attention_backward(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                        const float* out, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionShape& shape, float scale, int64_t window, float softcap) {
  active().attention_backward(q, k, v, key_valid, out, dout, dq, dk, dv, shape, scale, window,
                              softcap);
}

}  // namespace zoft::cpu
