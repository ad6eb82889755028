// What the shared op tests (tests/backend/, run on "cpu" and "cuda") do not cover: the memory
// pool, the error macros, device_available, f16 weights in linear, candidate_log_probs.
// The first three tests need no GPU and run everywhere CUDA is built.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/memory_pool.h"
#include "core/dtype.h"
#include "core/error.h"
#include "gpu_test_util.h"

namespace zoft::testing {
namespace {

TEST(CudaNoDevice, DeviceAvailableAnswersWithoutThrowing) {
  bool available = false;
  EXPECT_NO_THROW(available = cuda::device_available());
  if (!available) GTEST_SKIP() << "no CUDA device: device_available() is false, as it should be";
}

TEST(CudaNoDevice, CheckMacroThrowsWithCallFileAndLine) {
  try {
    ZOFT_CUDA_CHECK(cudaErrorInvalidValue);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cudaErrorInvalidValue"), std::string::npos) << m;
    EXPECT_NE(m.find("backend_gpu_test.cc:"), std::string::npos) << m;
  }
  try {
    ZOFT_CUBLAS_CHECK(CUBLAS_STATUS_NOT_SUPPORTED);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cuBLAS error 15"), std::string::npos) << m;
    EXPECT_NE(m.find("backend_gpu_test.cc:"), std::string::npos) << m;
  }
}

TEST(CudaNoDevice, PoolSizeClasses) {
  using cuda::MemoryPool;
  EXPECT_EQ(MemoryPool::size_class(1), 256u);
  EXPECT_EQ(MemoryPool::size_class(256), 256u);
  EXPECT_EQ(MemoryPool::size_class(257), 512u);
  EXPECT_EQ(MemoryPool::size_class(1000), 1024u);
  EXPECT_EQ(MemoryPool::size_class(1 << 20), size_t(1) << 20);
  EXPECT_EQ(MemoryPool::size_class((1 << 20) + 1), size_t(2) << 20);
  EXPECT_EQ(MemoryPool::size_class((5 << 20) + 3), size_t(6) << 20);
}

TEST(CudaPool, ReusesFreedBlocksAndCountsBytes) {
  ZOFT_REQUIRE_GPU();
  cuda::MemoryPool pool;
  void* a = pool.allocate(1000);  // class 1024
  void* b = pool.allocate(3 << 20);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 256, 0u);
  cuda::PoolStats s = pool.stats();
  EXPECT_EQ(s.bytes_in_use, 1024u + (4u << 20));
  EXPECT_EQ(s.device_mallocs, 2);
  pool.release(a);
  void* c = pool.allocate(600);  // same class: the cached block comes back
  EXPECT_EQ(c, a);
  s = pool.stats();
  EXPECT_EQ(s.cache_hits, 1);
  EXPECT_EQ(s.device_mallocs, 2);
  pool.release(b);
  pool.release(c);
  s = pool.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.peak_bytes_in_use, 1024u + (4u << 20));
  EXPECT_EQ(s.bytes_reserved, 1024u + (4u << 20));
  pool.trim();
  EXPECT_EQ(pool.stats().bytes_reserved, 0u);
  pool.reset_peak();
  EXPECT_EQ(pool.stats().peak_bytes_in_use, 0u);
  EXPECT_EQ(pool.allocate(0), nullptr);
  int on_stack = 0;
  EXPECT_THROW(pool.release(&on_stack), Error);
}

TEST(CudaPool, OutOfMemoryIsAnError) {
  ZOFT_REQUIRE_GPU();
  cuda::MemoryPool pool;
  EXPECT_THROW(pool.allocate(size_t(1) << 50), Error);  // 1 PiB
}

TEST(CudaOps, LinearWithF16Weights) {
  ZOFT_REQUIRE_GPU();
  const int64_t M = 7, N = 45, K = 70;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(M * K), w(N * K), bias(N);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  for (float& v : bias) v = dist(rng);
  std::vector<uint16_t> w16(N * K);
  for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_f16(w[i]);
  DeviceVector<float> dx(x), db(bias), dy{std::vector<float>(M * N)};
  DeviceVector<uint16_t> dw(w16);
  cuda::linear(dx.data(), M, K, {dw.data(), DType::F16, N, K}, false, db.data(), dy.data());
  std::vector<float> y = dy.to_host();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double want = bias[n];
      for (int64_t k = 0; k < K; ++k)
        want += double(f16_to_f32(f32_to_f16(x[m * K + k]))) * f16_to_f32(w16[n * K + k]);
      EXPECT_NEAR(y[m * N + n], want, 1e-4) << m << "," << n;
    }
}

TEST(CudaOps, CandidateLogProbs) {
  ZOFT_REQUIRE_GPU();
  const int64_t rows = 3, vocab = 2001, C = 2;
  std::mt19937 rng(6);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> logits(rows * vocab);
  for (float& v : logits) v = dist(rng);
  std::vector<int32_t> cand = {5, 2000, 0, 17, 1999, 1000};
  DeviceVector<float> dl(logits), dout{std::vector<float>(rows * C)};
  DeviceVector<int32_t> dc(cand);
  cuda::candidate_log_probs(dl.data(), rows, vocab, dc.data(), C, dout.data());
  std::vector<float> got = dout.to_host();
  for (int64_t r = 0; r < rows; ++r) {
    double max = -INFINITY, sum = 0;
    for (int64_t i = 0; i < vocab; ++i) max = std::max(max, double(logits[r * vocab + i]));
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(logits[r * vocab + i] - max);
    for (int64_t c = 0; c < C; ++c)
      EXPECT_NEAR(got[r * C + c], logits[r * vocab + cand[r * C + c]] - (std::log(sum) + max),
                  1e-5);
  }
  std::vector<int32_t> bad = {5, 2001, 0, 1, 2, 3};
  DeviceVector<int32_t> dbad(bad);
  try {
    cuda::candidate_log_probs(dl.data(), rows, vocab, dbad.data(), C, dout.data());
    ADD_FAILURE() << "candidate 2001 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2001"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zoft::testing
