// What the CPU this process runs on can execute, read at run time (cpuid, and the OS's XCR0 for
// the register state it saves), so that one binary picks its kernels on every x86 machine
// instead of trusting the build machine's -march.
#pragma once

#include <string>

namespace zoft {

struct CpuFeatures {
  std::string model;  // the cpuid brand string, e.g. "AMD EPYC 9654 96-Core Processor"
  // x86-64-v3 (AVX2 + FMA + F16C + BMI1/2, the OS saving the YMM state).
  bool avx2 = false;
  bool fma = false;
  bool x86_64_v3 = false;
  // x86-64-v4 (AVX-512 F/BW/CD/DQ/VL, the OS saving the ZMM and mask state) and BF16 on it.
  bool avx512 = false;
  bool avx512_bf16 = false;
  // AMX tiles with bf16 dot products: cpuid, the OS saving the tile state, and (Linux) this
  // process granted the tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM).
  bool amx_bf16 = false;
};

// Detected once, on first use (which also requests the AMX permission where the CPU has AMX).
const CpuFeatures& cpu_features();

// The feature names set, space-separated ("avx2 fma avx512 avx512_bf16"), for messages and
// `zoft inspect`.
std::string cpu_feature_names(const CpuFeatures& f);

}  // namespace zoft
