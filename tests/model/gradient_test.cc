// Decoder::loss_and_grad against PyTorch autograd (tools/make_grad_golden.py) on every golden
// architecture, padded and unpadded, plus checkpointing, accumulation, bf16 and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>

#include "core/error.h"
#include "model/golden_util.h"
#include "model/parameters.h"

namespace zoft::test {
namespace {

const char* const kModels[] = {"opt", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3"};

// A gradient that is zero in exact arithmetic (OPT's k_proj bias) is rounding noise, so a
// tensor's scale is at least this fraction of the model's largest gradient (as in the script).
constexpr double kScaleFloor = 1e-3;

struct Gradients {
  double loss = 0;  // summed over targets
  int64_t targets = 0;
  std::vector<Buffer> grads;
};

// Gradients of the MEAN loss (PyTorch's objective) of one golden case.
Gradients mean_loss_gradients(Decoder& model, const TokenBatch& batch,
                              BackwardOptions options = {}) {
  std::vector<int32_t> targets = Decoder::next_token_targets(batch);
  Gradients out;
  out.targets = std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
  out.loss =
      model.loss_and_grad(batch, targets.data(), 1.0f / float(out.targets), out.grads, options);
  return out;
}

std::vector<float> as_vector(const Buffer& b, int64_t n) {
  return std::vector<float>(b.as<float>(), b.as<float>() + n);
}

double max_abs(const float* x, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(x[i])));
  return m;
}

// max |ours - ref| / max(max |ref|, floor).
double relative_error(const float* ours, const float* ref, int64_t n, double floor) {
  double diff = 0;
  for (int64_t i = 0; i < n; ++i) diff = std::max(diff, std::fabs(double(ours[i]) - ref[i]));
  return diff / std::max(max_abs(ref, n), floor);
}

// Worst per-tensor relative error of `ours` against `ref`, both aligned with `params`.
double worst_error(const std::vector<ParameterRef>& params, const std::vector<Buffer>& ours,
                   const std::vector<const float*>& ref, std::string* worst_name) {
  double floor = 0;
  for (size_t i = 0; i < params.size(); ++i)
    floor = std::max(floor, max_abs(ref[i], params[i].tensor.numel()));
  floor *= kScaleFloor;
  double worst = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    double e = relative_error(ours[i].as<float>(), ref[i], params[i].tensor.numel(), floor);
    if (e > worst) worst = e, *worst_name = params[i].name;
  }
  return worst;
}

struct GradParam {
  std::string model, case_name;
};

std::string grad_param_name(const testing::TestParamInfo<GradParam>& info) {
  return info.param.model + "_" + info.param.case_name;
}

class GradientGolden : public testing::TestWithParam<GradParam> {};

TEST_P(GradientGolden, MatchesPyTorchAutograd) {
  const GradParam& p = GetParam();
  GoldenCase g = load_golden(p.model, p.case_name);
  Decoder model = Decoder::load(golden_dir(p.model), DType::F32);
  Gradients ours = mean_loss_gradients(model, g.batch);

  nlohmann::json ref_json = read_json_file(golden_dir(p.model) + "/grads.json");
  const nlohmann::json& ref_case = ref_json.at("cases").at(p.case_name);
  ASSERT_EQ(ours.targets, ref_case.at("targets").get<int64_t>());
  double ref_loss = ref_case.at("loss").get<double>();
  EXPECT_NEAR(ours.loss / double(ours.targets), ref_loss, 1e-5 * ref_loss);

  // The training forward is the inference forward: the same per-token losses, bit for bit.
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  std::vector<float> token_loss(size_t(g.batch.rows()));
  model.token_losses(g.batch, targets.data(), token_loss.data());
  double sum = 0;
  for (size_t i = 0; i < targets.size(); ++i)
    if (targets[i] >= 0) sum += token_loss[i];
  EXPECT_EQ(ours.loss, sum);

  // Left padding has the right-padded case's gradients (the script checks that in PyTorch).
  std::string ref_case_name = p.case_name == "left" ? "right" : p.case_name;
  SafetensorsFile file =
      SafetensorsFile::open(golden_dir(p.model) + "/grads_" + ref_case_name + ".safetensors");
  std::vector<ParameterRef> params = list_parameters(model);
  ASSERT_EQ(params.size(), file.tensors().size()) << "parameters vs PyTorch's named_parameters";
  std::vector<const float*> ref;
  for (const ParameterRef& param : params) {
    Tensor t = file.view(param.name);
    ASSERT_EQ(t.numel(), param.tensor.numel()) << param.name;
    ref.push_back(t.f32());
  }
  std::string worst_name;
  double worst = worst_error(params, ours.grads, ref, &worst_name);
  std::cout << "[ gradient ] " << p.model << "/" << p.case_name << ": worst relative error "
            << worst << " (" << worst_name << ")\n";
  EXPECT_LE(worst, 1e-4) << worst_name;
}

std::vector<GradParam> grad_params() {
  std::vector<GradParam> out;
  for (const char* model : kModels)
    for (const char* c : {"nopad", "right", "left"}) out.push_back({model, c});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, GradientGolden, testing::ValuesIn(grad_params()),
                         grad_param_name);

void expect_bit_identical(const std::vector<ParameterRef>& params, const std::vector<Buffer>& a,
                          const std::vector<Buffer>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), size_t(params[i].tensor.numel()) * 4), 0)
        << what << ": " << params[i].name;
}

TEST(Gradient, CheckpointingIsBitExact) {
  for (const char* name : kModels) {
    SCOPED_TRACE(name);
    GoldenCase g = load_golden(name, "left");
    Decoder model = Decoder::load(golden_dir(name), DType::F32);
    Gradients plain = mean_loss_gradients(model, g.batch, {.checkpoint_blocks = false});
    Gradients checkpointed = mean_loss_gradients(model, g.batch, {.checkpoint_blocks = true});
    EXPECT_EQ(plain.loss, checkpointed.loss);
    expect_bit_identical(list_parameters(model), plain.grads, checkpointed.grads, name);
  }
}

// Two calls accumulate: grads(2 calls at scale s) = grads(1 call at scale 2s) up to rounding.
TEST(Gradient, Accumulates) {
  GoldenCase g = load_golden("qwen2", "right");  // tied table: two uses summed
  Decoder model = Decoder::load(golden_dir("qwen2"), DType::F32);
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  std::vector<Buffer> twice, doubled;
  double l1 = model.loss_and_grad(g.batch, targets.data(), 0.5f, twice);
  double l2 = model.loss_and_grad(g.batch, targets.data(), 0.5f, twice);
  double l3 = model.loss_and_grad(g.batch, targets.data(), 1.0f, doubled);
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(l1, l3);  // the returned loss is unscaled
  std::vector<ParameterRef> params = list_parameters(model);
  for (size_t i = 0; i < params.size(); ++i) {
    int64_t n = params[i].tensor.numel();
    double scale = max_abs(doubled[i].as<float>(), n);
    EXPECT_GT(scale, 0) << params[i].name;
    EXPECT_LE(relative_error(twice[i].as<float>(), doubled[i].as<float>(), n, 1e-30), 1e-6)
        << params[i].name;
  }
}

// Pad rows contribute nothing: other pad ids give the same gradients, bit for bit.
TEST(Gradient, PadTokensDoNotMatter) {
  for (const char* name : {"llama", "opt", "gpt2"}) {
    SCOPED_TRACE(name);
    Decoder model = Decoder::load(golden_dir(name), DType::F32);
    for (const char* c : {"right", "left"}) {
      GoldenCase g = load_golden(name, c);
      TokenBatch other = g.batch;
      for (size_t i = 0; i < other.ids.size(); ++i)
        if (!other.mask[i]) other.ids[i] = int32_t(7 + i % 50);
      Gradients a = mean_loss_gradients(model, g.batch);
      Gradients b = mean_loss_gradients(model, other);
      EXPECT_EQ(a.loss, b.loss);
      expect_bit_identical(list_parameters(model), a.grads, b.grads, c);
    }
  }
}

// bf16 compute (weights and GEMM inputs rounded to bf16) stays close to the f32 gradients.
TEST(Gradient, Bf16WeightsCloseToF32) {
  for (const char* name : {"llama", "gpt2", "gemma3"}) {
    SCOPED_TRACE(name);
    GoldenCase g = load_golden(name, "right");
    Decoder f32 = Decoder::load(golden_dir(name), DType::F32);
    Decoder bf16 = Decoder::load(golden_dir(name), DType::BF16);
    Gradients ref = mean_loss_gradients(f32, g.batch);
    Gradients ours = mean_loss_gradients(bf16, g.batch);
    EXPECT_NEAR(ours.loss, ref.loss, 1e-2 * ref.loss);
    std::vector<ParameterRef> params = list_parameters(bf16);
    std::vector<const float*> ref_ptrs;
    for (const Buffer& b : ref.grads) ref_ptrs.push_back(b.as<float>());
    std::string worst_name;
    double worst = worst_error(params, ours.grads, ref_ptrs, &worst_name);
    std::cout << "[ gradient ] " << name << " bf16 vs f32: worst relative error " << worst << " ("
              << worst_name << ")\n";
    EXPECT_LE(worst, 5e-2) << worst_name;
  }
}

// After make_trainable the gradient list still lines up (the tied head is the table itself).
TEST(Gradient, SameAfterMakeTrainable) {
  for (const char* name : {"qwen3", "opt"}) {
    SCOPED_TRACE(name);
    GoldenCase g = load_golden(name, "nopad");
    Decoder model = Decoder::load(golden_dir(name), DType::F32);
    Gradients before = mean_loss_gradients(model, g.batch);
    make_trainable(model);
    Gradients after = mean_loss_gradients(model, g.batch);
    expect_bit_identical(list_parameters(model), before.grads, after.grads, name);
  }
}

TEST(Gradient, BadInputThrowsAndLeavesGradientsAlone) {
  GoldenCase g = load_golden("llama", "right");
  Decoder model = Decoder::load(golden_dir("llama"), DType::F32);
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  std::vector<Buffer> grads;
  model.loss_and_grad(g.batch, targets.data(), 1.0f, grads);
  std::vector<ParameterRef> params = list_parameters(model);
  std::vector<float> first = as_vector(grads[0], params[0].tensor.numel());

  std::vector<int32_t> bad_target = targets;
  bad_target[0] = int32_t(model.config().vocab_size);
  EXPECT_THROW(model.loss_and_grad(g.batch, bad_target.data(), 1.0f, grads), Error);
  TokenBatch bad_id = g.batch;
  bad_id.ids[0] = -3;
  EXPECT_THROW(model.loss_and_grad(bad_id, targets.data(), 1.0f, grads), Error);
  EXPECT_EQ(as_vector(grads[0], params[0].tensor.numel()), first);

  std::vector<Buffer> too_few(2);
  EXPECT_THROW(model.loss_and_grad(g.batch, targets.data(), 1.0f, too_few), Error);
  TokenBatch short_batch = g.batch;
  short_batch.mask.pop_back();
  EXPECT_THROW(model.loss_and_grad(short_batch, targets.data(), 1.0f, grads), Error);
}

}  // namespace
}  // namespace zoft::test
