// Offloaded == resident, bit for bit: ZO2 training with layers streamed from the offload file
// through RAM slots gives the very weights (and checkpoint bytes) of a fully resident run, on
// every architecture of the golden fixtures and on a deeper Llama with prefetch; offloaded
// inference gives the very logits.
#include "runtime/offload.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/generate.h"
#include "model/golden_util.h"
#include "runtime/llama_maker.h"
#include "train/zo_step.h"

namespace zoft::test {
namespace {

namespace fs = std::filesystem;
using runtime::Offload;
using runtime::OffloadOptions;

fs::path temp_root() {
  static fs::path root = fs::temp_directory_path() / ("zoft_offload_" + std::to_string(getpid()));
  fs::create_directories(root);
  return root;
}

class RemoveTempRoot : public testing::Environment {
  void TearDown() override { fs::remove_all(temp_root()); }
};
testing::Environment* const remove_temp_root =
    testing::AddGlobalTestEnvironment(new RemoveTempRoot);

// A cpu budget with room for blocks 0 and L+1, `slots` slots and `resident` more layers.
std::string budget_for(Decoder& model, bool trainable, int slots, int resident = 0) {
  std::vector<uint64_t> bytes = runtime::block_bytes(model, trainable);
  uint64_t fixed = bytes.front() + bytes.back(), slot = 0;
  for (size_t b = 1; b + 1 < bytes.size(); ++b)
    slot = std::max(slot, (bytes[b] + 4095) / 4096 * 4096);
  return "cpu=" + std::to_string(fixed + uint64_t(slots) * slot + uint64_t(resident) * bytes[1]);
}

struct TrainedRun {
  std::vector<std::vector<uint8_t>> weights;  // per parameter, after finish()
  std::vector<std::vector<float>> eval_losses;
  runtime::ExecutorStats stats;
  std::string checkpoint;  // model.safetensors bytes
  std::string plan;
};

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// `steps` ZO2 steps on a golden batch; after step 2 a finish() and an evaluation, as the
// trainer does between steps. max_memory empty: all resident.
// `slots` < 0: all resident; else a budget of that many slots and `resident_layers` layers.
// The batch is the golden fixture `golden`'s.
TrainedRun train(const std::string& model_dir, const std::string& golden, DType dtype, int samples,
                 int steps, int slots, int resident_layers = 0, int64_t prefetch = 2) {
  Decoder model = Decoder::load(model_dir, dtype);
  std::unique_ptr<Offload> offload;
  if (slots >= 0) {
    OffloadOptions o;
    o.max_memory = budget_for(model, true, slots, resident_layers);
    o.offload_dir = (temp_root() / "offload").string();
    o.prefetch = prefetch;
    o.trainable = true;
    o.print_plan = false;
    offload = Offload::attach(model, model_dir, o);
    EXPECT_TRUE(offload) << "the budget should force streaming";
  }
  zo::MezoOptions options;
  options.lr = 1e-3;
  options.eps = 1e-3;
  options.samples = samples;
  options.weight_decay = 0.1;
  options.seed = 1234;
  zo::MezoSgd optimizer(options);
  ZoStepper stepper(model, optimizer, ZoOrder::Zo2);
  GoldenCase g = load_golden(golden, "left");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto mean_loss = mean_loss_over(targets);
  TrainedRun run;
  for (int t = 0; t < steps; ++t) {
    ZoStepResult r = stepper.forward_passes(g.batch, targets, mean_loss);
    EXPECT_TRUE(r.finite());
    stepper.end_step();
    if (t == 1) {
      stepper.finish();
      std::vector<float> loss(size_t(g.batch.rows()));
      model.token_losses(g.batch, targets.data(), loss.data());
      run.eval_losses.push_back(loss);
    }
  }
  stepper.finish();
  for (const ParameterRef& p : stepper.parameters()) {
    if (offload) {
      run.weights.push_back(offload->parameter_bytes(p));
    } else {
      auto* bytes = static_cast<const uint8_t*>(p.tensor.data);
      run.weights.emplace_back(bytes, bytes + p.tensor.nbytes());
    }
  }
  std::vector<NamedTensor> tensors;
  for (const ParameterRef& p : stepper.parameters()) tensors.push_back({p.name, p.tensor});
  fs::path out = temp_root() / ("ckpt_" + std::to_string(getpid()) + ".safetensors");
  if (offload) {
    offload->write_safetensors(out.string(), tensors, {{"format", "pt"}});
    run.stats = offload->stats();
    run.plan = offload->plan_text();
  } else {
    write_safetensors(out.string(), tensors, {{"format", "pt"}});
  }
  run.checkpoint = file_bytes(out);
  fs::remove(out);
  return run;
}

void expect_same(const TrainedRun& resident, const TrainedRun& offloaded) {
  ASSERT_EQ(resident.weights.size(), offloaded.weights.size());
  for (size_t i = 0; i < resident.weights.size(); ++i)
    EXPECT_TRUE(resident.weights[i] == offloaded.weights[i]) << "parameter " << i << " differs";
  ASSERT_EQ(resident.eval_losses.size(), offloaded.eval_losses.size());
  for (size_t i = 0; i < resident.eval_losses.size(); ++i)
    EXPECT_EQ(0, std::memcmp(resident.eval_losses[i].data(), offloaded.eval_losses[i].data(),
                             resident.eval_losses[i].size() * sizeof(float)));
  EXPECT_GT(resident.checkpoint.size(), 1000u);
  EXPECT_TRUE(resident.checkpoint == offloaded.checkpoint) << "checkpoint bytes differ";
}

struct GoldenCaseParam {
  std::string model;
  DType dtype;
  int samples;
};

void PrintTo(const GoldenCaseParam& c, std::ostream* os) {
  *os << c.model << "/" << dtype_name(c.dtype) << "/n" << c.samples;
}

class OffloadedZo : public testing::TestWithParam<GoldenCaseParam> {};

TEST_P(OffloadedZo, EqualsResidentBitForBit) {
  const GoldenCaseParam& c = GetParam();
  TrainedRun resident = train(golden_dir(c.model), c.model, c.dtype, c.samples, 6, -1);
  TrainedRun offloaded = train(golden_dir(c.model), c.model, c.dtype, c.samples, 6, 1);  // one slot
  expect_same(resident, offloaded);
  EXPECT_GT(offloaded.stats.reads, 0);
  EXPECT_GT(offloaded.stats.writes, 0);
}

std::vector<GoldenCaseParam> golden_cases() {
  std::vector<GoldenCaseParam> out;
  for (const char* m : {"llama", "gemma3", "opt", "gpt2", "qwen3"})
    for (DType d : {DType::F32, DType::BF16}) out.push_back({m, d, 1});
  out.push_back({"llama", DType::F32, 2});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Golden, OffloadedZo, testing::ValuesIn(golden_cases()),
                         [](const testing::TestParamInfo<GoldenCaseParam>& info) {
                           return info.param.model + "_" + dtype_name(info.param.dtype) + "_n" +
                                  std::to_string(info.param.samples);
                         });

// Six layers: two resident, four streamed through three slots with read-ahead, untied head.
TEST(OffloadedZoDeep, PrefetchAndResidentLayersEqualResident) {
  LlamaShape shape;
  shape.hidden = 64, shape.intermediate = 128, shape.layers = 6, shape.heads = 4,
  shape.kv_heads = 2;
  shape.tied = false;
  std::string dir = make_llama((temp_root() / "deep").string(), shape, 7);
  for (DType dtype : {DType::F32, DType::BF16}) {
    TrainedRun resident = train(dir, "llama", dtype, 1, 5, -1);
    TrainedRun offloaded = train(dir, "llama", dtype, 1, 5, 3, 2, 1);
    expect_same(resident, offloaded);
    EXPECT_NE(offloaded.plan.find("streamed from disk: blocks 3-6"), std::string::npos)
        << offloaded.plan;
    EXPECT_GT(offloaded.stats.hits + offloaded.stats.reads, 0);
  }
}

TEST(OffloadedInference, LogitsAndGenerationEqualResident) {
  GoldenCase g = load_golden("llama", "left");
  Decoder resident = Decoder::load(golden_dir("llama"));
  Decoder streamed = Decoder::load(golden_dir("llama"));
  OffloadOptions o;
  o.max_memory = budget_for(streamed, false, 1);
  o.offload_dir = (temp_root() / "inference").string();
  o.print_plan = false;
  auto offload = Offload::attach(streamed, golden_dir("llama"), o);
  ASSERT_TRUE(offload);
  const size_t n = size_t(g.batch.rows() * resident.config().vocab_size);
  std::vector<float> a(n), b(n);
  resident.logits(g.batch, a.data());
  streamed.logits(g.batch, b.data());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), n * sizeof(float)));
  SamplingOptions s;
  s.max_new_tokens = 6;
  EXPECT_EQ(generate(resident, {1, 5, 9, 3}, s), generate(streamed, {1, 5, 9, 3}, s));
  EXPECT_EQ(offload->stats().writes, 0);  // inference never writes back
}

TEST(OffloadFile, RemovedAtExitUnlessKept) {
  for (bool keep : {false, true}) {
    fs::path dir = temp_root() / (keep ? "kept" : "removed");
    fs::remove_all(dir);
    {
      Decoder model = Decoder::load(golden_dir("opt"));
      OffloadOptions o;
      o.max_memory = budget_for(model, false, 1);
      o.offload_dir = dir.string();
      o.keep_file = keep;
      o.print_plan = false;
      auto offload = Offload::attach(model, golden_dir("opt"), o);
      ASSERT_TRUE(offload);
      // Unlinked at once unless kept: a crash cannot leave it behind.
      EXPECT_EQ(fs::exists(dir) && !fs::is_empty(dir), keep);
    }
    EXPECT_EQ(fs::exists(dir) && !fs::is_empty(dir), keep);
  }
}

TEST(OffloadErrors, SayWhatToDo) {
  Decoder model = Decoder::load(golden_dir("llama"));
  OffloadOptions o;
  o.max_memory = "cpu=1KiB";
  o.offload_dir = (temp_root() / "errors").string();
  o.print_plan = false;
  try {
    Offload::attach(model, golden_dir("llama"), o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("give at least cpu="), std::string::npos) << e.what();
  }
  o.max_memory = budget_for(model, false, 1);
  o.offload_dir = "";
  try {
    Offload::attach(model, golden_dir("llama"), o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--offload-dir"), std::string::npos) << e.what();
  }
  // Everything fits: no offload at all, the resident path untouched.
  o.max_memory = "cpu=1GiB";
  EXPECT_FALSE(Offload::attach(model, golden_dir("llama"), o));
  EXPECT_EQ(model.residency(), nullptr);
}

}  // namespace
}  // namespace zoft::test
