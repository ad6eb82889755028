#include "backend/cpu/isa.h"

#include <atomic>
#include <cstdlib>

#include "backend/cpu/gemm_amx.h"
#include "backend/cpu/gemm_kernels.h"
#include "backend/cpu/gemm_onednn.h"
#include "backend/cpu/op_kernels.h"
#include "core/cpu_features.h"
#include "core/error.h"

namespace zoft::cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512_bf16:
      return "avx512_bf16";
    case Isa::onednn:
      return "onednn";
    case Isa::amx:
      return "amx";
  }
  return "?";
}

std::vector<Isa> all_isas() {
  return {Isa::avx2, Isa::avx512, Isa::avx512_bf16, Isa::onednn, Isa::amx};
}

std::string isa_unavailable(Isa isa) {
  const CpuFeatures& f = cpu_features();
  auto lacks = [&](const char* what) {
    return fmt::format("this CPU ({}) lacks {} (it has: {})", f.model, what, cpu_feature_names(f));
  };
  if (!detail::op_kernels(isa)) return "this build has no attention / elementwise kernels for it";
  switch (isa) {
    case Isa::avx2:  // OpenBLAS picks its own kernels: runs on any CPU
      return "";
    case Isa::avx512:
      if (!detail::gemm_kernels(isa)) return "this build has no AVX-512 kernels";
      return f.avx512 ? "" : lacks("AVX-512 (F/BW/CD/DQ/VL)");
    case Isa::avx512_bf16:
      if (!detail::gemm_kernels(isa)) return "this build has no AVX-512 BF16 kernels";
      return f.avx512_bf16 ? "" : lacks("AVX-512 BF16");
    case Isa::onednn:
      if (!detail::kHaveOnednn) return "this build has no oneDNN (libdnnl-dev and OpenMP)";
      // oneDNN's bf16 matmul needs AVX-512 (its reference code elsewhere is far too slow).
      return f.avx512 ? "" : lacks("AVX-512 (F/BW/CD/DQ/VL)");
    case Isa::amx:
      if (!detail::kHaveAmxKernel) return "this build's compiler has no AMX intrinsics";
      if (!detail::gemm_kernels(Isa::avx512_bf16)) return "this build has no AVX-512 BF16 kernels";
      return f.amx_bf16 ? "" : lacks("AMX-BF16 usable by this process");
  }
  return "unknown path";
}

Isa parse_isa_setting(const std::string& text) {
  for (Isa isa : all_isas()) {
    if (text != isa_name(isa)) continue;
    const std::string why = isa_unavailable(isa);
    ZOFT_CHECK(why.empty(), "ZOFT_CPU_ISA={}: {}", text, why);
    return isa;
  }
  fail("ZOFT_CPU_ISA={}: unknown path (avx2, avx512, avx512_bf16, onednn or amx)", text);
}

// The default: the fastest path the CPU runs. oneDNN is chosen only where it has AMX to use.
static Isa best_isa() {
  for (Isa isa : {Isa::amx, Isa::avx512_bf16, Isa::avx512})
    if (isa_unavailable(isa).empty()) return isa;
  return Isa::avx2;
}

static Isa initial_isa() {
  const char* env = std::getenv("ZOFT_CPU_ISA");
  return env && *env ? parse_isa_setting(env) : best_isa();
}

// -1: not chosen yet. Chosen on first use so that a bad ZOFT_CPU_ISA surfaces as an Error from
// the first GEMM (or from `zoft inspect`), not as a crash before main.
static std::atomic<int> g_isa{-1};

Isa active_isa() {
  int isa = g_isa.load(std::memory_order_acquire);
  if (isa < 0) {
    isa = int(initial_isa());
    g_isa.store(isa, std::memory_order_release);
  }
  return Isa(isa);
}

void set_isa(Isa isa) {
  const std::string why = isa_unavailable(isa);
  ZOFT_CHECK(why.empty(), "CPU path {}: {}", isa_name(isa), why);
  g_isa.store(int(isa), std::memory_order_release);
}

std::string isa_description() {
  const CpuFeatures& f = cpu_features();
  const Isa isa = active_isa();
  const std::string bf16 = isa == Isa::onednn
                               ? fmt::format(", bf16 by oneDNN {}", detail::onednn_implementation())
                           : isa == Isa::amx ? ", bf16 on AMX tiles"
                                             : "";
  return fmt::format("{}{} ({}: {})", isa_name(isa), bf16, f.model, cpu_feature_names(f));
}

}  // namespace zoft::cpu
