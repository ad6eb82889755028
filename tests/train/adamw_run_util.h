// The AdamW run fixtures (tools/make_adamw_run_fixture.py): settings, batches, losses and final
// weights of 10 torch.optim.AdamW steps on a golden model, and how zoft's weights are compared.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "model/golden_util.h"
#include "model/parameters.h"
#include "train/method.h"
#include "train/recipe.h"

namespace zoft::test::adamw_run {

struct Reference {
  nlohmann::json settings;
  std::vector<std::string> cases;  // the golden case of each step
  std::vector<double> losses, grad_norms;
};

inline Reference load_reference(const std::string& model) {
  nlohmann::json j = read_json_file(golden_dir(model) + "/adamw_run.json");
  return {j.at("settings"), j.at("cases").get<std::vector<std::string>>(),
          j.at("losses").get<std::vector<double>>(), j.at("grad_norms").get<std::vector<double>>()};
}

// The recipe whose optimizer the script ran (HF TrainingArguments names).
inline Recipe recipe_of(const nlohmann::json& s, int64_t micro_batches) {
  Recipe r;
  r.source = "adamw_run";
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

// Rank `rank` of `ranks`' rows of a golden batch (all rows by default); the loss is the mean
// over the whole batch's next-token targets, as FirstOrderMethod takes it.
inline StepBatch step_batch(const std::string& model, const std::string& case_name, int rank = 0,
                            int ranks = 1) {
  const TokenBatch all = load_golden(model, case_name).batch;
  const std::vector<int32_t> targets = Decoder::next_token_targets(all);
  const int64_t begin = all.batch * rank / ranks, end = all.batch * (rank + 1) / ranks;
  StepBatch b;
  b.tokens = all.slice(begin, end);
  b.targets.assign(targets.begin() + begin * all.seq, targets.begin() + end * all.seq);
  b.global_scored_tokens =
      std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
  return b;
}

// The elements of parameter `name` whose gradient is zero in exact arithmetic: a key bias without
// rope adds q.b_k to every score of a query row, which softmax ignores. Their gradients are
// rounding noise, which Adam's m / sqrt(v) scales up to lr-sized steps of random sign in
// PyTorch and zoft alike, so they are not compared (nothing else depends on them).
inline std::pair<int64_t, int64_t> noise_only_elements(const std::string& name, int64_t numel) {
  auto ends_with = [&](const std::string& tail) {
    return name.size() >= tail.size() &&
           name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (ends_with(".self_attn.k_proj.bias")) return {0, numel};               // OPT
  if (ends_with(".attn.c_attn.bias")) return {numel / 3, 2 * (numel / 3)};  // GPT-2: q, k, v
  return {0, 0};
}

inline double relative_error(const std::string& name, const Tensor& ours, const float* ref) {
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

struct WeightError {
  double worst = 0;  // max over tensors of max |ours - ref| / max |ref|
  std::string name;  // of the worst tensor
};

// `params` against the fixture's final weights.
inline WeightError weight_error(const std::vector<ParameterRef>& params, const std::string& model) {
  SafetensorsFile file = SafetensorsFile::open(golden_dir(model) + "/adamw_run.safetensors");
  EXPECT_EQ(params.size(), file.tensors().size()) << "vs named_parameters";
  WeightError out;
  for (const ParameterRef& p : params) {
    Tensor t = file.view(p.name);
    EXPECT_EQ(t.numel(), p.tensor.numel()) << p.name;
    if (t.numel() != p.tensor.numel()) continue;
    double e = relative_error(p.name, p.tensor, t.f32());
    if (e >= out.worst) out = {e, p.name};
  }
  return out;
}

}  // namespace zoft::test::adamw_run
