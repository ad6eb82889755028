// optim.method fzoo (zo/mezo.h, estimator Fzoo): zo::MezoSgd against the NumPy reference
// tools/zo_fzoo_reference.py (fixture tests/fixtures/zo/fzoo_reference.json), bit for bit: every
// step's normalised one-sided gradients and the final weights, f32 and bf16. Then the estimator's
// own properties: forward 0 is the unperturbed weights, a step is scale-free in the loss (the
// normalisation), sigma = 0 moves nothing, it lowers the toy loss, and resume / evaluation
// between steps leave the trajectory bit-identical.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "zo/mezo.h"
#include "zo/toy_quadratic.h"
#include "zo/zo_test_util.h"

namespace zoft::zo::fzoo_test {

// Declarations, not a using-directive: mezo_test.cc's Toy would make a directive's names ambiguous.
using toy_quadratic::apply;
using toy_quadratic::bytes;
using toy_quadratic::expect_reference_weights;
using toy_quadratic::loss;
using toy_quadratic::make_toy;
using toy_quadratic::Toy;

const nlohmann::json& cases() {
  static const nlohmann::json j =
      read_json_file(std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/zo/fzoo_reference.json");
  return j.at("cases");
}

MezoOptions options(const nlohmann::json& c) {
  MezoOptions o;
  o.estimator = Estimator::Fzoo;
  o.lr = c.at("lr").get<double>();
  o.eps = c.at("eps").get<double>();
  o.samples = c.at("samples").get<int>();
  o.weight_decay = c.at("weight_decay").get<double>();
  o.seed = c.at("seed").get<uint64_t>();
  return o;
}

// One step as ZoStepper runs it, with the loss scaled by `loss_scale`.
std::vector<float> step(Toy& toy, MezoSgd& opt, double loss_scale = 1.0) {
  apply(opt.update(), toy);
  std::vector<double> losses;
  for (int k = 0; k < opt.num_forwards(); ++k) {
    Toy copy = toy.clone();
    apply(opt.perturbation(k), copy);
    losses.push_back(loss_scale * loss(copy));
  }
  opt.record_forwards(losses);
  opt.end_step();
  return opt.state().pending_grad;
}

TEST(Fzoo, MatchesTheNumpyReferenceBitForBit) {
  for (const nlohmann::json& c : cases()) {
    SCOPED_TRACE(c.dump().substr(0, 160));
    Toy toy = make_toy(c);
    MezoSgd opt(options(c));
    ASSERT_EQ(opt.num_forwards(), c.at("samples").get<int>() + 1);
    const int steps = c.at("steps").get<int>();
    for (int t = 0; t < steps; ++t) {
      std::vector<float> g = step(toy, opt);
      ASSERT_EQ(g, c.at("grads")[size_t(t)].get<std::vector<float>>()) << "step " << t;
    }
    apply(opt.finish(), toy);
    expect_reference_weights(toy, c);
  }
}

TEST(Fzoo, ForwardZeroIsTheWeightsAndTheOthersArePlusEpsOnly) {
  MezoOptions o = options(cases()[0]);
  MezoSgd opt(o);
  EXPECT_TRUE(opt.perturbation(0).is_identity());
  for (int k = 1; k < opt.num_forwards(); ++k) {
    const ZPass p = opt.perturbation(k);
    ASSERT_EQ(p.terms.size(), 1u);
    EXPECT_EQ(p.terms[0].sample, uint32_t(k - 1));
    EXPECT_EQ(p.terms[0].scale, float(o.eps));
  }
}

TEST(Fzoo, TheStepDoesNotDependOnTheLossScale) {
  // The normalisation by sigma: multiplying the loss by 8 (exact in binary) leaves every g_j.
  const nlohmann::json& c = cases()[0];
  Toy a = make_toy(c), b = make_toy(c);
  MezoSgd x(options(c)), y(options(c));
  for (int t = 0; t < 3; ++t) EXPECT_EQ(step(a, x), step(b, y, 8.0)) << t;
  EXPECT_EQ(bytes(a), bytes(b));
}

TEST(Fzoo, EqualPerturbedLossesMoveNothing) {
  EXPECT_EQ(MezoSgd::fzoo_grads({1.0, 2.0, 2.0, 2.0}, 1e-3), std::vector<double>(3, 0.0));
  const std::vector<double> g = MezoSgd::fzoo_grads({1.0, 2.0, 3.0}, 0.5);  // sigma = sqrt(1/2)
  EXPECT_DOUBLE_EQ(g[0], 1.0 / (0.5 * std::sqrt(0.5)));
  EXPECT_DOUBLE_EQ(g[1], 2.0 / (0.5 * std::sqrt(0.5)));
}

TEST(Fzoo, LowersTheToyLoss) {
  const nlohmann::json& c = cases()[0];  // f32
  Toy toy = make_toy(c);
  MezoSgd opt(options(c));
  const double before = loss(toy);
  for (int t = 0; t < 40; ++t) step(toy, opt);
  apply(opt.finish(), toy);
  EXPECT_LT(loss(toy), 0.8 * before);
}

TEST(Fzoo, ResumeAndFinishBetweenStepsAreBitExact) {
  for (const nlohmann::json& c : cases()) {
    Toy straight = make_toy(c), resumed = make_toy(c), evaluated = make_toy(c);
    MezoSgd a(options(c)), b(options(c)), e(options(c));
    for (int t = 0; t < 2; ++t) step(straight, a), step(resumed, b), step(evaluated, e);
    MezoSgd b2(options(c), b.state());  // a checkpoint: the state, the update pending
    apply(e.finish(), evaluated);       // an evaluation applies it early
    for (int t = 2; t < 4; ++t) step(straight, a), step(resumed, b2), step(evaluated, e);
    apply(a.finish(), straight);
    apply(b2.finish(), resumed);
    apply(e.finish(), evaluated);
    EXPECT_EQ(bytes(straight), bytes(resumed));
    EXPECT_EQ(bytes(straight), bytes(evaluated));
  }
}

TEST(Fzoo, RefusesOneSampleAndWrongLossCounts) {
  MezoOptions o;
  o.estimator = Estimator::Fzoo;
  o.samples = 1;  // no spread to normalise by
  EXPECT_THROW(MezoSgd{o}, Error);
  o.samples = 3;
  MezoSgd opt(o);
  EXPECT_THROW(opt.record_forwards({1.0, 2.0, 3.0}), Error);  // 3 losses for 4 forwards
  EXPECT_THROW(opt.record_forwards({1.0, 2.0, NAN, 3.0}), Error);
}

}  // namespace zoft::zo::fzoo_test
