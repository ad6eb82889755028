// The CPU kernel path setting (backend/cpu/isa.h): ZOFT_CPU_ISA values, refusals, forcing.
// The ops themselves run on every available path in the op tests (backends "cpu_<path>").
#include "backend/cpu/isa.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "backends.h"
#include "core/cpu_features.h"
#include "core/error.h"

namespace zoft::testing {
namespace {

std::string message_of(const std::string& setting) {
  try {
    cpu::parse_isa_setting(setting);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CpuIsa, AvailablePathsParseAndForce) {
  for (cpu::Isa isa : available_isas()) {
    EXPECT_EQ(cpu::parse_isa_setting(cpu::isa_name(isa)), isa);
    ScopedIsa scope(isa);
    EXPECT_EQ(cpu::active_isa(), isa);
    EXPECT_EQ(cpu::isa_description().rfind(cpu::isa_name(isa), 0), 0u) << cpu::isa_description();
  }
}

TEST(CpuIsa, UnavailablePathIsRefusedWithOneLine) {
  for (cpu::Isa isa : cpu::all_isas()) {
    const std::string why = cpu::isa_unavailable(isa);
    if (why.empty()) continue;
    const std::string msg = message_of(cpu::isa_name(isa));
    EXPECT_EQ(msg, "ZOFT_CPU_ISA=" + std::string(cpu::isa_name(isa)) + ": " + why);
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    EXPECT_THROW(cpu::set_isa(isa), Error);
  }
}

TEST(CpuIsa, UnknownNameIsRefused) {
  EXPECT_EQ(message_of("avx9000"),
            "ZOFT_CPU_ISA=avx9000: unknown path (avx2, avx512, avx512_bf16, onednn or amx)");
  EXPECT_NE(message_of(""), "");
}

TEST(CpuIsa, DefaultIsTheFastestPathTheCpuRuns) {
  const CpuFeatures& f = cpu_features();
  const bool amx = f.amx_bf16 && cpu::isa_unavailable(cpu::Isa::amx).empty();
  const cpu::Isa want = amx             ? cpu::Isa::amx
                        : f.avx512_bf16 ? cpu::Isa::avx512_bf16
                        : f.avx512      ? cpu::Isa::avx512
                                        : cpu::Isa::avx2;
  if (std::getenv("ZOFT_CPU_ISA")) GTEST_SKIP() << "ZOFT_CPU_ISA is set";
  EXPECT_EQ(cpu::active_isa(), want);
}

}  // namespace
}  // namespace zoft::testing
