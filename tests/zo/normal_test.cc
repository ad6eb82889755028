#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/op_test_util.h"
#include "core/error.h"
#include "zo/philox.h"
#include "zo/philox_simd.h"
#include "zo/zo_test_util.h"

namespace zoft::zo {
namespace {

using test::bits;

std::vector<float> normals(int64_t begin, int64_t count, uint64_t seed, uint32_t param_id,
                           uint64_t step, uint32_t sample) {
  std::vector<float> z(count);
  fill_normal(z.data(), begin, count, seed, param_id, step, sample);
  return z;
}

// The NumPy reference (tools/zo_reference.py) and C++ agree bit for bit, and so does every split
// of the range into pieces (the vector path, heads and tails, odd offsets).
// fill_normal on each CPU kernel path (zo/perturb_kernels.h): all of them give the same bits.
using NormalPath = zoft::testing::KernelPathTest;
ZOFT_INSTANTIATE_KERNEL_PATHS(NormalPath);

TEST_P(NormalPath, MatchesNumpyReferenceBitForBit) {
  int checked = 0;
  for (const auto& c : test::zo_fixture().at("normals")) {
    uint64_t seed = test::u64(c.at("seed")), step = test::u64(c.at("step"));
    uint32_t pid = c.at("param_id"), sample = c.at("sample");
    int64_t begin = c.at("begin"), count = c.at("count");
    std::vector<float> z = normals(begin, count, seed, pid, step, sample);
    if (c.contains("fnv1a64")) {
      EXPECT_EQ(test::fnv1a64(z), test::u64(c.at("fnv1a64"))) << c.dump().substr(0, 200);
      ++checked;
      continue;
    }
    std::vector<float> want = test::from_hex<float>(c.at("z"));
    ASSERT_EQ(want.size(), size_t(count));
    for (int64_t i = 0; i < count; ++i)
      ASSERT_EQ(bits(z[i]), bits(want[i])) << "element " << begin + i << " seed " << seed;
    for (int64_t piece : {1, 3, 5, 64, 67}) {
      std::vector<float> pieced(count);
      for (int64_t off = 0; off < count; off += piece)
        fill_normal(pieced.data() + off, begin + off, std::min(piece, count - off), seed, pid, step,
                    sample);
      for (int64_t i = 0; i < count; ++i) ASSERT_EQ(bits(pieced[i]), bits(want[i])) << piece;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 9);
}

// The vector path against the scalar definition, around every alignment.
TEST_P(NormalPath, VectorPathEqualsScalar) {
  for (int64_t begin : {0, 1, 2, 3, 4, 61, 63, 64, 65, 1000003}) {
    std::vector<float> z = normals(begin, 333, 77, 3, 12, 1);
    for (int64_t i = 0; i < 333; ++i) {
      float block[4];
      normal_block(77, 3, 12, 1, uint64_t(begin + i) / 4, block);
      ASSERT_EQ(bits(z[i]), bits(block[(begin + i) % 4])) << begin + i;
    }
  }
}

// The portable 16-counter loops (the path of builds without AVX-512) against the scalar
// definition; this file is compiled with -ffp-contract=off like the kernels.
TEST(Normal, PortableBatchEqualsScalar) {
  for (uint64_t q0 : {uint64_t(0), uint64_t(12345), uint64_t(0xfffffff0u)}) {
    float z[64];
    portable::normals64(3, 4, 5, 6, q0, z);
    for (int e = 0; e < 64; ++e) {
      float block[4];
      normal_block(3, 4, 5, 6, q0 + e / 4, block);
      ASSERT_EQ(bits(z[e]), bits(block[e % 4])) << q0 << " " << e;
    }
    uint32_t r[128];
    portable::rounding_bits128(3, 4, 77, q0, r);
    for (int e = 0; e < 128; ++e) {
      Philox4 x = philox4x32_10(rounding_counter(q0 + e / 8, 4, 77), uint64_t(3));
      ASSERT_EQ(r[e], rounding_half(x, e % 8)) << e;
    }
  }
}

// Error in units of the float32 spacing at the exact value.
double ulps(float got, double exact) {
  float e = float(std::fabs(exact));
  double spacing = double(std::nextafter(e, INFINITY)) - e;
  return std::fabs(double(got) - exact) / spacing;
}

// Every u that uniform_from_bits can produce (2^23 of them).
TEST(Normal, LogAndSincosAccurateOverEveryUniform) {
  double worst_log = 0, worst_sin = 0, worst_cos = 0, worst_r = 0;
  for (uint32_t m = 0; m < (1u << 23); ++m) {
    float u = uniform_from_bits(m << 9);
    double ud = u;
    float lg = zo_log(u);
    worst_log = std::max(worst_log, ulps(lg, std::log(ud)));
    worst_r = std::max(worst_r, ulps(std::sqrt(lg * -2.0f), std::sqrt(-2.0 * std::log(ud))));
    float s, c;
    zo_sincos_2pi(u, &s, &c);
    worst_sin = std::max(worst_sin, ulps(s, std::sin(2 * M_PI * ud)));
    worst_cos = std::max(worst_cos, ulps(c, std::cos(2 * M_PI * ud)));
  }
  EXPECT_LE(worst_log, 1.0);
  EXPECT_LE(worst_r, 1.5);
  EXPECT_LE(worst_sin, 2.0);
  EXPECT_LE(worst_cos, 2.0);
  RecordProperty("worst_log_ulp", std::to_string(worst_log));
  printf("max error: log %.3f ulp, r %.3f ulp, sin %.3f ulp, cos %.3f ulp\n", worst_log, worst_r,
         worst_sin, worst_cos);
}

// z against Box-Muller in double on the same uniforms: within a few float32 ulps of r.
TEST(Normal, CloseToDoublePrecisionBoxMuller) {
  double worst = 0;
  for (uint64_t q = 0; q < 100000; ++q) {
    Philox4 x = philox4x32_10(z_counter(q, 1, 2, 0), uint64_t(5));
    float z[4];
    normals_from_bits(x, z);
    for (int l = 0; l < 4; ++l) {
      double u1 = uniform_from_bits(x[l & 2]), u2 = uniform_from_bits(x[(l & 2) + 1]);
      double r = std::sqrt(-2 * std::log(u1)), a = 2 * M_PI * u2;
      double exact = r * ((l & 1) ? std::sin(a) : std::cos(a));
      worst = std::max(worst, std::fabs(z[l] - exact) / (r * 0x1p-24));
    }
  }
  EXPECT_LE(worst, 6.0);
  printf("max |z - z_double| = %.2f * r * 2^-24\n", worst);
}

double normal_cdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

double correlation(const std::vector<float>& a, const std::vector<float>& b) {
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += double(a[i]) * b[i];
    saa += double(a[i]) * a[i];
    sbb += double(b[i]) * b[i];
  }
  return sab / std::sqrt(saa * sbb);
}

// 1M draws: moments, Kolmogorov-Smirnov distance, and no correlation between the lanes of one
// Philox call or between streams that differ in one counter word.
TEST(Normal, StandardNormalStatistics) {
  const int64_t n = 1 << 20;
  std::vector<float> z = normals(0, n, 2024, 0, 0, 0);
  double m1 = 0, m2 = 0, m4 = 0;
  for (float v : z) m1 += v, m2 += double(v) * v, m4 += double(v) * v * v * v;
  m1 /= n, m2 /= n, m4 /= n;
  EXPECT_NEAR(m1, 0.0, 5 / std::sqrt(double(n)));  // 5 sigma
  EXPECT_NEAR(m2, 1.0, 5 * std::sqrt(2.0 / n));
  EXPECT_NEAR(m4, 3.0, 5 * std::sqrt(96.0 / n));
  std::vector<float> sorted = z;
  std::sort(sorted.begin(), sorted.end());
  double d = 0;
  for (int64_t i = 0; i < n; ++i) {
    double f = normal_cdf(sorted[i]);
    d = std::max({d, std::fabs(f - double(i) / n), std::fabs(f - double(i + 1) / n)});
  }
  EXPECT_LT(d * std::sqrt(double(n)), 1.95);  // KS critical value at p = 0.001
  printf("1M z: mean %.5f var %.5f m4 %.4f KS sqrt(n)D %.3f\n", m1, m2, m4,
         d * std::sqrt(double(n)));

  std::vector<float> lane[4];
  for (int64_t i = 0; i < n; ++i) lane[i % 4].push_back(z[i]);
  const double tol = 5 / std::sqrt(double(n / 4));
  EXPECT_NEAR(correlation(lane[0], lane[1]), 0, tol);  // same r, cos vs sin
  EXPECT_NEAR(correlation(lane[0], lane[2]), 0, tol);  // other pair of the same call
  std::vector<float> sq[2];
  for (int k = 0; k < 2; ++k)
    for (float v : lane[k]) sq[k].push_back(v * v - 1.0f);
  EXPECT_NEAR(correlation(sq[0], sq[1]), 0, 2 * tol);  // r shared: squares are independent too
  for (auto other : {normals(0, n, 2025, 0, 0, 0), normals(0, n, 2024, 1, 0, 0),
                     normals(0, n, 2024, 0, 1, 0), normals(0, n, 2024, 0, 0, 1)})
    EXPECT_NEAR(correlation(z, other), 0, 5 / std::sqrt(double(n)));
}

TEST(Normal, RejectsOutOfRangeArguments) {
  float z[4];
  EXPECT_THROW(fill_normal(z, kMaxElements - 2, 4, 0, 0, 0, 0), Error);
  EXPECT_THROW(fill_normal(z, -1, 1, 0, 0, 0, 0), Error);
  EXPECT_THROW(fill_normal(z, 0, 1, 0, 0, 0, kMaxSamples), Error);
}

}  // namespace
}  // namespace zoft::zo
