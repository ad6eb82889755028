// z and the fused update of docs/zo-rng.md on a CUDA device: the same values as the CPU
// functions of the same names in zo/philox.h and zo/perturb.h, bit for bit (the one-lane math of
// zo/philox_math.h compiled by nvcc with -fmad=false). Pointers and Tensor::data are DEVICE
// memory; work is enqueued on the stream of backend/cuda/context.h. Built with ZOFT_CUDA only.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "zo/perturb.h"

namespace zoft::zo::cuda {

using zo::kMaxDeviceTerms;  // zo/perturb.h

// out[k] = z(param_id, step, sample)[begin + k] for k < count, out in device memory.
void fill_normal(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                 uint64_t step, uint32_t sample);

// zo::apply_z_terms on a device tensor (f32 or bf16, contiguous); terms in host memory,
// n_terms <= kMaxDeviceTerms. element_offset as on the CPU: param holds elements
// [element_offset, element_offset + numel) of the whole parameter.
void apply_z_terms(Tensor param, uint32_t param_id, uint64_t seed, const ZTerm* terms, int n_terms,
                   uint64_t rounding_step, float decay = 1.0f, uint64_t element_offset = 0);

// theta += scale * z(param_id, step, sample): apply_z_terms with one term and no decay.
inline void perturb(Tensor param, uint32_t param_id, uint64_t seed, uint64_t step, uint32_t sample,
                    float scale, uint64_t rounding_step, uint64_t element_offset = 0) {
  ZTerm term{step, sample, scale};
  cuda::apply_z_terms(param, param_id, seed, &term, 1, rounding_step, 1.0f, element_offset);
}

}  // namespace zoft::zo::cuda
