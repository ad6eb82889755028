// linear (f32 and bf16 weights, [N,K] and [K,N] layouts, bias) against the double reference.
#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "op_test_util.h"
#include "reference.h"

namespace zoft::testing {
namespace {

class LinearTest : public BackendTest {
 protected:
  // One case: random x, W, bias; f32 and bf16 weights, both layouts.
  void check(int64_t M, int64_t N, int64_t K, bool with_bias) {
    std::vector<float> x = uniform(M * K), w = uniform(N * K), bias = uniform(N);
    const float* b = with_bias ? bias.data() : nullptr;
    for (bool kn : {false, true}) {
      // The same values in both layouts: w_kn[k][n] = w[n][k].
      std::vector<float> w_used = w;
      if (kn)
        for (int64_t n = 0; n < N; ++n)
          for (int64_t k = 0; k < K; ++k) w_used[k * N + n] = w[n * K + k];
      const std::string what = "M=" + std::to_string(M) + " N=" + std::to_string(N) +
                               " K=" + std::to_string(K) + (kn ? " [K,N]" : " [N,K]") +
                               (with_bias ? " +bias" : "");
      // |x|, |w| <= 1: f32 sums of K products stay within 1e-5 sqrt(K).
      const double atol = 1e-5 * std::sqrt(double(K)) + 1e-6;

      Tensor wt(w_used.data(), DType::F32, {kn ? K : N, kn ? N : K});
      std::vector<float> y(M * N, NAN);
      be().linear(x.data(), M, K, wt, kn, b, y.data());
      expect_close(y, reference::linear(to_double(x), M, K, to_double(w_used), kn, N, b), atol, 0,
                   "f32 " + what);

      std::vector<uint16_t> wb = to_bf16(w_used);
      Tensor wbt(wb.data(), DType::BF16, {kn ? K : N, kn ? N : K});
      std::fill(y.begin(), y.end(), NAN);
      be().linear(x.data(), M, K, wbt, kn, b, y.data());
      expect_close(y, reference::linear(bf16_rounded(x), M, K, bf16_rounded(w_used), kn, N, b),
                   atol, 0, "bf16 " + what);
    }
  }

  // Rows 5..7 computed alone equal the same rows of the whole batch, bit for bit.
  void check_rows_alone(int64_t N, int64_t K, int64_t M);
};

TEST_P(LinearTest, TinyAndOddShapes) {
  check(1, 1, 1, false);
  check(1, 33, 17, true);
  check(7, 50, 31, false);
  check(13, 97, 64, true);
  check(5, 16, 2, true);
}

TEST_P(LinearTest, BlockEdges) {
  check(33, 200, 129, true);   // rows and columns not multiples of the register tile
  check(130, 64, 300, false);  // K over one block of steps (f32 and bf16)
  check(300, 40, 70, true);    // more rows than one sweep
  check(9, 800, 40, false);    // more columns than one packed block
  check(100, 20, 1000, true);  // fewer column panels than threads: split by rows
  check(70, 4200, 24, true);   // wider than oneDNN's whole-width calls: 2048-column blocks
  check(70, 1100, 2200, true);  // amx: W packed in two slices of at most 4 MiB
}

TEST_P(LinearTest, DecodeRow) {
  check(1, 300, 257, true);
  check(2, 129, 768, false);
}

// Uneven splits of rows and column panels over the pool (the default pool has one thread per
// core, which may be 1 or 2 here).
TEST_P(LinearTest, ThreadCounts) {
  for (int threads : {1, 3}) {
    ThreadPool::set_global_threads(threads);
    check(301, 100, 77, true);
    check(2, 70, 33, false);
  }
  ThreadPool::set_global_threads(0);
}

// Data-parallel ranks may run different thread counts: the bits must not change with them.
// Shapes span several row tiles, column panels and K blocks (and oneDNN's 64-row calls, whole
// width and in 2048-column blocks). Not so where OpenBLAS runs the GEMM (the avx2 path, and bf16 on
// avx512): its kernels depend on its thread count (docs/gemm-choice.md), so ranks there must run
// equal counts.
TEST_P(LinearTest, ThreadCountDoesNotChangeBits) {
  auto openblas_runs = [&](DType dtype) {
    const cpu::Isa isa = cpu::active_isa();
    return GetParam().rfind("cpu", 0) == 0 &&
           (isa == cpu::Isa::avx2 || (isa == cpu::Isa::avx512 && dtype == DType::BF16));
  };
  for (auto [M, N, K] :
       {std::tuple<int64_t, int64_t, int64_t>{70, 1100, 1030}, {70, 4200, 130}, {2, 600, 700}}) {
    std::vector<float> x = uniform(M * K), w = uniform(N * K), bias = uniform(N);
    std::vector<uint16_t> wb = to_bf16(w);
    for (DType dtype : {DType::F32, DType::BF16})
      for (bool kn : {false, true}) {
        if (openblas_runs(dtype)) continue;
        const void* data = dtype == DType::F32 ? static_cast<const void*>(w.data()) : wb.data();
        Tensor wt(const_cast<void*>(data), dtype, {kn ? K : N, kn ? N : K});
        std::vector<std::vector<float>> y;
        for (int threads : {1, 2, 3}) {
          ThreadPool::set_global_threads(threads);
          y.emplace_back(M * N);
          be().linear(x.data(), M, K, wt, kn, bias.data(), y.back().data());
        }
        ThreadPool::set_global_threads(0);
        for (size_t t = 1; t < y.size(); ++t)
          for (int64_t i = 0; i < M * N; ++i)
            ASSERT_EQ(y[t][i], y[0][i]) << dtype_name(dtype) << (kn ? " [K,N]" : " [N,K]")
                                        << " M=" << M << " threads=" << t + 1 << " at " << i;
      }
  }
}

TEST_P(LinearTest, RowDoesNotDependOnM) {
  // Data-parallel training splits the rows of one GEMM over ranks; a rank with one or two rows
  // must produce the bits the whole batch produces (tests/dist/rows_test.cc), so every row is
  // summed in the same order whatever M is. K spans several blocks of steps (512 k in f32, 512
  // pairs of k in bf16) and ends in an odd tail. N = 4200 is wider than one oneDNN call.
  for (int64_t N : {83, 4200}) check_rows_alone(N, 2101, 19);
  // Whole 32-k steps and more than 64 rows: the amx kernel reads W in place for the rows alone
  // and packs it for the batch (gemm_amx.cc); both must give the same bits.
  check_rows_alone(83, 1024, 80);
}

void LinearTest::check_rows_alone(int64_t N, int64_t K, int64_t M) {
  std::vector<float> x = uniform(M * K), w = uniform(N * K), bias = uniform(N);
  std::vector<uint16_t> wb = to_bf16(w);
  for (DType dtype : {DType::F32, DType::BF16})
    for (bool kn : {false, true})
      for (const float* b : std::initializer_list<const float*>{nullptr, bias.data()}) {
        const void* data = dtype == DType::F32 ? static_cast<const void*>(w.data()) : wb.data();
        Tensor wt(const_cast<void*>(data), dtype, {kn ? K : N, kn ? N : K});
        std::vector<float> all(M * N);
        be().linear(x.data(), M, K, wt, kn, b, all.data());
        for (int64_t rows : {1, 2, 3}) {
          std::vector<float> part(rows * N);
          be().linear(x.data() + 5 * K, rows, K, wt, kn, b, part.data());
          for (int64_t i = 0; i < rows * N; ++i)
            ASSERT_EQ(part[i], all[5 * N + i])
                << dtype_name(dtype) << " N=" << N << " rows=" << rows << (kn ? " [K,N]" : " [N,K]")
                << (b ? " +bias" : "") << " at " << i;
        }
      }
}

TEST_P(LinearTest, EmptyKGivesBias) {
  std::vector<float> bias = {1, 2, 3}, y(6, NAN);
  Tensor w(nullptr, DType::F32, {3, 0});
  be().linear(nullptr, 2, 0, w, false, bias.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{1, 2, 3, 1, 2, 3}));
}

TEST_P(LinearTest, RejectsMismatchedWeight) {
  std::vector<float> x(8), w(12), y(8);
  Tensor wt(w.data(), DType::F32, {3, 4});
  EXPECT_THROW(be().linear(x.data(), 2, 3, wt, false, nullptr, y.data()), Error);
  std::vector<uint16_t> wh(12);
  Tensor wf16(wh.data(), DType::F16, {3, 4});
  EXPECT_THROW(be().linear(x.data(), 2, 4, wf16, false, nullptr, y.data()), Error);
}

ZOFT_INSTANTIATE_BACKENDS(LinearTest);

}  // namespace
}  // namespace zoft::testing
