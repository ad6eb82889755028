// Shared by the op tests: a fixture parameterised by backend name, random inputs, and the
// element-wise comparison with a double reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends.h"
#include "core/dtype.h"

namespace zoft::testing {

// Random inputs from one seeded generator (each fixture picks its seed).
class RandomInputs {
 public:
  explicit RandomInputs(uint32_t seed) : rng_(seed) {}
  std::vector<float> uniform(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }
  std::vector<float> normal(size_t n, float stddev = 1.0f) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }

 private:
  std::mt19937 rng_;
};

inline const char* activation_name(Activation kind) {
  switch (kind) {
    case Activation::ReLU:
      return "relu";
    case Activation::GeluErf:
      return "gelu_erf";
    case Activation::GeluTanh:
      return "gelu_tanh";
    case Activation::SiLU:
      return "silu";
  }
  return "?";
}

// Every op test runs once per backend; a backend that is not available skips.
class BackendTest : public ::testing::TestWithParam<std::string>, public RandomInputs {
 protected:
  BackendTest() : RandomInputs(1234) {}
  void SetUp() override {
    backend_ = make_backend(GetParam());
    if (!backend_) GTEST_SKIP() << "backend '" << GetParam() << "' is not built or has no device";
  }
  OpsBackend& be() { return *backend_; }

 private:
  std::unique_ptr<OpsBackend> backend_;
};

// Each test file instantiates its suites over the same backend list.
// "cpu" runs the path this machine picks; "cpu_<path>" each kernel path (backend/cpu/isa.h).
#define ZOFT_INSTANTIATE_BACKENDS(Suite)                                                  \
  INSTANTIATE_TEST_SUITE_P(                                                               \
      OpsDispatch, Suite,                                                                 \
      ::testing::Values("cpu", "cpu_avx2", "cpu_avx512", "cpu_avx512_bf16", "cpu_onednn", \
                        "cpu_amx", "cuda"),                                               \
      [](const ::testing::TestParamInfo<std::string>& info) { return info.param; })

// A test of the CPU ops that runs once per kernel path (backend/cpu/isa.h), forced for its
// duration; a path this CPU or build cannot run skips. For tests that call cpu:: directly (the
// backward ops); the forward op tests run the paths through the "cpu_<path>" backends.
class KernelPathTest : public ::testing::TestWithParam<cpu::Isa> {
 protected:
  void SetUp() override {
    const std::string why = cpu::isa_unavailable(GetParam());
    if (!why.empty()) GTEST_SKIP() << why;
    scope_ = std::make_unique<ScopedIsa>(GetParam());
  }
  void TearDown() override { scope_.reset(); }

 private:
  std::unique_ptr<ScopedIsa> scope_;
};

#define ZOFT_INSTANTIATE_KERNEL_PATHS(Suite)                                    \
  INSTANTIATE_TEST_SUITE_P(Paths, Suite, ::testing::ValuesIn(cpu::all_isas()),  \
                           [](const ::testing::TestParamInfo<cpu::Isa>& info) { \
                             return std::string(cpu::isa_name(info.param));     \
                           })

// |got[i] - want[i]| <= atol + rtol |want[i]| for all i; reports the worst element.
inline void expect_close(const std::vector<float>& got, const std::vector<double>& want,
                         double atol, double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t worst = 0;
  double worst_excess = -INFINITY;
  for (size_t i = 0; i < got.size(); ++i) {
    double err = std::abs(double(got[i]) - want[i]);
    double excess = err - (atol + rtol * std::abs(want[i]));
    if (!(excess <= worst_excess) || std::isnan(got[i])) {
      worst_excess = std::isnan(got[i]) ? INFINITY : excess;
      worst = i;
    }
  }
  EXPECT_LE(worst_excess, 0.0) << what << ": element " << worst << " is " << got[worst]
                               << ", reference " << want[worst] << " (atol " << atol << ", rtol "
                               << rtol << ")";
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// The values a bf16 GEMM actually multiplies.
inline std::vector<double> bf16_rounded(const std::vector<float>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return out;
}

inline std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

}  // namespace zoft::testing
