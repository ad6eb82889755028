// cpu_features() (cpuid + XCR0) against what the Linux kernel reports in /proc/cpuinfo, which
// lists a feature only when both the CPU and the kernel support it.
#include "core/cpu_features.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace zoft {
namespace {

std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

TEST(CpuFeatures, ImplicationsHold) {
  const CpuFeatures& f = cpu_features();
  EXPECT_FALSE(f.model.empty());
  EXPECT_TRUE(!f.x86_64_v3 || (f.avx2 && f.fma));
  EXPECT_TRUE(!f.avx512 || f.x86_64_v3);
  EXPECT_TRUE(!f.avx512_bf16 || f.avx512);
  EXPECT_TRUE(!f.amx_bf16 || f.avx512_bf16);
  EXPECT_NE(cpu_feature_names(f), "");
}

TEST(CpuFeatures, AgreesWithProcCpuinfo) {
  const std::set<std::string> flags = proc_cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags on this system";
  auto has = [&](const char* name) { return flags.count(name) > 0; };
  const CpuFeatures& f = cpu_features();
  EXPECT_EQ(f.avx2, has("avx2"));
  EXPECT_EQ(f.fma, has("fma"));
  EXPECT_EQ(f.x86_64_v3, has("avx2") && has("fma") && has("f16c") && has("movbe") && has("bmi1") &&
                             has("bmi2") && has("abm"));
  EXPECT_EQ(f.avx512, f.x86_64_v3 && has("avx512f") && has("avx512bw") && has("avx512cd") &&
                          has("avx512dq") && has("avx512vl"));
  EXPECT_EQ(f.avx512_bf16, f.avx512 && has("avx512_bf16"));
  // AMX also needs the per-process permission, which a kernel listing amx_tile grants.
  EXPECT_EQ(f.amx_bf16, f.avx512_bf16 && has("amx_tile") && has("amx_bf16"));
}

}  // namespace
}  // namespace zoft
