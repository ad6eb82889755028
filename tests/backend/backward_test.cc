// The CPU backward ops (backend/ops_backward.h) against the double references of
// backward_reference.h; each test first proves its reference against central finite differences
// of the double forward reference (reference.h) on a small shape. Attention has its own file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/ops_backward.h"
#include "backward_reference.h"
#include "core/dtype.h"
#include "core/error.h"
#include "op_test_util.h"
#include "reference.h"

namespace zoft::testing {
namespace backward_test {  // named: unity builds share one anonymous namespace

using namespace zoft::backward_reference;

class BackwardTest : public ::testing::Test, public RandomInputs {
 protected:
  BackwardTest() : RandomInputs(4321) {}
};

// The backward ops on each kernel path (the references above are path-free).
class BackwardPathTest : public KernelPathTest, public RandomInputs {
 protected:
  BackwardPathTest() : RandomInputs(4321) {}
};
ZOFT_INSTANTIATE_KERNEL_PATHS(BackwardPathTest);

// ---- linear -----------------------------------------------------------------------------------

TEST_F(BackwardTest, LinearReferenceMatchesFiniteDifferences) {
  const int64_t M = 3, N = 4, K = 5;
  for (bool kn : {false, true}) {
    std::vector<float> x = uniform(M * K), w = uniform(N * K), bias = uniform(N),
                       dy = uniform(M * N);
    auto loss = [&](const std::vector<float>& xs, const std::vector<float>& ws,
                    const std::vector<float>& bs) {
      return dot(dy, reference::linear(widen(xs), M, K, widen(ws), kn, N, bs.data()));
    };
    auto fd_x = finite_difference(x, [&](const std::vector<float>& v) { return loss(v, w, bias); });
    auto fd_w = finite_difference(w, [&](const std::vector<float>& v) { return loss(x, v, bias); });
    auto fd_b = finite_difference(bias, [&](const std::vector<float>& v) { return loss(x, w, v); });
    expect_relative(linear_dx(widen(dy), M, N, widen(w), kn, K), fd_x, 1e-9, "dx");
    expect_relative(linear_dw(dy, x, M, N, K, kn), fd_w, 1e-9, "dw");
    std::vector<double> db(N, 0.0);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) db[n] += dy[m * N + n];
    expect_relative(db, fd_b, 1e-9, "dbias");
  }
}

// The linear backward runs on the GEMM kernels: once per kernel path (backend/cpu/isa.h), each
// skipped where this machine cannot run it.
class LinearBackwardTest : public ::testing::TestWithParam<cpu::Isa>, public RandomInputs {
 protected:
  LinearBackwardTest() : RandomInputs(4321) {}
  void SetUp() override {
    const std::string why = cpu::isa_unavailable(GetParam());
    if (!why.empty()) GTEST_SKIP() << why;
    scope_ = std::make_unique<ScopedIsa>(GetParam());
  }

 private:
  std::unique_ptr<ScopedIsa> scope_;
};

INSTANTIATE_TEST_SUITE_P(Paths, LinearBackwardTest, ::testing::ValuesIn(cpu::all_isas()),
                         [](const ::testing::TestParamInfo<cpu::Isa>& info) {
                           return std::string(cpu::isa_name(info.param));
                         });

TEST_P(LinearBackwardTest, MatchesReference) {
  struct Shape {
    int64_t M, N, K;
  };
  for (Shape sh : {Shape{1, 7, 9}, Shape{2, 33, 17}, Shape{37, 50, 67}, Shape{130, 96, 81}}) {
    const int64_t M = sh.M, N = sh.N, K = sh.K;
    for (DType dtype : {DType::F32, DType::BF16})
      for (bool kn : {false, true})
        for (bool with_bias : {false, true}) {
          const std::string what = "M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                   " K=" + std::to_string(K) + " " + dtype_name(dtype) +
                                   (kn ? " [K,N]" : " [N,K]") + (with_bias ? " bias" : "");
          std::vector<float> x = uniform(M * K), dy = uniform(M * N), w = uniform(N * K);
          std::vector<uint16_t> w16 = to_bf16(w);
          const bool bf16 = dtype == DType::BF16;
          Tensor weight(bf16 ? static_cast<void*>(w16.data()) : w.data(), dtype,
                        {kn ? K : N, kn ? N : K});
          // dx: bf16 weights multiply bf16-rounded operands, as the forward does.
          std::vector<float> dx(M * K, NAN);
          cpu::linear_backward_input(dy.data(), M, N, weight, kn, dx.data());
          auto want_dx = bf16 ? linear_dx(bf16_rounded(dy), M, N, bf16_rounded(w), kn, K)
                              : linear_dx(widen(dy), M, N, widen(w), kn, K);
          expect_relative(dx, want_dx, 1e-6, "dx " + what);

          // dweight and dbias accumulate onto what is there.
          std::vector<float> dw = uniform(N * K), db = uniform(N);
          std::vector<double> want_dw = linear_dw(dy, x, M, N, K, kn),
                              want_db(db.begin(), db.end());
          for (size_t i = 0; i < dw.size(); ++i) want_dw[i] += dw[i];
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) want_db[n] += dy[m * N + n];
          cpu::linear_backward_weight(dy.data(), x.data(), M, N, K, kn, dw.data(),
                                      with_bias ? db.data() : nullptr);
          expect_relative(dw, want_dw, 1e-6, "dweight " + what);
          if (with_bias) expect_relative(db, want_db, 1e-6, "dbias " + what);
        }
  }
}

// An operand wider than the transposition scratch (~4 M floats) is transposed block by block.
TEST_P(LinearBackwardTest, WeightWideOperand) {
  const int64_t M = 3000, wide = 1500, narrow = 7;
  for (bool kn : {false, true}) {
    const int64_t N = kn ? narrow : wide, K = kn ? wide : narrow;  // the transposed one is wide
    std::vector<float> x = uniform(M * K), dy = uniform(M * N), dw(N * K, 0.0f);
    cpu::linear_backward_weight(dy.data(), x.data(), M, N, K, kn, dw.data(), nullptr);
    expect_relative(dw, linear_dw(dy, x, M, N, K, kn), 1e-6, kn ? "[K,N]" : "[N,K]");
  }
}

TEST_F(BackwardTest, LinearBackwardRejectsMismatchedWeight) {
  std::vector<float> w(12), dy(4), dx(6);
  Tensor weight(w.data(), DType::F32, {4, 3});
  EXPECT_THROW(cpu::linear_backward_input(dy.data(), 1, 3, weight, false, dx.data()), Error);
}

// ---- norms ------------------------------------------------------------------------------------

TEST_F(BackwardTest, NormReferencesMatchFiniteDifferences) {
  const int64_t rows = 3, dim = 6;
  const float eps = 1e-5f;
  std::vector<float> x = uniform(rows * dim, -1.0f, 2.0f), gamma = uniform(dim),
                     beta = uniform(dim), dy = uniform(rows * dim);
  {  // layer_norm
    auto loss = [&](const std::vector<float>& xs, const std::vector<float>& gs,
                    const std::vector<float>& bs) {
      return dot(dy, reference::layer_norm(xs, gs, bs.data(), rows, dim, double(eps)));
    };
    NormGrads g = norm(x, gamma, 0.0, dy, rows, dim, double(eps), true);
    expect_relative(g.dx, finite_difference(x, [&](auto& v) { return loss(v, gamma, beta); }), 1e-6,
                    "layer_norm dx");
    expect_relative(g.dgamma, finite_difference(gamma, [&](auto& v) { return loss(x, v, beta); }),
                    1e-6, "layer_norm dgamma");
    expect_relative(g.dbeta, finite_difference(beta, [&](auto& v) { return loss(x, gamma, v); }),
                    1e-6, "layer_norm dbeta");
  }
  for (bool unit_offset : {false, true}) {
    auto loss = [&](const std::vector<float>& xs, const std::vector<float>& gs) {
      return dot(dy, reference::rms_norm(xs, gs, rows, dim, double(eps), unit_offset));
    };
    NormGrads g = norm(x, gamma, unit_offset ? 1.0 : 0.0, dy, rows, dim, double(eps), false);
    expect_relative(g.dx, finite_difference(x, [&](auto& v) { return loss(v, gamma); }), 1e-6,
                    "rms_norm dx");
    expect_relative(g.dgamma, finite_difference(gamma, [&](auto& v) { return loss(x, v); }), 1e-6,
                    "rms_norm dgamma");
  }
}

TEST_P(BackwardPathTest, LayerNormBackward) {
  const float eps = 1e-5f;
  for (int64_t dim : {1, 7, 64, 771})
    for (int64_t rows : {1, 5, 67}) {
      std::vector<float> x = uniform(rows * dim, 2.0f, 4.0f), gamma = uniform(dim),
                         dy = uniform(rows * dim);
      NormGrads want = norm(x, gamma, 0.0, dy, rows, dim, double(eps), true);
      for (bool with_beta : {false, true}) {
        const std::string what = "dim=" + std::to_string(dim) + " rows=" + std::to_string(rows) +
                                 (with_beta ? " beta" : "");
        std::vector<float> dx(rows * dim, NAN), dgamma = uniform(dim), dbeta = uniform(dim);
        std::vector<double> want_dgamma = want.dgamma, want_dbeta = want.dbeta;
        for (int64_t i = 0; i < dim; ++i) {
          want_dgamma[i] += dgamma[i];
          want_dbeta[i] += dbeta[i];
        }
        cpu::layer_norm_backward(x.data(), gamma.data(), dy.data(), dx.data(), dgamma.data(),
                                 with_beta ? dbeta.data() : nullptr, rows, dim, eps);
        if (dim > 1) expect_relative(dx, want.dx, 1e-5, "layer_norm dx " + what);
        expect_relative(dgamma, want_dgamma, 1e-5, "layer_norm dgamma " + what);
        if (with_beta) expect_relative(dbeta, want_dbeta, 1e-5, "layer_norm dbeta " + what);
      }
      // No parameter gradient wanted.
      std::vector<float> dx(rows * dim, NAN);
      cpu::layer_norm_backward(x.data(), gamma.data(), dy.data(), dx.data(), nullptr, nullptr, rows,
                               dim, eps);
      if (dim > 1) expect_relative(dx, want.dx, 1e-5, "layer_norm dx only");
    }
}

TEST_P(BackwardPathTest, RmsNormBackward) {
  const float eps = 1e-6f;
  for (int64_t dim : {1, 17, 576, 1000})
    for (int64_t rows : {1, 4, 33})
      for (bool unit_offset : {false, true}) {
        const std::string what = "dim=" + std::to_string(dim) + " rows=" + std::to_string(rows) +
                                 (unit_offset ? " unit_offset" : "");
        std::vector<float> x = normal(rows * dim), gamma = uniform(dim), dy = uniform(rows * dim);
        NormGrads want = norm(x, gamma, unit_offset ? 1.0 : 0.0, dy, rows, dim, double(eps), false);
        std::vector<float> dx(rows * dim, NAN), dgamma = uniform(dim);
        for (int64_t i = 0; i < dim; ++i) want.dgamma[i] += dgamma[i];
        cpu::rms_norm_backward(x.data(), gamma.data(), dy.data(), dx.data(), dgamma.data(), rows,
                               dim, eps, unit_offset);
        // dim 1: the exact dx is eps-sized, below the cancellation of the f32 formula
        if (dim > 1) expect_relative(dx, want.dx, 1e-5, "rms_norm dx " + what);
        expect_relative(dgamma, want.dgamma, 1e-5, "rms_norm dgamma " + what);
      }
}

// ---- activations ------------------------------------------------------------------------------

constexpr Activation kActivations[] = {Activation::ReLU, Activation::GeluErf, Activation::GeluTanh,
                                       Activation::SiLU};

TEST_F(BackwardTest, ActivationSlopesMatchFiniteDifferences) {
  std::vector<float> x = uniform(200, -8.0f, 8.0f);
  for (float& v : x)
    if (std::abs(v) < 0.01f) v = 0.5f;  // keep ReLU's kink out of the difference quotient
  for (Activation kind : kActivations) {
    std::vector<double> want(x.size()), fd(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      want[i] = activation_slope(kind, x[i]);
      const double h = 1e-4;
      fd[i] =
          (reference::activation(kind, x[i] + h) - reference::activation(kind, x[i] - h)) / (2 * h);
    }
    expect_relative(want, fd, 1e-7, activation_name(kind));
  }
}

TEST_P(BackwardPathTest, ActivationBackward) {
  for (Activation kind : kActivations)
    for (int64_t n : {1, 17, 100003}) {
      std::vector<float> x = uniform(n, -12.0f, 12.0f), dy = uniform(n);
      std::vector<double> want(n);
      for (int64_t i = 0; i < n; ++i) want[i] = dy[i] * activation_slope(kind, x[i]);
      std::vector<float> dx(n, NAN);
      cpu::activation_backward(kind, x.data(), dy.data(), dx.data(), n);
      const std::string what = std::string(activation_name(kind)) + " n=" + std::to_string(n);
      expect_relative(dx, want, 5e-6, what);
      cpu::activation_backward(kind, x.data(), dy.data(), dy.data(), n);  // dx aliases dy
      expect_relative(dy, want, 5e-6, what + " in place");
    }
}

TEST_P(BackwardPathTest, GatedActivationBackwardFusedRows) {
  const int64_t rows = 9, dim = 37, stride = 2 * dim;
  for (Activation kind : kActivations) {
    // gate | up in one [rows, 2 dim] buffer, and their gradients likewise.
    std::vector<float> fused = uniform(rows * stride, -6.0f, 6.0f), dy = uniform(rows * dim);
    std::vector<float> dfused(rows * stride, NAN);
    cpu::gated_activation_backward(kind, fused.data(), fused.data() + dim, stride, dy.data(),
                                   dfused.data(), dfused.data() + dim, stride, rows, dim);
    std::vector<double> want(rows * stride);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < dim; ++j) {
        const double g = fused[r * stride + j], u = fused[r * stride + dim + j],
                     d = dy[r * dim + j];
        want[r * stride + j] = d * u * activation_slope(kind, g);
        want[r * stride + dim + j] = d * reference::activation(kind, g);
      }
    expect_relative(dfused, want, 5e-6, std::string("gated ") + activation_name(kind));
  }
}

// ---- rope, softcap ----------------------------------------------------------------------------

TEST_P(BackwardPathTest, RopeBackward) {
  const int64_t heads = 3, head_dim = 16;
  for (int64_t rotary_dim : {16, 8})
    for (float scaling : {1.0f, 1.3f}) {
      const int64_t rows = 5;
      std::vector<int32_t> positions = {0, 1, 7, 300, 2047};
      std::vector<float> inv_freq(rotary_dim / 2);
      for (int64_t i = 0; i < rotary_dim / 2; ++i)
        inv_freq[i] = float(std::pow(10000.0, -2.0 * double(i) / double(rotary_dim)));
      std::vector<float> dy = uniform(rows * heads * head_dim),
                         x = uniform(rows * heads * head_dim);
      auto want =
          rope_backward(dy, positions, rows, heads, head_dim, rotary_dim, inv_freq, scaling);
      const std::string what =
          "rotary_dim=" + std::to_string(rotary_dim) + " scaling=" + std::to_string(scaling);
      auto fd = finite_difference(x, [&](const std::vector<float>& v) {
        return dot(dy, reference::rope(v, positions, rows, heads, head_dim, rotary_dim, inv_freq,
                                       scaling));
      });
      expect_relative(want, fd, 1e-7, "reference " + what);
      cpu::rope_backward(dy.data(), positions.data(), rows, heads, head_dim, rotary_dim,
                         inv_freq.data(), scaling);
      expect_relative(dy, want, 1e-6, what);
    }
}

TEST_P(BackwardPathTest, SoftcapBackward) {
  const float cap = 30.0f;
  for (int64_t n : {5, 100003}) {
    std::vector<float> x = uniform(n, -90.0f, 90.0f), dy = uniform(n), y = x;
    cpu::softcap(y.data(), n, cap);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) {
      const double t = std::tanh(double(x[i]) / cap);
      want[i] = dy[i] * (1 - t * t);
    }
    if (n == 5) {  // prove the reference against the forward's definition
      auto fd = finite_difference(x, [&](const std::vector<float>& v) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += dy[i] * cap * std::tanh(double(v[i]) / cap);
        return s;
      });
      expect_relative(want, fd, 1e-7, "softcap reference");
    }
    std::vector<float> dx(n, NAN);
    cpu::softcap_backward(y.data(), dy.data(), dx.data(), n, cap);
    expect_relative(dx, want, 1e-5, "softcap n=" + std::to_string(n));
    cpu::softcap_backward(y.data(), dy.data(), dy.data(), n, cap);
    expect_relative(dy, want, 1e-5, "softcap in place");
  }
}

// ---- embedding, cross entropy -----------------------------------------------------------------

TEST_P(BackwardPathTest, EmbeddingBackwardRepeatedAndNegativeIds) {
  const int64_t vocab = 11, dim = 300;
  const float scale = 2.5f;
  std::vector<int32_t> ids = {3, 7, 3, -1, 0, 10, 3, -100, 7};
  const int64_t rows = int64_t(ids.size());
  std::vector<float> dout = uniform(rows * dim), dtable = uniform(vocab * dim);
  std::vector<double> want(dtable.begin(), dtable.end());
  for (int64_t r = 0; r < rows; ++r)
    if (ids[r] >= 0)
      for (int64_t c = 0; c < dim; ++c) want[ids[r] * dim + c] += double(scale) * dout[r * dim + c];
  cpu::embedding_backward(dout.data(), ids.data(), rows, dim, scale, dtable.data());
  expect_relative(dtable, want, 1e-6, "embedding");
}

TEST_F(BackwardTest, CrossEntropyReferenceMatchesFiniteDifferences) {
  const int64_t rows = 3, vocab = 7;
  std::vector<float> logits = uniform(rows * vocab, -3.0f, 3.0f), dloss = uniform(rows);
  std::vector<int32_t> targets = {2, -100, 6};
  auto fd = finite_difference(logits, [&](const std::vector<float>& v) {
    return dot(dloss, reference::cross_entropy(v, targets, rows, vocab));
  });
  expect_relative(cross_entropy(logits, targets, dloss, rows, vocab), fd, 1e-6, "reference");
}

TEST_P(BackwardPathTest, CrossEntropyBackward) {
  for (int64_t vocab : {1, 33, 50000}) {
    const int64_t rows = 6;
    std::vector<float> logits = uniform(rows * vocab, -20.0f, 20.0f), dloss = uniform(rows);
    std::vector<int32_t> targets = {0, -100, int32_t(vocab - 1), int32_t(vocab / 2), -1, 0};
    auto want = cross_entropy(logits, targets, dloss, rows, vocab);
    std::vector<float> dlogits(rows * vocab, NAN);
    cpu::cross_entropy_backward(logits.data(), targets.data(), dloss.data(), rows, vocab,
                                dlogits.data());
    const std::string what = "vocab=" + std::to_string(vocab);
    expect_relative(dlogits, want, 1e-6, what);
    for (int64_t i = 0; i < vocab; ++i) EXPECT_EQ(dlogits[1 * vocab + i], 0.0f) << "ignored row";
    // dlogits aliases logits.
    cpu::cross_entropy_backward(logits.data(), targets.data(), dloss.data(), rows, vocab,
                                logits.data());
    expect_relative(logits, want, 1e-6, what + " in place");
  }
}

TEST_F(BackwardTest, CrossEntropyBackwardRejectsOutOfRangeTarget) {
  std::vector<float> logits(8), dloss(2, 1.0f), dlogits(8);
  std::vector<int32_t> targets = {1, 4};
  EXPECT_THROW(cpu::cross_entropy_backward(logits.data(), targets.data(), dloss.data(), 2, 4,
                                           dlogits.data()),
               Error);
}

}  // namespace backward_test
}  // namespace zoft::testing
