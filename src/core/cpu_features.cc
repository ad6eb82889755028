#include "core/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace zoft {

#if defined(__x86_64__) || defined(__i386__)

namespace {

struct Regs {
  uint32_t a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(uint32_t leaf, uint32_t subleaf) {
  Regs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.a, &r.b, &r.c, &r.d)) return Regs{};
  return r;
}

bool bit(uint32_t reg, int n) {
  return (reg >> n) & 1u;
}

// XCR0: which register states the OS saves on a context switch (without them a feature that
// cpuid reports must still not be used). Read only when cpuid says OSXSAVE.
uint64_t xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

std::string brand_string() {
  if (cpuid(0x80000000u, 0).a < 0x80000004u) return "unknown x86 CPU";
  char text[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    Regs r = cpuid(0x80000002u + i, 0);
    std::memcpy(text + 16 * i, &r, 16);
  }
  std::string s(text);
  const size_t first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
  return first == std::string::npos ? "unknown x86 CPU" : s.substr(first, last - first + 1);
}

// Linux keeps the AMX tile data state off until a process asks for it; without this the first
// tile instruction faults. Other systems: assume the OS enabled what XCR0 says.
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return true;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  f.model = brand_string();
  const uint32_t max_leaf = cpuid(0, 0).a;
  const Regs l1 = cpuid(1, 0);
  if (!bit(l1.c, 27)) return f;  // no OSXSAVE: the OS saves no AVX state at all
  const uint64_t xcr = xcr0();
  const bool os_ymm = (xcr & 0x6) == 0x6;              // SSE + AVX state
  const bool os_zmm = os_ymm && (xcr & 0xe0) == 0xe0;  // opmask + ZMM halves + ZMM16-31
  const bool os_tiles = (xcr & 0x60000) == 0x60000;    // XTILECFG + XTILEDATA
  const Regs l7 = max_leaf >= 7 ? cpuid(7, 0) : Regs{};
  const Regs l7_1 = max_leaf >= 7 && l7.a >= 1 ? cpuid(7, 1) : Regs{};
  const Regs ext = cpuid(0x80000001u, 0);

  f.fma = os_ymm && bit(l1.c, 12);
  f.avx2 = os_ymm && bit(l1.c, 28) && bit(l7.b, 5);
  f.x86_64_v3 = f.avx2 && f.fma && bit(l1.c, 29) /* F16C */ && bit(l1.c, 22) /* MOVBE */ &&
                bit(l7.b, 3) /* BMI1 */ && bit(l7.b, 8) /* BMI2 */ && bit(ext.c, 5) /* LZCNT */;
  f.avx512 = f.x86_64_v3 && os_zmm && bit(l7.b, 16) /* F */ && bit(l7.b, 17) /* DQ */ &&
             bit(l7.b, 28) /* CD */ && bit(l7.b, 30) /* BW */ && bit(l7.b, 31) /* VL */;
  f.avx512_bf16 = f.avx512 && bit(l7_1.a, 5);
  const bool cpu_amx = bit(l7.d, 24) /* AMX-TILE */ && bit(l7.d, 22) /* AMX-BF16 */;
  f.amx_bf16 = f.avx512_bf16 && cpu_amx && os_tiles && request_amx_permission();
  return f;
}

}  // namespace

#else  // not x86: no x86 kernels apply

static CpuFeatures detect() {
  return CpuFeatures{"non-x86 CPU"};
}

#endif

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_feature_names(const CpuFeatures& f) {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.x86_64_v3, "x86-64-v3");
  add(f.avx512, "avx512");
  add(f.avx512_bf16, "avx512_bf16");
  add(f.amx_bf16, "amx_bf16");
  return s.empty() ? "none" : s;
}

}  // namespace zoft
