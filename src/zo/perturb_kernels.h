// Internal to src/zo: the CPU loops of apply_z_terms and fill_normal, compiled once per
// instruction set (CMakeLists.txt, zoft_zo_<copy>: base = the build's -march without AVX-512,
// avx512 = x86-64-v4), each copy in its own namespace named by ZOFT_ZO_ISA; the active CPU
// kernel path (backend/cpu/isa.h) picks one: avx2 runs base, every other path avx512.
// Every copy gives the same bits: each rounds after every float32 multiply and add in the order
// of philox_math.h's one-lane definition (-ffp-contract=off, docs/zo-rng.md).
#pragma once

#include <cstdint>

#include "zo/perturb.h"

namespace zoft::zo::detail {

// Everything one apply_z_terms update needs besides the memory range.
struct ZUpdate {
  uint64_t seed;
  uint32_t param_id;
  const ZTerm* terms;
  int n_terms;
  uint64_t rounding_step;
  float decay;
};

// One copy's loops; the arguments are checked by apply_z_terms / fill_normal.
struct ZKernels {
  // p holds elements [offset, offset + n) of the parameter; runs on the global pool.
  void (*update_f32)(const ZUpdate& u, float* p, int64_t offset, int64_t n);
  void (*update_bf16)(const ZUpdate& u, uint16_t* p, int64_t offset, int64_t n);
  // out[k] = z[begin + k] for k < count, on the calling thread.
  void (*fill_normal)(float* out, int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                      uint64_t step, uint32_t sample);
};

// The copy of the active CPU kernel path.
const ZKernels& z_kernels();

#if defined(ZOFT_ZO_ISA)
namespace ZOFT_ZO_ISA {
extern const ZKernels kZKernels;  // perturb_cpu.cc
}
#endif

}  // namespace zoft::zo::detail
