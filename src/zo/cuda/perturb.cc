// Argument checks (the CPU functions' limits and messages) in front of the kernels of
// perturb.cu.
#include "zo/cuda/perturb.h"

#include "backend/cuda/context.h"
#include "core/error.h"
#include "zo/cuda/launch.h"
#include "zo/philox.h"

namespace zoft::zo::cuda {

static_assert(sizeof(detail::UpdateArgs::terms) / sizeof(detail::DeviceTerm) == kMaxDeviceTerms);

void fill_normal(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                 uint64_t step, uint32_t sample) {
  ZOFT_CHECK(begin >= 0 && count >= 0 && begin + count <= kMaxElements,
             "fill_normal: range [{}, {}) outside [0, 2^34)", begin, begin + count);
  ZOFT_CHECK(sample < kMaxSamples, "fill_normal: sample id {} >= 2^31", sample);
  if (count == 0) return;
  detail::launch_fill_normal(out, begin, count, seed, param_id, step, sample,
                             zoft::cuda::context().stream);
}

void apply_z_terms(Tensor param, uint32_t param_id, uint64_t seed, const ZTerm* terms, int n_terms,
                   uint64_t rounding_step, float decay, uint64_t element_offset) {
  ZOFT_CHECK(param.dtype == DType::F32 || param.dtype == DType::BF16,
             "apply_z_terms: parameter {} is {}; zo updates f32 or bf16 storage",
             param.shape_string(), dtype_name(param.dtype));
  ZOFT_CHECK(param.is_contiguous(), "apply_z_terms: parameter {} is not contiguous",
             param.shape_string());
  const int64_t n = param.numel();
  ZOFT_CHECK(
      element_offset <= uint64_t(kMaxElements) && n <= kMaxElements - int64_t(element_offset),
      "apply_z_terms: elements [{}, {}) of a parameter: beyond 2^34", element_offset,
      element_offset + uint64_t(n));
  ZOFT_CHECK(n_terms >= 0 && (n_terms == 0 || terms), "apply_z_terms: bad term list");
  ZOFT_CHECK(n_terms <= kMaxDeviceTerms,
             "apply_z_terms: {} terms; the CUDA kernel takes at most {}", n_terms, kMaxDeviceTerms);
  detail::UpdateArgs u{seed, param_id, n_terms, rounding_step, decay, {}};
  for (int j = 0; j < n_terms; ++j) {
    ZOFT_CHECK(terms[j].sample < kMaxSamples, "apply_z_terms: sample id {} >= 2^31",
               terms[j].sample);
    u.terms[j] = {terms[j].step, terms[j].sample, terms[j].scale};
  }
  if ((n_terms == 0 && decay == 1.0f) || n == 0) return;  // exactly the identity
  cudaStream_t stream = zoft::cuda::context().stream;
  if (param.dtype == DType::F32)
    detail::launch_update_f32(param.ptr<float>(), int64_t(element_offset), n, u, stream);
  else
    detail::launch_update_bf16(param.ptr<uint16_t>(), int64_t(element_offset), n, u, stream);
}

}  // namespace zoft::zo::cuda
