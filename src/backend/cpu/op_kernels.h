// Internal to backend/cpu: the ops besides the GEMMs (attention, norms, activations, rope,
// softcap, embedding, cross-entropy and their backward), whose inner loops are vectorised by
// hand, compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>), each copy in its
// own namespace named by ZOFT_OPS_ISA, so that one binary carries them all:
//   base    the build's -march (ZOFT_MARCH) with AVX-512 turned off: plain loops, which the
//           compiler vectorises for AVX2 + FMA under the default x86-64-v3
//   avx512  x86-64-v4: the same files' `#if defined(__AVX512F__)` code
// The public cpu:: entry points (op_dispatch.cc) call the copy of the active path (isa.h):
// avx2 runs base, every other path runs avx512.
#pragma once

#include "backend/cpu/isa.h"
#include "backend/ops_backward.h"

namespace zoft::cpu::detail {

// One copy's entry points, with the signatures of the cpu:: functions of the same name.
struct OpKernels {
  decltype(&cpu::attention) attention;
  decltype(&cpu::attention_backward) attention_backward;
  decltype(&cpu::add_inplace) add_inplace;
  decltype(&cpu::activation) activation;
  decltype(&cpu::gated_activation) gated_activation;
  decltype(&cpu::softcap) softcap;
  decltype(&cpu::rope) rope;
  decltype(&cpu::layer_norm) layer_norm;
  decltype(&cpu::rms_norm) rms_norm;
  decltype(&cpu::embedding) embedding;
  decltype(&cpu::cross_entropy) cross_entropy;
  decltype(&cpu::activation_backward) activation_backward;
  decltype(&cpu::gated_activation_backward) gated_activation_backward;
  decltype(&cpu::rope_backward) rope_backward;
  decltype(&cpu::softcap_backward) softcap_backward;
  decltype(&cpu::layer_norm_backward) layer_norm_backward;
  decltype(&cpu::rms_norm_backward) rms_norm_backward;
  decltype(&cpu::embedding_backward) embedding_backward;
  decltype(&cpu::cross_entropy_backward) cross_entropy_backward;
};

// The copy that runs `isa`; null when this build did not compile it.
const OpKernels* op_kernels(Isa isa);

#if defined(ZOFT_OPS_ISA)
namespace ZOFT_OPS_ISA {

// Each declared through the function type of its cpu:: namesake, so a copy cannot drift from
// the public signature (a mismatch fails to compile or link).
decltype(cpu::attention) attention;
decltype(cpu::attention_backward) attention_backward;
decltype(cpu::add_inplace) add_inplace;
decltype(cpu::activation) activation;
decltype(cpu::gated_activation) gated_activation;
decltype(cpu::softcap) softcap;
decltype(cpu::rope) rope;
decltype(cpu::layer_norm) layer_norm;
decltype(cpu::rms_norm) rms_norm;
decltype(cpu::embedding) embedding;
decltype(cpu::cross_entropy) cross_entropy;
decltype(cpu::activation_backward) activation_backward;
decltype(cpu::gated_activation_backward) gated_activation_backward;
decltype(cpu::rope_backward) rope_backward;
decltype(cpu::softcap_backward) softcap_backward;
decltype(cpu::layer_norm_backward) layer_norm_backward;
decltype(cpu::rms_norm_backward) rms_norm_backward;
decltype(cpu::embedding_backward) embedding_backward;
decltype(cpu::cross_entropy_backward) cross_entropy_backward;

// This copy's table (op_kernels.cc).
extern const OpKernels kOpKernels;

}  // namespace ZOFT_OPS_ISA
#endif

}  // namespace zoft::cpu::detail
