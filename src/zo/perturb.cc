// apply_z_terms: per element, regenerate every z_j from its Philox counter, accumulate, update.
// The checks and the choice of device here; the CPU loops in perturb_cpu.cc, compiled once per
// instruction set (perturb_kernels.h), and z_kernels(), which picks the copy.
#include "zo/perturb.h"

#include "backend/cpu/isa.h"
#include "core/error.h"
#include "zo/perturb_kernels.h"
#include "zo/philox.h"

#if defined(ZOFT_CUDA)
#include "zo/cuda/perturb.h"
#endif

namespace zoft::zo {

void apply_z_terms(Tensor param, uint32_t param_id, uint64_t seed, const ZTerm* terms, int n_terms,
                   uint64_t rounding_step, float decay, uint64_t element_offset) {
  if (param.device != Device::CPU) {  // the same update where the parameter lives
#if defined(ZOFT_CUDA)
    return cuda::apply_z_terms(param, param_id, seed, terms, n_terms, rounding_step, decay,
                               element_offset);
#else
    fail("apply_z_terms: the parameter is on {}, but this build has no CUDA backend",
         device_name(param.device));
#endif
  }
  ZOFT_CHECK(param.dtype == DType::F32 || param.dtype == DType::BF16,
             "apply_z_terms: parameter {} is {}; zo updates f32 or bf16 storage",
             param.shape_string(), dtype_name(param.dtype));
  ZOFT_CHECK(param.is_contiguous(), "apply_z_terms: parameter {} is not contiguous",
             param.shape_string());
  int64_t n = param.numel();
  ZOFT_CHECK(
      element_offset <= uint64_t(kMaxElements) && n <= kMaxElements - int64_t(element_offset),
      "apply_z_terms: elements [{}, {}) of a parameter: beyond 2^34", element_offset,
      element_offset + uint64_t(n));
  ZOFT_CHECK(n_terms >= 0 && (n_terms == 0 || terms), "apply_z_terms: bad term list");
  for (int j = 0; j < n_terms; ++j)
    ZOFT_CHECK(terms[j].sample < kMaxSamples, "apply_z_terms: sample id {} >= 2^31",
               terms[j].sample);
  if ((n_terms == 0 && decay == 1.0f) || n == 0) return;  // exactly the identity
  const detail::ZUpdate u{seed, param_id, terms, n_terms, rounding_step, decay};
  const detail::ZKernels& kernels = detail::z_kernels();
  if (param.dtype == DType::F32)
    kernels.update_f32(u, param.ptr<float>(), int64_t(element_offset), n);
  else
    kernels.update_bf16(u, param.ptr<uint16_t>(), int64_t(element_offset), n);
}

namespace detail {

// The copies CMakeLists.txt compiled.
#if defined(ZOFT_ZO_HAVE_base)
namespace base {
extern const ZKernels kZKernels;
}
#endif
#if defined(ZOFT_ZO_HAVE_avx512)
namespace avx512 {
extern const ZKernels kZKernels;
}
#endif

const ZKernels& z_kernels() {
#if defined(ZOFT_ZO_HAVE_avx512)
  // isa_unavailable() lets only avx2 run on a CPU without AVX-512.
  if (cpu::active_isa() != cpu::Isa::avx2) return avx512::kZKernels;
#endif
  return base::kZKernels;
}

}  // namespace detail

}  // namespace zoft::zo
