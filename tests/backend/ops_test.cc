// The small ops (norms, elementwise, rope, softcap, embedding, cross-entropy) against their
// double references. linear and attention have their own files.
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "op_test_util.h"
#include "reference.h"

namespace zoft::testing {
namespace {

using OpsTest = BackendTest;

TEST_P(OpsTest, LayerNorm) {
  for (int64_t dim : {1, 7, 64, 771}) {
    const int64_t rows = 5;
    std::vector<float> x = uniform(rows * dim, 2.0f, 4.0f);  // mean far from 0
    std::vector<float> gamma = uniform(dim), beta = uniform(dim), out(rows * dim, NAN);
    for (bool with_beta : {false, true}) {
      const float* b = with_beta ? beta.data() : nullptr;
      be().layer_norm(x.data(), gamma.data(), b, out.data(), rows, dim, 1e-5f);
      expect_close(out, reference::layer_norm(x, gamma, b, rows, dim, 1e-5), 1e-5, 1e-5,
                   "layer_norm dim=" + std::to_string(dim));
    }
  }
}

TEST_P(OpsTest, RmsNorm) {
  for (int64_t dim : {1, 17, 576, 1000}) {
    const int64_t rows = 4;
    std::vector<float> x = normal(rows * dim), gamma = uniform(dim), out(rows * dim, NAN);
    for (bool unit_offset : {false, true}) {
      be().rms_norm(x.data(), gamma.data(), out.data(), rows, dim, 1e-6f, unit_offset);
      expect_close(out, reference::rms_norm(x, gamma, rows, dim, 1e-6, unit_offset), 1e-5, 1e-5,
                   "rms_norm dim=" + std::to_string(dim) + (unit_offset ? " unit_offset" : ""));
    }
  }
}

TEST_P(OpsTest, NormInPlace) {
  const int64_t rows = 3, dim = 40;
  std::vector<float> x = normal(rows * dim), gamma = uniform(dim);
  auto want = reference::rms_norm(x, gamma, rows, dim, 1e-6, false);
  be().rms_norm(x.data(), gamma.data(), x.data(), rows, dim, 1e-6f, false);
  expect_close(x, want, 1e-5, 1e-5, "rms_norm in place");
}

TEST_P(OpsTest, AddInplace) {
  for (int64_t n : {0, 1, 17, 100003}) {
    std::vector<float> y = normal(n), x = normal(n);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = double(y[i]) + x[i];
    be().add_inplace(y.data(), x.data(), n);
    expect_close(y, want, 0, 1e-7, "add_inplace n=" + std::to_string(n));
  }
}

// Inputs across the range where each activation changes shape, plus its tails.
static std::vector<float> activation_inputs() {
  std::vector<float> x;
  for (float v = -15.0f; v <= 15.0f; v += 0.0137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-6f, -1e-6f, 1e-3f, -1e-3f, 0.19f, 0.2f, 0.21f, 0.75f, -0.75f,
                  0.53f, -0.53f, 30.0f, -30.0f, 80.0f, -80.0f, 100.0f, -100.0f})
    x.push_back(v);
  return x;
}

TEST_P(OpsTest, Activations) {
  for (Activation kind :
       {Activation::ReLU, Activation::GeluErf, Activation::GeluTanh, Activation::SiLU}) {
    std::vector<float> x = activation_inputs();
    std::vector<double> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = reference::activation(kind, x[i]);
    be().activation(kind, x.data(), int64_t(x.size()));
    // Relative accuracy everywhere, also in the tiny negative tails of GELU and SiLU (where an
    // f32 rounding of the argument alone costs ~1e-6: the tails are steep).
    expect_close(x, want, 1e-30, 1e-5, activation_name(kind));
  }
}

TEST_P(OpsTest, GatedActivation) {
  const int64_t rows = 3, dim = 37, stride = 2 * dim + 5;  // fused [gate | up | pad] rows
  std::vector<float> fused = uniform(rows * stride, -6.0f, 6.0f);
  for (Activation kind : {Activation::GeluTanh, Activation::SiLU, Activation::GeluErf}) {
    std::vector<float> out(rows * dim, NAN);
    std::vector<double> want(rows * dim);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < dim; ++j)
        want[r * dim + j] =
            reference::activation(kind, fused[r * stride + j]) * fused[r * stride + dim + j];
    be().gated_activation(kind, fused.data(), fused.data() + dim, stride, out.data(), rows, dim);
    expect_close(out, want, 1e-30, 1e-5, std::string("gated ") + activation_name(kind));
  }
}

TEST_P(OpsTest, Rope) {
  struct Case {
    int64_t head_dim, rotary_dim;
    float scaling;
  };
  for (Case c :
       {Case{64, 64, 1.0f}, Case{80, 80, 1.0f}, Case{64, 32, 1.0f}, Case{128, 128, 0.7f}}) {
    const int64_t rows = 6, heads = 3;
    std::vector<float> x = normal(rows * heads * c.head_dim);
    std::vector<int32_t> positions = {0, 1, 7, 100, 2047, 4095};
    std::vector<float> inv_freq(c.rotary_dim / 2);
    for (size_t i = 0; i < inv_freq.size(); ++i)
      inv_freq[i] = float(std::pow(10000.0, -2.0 * double(i) / double(c.rotary_dim)));
    auto want =
        reference::rope(x, positions, rows, heads, c.head_dim, c.rotary_dim, inv_freq, c.scaling);
    be().rope(x.data(), positions.data(), rows, heads, c.head_dim, c.rotary_dim, inv_freq.data(),
              c.scaling);
    expect_close(x, want, 1e-6, 1e-5, "rope head_dim=" + std::to_string(c.head_dim));
  }
}

TEST_P(OpsTest, Softcap) {
  for (float cap : {30.0f, 50.0f}) {
    std::vector<float> x = activation_inputs();
    for (float& v : x) v *= 7.0f;
    std::vector<double> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = cap * std::tanh(double(x[i]) / cap);
    be().softcap(x.data(), int64_t(x.size()), cap);
    expect_close(x, want, 1e-30, 2e-6, "softcap " + std::to_string(cap));
  }
}

TEST_P(OpsTest, Embedding) {
  const int64_t vocab = 11, dim = 37;
  std::vector<float> table = normal(vocab * dim);
  std::vector<int32_t> ids = {0, 10, 3, 3, 7};
  const float scale = std::sqrt(float(dim));  // Gemma scales by sqrt(hidden)
  std::vector<uint16_t> bf16(table.size()), f16(table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    bf16[i] = f32_to_bf16(table[i]);
    f16[i] = f32_to_f16(table[i]);
  }
  struct Variant {
    Tensor view;
    const char* what;
  };
  for (const Variant& t : {Variant{Tensor(table.data(), DType::F32, {vocab, dim}), "f32"},
                           Variant{Tensor(bf16.data(), DType::BF16, {vocab, dim}), "bf16"},
                           Variant{Tensor(f16.data(), DType::F16, {vocab, dim}), "f16"}}) {
    std::vector<float> out(ids.size() * dim, NAN);
    std::vector<double> want(out.size());
    for (size_t r = 0; r < ids.size(); ++r)
      for (int64_t j = 0; j < dim; ++j) {
        size_t i = size_t(ids[r] * dim + j);
        double value = t.view.dtype == DType::F32    ? table[i]
                       : t.view.dtype == DType::BF16 ? bf16_to_f32(bf16[i])
                                                     : f16_to_f32(f16[i]);
        want[r * dim + j] = value * scale;
      }
    be().embedding(t.view, ids.data(), int64_t(ids.size()), scale, out.data());
    expect_close(out, want, 0, 1e-7, std::string("embedding ") + t.what);
  }
}

TEST_P(OpsTest, EmbeddingRejectsOutOfRangeIds) {
  std::vector<float> table(4 * 3), out(3 * 2);
  Tensor view(table.data(), DType::F32, {4, 3});
  for (int32_t bad : {4, -1, 1 << 30}) {
    std::vector<int32_t> ids = {0, bad};
    try {
      be().embedding(view, ids.data(), 2, 1.0f, out.data());
      ADD_FAILURE() << "id " << bad << " accepted";
    } catch (const Error& e) {
      std::string message = e.what();
      EXPECT_NE(message.find(std::to_string(bad)), std::string::npos) << message;
      EXPECT_NE(message.find("4 tokens"), std::string::npos) << message;
    }
  }
}

TEST_P(OpsTest, CrossEntropy) {
  const int64_t rows = 6, vocab = 1003;
  std::vector<float> logits = normal(rows * vocab, 3.0f);
  for (int64_t i = 0; i < vocab; ++i) {
    logits[2 * vocab + i] += 1000.0f;  // would overflow exp without the max shift
    logits[3 * vocab + i] -= 1000.0f;
  }
  std::vector<int32_t> targets = {0, 1002, 17, 500, -1, 999};
  std::vector<float> loss(rows, NAN);
  be().cross_entropy(logits.data(), targets.data(), rows, vocab, loss.data());
  expect_close(loss, reference::cross_entropy(logits, targets, rows, vocab), 1e-5, 1e-5,
               "cross_entropy");
  EXPECT_EQ(loss[4], 0.0f);
  targets[0] = int32_t(vocab);
  EXPECT_THROW(be().cross_entropy(logits.data(), targets.data(), rows, vocab, loss.data()), Error);
}

// Data-parallel ranks split a batch's rows and may run different thread counts: on every CPU
// path a row's bits must not depend on how many rows come with it or on the thread count.
TEST_P(OpsTest, RowBitsDoNotDependOnRowsOrThreads) {
  if (GetParam().rfind("cpu", 0) != 0) GTEST_SKIP() << "a CPU guarantee";
  const int64_t rows = 40, dim = 1000, vocab = 3001;
  std::vector<float> x = normal(rows * dim), gamma = uniform(dim), beta = uniform(dim);
  std::vector<float> fused = normal(rows * 2 * dim, 2.0f), logits = normal(rows * vocab, 3.0f);
  std::vector<int32_t> targets(rows);
  for (int64_t r = 0; r < rows; ++r) targets[r] = int32_t(r * 71 % vocab);
  // Each op over rows [r0, r0 + n): the outputs, concatenated.
  auto run = [&](int64_t r0, int64_t n, int threads) {
    ThreadPool::set_global_threads(threads);
    std::vector<float> ln(n * dim), rms(n * dim), act(n * dim), loss(n);
    be().layer_norm(x.data() + r0 * dim, gamma.data(), beta.data(), ln.data(), n, dim, 1e-5f);
    be().rms_norm(x.data() + r0 * dim, gamma.data(), rms.data(), n, dim, 1e-6f, true);
    be().gated_activation(Activation::GeluTanh, fused.data() + r0 * 2 * dim,
                          fused.data() + r0 * 2 * dim + dim, 2 * dim, act.data(), n, dim);
    be().cross_entropy(logits.data() + r0 * vocab, targets.data() + r0, n, vocab, loss.data());
    ThreadPool::set_global_threads(0);
    std::vector<std::vector<float>> out = {ln, rms, act, loss};
    return out;
  };
  const auto all = run(0, rows, 2);
  const char* names[] = {"layer_norm", "rms_norm", "gated_activation", "cross_entropy"};
  for (int threads : {1, 3})
    for (int64_t n : {1, 3}) {
      const auto part = run(7, n, threads);
      for (size_t op = 0; op < part.size(); ++op) {
        const size_t width = all[op].size() / rows;
        for (size_t i = 0; i < part[op].size(); ++i)
          ASSERT_EQ(part[op][i], all[op][7 * width + i])
              << names[op] << " rows=" << n << " threads=" << threads << " at " << i;
      }
    }
}

ZOFT_INSTANTIATE_BACKENDS(OpsTest);

}  // namespace
}  // namespace zoft::testing
