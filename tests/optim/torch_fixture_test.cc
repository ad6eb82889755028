// AdamW / SGD + clip_grad_norm_ + HF schedules against PyTorch:
// tests/fixtures/optim/adamw.safetensors (tools/make_optim_fixture.py) holds 10 steps of
// torch.optim's parameters for fixed gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "optim/optim_test_util.h"
#include "optim/optimizer.h"

namespace zoft::optim {
namespace {

using namespace testing;

const char* kNames[] = {"w", "b", "norm"};  // w decays (a matrix), b and norm do not

std::vector<float> floats(const SafetensorsFile& file, const std::string& name) {
  Tensor t = file.view(name);
  return std::vector<float>(t.f32(), t.f32() + t.numel());
}

OptimizerOptions options_of(const nlohmann::json& run) {
  OptimizerOptions o;
  o.method = parse_method(run["method"].get<std::string>());
  o.lr = run["lr"];
  o.weight_decay = run["weight_decay"];
  o.beta1 = run.value("beta1", 0.9);
  o.beta2 = run.value("beta2", 0.999);
  o.eps = run.value("eps", 1e-8);
  o.momentum = run.value("momentum", 0.0);
  o.dampening = run.value("dampening", 0.0);
  o.nesterov = run.value("nesterov", false);
  o.schedule = {parse_schedule_kind(run["schedule"].get<std::string>()), run["warmup_steps"],
                run["total_steps"]};
  return o;
}

TEST(TorchFixture, TenStepsMatchPyTorch) {
  auto file = SafetensorsFile::open(std::string(ZOFT_SOURCE_DIR) +
                                    "/tests/fixtures/optim/adamw.safetensors");
  auto runs = nlohmann::json::parse(file.metadata().at("runs"));
  int steps = std::stoi(file.metadata().at("steps"));
  ASSERT_EQ(runs.size(), 4u);
  for (const auto& run : runs) {
    std::string name = run["name"];
    SCOPED_TRACE(name);
    OptimizerOptions options = options_of(run);
    double max_norm = run["max_grad_norm"];
    TestParameters params;
    for (const char* p : kNames) {
      Tensor t = file.view(std::string("init.") + p);
      std::vector<float> init = floats(file, std::string("init.") + p);
      if (t.ndim == 2)
        params.add(p, DType::F32, {t.shape[0], t.shape[1]}, true, init);
      else
        params.add(p, DType::F32, {t.shape[0]}, false, init);
    }
    Optimizer optimizer(options, params.refs);
    auto norms = floats(file, name + ".grad_norm");
    for (int t = 0; t < steps; ++t) {
      std::vector<Buffer> grads;
      for (const char* p : kNames)
        grads.push_back(buffer_of(floats(file, "grad." + std::to_string(t) + "." + p)));
      double norm = clip_grad_norm(grads, max_norm);
      EXPECT_NEAR(norm, norms[size_t(t)], 1e-6 * norms[size_t(t)]) << "step " << t;
      optimizer.step(params.refs, grads);
      for (size_t p = 0; p < params.refs.size(); ++p) {
        auto expected = floats(file, name + "." + std::to_string(t) + "." + kNames[p]);
        auto got = params.values(p);
        // Relative to the tensor's scale: an element that passes near 0 keeps the absolute
        // rounding error of its earlier, larger values.
        float scale = 0;
        for (float e : expected) scale = std::max(scale, std::abs(e));
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], expected[i], 1e-6 * scale)
              << kNames[p] << "[" << i << "] after step " << t;
      }
    }
  }
}

}  // namespace
}  // namespace zoft::optim
