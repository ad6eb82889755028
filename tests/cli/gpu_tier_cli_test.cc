// The GPU tier through the zoft binary on the simulated device (--device sim, the testing aid of
// runtime/gpu_tier.h): eval (perplexity, task accuracy), generate and ZO2 training with a gpu=
// budget smaller than the model print the same perplexity, tokens, losses and checkpoint bytes as
// the resident CPU run, and the device memory they report never exceeds the budget. Bad budgets are
// one line and a non-zero exit.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "cli/cli_test_util.h"
#include "model/decoder.h"
#include "model/parameters.h"
#include "runtime/device_residency.h"
#include "runtime/llama_maker.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

nlohmann::json tier_json_line(const std::string& output) {
  size_t start = output.rfind("\n{");
  return nlohmann::json::parse(output.substr(start == std::string::npos ? 0 : start + 1));
}

std::string tier_slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// "... (N of M bytes)" of the tier's report line: peak device bytes and the budget.
std::pair<uint64_t, uint64_t> reported_peak(const std::string& output) {
  std::smatch m;
  const std::regex line(R"(peak device memory .* \((\d+) of (\d+) bytes\))");
  if (!std::regex_search(output, m, line)) return {~uint64_t(0), 0};
  return {std::stoull(m[1]), std::stoull(m[2])};
}

class GpuTierCli : public ::testing::Test {
 protected:
  // A 6-layer Llama (hidden 64, MLP 256) with the Llama-2 tokenizer, f32.
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_gpu_tier_cli_" + std::to_string(getpid()));
    fs::create_directories(root_);
    test::LlamaShape shape;
    shape.hidden = 64, shape.intermediate = 256, shape.layers = 6, shape.heads = 4;
    shape.kv_heads = 2, shape.head_dim = 16;
    test::make_llama((root_ / "model").string(), shape, 7);
    budget_ = budget_for((root_ / "model").string());
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  void SetUp() override {
    if (!fs::exists(ZOFT_BINARY)) GTEST_SKIP() << "zoft is not built";
  }

  // Blocks 0 and L+1 and one layer resident, two slots (prefetch 1): the other 5 layers stream.
  static uint64_t budget_for(const std::string& model_dir, DType dtype = DType::F32,
                             bool trainable = false) {
    Decoder model = Decoder::load(model_dir, dtype);
    if (trainable) make_trainable(model);  // the training plan weighs the trainable copies
    runtime::ResidencyPlan all = runtime::plan_device_residency(model, ~uint64_t(0) >> 1, 1);
    const size_t last = all.block_bytes.size() - 1;
    return all.block_bytes[0] + all.block_bytes[last] + 3 * all.block_bytes[1];
  }
  static std::string sim(uint64_t budget = budget_) {
    return fmt::format("--device sim --max-memory gpu={} --prefetch 1", budget);
  }
  static std::string model() { return (root_ / "model").string(); }

  static std::string recipe() {
    const std::string src = ZOFT_SOURCE_DIR;
    fs::path path = root_ / "recipe.yaml";
    std::ofstream(path) << "model:\n  path: " << model() << "\n"
                        << "data:\n  train: " << src
                        << "/tests/fixtures/data/fine_foods_train.jsonl\n"
                        << "  eval: " << src << "/tests/fixtures/data/fine_foods_test.jsonl.xz\n"
                        << "  train_samples: 16\n  eval_samples: 4\n  max_seq_length: 48\n"
                        << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
                        << "optim:\n  lr: 1.0e-3\n  eps: 1.0e-3\n  samples: 2\n"
                        << "trainer:\n  steps: 4\n  batch_size: 2\n  save_interval: 2\n  seed: 5\n"
                        << "  eval_before: false\n"
                        << "placement:\n  threads: 2\n"
                        << "logging:\n  tensorboard: false\n  log_interval: 1\n";
    return path.string();
  }

  // The train/loss of each logged step, as printed to metrics.jsonl.
  static std::vector<double> losses(const fs::path& out) {
    std::vector<double> v;
    std::istringstream lines(tier_slurp(out / "metrics.jsonl"));
    std::string line;
    while (std::getline(lines, line)) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j.contains("train/loss")) v.push_back(j.at("train/loss").get<double>());
    }
    return v;
  }

  static inline fs::path root_;
  static inline uint64_t budget_ = 0;
};

TEST_F(GpuTierCli, EvalPerplexityEqualsTheResidentRun) {
  const std::string args = fmt::format(
      "eval --model '{}' --data '{}/README.md' --max-tokens 200 --window 64 --threads 2 --json",
      model(), ZOFT_SOURCE_DIR);
  ZoftRun resident = run_zoft(args);
  ASSERT_EQ(resident.status, 0) << resident.output;
  ZoftRun tiered = run_zoft(args + " " + sim());
  ASSERT_EQ(tiered.status, 0) << tiered.output;
  nlohmann::json want = tier_json_line(resident.output), got = tier_json_line(tiered.output);
  EXPECT_EQ(got.at("mean_nll").get<double>(), want.at("mean_nll").get<double>());
  EXPECT_EQ(got.at("perplexity").get<double>(), want.at("perplexity").get<double>());
  const nlohmann::json& tier = got.at("gpu_tier");
  EXPECT_GT(tier.at("bytes_uploaded").get<uint64_t>(), 0u) << "nothing streamed";
  EXPECT_EQ(tier.at("write_backs").get<int64_t>(), 0) << "eval writes nothing back";
  EXPECT_LE(tier.at("peak_device_bytes").get<uint64_t>(), budget_);
  EXPECT_NE(tiered.output.find("streamed from RAM: blocks 2-6"), std::string::npos)
      << tiered.output;
  EXPECT_NE(tiered.output.find("bus floor"), std::string::npos) << tiered.output;
}

TEST_F(GpuTierCli, TaskAccuracyEqualsTheResidentRun) {
  const std::string args = fmt::format(
      "eval --model '{}' --task '{}/recipes/tasks/fine_foods.yaml' --data "
      "'{}/tests/fixtures/data/fine_foods_test.jsonl.xz' --max-examples 12 --threads 2 --json",
      model(), ZOFT_SOURCE_DIR, ZOFT_SOURCE_DIR);
  ZoftRun resident = run_zoft(args);
  ASSERT_EQ(resident.status, 0) << resident.output;
  ZoftRun tiered = run_zoft(args + " " + sim());
  ASSERT_EQ(tiered.status, 0) << tiered.output;
  nlohmann::json want = tier_json_line(resident.output), got = tier_json_line(tiered.output);
  EXPECT_EQ(got.at("accuracy").get<double>(), want.at("accuracy").get<double>());
  EXPECT_GT(got.at("gpu_tier").at("bytes_uploaded").get<uint64_t>(), 0u);
  EXPECT_LE(got.at("gpu_tier").at("peak_device_bytes").get<uint64_t>(), budget_);
}

TEST_F(GpuTierCli, GenerationEqualsTheResidentRun) {
  const std::string args = fmt::format(
      "generate --model '{}' --prompt 'It was a truth universally acknowledged' "
      "--max-new-tokens 12 --ignore-eos --threads 2 --json",
      model());
  ZoftRun resident = run_zoft(args);
  ASSERT_EQ(resident.status, 0) << resident.output;
  ZoftRun tiered = run_zoft(args + " " + sim());
  ASSERT_EQ(tiered.status, 0) << tiered.output;
  nlohmann::json want = tier_json_line(resident.output), got = tier_json_line(tiered.output);
  EXPECT_EQ(got.at("ids"), want.at("ids"));
  EXPECT_EQ(got.at("text"), want.at("text"));
  EXPECT_GE(got.at("gpu_tier").at("uploads").get<int64_t>(), 5 * 12) << "5 layers per forward";
  EXPECT_LE(got.at("gpu_tier").at("peak_device_bytes").get<uint64_t>(), budget_);
}

TEST_F(GpuTierCli, Zo2TrainingEqualsTheResidentRunAndItsCheckpoints) {
  const std::string r = recipe();
  ZoftRun resident = run_zoft(
      fmt::format("train '{}' --trainer.output_dir '{}'", r, (root_ / "resident").string()));
  ASSERT_EQ(resident.status, 0) << resident.output;
  ZoftRun tiered = run_zoft(fmt::format(
      "train '{}' --trainer.output_dir '{}' --placement.device sim --placement.max_memory gpu={} "
      "--placement.prefetch 1",
      r, (root_ / "tiered").string(), budget_));
  ASSERT_EQ(tiered.status, 0) << tiered.output;
  std::vector<double> want = losses(root_ / "resident");
  ASSERT_EQ(want.size(), 4u) << resident.output;
  EXPECT_EQ(losses(root_ / "tiered"), want);
  for (const char* step : {"checkpoint-2", "checkpoint-4"}) {
    const std::string a = tier_slurp(root_ / "resident" / step / "model.safetensors");
    ASSERT_FALSE(a.empty()) << step;
    EXPECT_TRUE(a == tier_slurp(root_ / "tiered" / step / "model.safetensors")) << step;
  }
  auto [peak, budget] = reported_peak(tiered.output);
  EXPECT_EQ(budget, budget_) << tiered.output;
  EXPECT_LE(peak, budget_) << tiered.output;
  EXPECT_NE(tiered.output.find("write-backs"), std::string::npos) << tiered.output;
}

// bf16 compute (matrices stored in bf16 in the homes and the device slots): the same figures.
TEST_F(GpuTierCli, Bf16EvalAndTrainingEqualTheResidentRun) {
  const std::string eval = fmt::format(
      "eval --model '{}' --data '{}/README.md' --max-tokens 200 --window 64 --threads 2 --json "
      "--dtype bf16",
      model(), ZOFT_SOURCE_DIR);
  ZoftRun resident = run_zoft(eval);
  ASSERT_EQ(resident.status, 0) << resident.output;
  const uint64_t eval_budget = budget_for(model(), DType::BF16);
  ZoftRun tiered = run_zoft(eval + " " + sim(eval_budget));
  ASSERT_EQ(tiered.status, 0) << tiered.output;
  EXPECT_EQ(tier_json_line(tiered.output).at("mean_nll").get<double>(),
            tier_json_line(resident.output).at("mean_nll").get<double>());
  EXPECT_LE(tier_json_line(tiered.output).at("gpu_tier").at("peak_device_bytes").get<uint64_t>(),
            eval_budget);

  const std::string r = recipe();
  const std::string train = "train '" + r + "' --model.dtype bf16 --trainer.output_dir ";
  const uint64_t train_budget = budget_for(model(), DType::BF16, true);
  ZoftRun a = run_zoft(train + "'" + (root_ / "resident_bf16").string() + "'");
  ASSERT_EQ(a.status, 0) << a.output;
  ZoftRun b = run_zoft(fmt::format(
      "{}'{}' --placement.device sim --placement.max_memory gpu={} --placement.prefetch 1", train,
      (root_ / "tiered_bf16").string(), train_budget));
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_EQ(losses(root_ / "tiered_bf16"), losses(root_ / "resident_bf16"));
  const std::string want =
      tier_slurp(root_ / "resident_bf16" / "checkpoint-4" / "model.safetensors");
  ASSERT_FALSE(want.empty());
  EXPECT_TRUE(want == tier_slurp(root_ / "tiered_bf16" / "checkpoint-4" / "model.safetensors"));
  EXPECT_LE(reported_peak(b.output).first, train_budget) << b.output;
  EXPECT_NE(b.output.find("streamed from RAM: blocks 2-6"), std::string::npos) << b.output;
}

// One line of error, and a non-zero exit, for each bad --max-memory.
TEST_F(GpuTierCli, BadBudgetsAreOneLine) {
  const std::string eval =
      fmt::format("eval --model '{}' --data '{}/README.md' --max-tokens 50 --device sim", model(),
                  ZOFT_SOURCE_DIR);
  const std::pair<const char*, const char*> cases[] = {
      {"--max-memory gpu=0", "gpu: size '0'"},
      {"--max-memory gpu=64KiB", "too small"},
      {"--max-memory tpu=1GiB", "unknown tier 'tpu'"},
      {"--max-memory gpu=lots", "gpu"},
      {"--max-memory gpu=-1GiB", "gpu"},
      {"--max-memory cpu=1GiB", "gpu= budget"},
      {"", "needs --max-memory"}};
  for (const auto& [flags, says] : cases) {
    ZoftRun run = run_zoft(eval + " " + flags);
    EXPECT_NE(run.status, 0) << flags;
    EXPECT_NE(run.output.find(says), std::string::npos) << flags << ": " << run.output;
    EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1)
        << flags << ": " << run.output;
  }
  ZoftRun train =
      run_zoft(fmt::format("train '{}' --trainer.output_dir '{}' --placement.device "
                           "sim --placement.max_memory gpu=64KiB",
                           recipe(), (root_ / "small").string()));
  EXPECT_NE(train.status, 0);
  EXPECT_NE(train.output.find("too small"), std::string::npos) << train.output;
}

}  // namespace
}  // namespace zoft
