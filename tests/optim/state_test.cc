// Optimizer state: a run resumed from save()/load() is bit-identical to an uninterrupted one, and
// a state that does not fit the model is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/json_file.h"
#include "optim/optim_test_util.h"
#include "optim/optimizer.h"

namespace zoft::optim {
namespace {

using namespace testing;

std::vector<float> values(size_t n, uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<float> out(n);
  for (float& x : out) x = float(normal(rng));
  return out;
}

void fill(TestParameters& params) {
  params.add("model.embed_tokens.weight", DType::BF16, {16, 8}, true, values(128, 1, 0.5));
  params.add("model.layers.0.mlp.up_proj.weight", DType::F32, {8, 8}, true, values(64, 2, 0.5));
  params.add("model.norm.weight", DType::F32, {8}, false, values(8, 3, 0.1));
}

std::vector<Buffer> grads_of_step(const TestParameters& params, int t) {
  std::vector<Buffer> grads;
  for (size_t p = 0; p < params.refs.size(); ++p)
    grads.push_back(
        buffer_of(values(size_t(params.refs[p].tensor.numel()), 100 + 10 * t + p, 0.1)));
  return grads;
}

void run_steps(Optimizer& optimizer, TestParameters& params, int from, int to) {
  for (int t = from; t < to; ++t) {
    auto grads = grads_of_step(params, t);
    clip_grad_norm(grads, 0.5);
    optimizer.step(params.refs, grads);
  }
}

void check_resume_is_bit_exact(const OptimizerOptions& options) {
  TestParameters straight, resumed;
  fill(straight);
  fill(resumed);
  Optimizer a(options, straight.refs);
  run_steps(a, straight, 0, 8);

  TempDir dir;
  {
    Optimizer b(options, resumed.refs);
    run_steps(b, resumed, 0, 4);
    b.save(dir.path());
  }
  Optimizer c(options, resumed.refs);  // fresh moments, master from the bf16 storage
  c.load(dir.path());
  EXPECT_EQ(c.step_count(), 4);
  run_steps(c, resumed, 4, 8);
  EXPECT_TRUE(straight.bytes() == resumed.bytes());
  // And a second save of the same state writes the same bytes.
  TempDir again;
  a.save(again.path());
  c.save(dir.path());
  EXPECT_TRUE(read_bytes(again.file("optimizer.safetensors")) ==
              read_bytes(dir.file("optimizer.safetensors")));
}

TEST(OptimizerState, AdamWResumeIsBitExact) {
  OptimizerOptions o;
  o.lr = 1e-3;
  o.weight_decay = 0.1;
  o.schedule = {ScheduleKind::Cosine, 2, 8};
  check_resume_is_bit_exact(o);
}

TEST(OptimizerState, SgdResumeIsBitExact) {
  OptimizerOptions o;
  o.method = Method::kSgd;
  o.lr = 1e-2;
  o.momentum = 0.9;
  o.schedule = {ScheduleKind::Linear, 1, 8};
  check_resume_is_bit_exact(o);
  o.momentum = 0;  // no state but the step and the masters
  check_resume_is_bit_exact(o);
}

TEST(OptimizerState, RefusesAStateThatDoesNotFit) {
  TestParameters params;
  fill(params);
  TempDir dir;
  Optimizer({}, params.refs).save(dir.path());

  TestParameters renamed;
  renamed.add("model.embed_tokens.weight", DType::BF16, {16, 8}, true, values(128, 1, 0.5));
  renamed.add("model.layers.0.mlp.down_proj.weight", DType::F32, {8, 8}, true, values(64, 2, 0.5));
  renamed.add("model.norm.weight", DType::F32, {8}, false, values(8, 3, 0.1));
  expect_error(
      [&] { Optimizer({}, renamed.refs).load(dir.path()); },
      {"optimizer.json: parameter 1 of the state is", "\"model.layers.0.mlp.up_proj.weight\"",
       "the model's is", "\"model.layers.0.mlp.down_proj.weight\""});
  TestParameters reshaped;
  reshaped.add("model.embed_tokens.weight", DType::BF16, {8, 16}, true, values(128, 1, 0.5));
  expect_error([&] { Optimizer({}, reshaped.refs).load(dir.path()); },
               {"the state has 3 parameters, the model 1"});
  reshaped.add("model.layers.0.mlp.up_proj.weight", DType::F32, {8, 8}, true, values(64, 2, 0.5));
  reshaped.add("model.norm.weight", DType::F32, {8}, false, values(8, 3, 0.1));
  expect_error([&] { Optimizer({}, reshaped.refs).load(dir.path()); },
               {"parameter 0 of the state is", "[16,8]", "[8,16]"});
  TestParameters f32;
  f32.add("model.embed_tokens.weight", DType::F32, {16, 8}, true, values(128, 1, 0.5));
  f32.add("model.layers.0.mlp.up_proj.weight", DType::F32, {8, 8}, true, values(64, 2, 0.5));
  f32.add("model.norm.weight", DType::F32, {8}, false, values(8, 3, 0.1));
  expect_error([&] { Optimizer({}, f32.refs).load(dir.path()); },
               {"\"dtype\":\"bf16\"", "\"dtype\":\"f32\""});
  OptimizerOptions sgd;
  sgd.method = Method::kSgd;
  expect_error([&] { Optimizer(sgd, params.refs).load(dir.path()); },
               {"the state is of optimizer 'adamw', this run uses 'sgd'"});
  TempDir empty;
  expect_error([&] { Optimizer({}, params.refs).load(empty.path()); }, {"optimizer.json"});
  // A tensor file that lost a tensor.
  std::filesystem::copy_file(dir.file("optimizer.json"), empty.file("optimizer.json"));
  TestParameters one;
  one.add("x", DType::F32, {2}, false, {1, 2});
  Optimizer({}, one.refs).save(dir.path());
  std::filesystem::copy_file(dir.file("optimizer.safetensors"),
                             empty.file("optimizer.safetensors"));
  expect_error([&] { Optimizer({}, params.refs).load(empty.path()); },
               {"optimizer.safetensors: tensor 'model.embed_tokens.weight.exp_avg' missing"});
}

}  // namespace
}  // namespace zoft::optim
