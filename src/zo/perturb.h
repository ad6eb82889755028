// The fused in-place update of a parameter tensor by a sum of scaled perturbations
// (docs/zo-rng.md section 5). One pass over memory for any number of terms: the +eps of step t
// and the pending -lr g z of step t-1 cost one read and one write of the tensor, not two.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "zo/philox_math.h"

namespace zoft::zo {

// scale * z(param_id, step, sample), z under the run seed given to apply_z_terms.
struct ZTerm {
  uint64_t step = 0;
  uint32_t sample = 0;
  float scale = 0.0f;
};

// Terms one apply_z_terms call may carry for a parameter on a GPU (they travel as a kernel
// argument). MeZO pass 0 has samples + 1 terms (docs/zo-rng.md section 6).
constexpr int kMaxDeviceTerms = 64;

// theta[i] = theta[i] * decay + sum_j terms[j].scale * z_j[i], the sum accumulated in float32 in
// term order, then one rounding to the storage dtype: exact float32 store for F32, stochastic
// rounding for BF16 with bits from the rounding stream of (seed, rounding_step) (docs/zo-rng.md).
// decay is the decoupled weight-decay factor 1 - lr * wd (1: none). param must be contiguous,
// F32 or BF16, at most 2^34 elements. Runs on the global pool; the result does not depend on
// the thread count. A parameter on a GPU (param.device) is updated there by zo/cuda/perturb.h,
// bit for bit the same values, with at most kMaxDeviceTerms terms. element_offset: param holds
// elements [element_offset, + numel) of the parameter (e.g. one row of an embedding table); each
// element gets exactly the value it gets when the whole parameter is updated.
void apply_z_terms(Tensor param, uint32_t param_id, uint64_t seed, const ZTerm* terms, int n_terms,
                   uint64_t rounding_step, float decay = 1.0f, uint64_t element_offset = 0);

// bf16_round_stochastic (f32 -> bf16, stochastic rounding) is in zo/philox_math.h.

}  // namespace zoft::zo
