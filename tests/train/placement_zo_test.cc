// The ZoStepper over a model placed with Decoder::to_device (here on the CPU, which needs no
// GPU): every perturbation goes through zo::apply_z_terms' device dispatch, the zo2 order's
// perturbed rows of a tied table are copied and perturbed on the weights' device, and the
// weights after 5 steps are bit-identical to a stepper over the loaded model, in both orders.
#include <gtest/gtest.h>

#include <cstring>

#include "model/golden_util.h"
#include "train/zo_step.h"

namespace zoft::test {
namespace {

std::vector<std::vector<uint8_t>> train(const std::string& name, DType dtype, ZoOrder order,
                                        bool placed) {
  Decoder model = Decoder::load(golden_dir(name), dtype);
  make_trainable(model);
  Decoder copy = placed ? model.to_device(Device::CPU) : Decoder();
  Decoder& run_on = placed ? copy : model;
  zo::MezoOptions options;
  options.lr = 1e-3;
  options.eps = 1e-3;
  options.samples = 2;
  options.weight_decay = 0.1;
  options.seed = 77;
  zo::MezoSgd optimizer(options);
  ZoStepper stepper(run_on, optimizer, order);
  GoldenCase g = load_golden(name, "left");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto mean_loss = mean_loss_over(targets);
  for (int t = 0; t < 5; ++t) {
    EXPECT_TRUE(stepper.forward_passes(g.batch, targets, mean_loss).finite());
    stepper.end_step();
  }
  stepper.finish();
  std::vector<std::vector<uint8_t>> out;
  for (const ParameterRef& p : stepper.parameters()) {
    EXPECT_EQ(p.tensor.device, run_on.device()) << p.name;
    auto* bytes = static_cast<const uint8_t*>(p.tensor.data);
    out.emplace_back(bytes, bytes + p.tensor.nbytes());
  }
  return out;
}

TEST(PlacedZoStepper, BitIdenticalToTheLoadedModelInBothOrders) {
  // gemma3: tied table (zo2 perturbs its looked-up rows), sliding windows; gpt2: tied, learned
  // positions, fused qkv; llama untied.
  for (const char* name : {"gemma3", "gpt2", "llama"})
    for (DType dtype : {DType::F32, DType::BF16})
      for (ZoOrder order : {ZoOrder::Plain, ZoOrder::Zo2}) {
        auto want = train(name, dtype, order, false);
        auto got = train(name, dtype, order, true);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i)
          EXPECT_TRUE(got[i] == want[i])
              << name << " " << dtype_name(dtype) << " order "
              << (order == ZoOrder::Zo2 ? "zo2" : "plain") << " parameter " << i;
      }
}

}  // namespace
}  // namespace zoft::test
