// The first-order acceptance check (as llm.c checks itself): 10 AdamW steps through the trainer's
// FirstOrderMethod (loss_and_grad, clipping, optim::Optimizer with a linear warm-up) give
// torch.optim.AdamW's losses and final weights (tools/make_adamw_run_fixture.py) within 1e-4
// relative, on golden models with and without tied embeddings, padded and unpadded batches.
// Weight decay 0.1 moves every tensor by ~5e-4 of its scale over the run, so a wrong decay flag
// on any tensor, a warm-up off by one step or no decay at all fails (each tried: >= 5e-4). Also:
// bf16 weights with f32 masters track the f32 run's losses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "dist/communicator.h"
#include "train/adamw_run_util.h"
#include "train/first_order_method.h"

namespace zoft::test {
namespace {

using namespace adamw_run;

const char* const kModels[] = {"opt", "gpt2", "llama", "gemma3"};

struct RunResult {
  std::vector<double> losses, grad_norms;
  double worst_weight_error = 0;  // max over tensors of max |ours - ref| / max |ref|
  std::string worst_name;
};

// The script's 10 steps through FirstOrderMethod, weights in `dtype`.
RunResult run_steps(const std::string& model_name, const Reference& ref, int64_t micro_batches,
                    DType dtype) {
  Decoder model = Decoder::load(golden_dir(model_name), dtype);
  std::unique_ptr<dist::Communicator> single = dist::make_single();
  FirstOrderMethod method(recipe_of(ref.settings, micro_batches), model, *single);
  RunResult out;
  for (const std::string& case_name : ref.cases) {
    StepReport report = method.step(step_batch(model_name, case_name));
    EXPECT_TRUE(report.finite);
    out.losses.push_back(report.loss);
    out.grad_norms.push_back(report.metrics.at("train/grad_norm"));
  }
  WeightError e = weight_error(method.parameters(), model_name);
  out.worst_weight_error = e.worst;
  out.worst_name = e.name;
  return out;
}

double worst_relative(const std::vector<double>& ours, const std::vector<double>& ref) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::fabs(ours[i] - ref[i]) / std::fabs(ref[i]));
  return worst;
}

struct RunParam {
  std::string model;
  int64_t micro_batches;
};

void PrintTo(const RunParam& p, std::ostream* os) {
  *os << p.model << ", " << p.micro_batches << " micro-batches";
}

std::string run_param_name(const testing::TestParamInfo<RunParam>& info) {
  return info.param.model + "_micro" + std::to_string(info.param.micro_batches);
}

class AdamwRun : public testing::TestWithParam<RunParam> {};

TEST_P(AdamwRun, MatchesTorchAdamW) {
  const RunParam& p = GetParam();
  Reference ref = load_reference(p.model);
  ASSERT_EQ(ref.cases.size(), 10u);
  RunResult ours = run_steps(p.model, ref, p.micro_batches, DType::F32);
  ASSERT_EQ(ours.losses.size(), ref.losses.size());
  double loss_error = worst_relative(ours.losses, ref.losses);
  double norm_error = worst_relative(ours.grad_norms, ref.grad_norms);
  std::cout << "[ adamw run ] " << p.model << " micro-batches " << p.micro_batches << ": losses "
            << loss_error << ", grad norms " << norm_error << ", weights "
            << ours.worst_weight_error << " (" << ours.worst_name << ")\n";
  EXPECT_LE(loss_error, 1e-4);
  EXPECT_LE(norm_error, 1e-4);
  EXPECT_LE(ours.worst_weight_error, 1e-4) << ours.worst_name;
  EXPECT_LT(ref.losses.back(), 0.8 * ref.losses.front()) << "the run trains";
}

std::vector<RunParam> run_params() {
  std::vector<RunParam> out;
  for (const char* model : kModels) out.push_back({model, 1});
  out.push_back({"llama", 3});  // one row per micro-batch, gradients summed
  out.push_back({"gemma3", 2});
  return out;
}

INSTANTIATE_TEST_SUITE_P(GoldenModels, AdamwRun, testing::ValuesIn(run_params()), run_param_name);

// bf16 weights (model.dtype bf16) with f32 masters in the optimizer: the losses track the f32
// run. A measurement with a loose bound, not a reference match. Measured against torch's f32 run:
// step 1 (the same weights, rounded) 0.7e-4..4e-4 relative, the worst step 0.8%..1.3%, the final
// loss within 0.2% (opt, gpt2, llama, gemma3); weights within 0.5%..0.8% of their scale.
TEST(AdamwRunBf16, TracksTheF32Run) {
  for (const char* model : kModels) {
    Reference ref = load_reference(model);
    RunResult ours = run_steps(model, ref, 1, DType::BF16);
    double worst = 0, first = std::fabs(ours.losses[0] - ref.losses[0]) / ref.losses[0];
    for (size_t i = 0; i < ref.losses.size(); ++i)
      worst = std::max(worst, std::fabs(ours.losses[i] - ref.losses[i]) / ref.losses[i]);
    std::cout << "[ adamw bf16 ] " << model << ": loss vs f32 torch: step 1 " << first << ", worst "
              << worst << "; final loss " << ours.losses.back() << " vs " << ref.losses.back()
              << "; weights " << ours.worst_weight_error << "\n";
    EXPECT_LE(worst, 2e-2) << model;
    EXPECT_LE(std::fabs(ours.losses.back() - ref.losses.back()), 5e-3 * ref.losses.back()) << model;
    EXPECT_LT(ours.losses.back(), 0.8 * ours.losses.front()) << model << ": bf16 trains";
  }
}

}  // namespace
}  // namespace zoft::test
