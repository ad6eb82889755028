// Internal to src/zo/cuda: the kernel launchers of perturb.cu, with plain arguments so that
// nvcc sees no fmt / error headers. perturb.cc checks arguments and calls them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace zoft::zo::cuda::detail {

struct DeviceTerm {
  uint64_t step;
  uint32_t sample;
  float scale;
};

// Everything one update needs besides the memory range; passed to the kernel by value.
struct UpdateArgs {
  uint64_t seed;
  uint32_t param_id;
  int n_terms;
  uint64_t rounding_step;
  float decay;
  DeviceTerm terms[64];  // = kMaxDeviceTerms
};

void launch_fill_normal(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                        uint64_t step, uint32_t sample, cudaStream_t stream);
// p holds elements [offset, offset + n) of the parameter.
void launch_update_f32(float* p, int64_t offset, int64_t n, const UpdateArgs& u,
                       cudaStream_t stream);
void launch_update_bf16(uint16_t* p, int64_t offset, int64_t n, const UpdateArgs& u,
                        cudaStream_t stream);

}  // namespace zoft::zo::cuda::detail
