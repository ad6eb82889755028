#include "zo/mezo.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace zoft::zo {
namespace {

// A toy "model" computed block by block in plain C++: tanh(W0 x + b0) -> tanh(W1 h + b1) ->
// squared error of w2 . h + c2 against targets.
struct Param {
  OwnedTensor t;
  uint32_t id;
  bool decayable;
  int block;
};

struct Toy {
  std::vector<Param> params;
  std::vector<float> x, y;  // batch of 8 inputs [8, 4] and targets [8]
  static constexpr int kBatch = 8;
  static constexpr int kDims[4] = {4, 6, 5, 1};
};

Toy make_toy(DType dtype) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  Toy toy;
  auto add = [&](int64_t rows, int64_t cols, bool decayable, int block) {
    Param p{OwnedTensor::zeros(dtype, {rows, cols}), uint32_t(toy.params.size()), decayable, block};
    for (int64_t i = 0; i < rows * cols; ++i) {
      float v = dist(rng);
      if (dtype == DType::F32)
        p.t.view.f32()[i] = v;
      else
        p.t.view.ptr<uint16_t>()[i] = f32_to_bf16(v);
    }
    toy.params.push_back(std::move(p));
  };
  for (int b = 0; b < 3; ++b) {
    add(Toy::kDims[b + 1], Toy::kDims[b], true, b);  // weight
    add(1, Toy::kDims[b + 1], false, b);             // bias: no weight decay, as in MeZO
  }
  for (int i = 0; i < Toy::kBatch * 4; ++i) toy.x.push_back(dist(rng));
  for (int i = 0; i < Toy::kBatch; ++i) toy.y.push_back(dist(rng));
  return toy;
}

float value(const Tensor& t, int64_t i) {
  return t.dtype == DType::F32 ? t.f32()[i] : bf16_to_f32(t.ptr<uint16_t>()[i]);
}

// Block b on activations h [8, dims[b]]; the last block returns {loss}.
std::vector<float> block_forward(const Toy& toy, int b, const std::vector<float>& h) {
  const Tensor &w = toy.params[2 * b].t.view, &bias = toy.params[2 * b + 1].t.view;
  int in = Toy::kDims[b], out = Toy::kDims[b + 1];
  std::vector<float> o(Toy::kBatch * out);
  for (int r = 0; r < Toy::kBatch; ++r)
    for (int j = 0; j < out; ++j) {
      float s = value(bias, j);
      for (int k = 0; k < in; ++k) s += value(w, j * in + k) * h[r * in + k];
      o[r * out + j] = b < 2 ? std::tanh(s) : s;
    }
  if (b < 2) return o;
  float loss = 0;
  for (int r = 0; r < Toy::kBatch; ++r) loss += (o[r] - toy.y[r]) * (o[r] - toy.y[r]);
  return {loss / Toy::kBatch};
}

double full_forward(const Toy& toy) {
  std::vector<float> h = toy.x;
  for (int b = 0; b < 3; ++b) h = block_forward(toy, b, h);
  return h[0];
}

void apply_to(const ZPass& pass, Param& p) {
  pass.apply(p.t.view, p.id, p.decayable);
}

std::vector<std::vector<uint8_t>> bytes_of(const Toy& toy, int block) {
  std::vector<std::vector<uint8_t>> out;
  for (const Param& p : toy.params)
    if (block < 0 || p.block == block) {
      auto* b = static_cast<const uint8_t*>(p.t.view.data);
      out.emplace_back(b, b + p.t.view.nbytes());
    }
  return out;
}

void put_bytes(Toy& toy, int block, const std::vector<std::vector<uint8_t>>& saved) {
  size_t i = 0;
  for (Param& p : toy.params)
    if (block < 0 || p.block == block) {
      std::memcpy(p.t.view.data, saved[i].data(), saved[i].size());
      ++i;
    }
}

// Plain MeZO order: the update over all parameters, then per forward its perturbation over all
// parameters, one whole forward, and the exact weights put back.
void plain_step(Toy& toy, MezoSgd& opt) {
  int n = opt.options().samples;
  std::vector<double> loss(2 * n);
  ZPass update = opt.update();
  for (Param& p : toy.params) apply_to(update, p);
  auto saved = bytes_of(toy, -1);
  for (int k = 0; k < opt.num_forwards(); ++k) {
    ZPass perturbation = opt.perturbation(k);
    for (Param& p : toy.params) apply_to(perturbation, p);
    loss[k] = full_forward(toy);
    put_bytes(toy, -1, saved);
  }
  for (int j = 0; j < n; ++j) opt.record(j, loss[2 * j], loss[2 * j + 1]);
  opt.end_step();
}

// ZO2 order: per block, the update, then every forward's part with its perturbation.
void zo2_step(Toy& toy, MezoSgd& opt) {
  int n = opt.options().samples;
  ZPass update = opt.update();
  std::vector<std::vector<float>> h(2 * n, toy.x);
  for (int b = 0; b < 3; ++b) {
    for (Param& p : toy.params)
      if (p.block == b) apply_to(update, p);
    auto saved = bytes_of(toy, b);
    for (int k = 0; k < opt.num_forwards(); ++k) {
      for (Param& p : toy.params)
        if (p.block == b) apply_to(opt.perturbation(k), p);
      h[k] = block_forward(toy, b, h[k]);
      put_bytes(toy, b, saved);
    }
  }
  for (int j = 0; j < n; ++j) opt.record(j, h[2 * j][0], h[2 * j + 1][0]);
  opt.end_step();
}

void finish(Toy& toy, MezoSgd& opt) {
  ZPass pass = opt.finish();
  for (Param& p : toy.params) apply_to(pass, p);
}

MezoOptions toy_options(int samples) {
  MezoOptions o;
  o.lr = 0.05;
  o.eps = 1e-3;
  o.samples = samples;
  o.weight_decay = 0.1;
  o.schedule = {optim::ScheduleKind::Linear, 3, 20};
  o.seed = 0x0123456789abcdefull;
  return o;
}

bool same_bytes(const Toy& a, const Toy& b) {
  for (size_t i = 0; i < a.params.size(); ++i)
    if (std::memcmp(a.params[i].t.view.data, b.params[i].t.view.data, a.params[i].t.view.nbytes()))
      return false;
  return true;
}

class ZO2Order : public ::testing::TestWithParam<std::tuple<DType, int>> {};

TEST_P(ZO2Order, BitIdenticalToPlainMezoAfter20Steps) {
  auto [dtype, samples] = GetParam();
  Toy plain = make_toy(dtype), zo2 = make_toy(dtype), start = make_toy(dtype);
  MezoSgd opt_plain(toy_options(samples)), opt_zo2(toy_options(samples));
  double loss0 = full_forward(plain);
  for (int t = 0; t < 20; ++t) {
    plain_step(plain, opt_plain);
    zo2_step(zo2, opt_zo2);
    ASSERT_EQ(opt_plain.state().pending_grad, opt_zo2.state().pending_grad) << "step " << t;
  }
  finish(plain, opt_plain);
  finish(zo2, opt_zo2);
  EXPECT_TRUE(same_bytes(plain, zo2));
  EXPECT_FALSE(same_bytes(plain, start));  // training did move the parameters
  EXPECT_LT(full_forward(plain), loss0);
}

INSTANTIATE_TEST_SUITE_P(Zo, ZO2Order,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(1, 2)));

// Checkpoint after 10 steps (state + parameters with the update still pending), resume in a new
// optimizer: identical to 20 uninterrupted steps.
TEST(Mezo, ResumeIsBitExact) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    Toy straight = make_toy(dtype), resumed = make_toy(dtype);
    MezoSgd a(toy_options(2)), b(toy_options(2));
    for (int t = 0; t < 10; ++t) plain_step(straight, a), plain_step(resumed, b);
    MezoState saved = b.state();
    MezoSgd c(toy_options(2), saved);
    for (int t = 10; t < 20; ++t) plain_step(straight, a), zo2_step(resumed, c);
    finish(straight, a);
    finish(resumed, c);
    EXPECT_TRUE(same_bytes(straight, resumed)) << dtype_name(dtype);
  }
}

// With lr = 0 the weights stay bit-identical however many steps run, in either order and with
// bf16 storage: the perturbations are undone exactly (from a copy), not by rounding -2 eps and
// +eps back, which moved bf16 weights by an ulp per pass (a random walk, whatever the gradient).
TEST(Mezo, ZeroLearningRateLeavesEveryBitInPlace) {
  for (DType dtype : {DType::F32, DType::BF16})
    for (int samples : {1, 3}) {
      Toy plain = make_toy(dtype), zo2 = make_toy(dtype), start = make_toy(dtype);
      MezoOptions o = toy_options(samples);
      o.lr = 0;
      MezoSgd opt_plain(o), opt_zo2(o);
      for (int t = 0; t < 10; ++t) {
        plain_step(plain, opt_plain);
        zo2_step(zo2, opt_zo2);
        if (t == 4) finish(plain, opt_plain);  // as before an evaluation
      }
      EXPECT_NE(opt_plain.state().pending_grad[0], 0.0f);  // the gradients were not zero
      finish(plain, opt_plain);
      finish(zo2, opt_zo2);
      EXPECT_TRUE(same_bytes(plain, start)) << dtype_name(dtype) << " n" << samples;
      EXPECT_TRUE(same_bytes(zo2, start)) << dtype_name(dtype) << " n" << samples;
    }
}

// An evaluation or checkpoint in between (finish()) does not change the trajectory: the update
// rounds with the same bits whether finish() or the next step applies it.
TEST(Mezo, FinishBetweenStepsDoesNotChangeTheTrajectory) {
  for (DType dtype : {DType::F32, DType::BF16}) {
    Toy straight = make_toy(dtype), interrupted = make_toy(dtype);
    MezoSgd a(toy_options(2)), b(toy_options(2));
    for (int t = 0; t < 12; ++t) {
      plain_step(straight, a);
      zo2_step(interrupted, b);
      if (t % 3 == 1) finish(interrupted, b);
    }
    finish(straight, a);
    finish(interrupted, b);
    EXPECT_TRUE(same_bytes(straight, interrupted)) << dtype_name(dtype);
  }
}

// The terms of docs/zo-rng.md section 6, spelled out for n = 2 at step 3.
TEST(Mezo, UpdateAndPerturbationTerms) {
  MezoOptions o;
  o.lr = 0.1;
  o.eps = 1e-3;
  o.samples = 2;
  o.weight_decay = 0.1;
  o.seed = 42;
  MezoSgd opt(o, MezoState{3, {0.5f, -0.25f}});
  auto expect_terms = [](const ZPass& p, std::vector<ZTerm> want, uint64_t rs, float decay) {
    ASSERT_EQ(p.terms.size(), want.size());
    for (size_t j = 0; j < want.size(); ++j) {
      EXPECT_EQ(p.terms[j].step, want[j].step) << j;
      EXPECT_EQ(p.terms[j].sample, want[j].sample) << j;
      EXPECT_EQ(p.terms[j].scale, want[j].scale) << j;
    }
    EXPECT_EQ(p.rounding_step, rs);
    EXPECT_EQ(p.decay, decay);
    EXPECT_EQ(p.seed, 42u);
  };
  const float e = 1e-3f, decay = float(1 - 0.1 * 0.1);
  const std::vector<ZTerm> pending = {{2, 0, float(-0.1 * 0.5 / 2)}, {2, 1, float(0.1 * 0.25 / 2)}};
  expect_terms(opt.update(), pending, 15, decay);
  expect_terms(opt.perturbation(0), {{3, 0, e}}, 16, 1.0f);
  expect_terms(opt.perturbation(1), {{3, 0, -e}}, 17, 1.0f);
  expect_terms(opt.perturbation(2), {{3, 1, e}}, 18, 1.0f);
  expect_terms(opt.perturbation(3), {{3, 1, -e}}, 19, 1.0f);
  EXPECT_THROW(opt.perturbation(4), Error);
  EXPECT_THROW(opt.perturbation(-1), Error);
  expect_terms(opt.finish(), pending, 15, decay);  // the bits update() would have used
  EXPECT_FALSE(opt.has_pending());
  EXPECT_TRUE(opt.update().is_identity());
  EXPECT_TRUE(opt.finish().is_identity());
  // A zero gradient adds no term; lr = 0 is the identity (x + 0 would turn -0 into +0).
  MezoSgd half(o, MezoState{3, {0.0f, -0.25f}});
  expect_terms(half.update(), {pending[1]}, 15, decay);
  o.lr = 0;
  EXPECT_TRUE(MezoSgd(o, MezoState{3, {0.5f, -0.25f}}).update().is_identity());
}

TEST(Mezo, ProjectedGradientAndStepBookkeeping) {
  EXPECT_DOUBLE_EQ(MezoSgd::projected_grad(2.5, 2.0, 0.25), 1.0);
  MezoSgd opt(toy_options(2));
  opt.record(0, 1.0, 1.0);
  EXPECT_THROW(opt.end_step(), Error);  // sample 1 missing
  EXPECT_THROW(opt.finish(), Error);    // mid-step
  EXPECT_THROW(opt.record(1, NAN, 1.0), Error);
  EXPECT_THROW(opt.set_grad(2, 1.0f), Error);
  opt.set_grad(1, 4.0f);
  opt.end_step();
  EXPECT_EQ(opt.step(), 1u);
  EXPECT_EQ(opt.state().pending_grad, (std::vector<float>{0.0f, 4.0f}));
  EXPECT_THROW(MezoSgd(toy_options(1), MezoState{1, {1.0f, 2.0f}}), Error);
  MezoOptions bad = toy_options(1);
  bad.eps = 0;
  EXPECT_THROW(MezoSgd{bad}, Error);
}

// MeZO-SGD descends: on a 64-dim quadratic it more than halves the loss in 400 steps.
TEST(Mezo, DescendsOnAQuadratic) {
  const int d = 64;
  std::vector<float> theta(d, 0.0f), target(d);
  for (int i = 0; i < d; ++i) target[i] = std::sin(float(i));
  Tensor view(theta.data(), DType::F32, {d});
  auto loss = [&] {
    double s = 0;
    for (int i = 0; i < d; ++i) s += double(theta[i] - target[i]) * (theta[i] - target[i]);
    return s;
  };
  MezoOptions o;
  o.lr = 0.01;
  o.eps = 1e-3;
  o.seed = 7;
  MezoSgd opt(o);
  double start = loss();
  for (int t = 0; t < 400; ++t) {
    double l[2];
    opt.update().apply(view, 0, true);
    std::vector<float> exact = theta;
    for (int k = 0; k < 2; ++k) {
      opt.perturbation(k).apply(view, 0, true);
      l[k] = loss();
      std::copy(exact.begin(), exact.end(), theta.begin());  // the view's storage
    }
    opt.record(0, l[0], l[1]);
    opt.end_step();
  }
  opt.finish().apply(view, 0, true);
  EXPECT_LT(loss(), 0.5 * start);
  printf("quadratic loss %.3f -> %.3f\n", start, loss());
}

}  // namespace
}  // namespace zoft::zo
