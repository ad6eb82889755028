#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace zoft {
namespace {

// bf16 rounding against a double-precision reference: nearest representable, ties to even.
TEST(DType, Bf16RoundsToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1e4f, 1e4f);
  for (int i = 0; i < 100000; ++i) {
    float x = u(rng) * std::pow(10.0f, float(i % 9) - 4);
    float r = bf16_to_f32(f32_to_bf16(x));
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    uint32_t lo = bits & 0xffff0000u, hi = lo + 0x10000u;
    float flo, fhi;
    std::memcpy(&flo, &lo, 4);
    std::memcpy(&fhi, &hi, 4);
    double dlo = std::fabs(double(x) - flo), dhi = std::fabs(double(x) - fhi);
    float expect = dlo < dhi ? flo : dhi < dlo ? fhi : ((lo >> 16) & 1 ? fhi : flo);
    ASSERT_EQ(r, expect) << x;
  }
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(INFINITY)), INFINITY);
}

TEST(DType, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);  // overflow to +Inf
}

TEST(DType, F16RoundsToNearest) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
  for (int i = 0; i < 100000; ++i) {
    float x = u(rng) * std::pow(10.0f, -float(i % 8));
    float r = f16_to_f32(f32_to_f16(x));
    if (std::isinf(r)) continue;
    // The neighbour half on the other side must not be closer.
    uint16_t h = f32_to_f16(x);
    for (int d : {-1, 1}) {
      float other = f16_to_f32(uint16_t(h + d));
      if (std::isnan(other) || std::isinf(other) || ((h + d) & 0x7fff) == 0x7c00) continue;
      ASSERT_LE(std::fabs(double(r) - x), std::fabs(double(other) - x)) << x;
    }
  }
}

TEST(DType, ParseNames) {
  EXPECT_EQ(parse_dtype("bfloat16"), DType::BF16);
  EXPECT_EQ(parse_dtype("f32"), DType::F32);
  EXPECT_THROW(parse_dtype("int8"), Error);
}

TEST(Tensor, ShapeAndStrides) {
  Tensor t(nullptr, DType::BF16, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.stride[0], 12);
  EXPECT_EQ(t.stride[2], 1);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.shape_string(), "[2, 3, 4]");
  EXPECT_THROW(Tensor(nullptr, DType::F32, {1, 2, 3, 4, 5}), Error);
}

TEST(Tensor, BuffersAreAligned) {
  for (size_t n : {1, 3, 64, 1000}) {
    Buffer b(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
  }
  OwnedTensor z = OwnedTensor::zeros(DType::F32, {5, 7});
  for (int i = 0; i < 35; ++i) EXPECT_EQ(z.view.f32()[i], 0.0f);
}

TEST(ThreadPool, CoversEveryIndexOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 2, 5, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    for (auto& h : hits) h = 0;
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

// A mistyped thread count is refused before a single thread starts: the pool keeps its size.
TEST(ThreadPool, RefusesCountsBeyondFourPerCoreAndNegative) {
  ThreadPool::set_global_threads(1);
  EXPECT_GE(available_cores(), 1);
  EXPECT_EQ(max_threads(), 4 * available_cores());
  for (int bad : {-1, max_threads() + 1, 100000}) {
    try {
      ThreadPool::set_global_threads(bad);
      ADD_FAILURE() << bad << " threads accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("threads"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ThreadPool::global().size(), 1);
  }
  try {
    check_thread_count(100000, "--threads");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find(fmt::format(
            "--threads: 100000 threads is more than 4 x the {} cores available: use at most {}",
            available_cores(), max_threads())),
        std::string::npos)
        << e.what();
  }
  check_thread_count(max_threads(), "--threads");  // the cap itself is allowed
  ThreadPool::set_global_threads(0);
}

TEST(ThreadPool, ManyRoundsDoNotDeadlock) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum = 0;
  for (int round = 0; round < 2000; ++round)
    pool.parallel_for(7, [&](int64_t b, int64_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 14000);
}

}  // namespace
}  // namespace zoft
