// The first-order acceptance check (as llm.c checks itself): 10 AdamW steps through the trainer's
// FirstOrderMethod (loss_and_grad, clipping, optim::Optimizer with a linear warm-up) give
// torch.optim.AdamW's losses and final weights (tools/make_adamw_run_fixture.py) within 1e-4
// relative, on golden models with and without tied embeddings, padded and unpadded batches.
// Also: bf16 weights with f32 masters track the f32 run's losses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "dist/communicator.h"
#include "model/golden_util.h"
#include "train/first_order_method.h"

namespace zoft::test {
namespace {

const char* const kModels[] = {"opt", "gpt2", "llama", "gemma3"};

struct Reference {
  nlohmann::json settings;
  std::vector<std::string> cases;  // the golden case of each step
  std::vector<double> losses, grad_norms;
};

Reference load_reference(const std::string& model) {
  nlohmann::json j = read_json_file(golden_dir(model) + "/adamw_run.json");
  return {j.at("settings"), j.at("cases").get<std::vector<std::string>>(),
          j.at("losses").get<std::vector<double>>(), j.at("grad_norms").get<std::vector<double>>()};
}

// The recipe whose optimizer the script ran (HF TrainingArguments names).
Recipe recipe_of(const nlohmann::json& s, int64_t micro_batches) {
  Recipe r;
  r.source = "adamw_run_test";
  r.optim.method = "adamw";
  r.optim.lr = s.at("lr").get<double>();
  r.optim.weight_decay = s.at("weight_decay").get<double>();
  r.optim.adam_beta1 = s.at("beta1").get<double>();
  r.optim.adam_beta2 = s.at("beta2").get<double>();
  r.optim.adam_epsilon = s.at("eps").get<double>();
  r.optim.schedule = s.at("schedule").get<std::string>();
  r.optim.warmup_steps = s.at("warmup_steps").get<int64_t>();
  r.optim.max_grad_norm = s.at("max_grad_norm").get<double>();
  r.trainer.steps = s.at("total_steps").get<int64_t>();
  r.trainer.gradient_accumulation_steps = micro_batches;
  return r;
}

// One process's view of a golden batch: every row, the mean over its next-token targets.
StepBatch step_batch(const std::string& model, const std::string& case_name) {
  StepBatch b;
  b.tokens = load_golden(model, case_name).batch;
  b.targets = Decoder::next_token_targets(b.tokens);
  b.global_scored_tokens =
      std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) { return t >= 0; });
  return b;
}

struct RunResult {
  std::vector<double> losses, grad_norms;
  double worst_weight_error = 0;  // max over tensors of max |ours - ref| / max |ref|
  std::string worst_name;
};

// The elements of parameter `name` whose gradient is zero in exact arithmetic: a key bias without
// rope adds q.b_k to every score of a query row, which softmax ignores. Their gradients are
// rounding noise, which Adam's m / sqrt(v) scales up to lr-sized steps of random sign in
// PyTorch and zoft alike, so they are not compared (nothing else depends on them).
std::pair<int64_t, int64_t> noise_only_elements(const std::string& name, int64_t numel) {
  auto ends_with = [&](const std::string& tail) {
    return name.size() >= tail.size() &&
           name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (ends_with(".self_attn.k_proj.bias")) return {0, numel};               // OPT
  if (ends_with(".attn.c_attn.bias")) return {numel / 3, 2 * (numel / 3)};  // GPT-2: q, k, v
  return {0, 0};
}

double relative_error(const std::string& name, const Tensor& ours, const float* ref) {
  const int64_t n = ours.numel();
  std::vector<float> mine(size_t(n), 0.0f);
  convert_to_f32(ours.data, ours.dtype, mine.data(), size_t(n));
  const auto [skip_begin, skip_end] = noise_only_elements(name, n);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i >= skip_begin && i < skip_end) continue;
    diff = std::max(diff, std::fabs(double(mine[size_t(i)]) - ref[i]));
    scale = std::max(scale, std::fabs(double(ref[i])));
  }
  return diff / scale;
}

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
  SafetensorsFile file = SafetensorsFile::open(golden_dir(model_name) + "/adamw_run.safetensors");
  EXPECT_EQ(method.parameters().size(), file.tensors().size()) << "vs named_parameters";
  for (const ParameterRef& p : method.parameters()) {
    Tensor t = file.view(p.name);
    EXPECT_EQ(t.numel(), p.tensor.numel()) << p.name;
    if (t.numel() != p.tensor.numel()) continue;
    double e = relative_error(p.name, p.tensor, t.f32());
    if (e >= out.worst_weight_error) out.worst_weight_error = e, out.worst_name = p.name;
  }
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
