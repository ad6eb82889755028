// --adapter end to end: `zoft train` writes a LoRA adapter (AdamW-LoRA, a few steps on a tiny
// random Llama), then `zoft eval --adapter` and `zoft generate --adapter` on the base give what
// eval and generate give on the checkpoint `zoft merge` writes (and not what the base alone
// gives). Bad --adapter input to eval and generate is one line and exit status 1.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"
#include "runtime/llama_maker.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

nlohmann::json last_json(const ZoftRun& run) {
  return nlohmann::json::parse(run.output.substr(run.output.rfind('{')));
}

class AdapterCli : public testing::Test {
 protected:
  // Trains once for the suite: base, adapter (the last checkpoint) and merged model.
  static void SetUpTestSuite() {
    if (!fs::exists(ZOFT_BINARY)) return;
    root_ = fs::temp_directory_path() / ("zoft_adapter_cli_" + std::to_string(getpid()));
    fs::create_directories(root_);
    test::make_llama(base(), test::LlamaShape{});
    fs::copy_file(fs::path(ZOFT_SOURCE_DIR) / "README.md", root_ / "corpus.txt");
    std::ofstream(root_ / "recipe.yaml")
        << "model:\n  path: " << base() << "\n"
        << "data:\n  format: text\n  train: " << (root_ / "corpus.txt").string()
        << "\n  max_seq_length: 64\n"
        << "optim:\n  method: adamw\n  lr: 2.0e-2\n"
        << "peft:\n  method: lora\n  r: 4\n  alpha: 8\n"
        << "  target_modules: [q_proj, v_proj, down_proj]\n"
        << "trainer:\n  steps: 4\n  batch_size: 2\n  save_interval: 4\n  seed: 3\n"
        << "  eval_before: false\n"
        << "placement:\n  threads: 1\n";
    train_ = run_zoft(fmt::format("train '{}' --trainer.output_dir '{}'",
                                  (root_ / "recipe.yaml").string(), (root_ / "run").string()));
    merge_ = run_zoft(fmt::format("merge '{}' '{}' '{}'", base(), adapter(), merged()));
  }
  static void TearDownTestSuite() {
    if (!root_.empty()) fs::remove_all(root_);
  }
  void SetUp() override {
    if (!fs::exists(ZOFT_BINARY)) GTEST_SKIP() << "zoft is not built";
    ASSERT_EQ(train_.status, 0) << train_.output;
    ASSERT_EQ(merge_.status, 0) << merge_.output;
  }

  static std::string base() { return (root_ / "base").string(); }
  static std::string adapter() { return (root_ / "run" / "checkpoint-4").string(); }
  static std::string merged() { return (root_ / "merged").string(); }

  static std::string eval_args(const std::string& model) {
    return fmt::format(
        "eval --model '{}' --data '{}/README.md' --max-tokens 300 --window 64 --json", model,
        ZOFT_SOURCE_DIR);
  }
  static std::string generate_args(const std::string& model) {
    return fmt::format(
        "generate --model '{}' --prompt 'The fine-tuning engine' --max-new-tokens 12 "
        "--temperature 0 --ignore-eos --json",
        model);
  }

  static fs::path root_;
  static ZoftRun train_, merge_;
};

fs::path AdapterCli::root_;
ZoftRun AdapterCli::train_, AdapterCli::merge_;

TEST_F(AdapterCli, EvalWithAdapterEqualsTheMergedModel) {
  ZoftRun with_adapter = run_zoft(eval_args(base()) + " --adapter '" + adapter() + "'");
  ZoftRun on_merged = run_zoft(eval_args(merged()));
  ZoftRun on_base = run_zoft(eval_args(base()));
  ASSERT_EQ(with_adapter.status, 0) << with_adapter.output;
  ASSERT_EQ(on_merged.status, 0) << on_merged.output;
  ASSERT_EQ(on_base.status, 0) << on_base.output;
  const double a = last_json(with_adapter).at("mean_nll").get<double>();
  const double m = last_json(on_merged).at("mean_nll").get<double>();
  const double b = last_json(on_base).at("mean_nll").get<double>();
  EXPECT_EQ(last_json(with_adapter).at("scored_tokens"), last_json(on_merged).at("scored_tokens"));
  // Merging rounds W + (alpha / r) B A once in f32; the adapter path adds it to every output.
  EXPECT_NEAR(a, m, 1e-5 * std::max(1.0, std::fabs(m)));
  EXPECT_GT(std::fabs(a - b), 1e-3) << "the trained adapter must change the model";
}

TEST_F(AdapterCli, GenerateWithAdapterEqualsTheMergedModel) {
  ZoftRun with_adapter = run_zoft(generate_args(base()) + " --adapter '" + adapter() + "'");
  ZoftRun on_merged = run_zoft(generate_args(merged()));
  ASSERT_EQ(with_adapter.status, 0) << with_adapter.output;
  ASSERT_EQ(on_merged.status, 0) << on_merged.output;
  EXPECT_EQ(last_json(with_adapter).at("text"), last_json(on_merged).at("text"));
}

TEST_F(AdapterCli, BadAdapterIsOneLine) {
  const fs::path unsupported = root_ / "prefix_tuning";
  fs::create_directories(unsupported);
  std::ofstream(unsupported / "adapter_config.json") << R"({"peft_type": "PREFIX_TUNING"})";
  const fs::path zero_rank = root_ / "zero_rank";
  fs::create_directories(zero_rank);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(adapter() + "/adapter_config.json"));
  config["r"] = 0;
  std::ofstream(zero_rank / "adapter_config.json") << config.dump();
  fs::copy_file(adapter() + "/adapter_model.safetensors", zero_rank / "adapter_model.safetensors");
  const std::string fixtures = std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/";
  const std::pair<std::string, std::string> cases[] = {
      {(root_ / "missing").string(), "no such adapter directory"},
      {base(), "not a PEFT adapter directory"},
      {unsupported.string(), "PEFT type 'PREFIX_TUNING' is not supported"},
      {zero_rank.string(), "LoRA rank r must be positive, got 0"},
      // Another architecture's adapter, and one for a Llama of another shape (hidden 64).
      {fixtures + "lora/gpt2/adapter", "matches no linear layer of this llama model"},
      {fixtures + "lora/llama/adapter", "the adapter was made for another base model"},
  };
  for (const auto& [dir, expect] : cases)
    for (const std::string& command : {eval_args(base()), generate_args(base())}) {
      ZoftRun run = run_zoft(command + " --adapter '" + dir + "'");
      EXPECT_EQ(run.status, 1) << command << ": " << run.output;
      EXPECT_NE(run.output.find(expect), std::string::npos) << command << ": " << run.output;
      EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
    }
}

}  // namespace
}  // namespace zoft
