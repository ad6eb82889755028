// optim.method mezo-momentum (zo/mezo.h): zo::MezoSgd with momentum against the NumPy reference
// tools/zo_momentum_reference.py (fixture tests/fixtures/zo/momentum_reference.json), bit for bit:
// every step's projected gradient and the final weights, f32 and bf16. Then what a checkpoint
// must keep: resuming from the saved state (step, pending gradient, history) and evaluating
// between steps (finish) both leave the trajectory bit-identical.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "zo/mezo.h"
#include "zo/toy_quadratic.h"
#include "zo/zo_test_util.h"

// A named namespace, not an anonymous one: the unity build puts this file in one translation
// unit with mezo_test.cc, whose anonymous namespace has its own Toy.
namespace zoft::zo::momentum_test {

// Declarations, not a using-directive: mezo_test.cc's Toy would make a directive's names ambiguous.
using toy_quadratic::apply;
using toy_quadratic::bytes;
using toy_quadratic::expect_reference_weights;
using toy_quadratic::loss;
using toy_quadratic::make_toy;
using toy_quadratic::Toy;

const nlohmann::json& cases() {
  static const nlohmann::json j =
      read_json_file(std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/zo/momentum_reference.json");
  return j.at("cases");
}

MezoOptions options(const nlohmann::json& c) {
  MezoOptions o;
  o.lr = c.at("lr").get<double>();
  o.eps = c.at("eps").get<double>();
  o.samples = c.at("samples").get<int>();
  o.weight_decay = c.at("weight_decay").get<double>();
  o.momentum = c.at("momentum").get<double>();
  o.momentum_window = c.at("window").get<int>();
  o.seed = c.at("seed").get<uint64_t>();
  return o;
}

// One step as ZoStepper runs it: the update in place, each forward on a perturbed copy.
std::vector<float> step(Toy& toy, MezoSgd& opt) {
  apply(opt.update(), toy);
  std::vector<double> losses;
  for (int k = 0; k < opt.num_forwards(); ++k) {
    Toy copy = toy.clone();
    apply(opt.perturbation(k), copy);
    losses.push_back(loss(copy));
  }
  for (int j = 0; j < opt.options().samples; ++j)
    opt.record(j, losses[size_t(2 * j)], losses[size_t(2 * j + 1)]);
  opt.end_step();
  return opt.state().pending_grad;
}

TEST(MezoMomentum, MatchesTheNumpyReferenceBitForBit) {
  for (const nlohmann::json& c : cases()) {
    SCOPED_TRACE(c.dump().substr(0, 160));
    Toy toy = make_toy(c);
    MezoSgd opt(options(c));
    const int steps = c.at("steps").get<int>();
    for (int t = 0; t < steps; ++t) {
      std::vector<float> g = step(toy, opt);
      const auto want = c.at("grads")[size_t(t)].get<std::vector<float>>();
      ASSERT_EQ(g, want) << "step " << t;
    }
    apply(opt.finish(), toy);
    expect_reference_weights(toy, c);
  }
}

TEST(MezoMomentum, MomentumChangesTheTrajectory) {
  // Window 1 is MeZO-SGD; a longer window must move the weights differently (a test of the
  // fixture's cases, which would pass with momentum ignored if every window were 1).
  const nlohmann::json& c = cases()[0];
  ASSERT_GT(c.at("window").get<int>(), 1);
  Toy with = make_toy(c), without = make_toy(c);
  MezoSgd a(options(c));
  MezoOptions plain = options(c);
  plain.momentum_window = 1;
  MezoSgd b(plain);
  for (int t = 0; t < 3; ++t) step(with, a), step(without, b);
  EXPECT_NE(bytes(with), bytes(without));
  EXPECT_EQ(a.state().history.size(), 2u);  // steps 0 and 1; step 2 is pending
}

TEST(MezoMomentum, ResumeAndFinishBetweenStepsAreBitExact) {
  for (const nlohmann::json& c : cases()) {
    Toy straight = make_toy(c), resumed = make_toy(c), evaluated = make_toy(c);
    MezoSgd a(options(c)), b(options(c)), e(options(c));
    for (int t = 0; t < 3; ++t) step(straight, a), step(resumed, b), step(evaluated, e);
    // A checkpoint: the weights with the update still pending, and the state.
    MezoState saved = b.state();
    MezoSgd b2(options(c), saved);
    // An evaluation: finish() applies the pending update early.
    apply(e.finish(), evaluated);
    for (int t = 3; t < 6; ++t) step(straight, a), step(resumed, b2), step(evaluated, e);
    apply(a.finish(), straight);
    apply(b2.finish(), resumed);
    apply(e.finish(), evaluated);
    EXPECT_EQ(bytes(straight), bytes(resumed));
    EXPECT_EQ(bytes(straight), bytes(evaluated));
  }
}

TEST(MezoMomentum, RefusesBadSettingsAndStates) {
  MezoOptions o;
  o.momentum = 1.0;
  EXPECT_THROW(MezoSgd{o}, Error);
  o.momentum = 0.5;
  o.momentum_window = 0;
  EXPECT_THROW(MezoSgd{o}, Error);
  o.momentum_window = 3;
  MezoState s;
  s.step = 5;
  s.history = {1, 2, 3};  // more than window - 1 = 2 steps of n = 1
  EXPECT_THROW(MezoSgd(o, s), Error);
}

}  // namespace zoft::zo::momentum_test
