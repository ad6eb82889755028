// The GPU tier (runtime/device_residency.h) on the simulated device: with a device budget smaller
// than the model, eval (logits, per-token losses), generation and ZO training give results bit for
// bit those of the resident run, and the device memory in use never exceeds the budget (the
// simulated device refuses any allocation beyond it and records its peak). Bad budgets are one
// clear line.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/json_file.h"
#include "model/generate.h"
#include "model/golden_util.h"
#include "model/json_config.h"
#include "runtime/device_residency.h"
#include "runtime/sim_device.h"
#include "train/zo_step.h"

namespace zoft::test {
namespace {

using runtime::DeviceResidency;
using runtime::plan_device_residency;
using runtime::SimDevice;
using runtime::SimOptions;

struct TierCase {
  std::string model;
  DType dtype;
};

void PrintTo(const TierCase& c, std::ostream* os) {
  *os << c.model << "/" << dtype_name(c.dtype);
}

// Blocks 0 and L+1 resident, one more layer resident, the rest streamed through prefetch + 1
// slots: below the model's size, above the plan's minimum.
uint64_t budget_for(Decoder& model, int64_t prefetch) {
  runtime::ResidencyPlan all = plan_device_residency(model, ~uint64_t(0) >> 1, prefetch);
  const int64_t last = model.num_blocks() - 1;
  uint64_t largest = 0;
  for (int64_t b = 1; b < last; ++b) largest = std::max(largest, all.block_bytes[size_t(b)]);
  return all.block_bytes[0] + all.block_bytes[size_t(last)] + all.block_bytes[1] +
         uint64_t(prefetch + 1) * largest;
}

bool same_bits(const void* a, const void* b, size_t n) {
  return std::memcmp(a, b, n) == 0;
}

// The golden architecture with 6 layers (the fixtures have 2-4: too few to stream with a read
// ahead), weights drawn in memory, the same for every call.
Decoder six_layers(const TierCase& c) {
  nlohmann::json j = read_json_file(golden_dir(c.model) + "/config.json");
  j[j.contains("n_layer") ? "n_layer" : "num_hidden_layers"] = 6;
  return Decoder::random_init(JsonConfig::from_value(j, c.model + " x6"), c.dtype, 3);
}

int64_t streamed_blocks(const runtime::ResidencyPlan& plan) {
  int64_t n = 0;
  for (bool s : plan.streamed) n += s;
  return n;
}

class GpuTier : public testing::TestWithParam<TierCase> {};

TEST_P(GpuTier, EvalAndGenerationAreBitIdenticalWithinTheBudget) {
  const TierCase& c = GetParam();
  GoldenCase g = load_golden(c.model, "left");
  Decoder model = six_layers(c);
  const int64_t M = g.batch.rows(), V = model.config().vocab_size;
  std::vector<float> want(size_t(M * V)), got(size_t(M * V));
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  std::vector<float> want_loss(static_cast<size_t>(M)), got_loss(static_cast<size_t>(M));
  std::vector<int32_t> prompt = {1, 5, 9, 2, 7};
  SamplingOptions sampling;
  sampling.max_new_tokens = 5;
  model.logits(g.batch, want.data());
  model.token_losses(g.batch, targets.data(), want_loss.data());
  std::vector<int32_t> want_ids = generate(model, prompt, sampling);

  for (int64_t prefetch : {0, 1, 2}) {
    const uint64_t budget = budget_for(model, prefetch);
    SimOptions o;
    o.capacity = budget;  // an allocation beyond it throws
    o.max_delay_us = 20;  // a missing event shows up as a wrong result
    SimDevice device(o);
    {
      auto tier = DeviceResidency::attach(model, device, budget, prefetch);
      ASSERT_GE(streamed_blocks(tier->plan()), 2) << "too little streams to prove anything";
      EXPECT_LE(tier->plan().device_bytes(), budget);
      model.logits(g.batch, got.data());
      model.token_losses(g.batch, targets.data(), got_loss.data());
      EXPECT_EQ(generate(model, prompt, sampling), want_ids) << "prefetch " << prefetch;
      EXPECT_GT(tier->stats().uploads, 0);
      EXPECT_EQ(tier->stats().write_backs, 0) << "eval writes nothing back";
    }
    EXPECT_TRUE(same_bits(got.data(), want.data(), got.size() * sizeof(float)))
        << "logits, prefetch " << prefetch;
    EXPECT_TRUE(same_bits(got_loss.data(), want_loss.data(), got_loss.size() * sizeof(float)))
        << "losses, prefetch " << prefetch;
    EXPECT_LE(device.peak_bytes(), budget);
    EXPECT_EQ(device.bytes_in_use(), 0u);
  }
}

std::vector<std::vector<uint8_t>> trained_weights(const TierCase& c, bool tiered) {
  Decoder model = six_layers(c);
  make_trainable(model);  // the homes the tier writes back to
  const int64_t prefetch = 1;
  const uint64_t budget = budget_for(model, prefetch);
  SimOptions o;
  o.capacity = budget;
  o.max_delay_us = 20;
  SimDevice device(o);
  zo::MezoOptions options;
  options.lr = 1e-3;
  options.eps = 1e-3;
  options.samples = 2;
  options.weight_decay = 0.1;
  options.seed = 5;
  zo::MezoSgd optimizer(options);
  GoldenCase g = load_golden(c.model, "left");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto mean_loss = mean_loss_over(targets);
  {
    std::unique_ptr<DeviceResidency> tier;
    if (tiered) tier = DeviceResidency::attach(model, device, budget, prefetch);
    ZoStepper stepper(model, optimizer, ZoOrder::Zo2);
    for (int t = 0; t < 4; ++t) {
      EXPECT_TRUE(stepper.forward_passes(g.batch, targets, mean_loss).finite());
      stepper.end_step();
    }
    stepper.finish();
    if (tier) {
      // ZO2: each streamed block up and back once per step (+ finish's pass).
      const int64_t streamed = streamed_blocks(tier->plan());
      EXPECT_GE(streamed, 2);
      EXPECT_EQ(tier->stats().write_backs, 5 * streamed);
      // Uploads: the same, plus what was read ahead past the last acquire (prefetch 1).
      EXPECT_GE(tier->stats().uploads, 5 * streamed);
      EXPECT_LE(tier->stats().uploads, 5 * streamed + 1);
    }
  }  // detached: the model's parameters are its homes again, holding the trained weights
  EXPECT_LE(device.peak_bytes(), budget);
  std::vector<std::vector<uint8_t>> out;
  for (const ParameterRef& p : list_parameters(model)) {
    auto* bytes = static_cast<const uint8_t*>(p.tensor.data);
    out.emplace_back(bytes, bytes + p.tensor.nbytes());
  }
  return out;
}

TEST_P(GpuTier, Zo2TrainingIsBitIdenticalWithinTheBudget) {
  auto want = trained_weights(GetParam(), false);
  auto got = trained_weights(GetParam(), true);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i] == want[i]) << "parameter " << i;
}

INSTANTIATE_TEST_SUITE_P(Architectures, GpuTier,
                         testing::Values(TierCase{"llama", DType::F32},
                                         TierCase{"llama", DType::BF16},
                                         TierCase{"opt", DType::F32}, TierCase{"opt", DType::BF16},
                                         TierCase{"gpt2", DType::F32},
                                         TierCase{"qwen3", DType::BF16}));

TEST(GpuTierBudget, BadBudgetsAreOneClearLine) {
  Decoder model = Decoder::load(golden_dir("llama"), DType::F32);
  auto message = [&](uint64_t budget) -> std::string {
    try {
      plan_device_residency(model, budget, 1);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(0).find("gpu=0"), std::string::npos) << message(0);
  std::string small = message(1024);  // below one block
  EXPECT_NE(small.find("too small"), std::string::npos) << small;
  EXPECT_NE(small.find("give at least gpu="), std::string::npos) << small;
  EXPECT_EQ(small.find('\n'), std::string::npos);
  // Enough for everything: nothing streams.
  EXPECT_EQ(plan_device_residency(model, uint64_t(1) << 40, 1).slots, 0);
  // An unknown tier in the budget text.
  EXPECT_THROW(runtime::parse_max_memory("gpu=1GiB,tpu=2GiB"), Error);
}

}  // namespace
}  // namespace zoft::test
