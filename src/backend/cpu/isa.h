// Which CPU kernel path runs the GEMMs (cpu::linear and its backward) and the other vectorised
// ops (attention, ...: op_kernels.h), chosen at run time from the CPU's features
// (core/cpu_features.h), so that one binary serves every x86 machine:
//   avx2         OpenBLAS sgemm (its own run-time kernels; AVX2 + FMA on x86-64-v3 CPUs); the
//                other ops from the base copy (the build's -march without AVX-512)
//   avx512       zoft's packed AVX-512 f32 kernels; bf16 weights through sgemm
//   avx512_bf16  the packed kernels, bf16 by VDPBF16PS (Zen 4/5, Sapphire Rapids and later)
//   onednn       bf16 GEMMs by oneDNN's matmul, which picks AMX tiles where the CPU has them
//   amx          the packed kernels, bf16 GEMMs on AMX tiles by our own kernel (gemm_amx.cc)
// Every path but avx2 runs the avx512 copy of the other ops.
// ZOFT_CPU_ISA=<name> forces a path; one the CPU (or the build) cannot run stops with one line.
// docs/PERFORMANCE.md says which bits each path guarantees.
#pragma once

#include <string>
#include <vector>

namespace zoft::cpu {

enum class Isa { avx2, avx512, avx512_bf16, onednn, amx };

const char* isa_name(Isa isa);

// Every path this build knows, from the most portable up.
std::vector<Isa> all_isas();

// Empty when this CPU and build can run `isa`; otherwise one line saying why not.
std::string isa_unavailable(Isa isa);

// The path named by a ZOFT_CPU_ISA value; throws Error (one line naming the variable) when the
// name is unknown or this CPU / build cannot run it.
Isa parse_isa_setting(const std::string& text);

// The path in use: ZOFT_CPU_ISA when set (unknown or unavailable: throws Error with one line),
// else the fastest available. Read once, on first use; set_isa changes it.
Isa active_isa();

// Forces a path for the rest of the process (tests); throws Error when it is unavailable.
void set_isa(Isa isa);

// "avx512_bf16 (AMD EPYC 9654 ...: avx2 fma x86-64-v3 avx512 avx512_bf16)": what `zoft inspect`
// and the benchmarks print.
std::string isa_description();

}  // namespace zoft::cpu
