// The ZO2 block schedule gives bit-identical weights to the plain MeZO order, on real
// architectures (tied and untied embeddings, learned positions, fused QKV, sliding windows).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "model/golden_util.h"
#include "train/zo_step.h"

namespace zoft::test {
namespace {

struct OrderCase {
  std::string model;
  DType dtype;
  int samples;
  zo::Estimator estimator = zo::Estimator::TwoSided;
};

const char* estimator_name(zo::Estimator e) {
  return e == zo::Estimator::Fzoo ? "fzoo" : "mezo";
}

void PrintTo(const OrderCase& c, std::ostream* os) {
  *os << c.model << "/" << dtype_name(c.dtype) << "/n" << c.samples << "/"
      << estimator_name(c.estimator);
}

class ZoOrders : public testing::TestWithParam<OrderCase> {};

// lr 1e-3 is large enough that updates visibly move the weights.
std::vector<std::vector<uint8_t>> train_and_snapshot(const OrderCase& c, ZoOrder order, int steps,
                                                     double lr = 1e-3) {
  Decoder model = Decoder::load(golden_dir(c.model), c.dtype);
  zo::MezoOptions options;
  options.estimator = c.estimator;
  // fzoo's step is normalised (about lr / eps per coordinate): the same visible movement.
  options.lr = c.estimator == zo::Estimator::Fzoo ? lr * 1e-3 : lr;
  options.eps = 1e-3;
  options.samples = c.samples;
  options.weight_decay = 0.1;
  options.seed = 1234;
  zo::MezoSgd optimizer(options);
  ZoStepper stepper(model, optimizer, order);
  GoldenCase g = load_golden(c.model, "left");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto mean_loss = mean_loss_over(targets);
  for (int t = 0; t < steps; ++t) {
    ZoStepResult r = stepper.forward_passes(g.batch, targets, mean_loss);
    EXPECT_TRUE(r.finite());
    stepper.end_step();
  }
  stepper.finish();
  std::vector<std::vector<uint8_t>> out;
  for (const ParameterRef& p : stepper.parameters()) {
    auto* bytes = static_cast<const uint8_t*>(p.tensor.data);
    out.emplace_back(bytes, bytes + p.tensor.nbytes());
  }
  return out;
}

TEST_P(ZoOrders, BlockScheduleEqualsPlainOrderBitForBit) {
  const OrderCase& c = GetParam();
  auto plain = train_and_snapshot(c, ZoOrder::Plain, 20);
  auto zo2 = train_and_snapshot(c, ZoOrder::Zo2, 20);
  ASSERT_EQ(plain.size(), zo2.size());
  Decoder reference = Decoder::load(golden_dir(c.model), c.dtype);
  make_trainable(reference);
  auto params = list_parameters(reference);
  bool moved = false;
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(plain[i] == zo2[i]) << "parameter " << params[i].name << " differs";
    moved = moved || std::memcmp(plain[i].data(), params[i].tensor.data, plain[i].size()) != 0;
  }
  EXPECT_TRUE(moved) << "training did not change any weight";
}

// lr = 0: the weights after N steps are the loaded ones, bit for bit, in both orders (the
// perturbations are undone from an exact copy; undoing them by -2 eps, +eps passes moved bf16
// weights by stochastic rounding, 67 % of them after 3 steps of SmolLM2).
TEST_P(ZoOrders, ZeroLearningRateKeepsEveryBit) {
  const OrderCase& c = GetParam();
  Decoder reference = Decoder::load(golden_dir(c.model), c.dtype);
  make_trainable(reference);
  auto params = list_parameters(reference);
  for (ZoOrder order : {ZoOrder::Plain, ZoOrder::Zo2}) {
    auto after = train_and_snapshot(c, order, 5, 0.0);
    ASSERT_EQ(after.size(), params.size());
    for (size_t i = 0; i < after.size(); ++i)
      EXPECT_EQ(0, std::memcmp(after[i].data(), params[i].tensor.data, after[i].size()))
          << params[i].name << (order == ZoOrder::Plain ? " plain" : " zo2");
  }
}

std::vector<OrderCase> order_cases() {
  std::vector<OrderCase> out;
  for (const char* m : {"llama", "gemma3", "opt", "gpt2", "qwen3"})
    for (DType d : {DType::F32, DType::BF16}) out.push_back({m, d, 1});
  out.push_back({"llama", DType::F32, 2});
  out.push_back({"gemma3", DType::BF16, 2});
  out.push_back({"llama", DType::F32, 3, zo::Estimator::Fzoo});
  out.push_back({"gemma3", DType::BF16, 2, zo::Estimator::Fzoo});
  out.push_back({"opt", DType::BF16, 4, zo::Estimator::Fzoo});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Architectures, ZoOrders, testing::ValuesIn(order_cases()),
                         [](const testing::TestParamInfo<OrderCase>& info) {
                           return info.param.model + "_" + dtype_name(info.param.dtype) + "_n" +
                                  std::to_string(info.param.samples) + "_" +
                                  estimator_name(info.param.estimator);
                         });

// The loss at the weights after `steps` steps on one batch, and before them.
std::pair<double, double> fixed_batch_losses(const zo::MezoOptions& options, int steps) {
  Decoder model = Decoder::load(golden_dir("llama"), DType::F32);
  zo::MezoSgd optimizer(options);
  ZoStepper stepper(model, optimizer, ZoOrder::Zo2);
  GoldenCase g = load_golden("llama", "nopad");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto mean_loss = mean_loss_over(targets);
  double first = 0;
  for (int t = 0; t < steps; ++t) {
    ZoStepResult r = stepper.forward_passes(g.batch, targets, mean_loss);
    if (t == 0) first = r.mean_loss();
    stepper.end_step();
  }
  stepper.finish();
  zo::MezoOptions frozen = options;  // one more forward, at lr 0: the loss where training ended
  frozen.lr = 0;
  zo::MezoSgd probe(frozen);
  ZoStepper measure(model, probe, ZoOrder::Zo2);
  return {first, measure.forward_passes(g.batch, targets, mean_loss).mean_loss()};
}

// A MeZO step lowers the loss on a batch on average: 100 steps on one batch must reduce it.
TEST(ZoTraining, LossDecreasesOnAFixedBatch) {
  zo::MezoOptions options;
  options.lr = 1e-3;
  options.eps = 1e-3;
  options.seed = 7;
  auto [first, last] = fixed_batch_losses(options, 100);
  EXPECT_LT(last, first - 0.05) << "first " << first << " last " << last;
}

// FZOO at the same forward passes (4 perturbed + 1 plain forwards a step, 40 steps = 200 as
// MeZO's 100 steps above) also lowers it (5.71 -> 4.18 here; MeZO 5.71 -> 4.12).
TEST(ZoTraining, FzooLossDecreasesOnAFixedBatch) {
  zo::MezoOptions options;
  options.estimator = zo::Estimator::Fzoo;
  options.samples = 4;
  options.lr = 1e-5;
  options.eps = 1e-3;
  options.seed = 7;
  auto [first, last] = fixed_batch_losses(options, 40);
  EXPECT_LT(last, first - 0.5) << "first " << first << " last " << last;
}

}  // namespace
}  // namespace zoft::test
