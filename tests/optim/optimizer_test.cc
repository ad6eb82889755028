// AdamW / SGD / clipping against a double-precision reference; bf16 master weights; thread-count
// independence; bad input.
#include "optim/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "optim/optim_test_util.h"

namespace zoft::optim {
namespace {

using namespace testing;

std::vector<float> random_floats(size_t n, double scale, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<float> out(n);
  for (float& x : out) x = float(normal(rng));
  return out;
}

// The textbook algorithms in double (torch.optim.AdamW / SGD, clip_grad_norm_), on plain vectors.
struct Reference {
  OptimizerOptions o;
  double max_norm;
  std::vector<std::vector<double>> w, m, v;
  std::vector<bool> decay;
  int64_t t = 0;

  // Returns the pre-clip norm.
  double step(std::vector<std::vector<double>> g) {
    double sq = 0;
    for (const auto& gi : g)
      for (double x : gi) sq += x * x;
    double norm = std::sqrt(sq);
    if (max_norm > 0 && max_norm / (norm + 1e-6) < 1)
      for (auto& gi : g)
        for (double& x : gi) x *= max_norm / (norm + 1e-6);
    double lr = o.lr * o.schedule.factor(t);
    for (size_t p = 0; p < w.size(); ++p) {
      double wd = decay[p] ? o.weight_decay : 0.0;
      for (size_t i = 0; i < w[p].size(); ++i) {
        double gi = g[p][i];
        if (o.method == Method::kAdamW) {
          w[p][i] *= 1 - lr * wd;
          m[p][i] = o.beta1 * m[p][i] + (1 - o.beta1) * gi;
          v[p][i] = o.beta2 * v[p][i] + (1 - o.beta2) * gi * gi;
          double m_hat = m[p][i] / (1 - std::pow(o.beta1, double(t + 1)));
          double v_hat = v[p][i] / (1 - std::pow(o.beta2, double(t + 1)));
          w[p][i] -= lr * m_hat / (std::sqrt(v_hat) + o.eps);
        } else {
          gi += wd * w[p][i];
          if (o.momentum != 0) {
            m[p][i] = t == 0 ? gi : o.momentum * m[p][i] + (1 - o.dampening) * gi;
            gi = o.nesterov ? gi + o.momentum * m[p][i] : m[p][i];
          }
          w[p][i] -= lr * gi;
        }
      }
    }
    ++t;
    return norm;
  }
};

// Ten steps of `options` with clipping at max_norm on a matrix (decayed), a bias and a norm
// weight, in float32 and in double; every parameter within tolerance after every step.
void check_against_reference(const OptimizerOptions& options, double max_norm, double tolerance) {
  std::mt19937_64 rng(7);
  TestParameters params;
  params.add("w", DType::F32, {12, 20}, true, random_floats(240, 0.5, rng));
  params.add("b", DType::F32, {20}, false, random_floats(20, 0.1, rng));
  params.add("norm", DType::F32, {12}, false, random_floats(12, 0.3, rng));
  Reference ref{options, max_norm, {}, {}, {}, {}};
  for (size_t p = 0; p < params.refs.size(); ++p) {
    auto values = params.values(p);
    ref.w.emplace_back(values.begin(), values.end());
    ref.m.emplace_back(values.size(), 0.0);
    ref.v.emplace_back(values.size(), 0.0);
    ref.decay.push_back(params.refs[p].decay);
  }
  Optimizer optimizer(options, params.refs);
  const double scales[] = {0.02, 0.3, 0.05, 1.5, 0.01, 0.4, 0.08, 2.0, 0.03, 0.2};
  for (int t = 0; t < 10; ++t) {
    std::vector<Buffer> grads;
    std::vector<std::vector<double>> grads_d;
    for (const auto& r : params.refs) {
      auto g = random_floats(size_t(r.tensor.numel()), scales[t], rng);
      grads_d.emplace_back(g.begin(), g.end());
      grads.push_back(buffer_of(g));
    }
    double norm = clip_grad_norm(grads, max_norm);
    double ref_norm = ref.step(grads_d);
    EXPECT_NEAR(norm, ref_norm, 1e-12 * ref_norm) << "step " << t;
    EXPECT_DOUBLE_EQ(optimizer.lr_at(t), options.lr * options.schedule.factor(t));
    optimizer.step(params.refs, grads);
    EXPECT_EQ(optimizer.step_count(), t + 1);
    for (size_t p = 0; p < params.refs.size(); ++p) {
      auto got = params.values(p);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref.w[p][i], tolerance * std::max(1.0, std::abs(ref.w[p][i])))
            << params.refs[p].name << "[" << i << "] after step " << t;
    }
  }
}

TEST(OptimizerReference, AdamWLinearWarmupClipped) {
  OptimizerOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  o.schedule = {ScheduleKind::Linear, 3, 10};
  check_against_reference(o, 1.0, 2e-6);
}

TEST(OptimizerReference, AdamWCosineOtherBetas) {
  OptimizerOptions o;
  o.lr = 5e-3;
  o.weight_decay = 0.01;
  o.beta1 = 0.8;
  o.beta2 = 0.95;
  o.eps = 1e-6;
  o.schedule = {ScheduleKind::Cosine, 2, 10};
  check_against_reference(o, 0.5, 2e-6);
}

TEST(OptimizerReference, SgdMomentumDampening) {
  OptimizerOptions o;
  o.method = Method::kSgd;
  o.lr = 0.05;
  o.weight_decay = 0.01;
  o.momentum = 0.9;
  o.dampening = 0.1;
  o.schedule = {ScheduleKind::Constant, 2, 10};
  check_against_reference(o, 1.0, 2e-6);
}

TEST(OptimizerReference, SgdNesterovAndPlain) {
  OptimizerOptions o;
  o.method = Method::kSgd;
  o.lr = 0.02;
  o.momentum = 0.5;
  o.nesterov = true;
  o.schedule = {ScheduleKind::Linear, 0, 10};
  check_against_reference(o, 0.0, 2e-6);  // no clipping
  o.momentum = 0;
  o.nesterov = false;
  o.weight_decay = 0.1;
  check_against_reference(o, 2.0, 2e-6);
}

TEST(ClipGradNorm, ScalesOnlyAboveTheLimit) {
  std::vector<Buffer> grads;
  grads.push_back(buffer_of({3.0f, 0.0f}));
  grads.push_back(buffer_of({4.0f}));
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads, 10.0), 5.0);  // below: unchanged
  EXPECT_EQ(floats_of(grads[0]), (std::vector<float>{3.0f, 0.0f}));
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads, 0.0), 5.0);  // 0: measure only
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads, 1.0), 5.0);
  float coef = float(1.0 / (5.0 + 1e-6));
  EXPECT_EQ(floats_of(grads[0]), (std::vector<float>{3.0f * coef, 0.0f}));
  EXPECT_EQ(floats_of(grads[1]), (std::vector<float>{4.0f * coef}));
  grads[1].as<float>()[0] = NAN;  // a non-finite norm is returned, nothing is scaled
  EXPECT_TRUE(std::isnan(clip_grad_norm(grads, 1.0)));
  EXPECT_EQ(grads[0].as<float>()[0], 3.0f * coef);
}

TEST(Gradients, MakeAccumulateZero) {
  TestParameters params;
  params.add("w", DType::BF16, {2, 3}, true, {1, 2, 3, 4, 5, 6});
  auto acc = make_gradients(params.refs);
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(floats_of(acc[0]), std::vector<float>(6, 0.0f));
  std::vector<Buffer> micro;
  micro.push_back(buffer_of({1, 2, 3, 4, 5, 6}));
  accumulate_gradients(acc, micro, 0.5f);
  accumulate_gradients(acc, micro, 0.25f);
  EXPECT_EQ(floats_of(acc[0]), (std::vector<float>{0.75f, 1.5f, 2.25f, 3.0f, 3.75f, 4.5f}));
  zero_gradients(acc);
  EXPECT_EQ(floats_of(acc[0]), std::vector<float>(6, 0.0f));
}

// A bf16 parameter is trained in its f32 master: the master follows exactly the trajectory of
// the same parameter stored in f32, and the bf16 storage is the master rounded to nearest.
TEST(Optimizer, Bf16ParametersKeepAnF32Master) {
  std::mt19937_64 rng(3);
  auto init = random_floats(300, 1.0, rng);
  for (float& x : init) x = bf16_to_f32(f32_to_bf16(x));  // representable in both
  OptimizerOptions o;
  o.lr = 1e-4;  // updates far below half a bf16 ulp: lost without a master
  o.weight_decay = 0.1;
  TestParameters f32, bf16;
  f32.add("w", DType::F32, {10, 30}, true, init);
  bf16.add("w", DType::BF16, {10, 30}, true, init);
  Optimizer a(o, f32.refs), b(o, bf16.refs);
  for (int t = 0; t < 20; ++t) {
    std::vector<Buffer> ga, gb;
    auto g = random_floats(300, 0.1, rng);
    ga.push_back(buffer_of(g));
    gb.push_back(buffer_of(g));
    a.step(f32.refs, ga);
    b.step(bf16.refs, gb);
  }
  auto master = f32.values(0);
  const uint16_t* stored = bf16.refs[0].tensor.ptr<uint16_t>();
  int moved = 0;
  for (size_t i = 0; i < master.size(); ++i) {
    ASSERT_EQ(stored[i], f32_to_bf16(master[i])) << i;
    moved += stored[i] != f32_to_bf16(init[i]);
  }
  EXPECT_GT(moved, 0);  // 20 steps of ~1e-4 add up to whole bf16 ulps for small weights
  // save/load carries the master: a resumed bf16 run equals the f32 one too.
  TempDir dir;
  b.save(dir.path());
  Optimizer c(o, bf16.refs);
  c.load(dir.path());
  std::vector<Buffer> ga, gc;
  auto g = random_floats(300, 0.1, rng);
  ga.push_back(buffer_of(g));
  gc.push_back(buffer_of(g));
  a.step(f32.refs, ga);
  c.step(bf16.refs, gc);
  master = f32.values(0);
  for (size_t i = 0; i < master.size(); ++i) ASSERT_EQ(stored[i], f32_to_bf16(master[i])) << i;
}

// Large enough for the pool to split every loop; the same bits with 1 and 3 threads.
TEST(Optimizer, IndependentOfTheThreadCount) {
  auto run = [](int threads, Method method) {
    ThreadPool::set_global_threads(threads);
    std::mt19937_64 rng(11);
    TestParameters params;
    params.add("w", DType::F32, {300, 400}, true, random_floats(120000, 0.5, rng));
    params.add("e", DType::BF16, {200, 300}, true, random_floats(60000, 0.5, rng));
    params.add("b", DType::F32, {400}, false, random_floats(400, 0.1, rng));
    OptimizerOptions o;
    o.method = method;
    o.lr = 1e-3;
    o.weight_decay = 0.1;
    o.momentum = 0.9;
    Optimizer optimizer(o, params.refs);
    std::string norms;
    for (int t = 0; t < 3; ++t) {
      std::vector<Buffer> grads;
      for (const auto& r : params.refs)
        grads.push_back(buffer_of(random_floats(size_t(r.tensor.numel()), 0.01, rng)));
      double norm = clip_grad_norm(grads, 0.5);
      norms.append(reinterpret_cast<const char*>(&norm), sizeof norm);
      optimizer.step(params.refs, grads);
    }
    return norms + params.bytes();
  };
  for (Method method : {Method::kAdamW, Method::kSgd}) {
    std::string one = run(1, method), three = run(3, method);
    EXPECT_TRUE(one == three) << method_name(method);
  }
  ThreadPool::set_global_threads(0);
}

TEST(Optimizer, BadInput) {
  TestParameters params;
  params.add("w", DType::F32, {2, 2}, true, {1, 2, 3, 4});
  std::vector<Buffer> grads;
  grads.push_back(buffer_of({1, 2, 3}));
  expect_error([&] { clip_grad_norm(grads, -1.0); },
               {"max_grad_norm must be >= 0 (0 = no clipping), got -1"});
  Optimizer optimizer({}, params.refs);
  expect_error([&] { optimizer.step(params.refs, grads); },
               {"gradient of 'w' has 3 floats, the parameter 4"});
  std::vector<Buffer> none;
  expect_error([&] { optimizer.step(params.refs, none); }, {"0 gradients for 1 parameters"});
  TestParameters other;
  other.add("w", DType::F32, {4}, true, {1, 2, 3, 4});
  grads[0] = buffer_of({1, 2, 3, 4});
  expect_error([&] { optimizer.step(other.refs, grads); },
               {"parameter 0 is 'w' f32 [4], but the optimizer was made for 'w' f32 [2, 2]"});
  TestParameters half;
  half.add("h", DType::F16, {2}, false, {1, 2});
  expect_error([&] { Optimizer({}, half.refs); },
               {"parameter 'h' is stored in f16; only f32 and bf16 are trainable"});
  OptimizerOptions o;
  o.beta2 = 1.0;
  expect_error([&] { Optimizer(o, params.refs); }, {"beta2 must be in [0, 1), got 1"});
  o = {};
  o.lr = -1;
  expect_error([&] { Optimizer(o, params.refs); }, {"lr must be >= 0, got -1"});
  o = {};
  o.method = Method::kSgd;
  o.nesterov = true;
  expect_error([&] { Optimizer(o, params.refs); }, {"nesterov needs momentum > 0"});
  expect_error([] { parse_method("adam"); }, {"unknown optimizer 'adam': use adamw or sgd"});
  EXPECT_EQ(parse_method("sgd"), Method::kSgd);
}

}  // namespace
}  // namespace zoft::optim
