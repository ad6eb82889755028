// ZO training on the GPU (the ZoStepper over a model placed with Decoder::to_device) against the
// CPU stepper on golden models: the same z (ids, seed, step, sample) and the same update rule, so
// only the forward's rounding separates the runs. Two checks:
//  - fed the same losses (the CPU's), the GPU's updates are bit-identical to the CPU's, every
//    step, in both orders, and each step's GPU losses (at the same weights) are within the
//    forward's tolerance: what a GPU run guarantees;
//  - left to its own losses, a 50-step f32 run tracks the CPU run (the projected gradient
//    (l+ - l-) / 2 eps amplifies forward noise: a bf16 run drifts, which is not a bug).
// Skipped without a device.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/dtype.h"
#include "core/error.h"
#include "gpu_test_util.h"
#include "model/golden_util.h"
#include "train/zo_step.h"

namespace zoft::testing {
namespace {

using zoft::test::golden_dir;
using zoft::test::GoldenCase;
using zoft::test::load_golden;

struct TrainCase {
  std::string model;
  DType dtype;
  int samples;
};

struct TrainRun {
  std::vector<double> losses;               // loss_plus, loss_minus of every sample, every step
  std::vector<std::vector<float>> weights;  // every parameter after finish(), as f32
};

// A parameter as f32 in host memory, wherever it lives.
std::vector<float> as_f32(const Tensor& t) {
  std::vector<uint8_t> host(t.nbytes());
  ops::download(t.device, host.data(), t.data, host.size());
  std::vector<float> out(size_t(t.numel()));
  convert_to_f32(host.data(), t.dtype, out.data(), out.size());
  return out;
}

// Raw storage bits of every parameter, for bit-for-bit comparisons.
std::vector<std::vector<uint8_t>> raw_bits(const std::vector<ParameterRef>& params) {
  std::vector<std::vector<uint8_t>> out;
  for (const ParameterRef& p : params) {
    out.emplace_back(p.tensor.nbytes());
    ops::download(p.tensor.device, out.back().data(), p.tensor.data, out.back().size());
  }
  return out;
}

zo::MezoOptions options(int samples) {
  zo::MezoOptions o;
  o.lr = 1e-3;  // large enough that 50 steps move the weights visibly
  o.eps = 1e-3;
  o.samples = samples;
  o.weight_decay = 0.1;
  o.seed = 1234;
  return o;
}

TrainRun train(const TrainCase& c, bool on_gpu, int steps) {
  Decoder model = Decoder::load(golden_dir(c.model), c.dtype);
  make_trainable(model);
  Decoder placed = on_gpu ? model.to_device(Device::CUDA) : Decoder();
  Decoder& run_on = on_gpu ? placed : model;
  zo::MezoSgd optimizer(options(c.samples));
  ZoStepper stepper(run_on, optimizer, ZoOrder::Plain);
  GoldenCase g = load_golden(c.model, "left");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto mean_loss = test::mean_loss_over(targets);
  TrainRun run;
  for (int t = 0; t < steps; ++t) {
    ZoStepResult r = stepper.forward_passes(g.batch, targets, mean_loss);
    EXPECT_TRUE(r.finite());
    for (int j = 0; j < c.samples; ++j) {
      run.losses.push_back(r.loss_plus[size_t(j)]);
      run.losses.push_back(r.loss_minus[size_t(j)]);
    }
    optimizer.end_step();
  }
  stepper.finish();
  for (const ParameterRef& p : stepper.parameters()) run.weights.push_back(as_f32(p.tensor));
  return run;
}

class DeviceTraining : public ::testing::TestWithParam<TrainCase> {};

TEST_P(DeviceTraining, FiftyStepsTrackTheCpuRun) {
  ZOFT_REQUIRE_GPU();
  const TrainCase& c = GetParam();
  if (c.dtype == DType::BF16)  // see FedTheSameLossesUpdatesAreBitIdentical
    GTEST_SKIP() << "bf16 forward noise, amplified by (l+ - l-) / 2 eps, makes free runs drift";
  const int steps = 50;
  TrainRun cpu = train(c, false, steps);
  TrainRun gpu = train(c, true, steps);
  // The forward's bounds (decoder_gpu_test.cc), with room for 50 steps of drift.
  const bool bf16 = c.dtype == DType::BF16;
  const double loss_tol = bf16 ? 2e-2 : 1e-3, weight_tol = bf16 ? 2e-2 : 1e-3;

  ASSERT_EQ(cpu.losses.size(), gpu.losses.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i)
    EXPECT_LE(std::abs(gpu.losses[i] - cpu.losses[i]), loss_tol * std::abs(cpu.losses[i]))
        << "step " << i / size_t(2 * c.samples) << " forward " << i % size_t(2 * c.samples)
        << ": GPU " << gpu.losses[i] << ", CPU " << cpu.losses[i];

  // Final weights: relative L2 error over all parameters, and how far training moved them (the
  // error must be small against the move, not only against the weights).
  Decoder initial = Decoder::load(golden_dir(c.model), c.dtype);
  make_trainable(initial);
  std::vector<ParameterRef> start = list_parameters(initial);
  ASSERT_EQ(cpu.weights.size(), gpu.weights.size());
  ASSERT_EQ(cpu.weights.size(), start.size());
  double diff = 0, norm = 0, moved = 0;
  for (size_t p = 0; p < cpu.weights.size(); ++p) {
    std::vector<float> w0 = as_f32(start[p].tensor);
    for (size_t i = 0; i < w0.size(); ++i) {
      double d = double(gpu.weights[p][i]) - cpu.weights[p][i];
      double m = double(cpu.weights[p][i]) - w0[i];
      diff += d * d;
      norm += double(cpu.weights[p][i]) * cpu.weights[p][i];
      moved += m * m;
    }
  }
  EXPECT_GT(moved, 0.0) << "training did not change any weight";
  EXPECT_LE(std::sqrt(diff / norm), weight_tol) << "final weights, relative to the weights";
  // bf16 storage can round one ulp apart; f32 must follow the CPU's update closely.
  if (!bf16) {
    EXPECT_LE(std::sqrt(diff / moved), 5e-2) << "final weights, relative to the training update";
  }
}

std::vector<TrainCase> train_cases() {
  // Tied (gemma3, gpt2) and untied (llama, opt) embeddings, learned positions (opt, gpt2),
  // sliding windows (gemma3), two samples per step.
  return {{"llama", DType::F32, 1},  {"llama", DType::BF16, 1}, {"gemma3", DType::BF16, 1},
          {"gemma3", DType::F32, 2}, {"gpt2", DType::F32, 1},   {"opt", DType::F32, 2},
          {"qwen3", DType::BF16, 1}};
}

INSTANTIATE_TEST_SUITE_P(Architectures, DeviceTraining, ::testing::ValuesIn(train_cases()),
                         [](const ::testing::TestParamInfo<TrainCase>& info) {
                           return info.param.model + "_" + dtype_name(info.param.dtype) + "_n" +
                                  std::to_string(info.param.samples);
                         });

// The guarantee of a GPU run (issue 12, item 4): both sides take every step's update from the
// CPU's losses, so their weights must stay bit-identical (the same z, decay and stochastic
// rounding bits, zo/cuda/perturb.h); the GPU's losses, computed at those same weights, must be
// within the forward's tolerance (decoder_gpu_test.cc) at every step, not only at the first.
void fed_the_same_losses(const TrainCase& c, ZoOrder order) {
  const int steps = 20;
  Decoder cpu_model = Decoder::load(golden_dir(c.model), c.dtype);
  make_trainable(cpu_model);
  Decoder gpu_model = cpu_model.to_device(Device::CUDA);
  zo::MezoSgd cpu_opt(options(c.samples)), gpu_opt(options(c.samples));
  ZoStepper cpu(cpu_model, cpu_opt, order), gpu(gpu_model, gpu_opt, order);
  GoldenCase g = load_golden(c.model, "left");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto mean_loss = test::mean_loss_over(targets);
  const double tolerance = c.dtype == DType::BF16 ? 2e-2 : 1e-3;
  for (int t = 0; t < steps; ++t) {
    ZoStepResult a = cpu.forward_passes(g.batch, targets, mean_loss);
    ZoStepResult b = gpu.forward_passes(g.batch, targets, mean_loss);
    ASSERT_TRUE(a.finite() && b.finite()) << "step " << t;
    for (int j = 0; j < c.samples; ++j) {
      for (auto [got, want] : {std::pair{b.loss_plus[size_t(j)], a.loss_plus[size_t(j)]},
                               std::pair{b.loss_minus[size_t(j)], a.loss_minus[size_t(j)]}})
        EXPECT_LE(std::abs(got - want), tolerance * std::abs(want))
            << "step " << t << " sample " << j << ": GPU " << got << ", CPU " << want;
      gpu_opt.record(j, a.loss_plus[size_t(j)], a.loss_minus[size_t(j)]);  // the CPU's losses
    }
    cpu_opt.end_step();
    gpu_opt.end_step();
  }
  cpu.finish();
  gpu.finish();
  std::vector<std::vector<uint8_t>> want = raw_bits(cpu.parameters());
  std::vector<std::vector<uint8_t>> got = raw_bits(gpu.parameters());
  ASSERT_EQ(got.size(), want.size());
  for (size_t p = 0; p < want.size(); ++p)
    EXPECT_TRUE(got[p] == want[p])
        << cpu.parameters()[p].name << " differs after " << steps << " steps fed the same losses";
}

TEST_P(DeviceTraining, FedTheSameLossesUpdatesAreBitIdentical) {
  ZOFT_REQUIRE_GPU();
  fed_the_same_losses(GetParam(), ZoOrder::Plain);
}

TEST_P(DeviceTraining, FedTheSameLossesZo2OrderIsBitIdentical) {
  ZOFT_REQUIRE_GPU();
  fed_the_same_losses(GetParam(), ZoOrder::Zo2);
}

TEST(DeviceTraining, NoDeviceIsOneClearError) {
  if (cuda::device_available()) GTEST_SKIP() << "a GPU is present";
  Decoder model = Decoder::load(golden_dir("llama"), DType::F32);
  try {
    Decoder placed = model.to_device(Device::CUDA);
    FAIL() << "expected an error without a GPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zoft::testing
