// The CUDA kernels of docs/zo-rng.md: fill_normal and the fused update. Every value comes from
// the one-lane definition in zo/philox_math.h; this file must be compiled with -fmad=false
// (CMakeLists.txt) so that nvcc, like g++ -ffp-contract=off, rounds after every * and +.
//
// One thread per Philox call: 4 elements of z for f32 storage; for bf16, 8 elements (one call
// of rounding bits, two of z). A thread skips the elements of its group that lie outside the
// range, so any offset and length work.
#include "backend/cuda/check.h"
#include "zo/cuda/launch.h"
#include "zo/philox_math.h"

namespace zoft::zo::cuda::detail {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t groups) {
  int64_t blocks = (groups + kThreads - 1) / kThreads;
  return unsigned(blocks > 65536 ? 65536 : blocks < 1 ? 1 : blocks);
}

// z[4q .. 4q + 4) of z(param_id, step, sample).
__device__ void normal_block(uint64_t seed, uint32_t param_id, uint64_t step, uint32_t sample,
                             uint64_t q, float z[4]) {
  uint32_t c[4] = {uint32_t(q), param_id, uint32_t(step), sample};
  philox_rounds(c, uint32_t(seed), uint32_t(seed >> 32));
  zo::detail::normals_lane(c, z);
}

// sum_j scale_j z_j of the 4 elements of Philox block q, in term order from +0.
__device__ void block_sum(const UpdateArgs& u, uint64_t q, float acc[4]) {
  for (int k = 0; k < 4; ++k) acc[k] = 0.0f;
  for (int j = 0; j < u.n_terms; ++j) {
    float z[4];
    normal_block(u.seed, u.param_id, u.terms[j].step, u.terms[j].sample, q, z);
    for (int k = 0; k < 4; ++k) acc[k] = acc[k] + z[k] * u.terms[j].scale;
  }
}

__device__ float decayed(const UpdateArgs& u, float x) {
  return u.decay == 1.0f ? x : x * u.decay;
}

__global__ void fill_normal_kernel(float* out, int64_t begin, int64_t count, uint64_t seed,
                                   uint32_t param_id, uint64_t step, uint32_t sample) {
  const int64_t q0 = begin / 4, groups = (begin + count + 3) / 4 - q0;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = q0 + g;
    float z[4];
    normal_block(seed, param_id, step, sample, uint64_t(q), z);
    for (int k = 0; k < 4; ++k) {
      int64_t i = 4 * q + k;
      if (i >= begin && i < begin + count) out[i - begin] = z[k];
    }
  }
}

__global__ void update_f32_kernel(float* p, int64_t offset, int64_t n, UpdateArgs u) {
  const int64_t q0 = offset / 4, groups = (offset + n + 3) / 4 - q0;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = q0 + g;
    float acc[4];
    block_sum(u, uint64_t(q), acc);
    for (int k = 0; k < 4; ++k) {
      int64_t i = 4 * q + k;
      if (i >= offset && i < offset + n) p[i - offset] = decayed(u, p[i - offset]) + acc[k];
    }
  }
}

__global__ void update_bf16_kernel(uint16_t* p, int64_t offset, int64_t n, UpdateArgs u) {
  const int64_t q0 = offset / 8, groups = (offset + n + 7) / 8 - q0;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q8 = q0 + g;
    uint32_t r[4] = {uint32_t(q8), u.param_id, uint32_t(u.rounding_step),
                     kRoundingStreamBit | (uint32_t(u.rounding_step >> 32) & 0x7fffffffu)};
    philox_rounds(r, uint32_t(u.seed), uint32_t(u.seed >> 32));
    for (int half = 0; half < 2; ++half) {
      float acc[4];
      block_sum(u, uint64_t(2 * q8 + half), acc);
      for (int k = 0; k < 4; ++k) {
        int64_t i = 8 * q8 + 4 * half + k;
        if (i < offset || i >= offset + n) continue;
        float x = __uint_as_float(uint32_t(p[i - offset]) << 16);  // bf16 widens exactly
        float y = decayed(u, x) + acc[k];
        p[i - offset] = bf16_round_stochastic(__float_as_uint(y), rounding_half(r, int(i % 8)));
      }
    }
  }
}

}  // namespace

void launch_fill_normal(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                        uint64_t step, uint32_t sample, cudaStream_t stream) {
  const int64_t groups = (begin + count + 3) / 4 - begin / 4;
  fill_normal_kernel<<<blocks_for(groups), kThreads, 0, stream>>>(out, begin, count, seed, param_id,
                                                                  step, sample);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void launch_update_f32(float* p, int64_t offset, int64_t n, const UpdateArgs& u,
                       cudaStream_t stream) {
  const int64_t groups = (offset + n + 3) / 4 - offset / 4;
  update_f32_kernel<<<blocks_for(groups), kThreads, 0, stream>>>(p, offset, n, u);
  ZOFT_CUDA_CHECK_LAUNCH();
}

void launch_update_bf16(uint16_t* p, int64_t offset, int64_t n, const UpdateArgs& u,
                        cudaStream_t stream) {
  const int64_t groups = (offset + n + 7) / 8 - offset / 8;
  update_bf16_kernel<<<blocks_for(groups), kThreads, 0, stream>>>(p, offset, n, u);
  ZOFT_CUDA_CHECK_LAUNCH();
}

}  // namespace zoft::zo::cuda::detail
