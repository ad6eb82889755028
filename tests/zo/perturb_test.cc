#include "zo/perturb.h"

#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/op_test_util.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "zo/philox.h"
#include "zo/zo_test_util.h"

namespace zoft::zo {
namespace {

using test::bits;

// The documented formula (docs/zo-rng.md section 5), element by element, from fill_normal.
std::vector<float> reference_f32(std::vector<float> theta, uint32_t pid, uint64_t seed,
                                 const std::vector<ZTerm>& terms, float decay) {
  int64_t n = int64_t(theta.size());
  std::vector<float> acc(n, 0.0f), z(n);
  for (const ZTerm& t : terms) {
    fill_normal(z.data(), 0, n, seed, pid, t.step, t.sample);
    for (int64_t i = 0; i < n; ++i) acc[i] = acc[i] + z[i] * t.scale;
  }
  for (int64_t i = 0; i < n; ++i) theta[i] = theta[i] * decay + acc[i];
  return theta;
}

std::vector<uint16_t> reference_bf16(const std::vector<uint16_t>& theta, uint32_t pid,
                                     uint64_t seed, const std::vector<ZTerm>& terms,
                                     uint64_t rounding_step, float decay) {
  std::vector<float> wide(theta.size());
  for (size_t i = 0; i < theta.size(); ++i) wide[i] = bf16_to_f32(theta[i]);
  std::vector<float> y = reference_f32(wide, pid, seed, terms, decay);
  std::vector<uint16_t> out(theta.size());
  for (size_t i = 0; i < theta.size(); ++i) {
    Philox4 r = philox4x32_10(rounding_counter(i / 8, pid, rounding_step), seed);
    out[i] = bf16_round_stochastic(bits(y[i]), rounding_half(r, int(i % 8)));
  }
  return out;
}

// The update on each CPU kernel path (perturb_kernels.h): all of them give the same bits.
using PerturbPath = zoft::testing::KernelPathTest;
ZOFT_INSTANTIATE_KERNEL_PATHS(PerturbPath);

TEST_P(PerturbPath, MatchesNumpyReferenceBitForBit) {
  int checked = 0;
  for (const auto& c : test::zo_fixture().at("apply")) {
    std::vector<ZTerm> terms;
    for (const auto& t : c.at("terms"))
      terms.push_back({test::u64(t.at("step")), t.at("sample").get<uint32_t>(),
                       float(t.at("scale").get<double>())});
    uint64_t seed = test::u64(c.at("seed")), rs = test::u64(c.at("rounding_step"));
    uint32_t pid = c.at("param_id");
    float decay = float(c.at("decay").get<double>());
    if (c.at("dtype") == "f32") {
      std::vector<float> theta = test::from_hex<float>(c.at("theta"));
      std::vector<float> want = test::from_hex<float>(c.at("out"));
      apply_z_terms(Tensor(theta.data(), DType::F32, {int64_t(theta.size())}), pid, seed,
                    terms.data(), int(terms.size()), rs, decay);
      for (size_t i = 0; i < theta.size(); ++i) ASSERT_EQ(bits(theta[i]), bits(want[i])) << i;
    } else {
      std::vector<uint16_t> theta = test::from_hex<uint16_t>(c.at("theta"));
      std::vector<uint16_t> want = test::from_hex<uint16_t>(c.at("out"));
      apply_z_terms(Tensor(theta.data(), DType::BF16, {int64_t(theta.size())}), pid, seed,
                    terms.data(), int(terms.size()), rs, decay);
      for (size_t i = 0; i < theta.size(); ++i) ASSERT_EQ(theta[i], want[i]) << i;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

// Large enough for several parallel chunks, odd so that the last chunk has a scalar tail.
constexpr int64_t kBig = 3 * 16 * 1024 * 2 + 37;

std::vector<float> random_params(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.1f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST_P(PerturbPath, F32SameForEveryThreadCountAndEqualsReference) {
  std::vector<ZTerm> terms = {{9, 0, -3e-4f}, {10, 0, 1e-3f}, {10, 1, 1e-3f}};
  std::vector<float> theta0 = random_params(kBig, 1);
  std::vector<float> want = reference_f32(theta0, 17, 123, terms, 0.9999f);
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool::set_global_threads(threads);
    std::vector<float> theta = theta0;
    apply_z_terms(Tensor(theta.data(), DType::F32, {kBig}), 17, 123, terms.data(), 3, 0, 0.9999f);
    for (int64_t i = 0; i < kBig; ++i)
      ASSERT_EQ(bits(theta[i]), bits(want[i])) << "threads " << threads << " element " << i;
  }
  ThreadPool::set_global_threads(0);
}

TEST_P(PerturbPath, Bf16SameForEveryThreadCountAndEqualsReference) {
  std::vector<ZTerm> terms = {{4, 1, -2e-6f}, {5, 0, 1e-3f}};
  std::vector<float> wide = random_params(kBig, 2);
  std::vector<uint16_t> theta0(kBig);
  for (int64_t i = 0; i < kBig; ++i) theta0[i] = f32_to_bf16(wide[i]);
  theta0[10] = 0x7fc1;  // a NaN stays NaN
  theta0[11] = 0x7f80;  // +inf stays +inf
  uint64_t rs = (uint64_t(1) << 32) + 11;
  std::vector<uint16_t> want = reference_bf16(theta0, 6, 99, terms, rs, 1.0f);
  EXPECT_EQ(want[10] & 0x7fc0, 0x7fc0);
  EXPECT_EQ(want[11], 0x7f80);
  for (int threads : {1, 2, 3}) {
    ThreadPool::set_global_threads(threads);
    std::vector<uint16_t> theta = theta0;
    apply_z_terms(Tensor(theta.data(), DType::BF16, {kBig}), 6, 99, terms.data(), 2, rs);
    for (int64_t i = 0; i < kBig; ++i)
      ASSERT_EQ(theta[i], want[i]) << "threads " << threads << " element " << i;
  }
  ThreadPool::set_global_threads(0);
}

TEST(Perturb, StochasticRoundingIsExactlyProportional) {
  // Over all 2^16 random values, x rounds up exactly (low 16 bits) times out of 2^16.
  for (uint32_t low : {0u, 1u, 0x4000u, 0x8000u, 0xffffu}) {
    uint32_t x = 0x3f810000u | low;
    int up = 0;
    for (uint32_t r = 0; r < 65536; ++r) up += bf16_round_stochastic(x, r) == 0x3f82;
    EXPECT_EQ(up, int(low));
  }
  EXPECT_EQ(bf16_round_stochastic(0xbf81ffffu, 1), 0xbf82);  // negative: away from zero
  EXPECT_EQ(bf16_round_stochastic(0xffc00001u, 0xffff) & 0xffc0, 0xffc0);
}

// An update 40x smaller than half a bf16 ulp vanishes under round-to-nearest but survives on
// average under stochastic rounding.
TEST(Perturb, Bf16TinyUpdatesSurviveOnAverage) {
  const int64_t n = 1 << 20;
  std::vector<uint16_t> theta(n, f32_to_bf16(1.0f));
  const float decay = 1.0f - 1e-4f;  // theta -> 0.9999, between bf16 0.99609375 and 1.0
  apply_z_terms(Tensor(theta.data(), DType::BF16, {n}), 0, 5, nullptr, 0, 1, decay);
  double mean = 0;
  for (uint16_t h : theta) mean += bf16_to_f32(h);
  mean /= n;
  double lo = 0.99609375, p = (double(decay) - lo) / (1.0 - lo);
  double sd = (1.0 - lo) * std::sqrt(p * (1 - p) / n);
  EXPECT_NEAR(mean, double(decay), 5 * sd);
}

TEST(Perturb, NoTermsNoDecayIsIdentity) {
  std::vector<float> theta = random_params(1000, 3), before = theta;
  apply_z_terms(Tensor(theta.data(), DType::F32, {1000}), 0, 1, nullptr, 0, 0);
  EXPECT_EQ(0, std::memcmp(theta.data(), before.data(), 4000));
}

TEST(Perturb, RejectsWhatItCannotUpdate) {
  std::vector<float> buf(64);
  ZTerm t{0, 0, 1.0f};
  EXPECT_THROW(apply_z_terms(Tensor(buf.data(), DType::F16, {64}), 0, 0, &t, 1, 0), Error);
  Tensor strided(buf.data(), DType::F32, {4, 4});
  strided.stride[0] = 16;
  EXPECT_THROW(apply_z_terms(strided, 0, 0, &t, 1, 0), Error);
  ZTerm bad{0, kMaxSamples, 1.0f};
  EXPECT_THROW(apply_z_terms(Tensor(buf.data(), DType::F32, {64}), 0, 0, &bad, 1, 0), Error);
}

// A slice of a parameter updated with its element offset gets exactly what the whole update
// gives it (the tied-embedding rows of the ZO2 order rely on this).
TEST_P(PerturbPath, SliceWithOffsetEqualsWholeTensor) {
  std::vector<ZTerm> terms = {{3, 0, -1e-4f}, {4, 1, 2e-3f}};
  const int64_t n = 2000;
  std::vector<float> whole = random_params(n, 4), sliced = whole;
  std::vector<uint16_t> whole16(n), sliced16(n);
  for (int64_t i = 0; i < n; ++i) whole16[i] = sliced16[i] = f32_to_bf16(whole[i]);
  apply_z_terms(Tensor(whole.data(), DType::F32, {n}), 2, 8, terms.data(), 2, 0, 0.999f);
  apply_z_terms(Tensor(whole16.data(), DType::BF16, {n}), 2, 8, terms.data(), 2, 5, 0.999f);
  for (int64_t b = 0; b < n;) {
    int64_t len = std::min<int64_t>(n - b, 1 + (b * 7919) % 301);  // odd offsets and lengths
    apply_z_terms(Tensor(sliced.data() + b, DType::F32, {len}), 2, 8, terms.data(), 2, 0, 0.999f,
                  uint64_t(b));
    apply_z_terms(Tensor(sliced16.data() + b, DType::BF16, {len}), 2, 8, terms.data(), 2, 5, 0.999f,
                  uint64_t(b));
    b += len;
  }
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(bits(sliced[i]), bits(whole[i])) << i;
    ASSERT_EQ(sliced16[i], whole16[i]) << i;
  }
  float x = 0;
  EXPECT_THROW(apply_z_terms(Tensor(&x, DType::F32, {1}), 0, 0, terms.data(), 1, 0, 1.0f,
                             uint64_t(kMaxElements)),
               Error);
}

// Run with --gtest_also_run_disabled_tests: GB/s (bytes read + written) of the fused update on
// 100M elements against memcpy of the same bytes; wall clock, and per CPU-second (the rate of
// one busy core, which a machine shared with other jobs still measures).
TEST(Perturb, DISABLED_Bandwidth) {
  const int64_t n = 100'000'000;
  auto now = [](clockid_t clock) {
    timespec t;
    clock_gettime(clock, &t);
    return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
  };
  auto report = [&](const char* what, double bytes, auto&& fn) {
    double wall = 1e9, cpu = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
      double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
      fn();
      wall = std::min(wall, now(CLOCK_MONOTONIC) - w0);
      cpu = std::min(cpu, now(CLOCK_PROCESS_CPUTIME_ID) - c0);
    }
    printf("%-22s %6.1f GB/s wall  %6.1f GB/s per CPU-second  (%.2f ns/element/core)\n", what,
           bytes / wall / 1e9, bytes / cpu / 1e9, cpu / double(n) * 1e9);
  };
  OwnedTensor f32 = OwnedTensor::zeros(DType::F32, {n}), copy = OwnedTensor::zeros(DType::F32, {n});
  OwnedTensor bf16 = OwnedTensor::zeros(DType::BF16, {n});
  printf("threads %d, %lld elements\n", ThreadPool::global().size(), (long long)n);
  report("memcpy f32", 8.0 * n, [&] { std::memcpy(copy.view.data, f32.view.data, size_t(n) * 4); });
  report("memcpy bf16", 4.0 * n,
         [&] { std::memcpy(copy.view.data, bf16.view.data, size_t(n) * 2); });
  std::vector<ZTerm> terms = {{1, 0, -1e-6f}, {2, 0, 1e-3f}, {2, 1, 1e-3f}};
  for (int k : {1, 2, 3}) {
    std::string f = "f32 " + std::to_string(k) + " term(s)",
                b = "bf16 " + std::to_string(k) + " term(s)";
    report(f.c_str(), 8.0 * n, [&] { apply_z_terms(f32.view, 0, 1, terms.data(), k, 0); });
    report(b.c_str(), 4.0 * n, [&] { apply_z_terms(bf16.view, 0, 1, terms.data(), k, 0); });
  }
}

}  // namespace
}  // namespace zoft::zo
