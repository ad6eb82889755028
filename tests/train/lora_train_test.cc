// `zoft train` with a peft section (LoRA) for AdamW and MeZO-SGD: checkpoints hold the adapter in
// PEFT's format plus the optimizer state and no base weights, a killed run resumes bit-exactly,
// the base is not trained, and (when python3 has peft) peft.PeftModel.from_pretrained loads
// the adapter and computes zoft's logits.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/json_file.h"
#include "model/golden_util.h"
#include "model/lora_io.h"
#include "runtime/llama_maker.h"
#include "train/lora_training.h"
#include "train/zo_step.h"
#include "zo/philox.h"

namespace zoft::test::lora_train {
namespace {

namespace fs = std::filesystem;

class LoraTrain : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_lora_train_" + std::to_string(getpid()));
    fs::create_directories(root_);
    make_llama((root_ / "model").string(), LlamaShape{});
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // A fine-food recipe training LoRA adapters with `method`; `extra` is appended (YAML).
  // peft_extra: more keys of the peft section (indented YAML lines).
  static std::string recipe(const std::string& name, const std::string& method,
                            const std::string& peft_extra = "") {
    std::string src = ZOFT_SOURCE_DIR;
    fs::path path = root_ / (name + ".yaml");
    std::ofstream(path) << "model:\n  path: " << (root_ / "model").string() << "\n"
                        << "data:\n  train: " << src
                        << "/tests/fixtures/data/fine_foods_train.jsonl\n"
                        << "  eval: " << src << "/tests/fixtures/data/fine_foods_test.jsonl.xz\n"
                        << "  train_samples: 16\n  eval_samples: 8\n  max_seq_length: 96\n"
                        << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
                        << "  train_as_classification: "
                        << (method == "mezo-sgd" ? "true" : "false")
                        << "\noptim:\n  method: " << method << "\n  lr: 1.0e-2\n  eps: 1.0e-3\n"
                        << "peft:\n  method: lora\n  r: 4\n  alpha: 8\n"
                        << "  target_modules: [q_proj, v_proj, down_proj]\n"
                        << peft_extra
                        << "trainer:\n  steps: 6\n  batch_size: 4\n  save_interval: 3\n  seed: 5\n"
                        << "  eval_before: false\n"
                        << "placement:\n  threads: 1\n";
    return path.string();
  }

  // `zoft train RECIPE --trainer.output_dir OUT` (ZOFT_FAULT=fault when given): exit status,
  // -SIGKILL when the fault killed it.
  static int run(const std::string& recipe_path, const std::string& out,
                 const std::string& fault = "") {
    pid_t pid = fork();
    if (pid == 0) {
      if (!fault.empty()) setenv("ZOFT_FAULT", fault.c_str(), 1);
      freopen("/dev/null", "w", stdout);
      freopen((out + ".log").c_str(), "w", stderr);
      execl(ZOFT_BINARY, ZOFT_BINARY, "train", recipe_path.c_str(), "--trainer.output_dir",
            out.c_str(), (char*)nullptr);
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
  }

  static std::string bytes_of(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  static std::string log_of(const std::string& out) { return bytes_of(out + ".log"); }

  // Trains, checks the checkpoint's files, then kills a second run inside step 5 and resumes
  // it: the final adapter equals the uninterrupted run's bit for bit.
  static void train_and_resume(const std::string& name, const std::string& method,
                               const std::string& peft_extra = "") {
    std::string r = recipe(name, method, peft_extra);
    std::string out = (root_ / (name + "_a")).string();
    ASSERT_EQ(run(r, out), 0) << log_of(out);
    fs::path ckpt = fs::path(out) / "checkpoint-6";
    EXPECT_TRUE(fs::exists(ckpt / "adapter_config.json"));
    EXPECT_TRUE(fs::exists(ckpt / "adapter_model.safetensors"));
    EXPECT_TRUE(fs::exists(ckpt / "trainer_state.json"));
    EXPECT_FALSE(fs::exists(ckpt / "model.safetensors"));  // the base is not copied
    Decoder model = Decoder::load((root_ / "model").string());
    LoraAdapters a = read_peft_adapter(ckpt.string(), model.arch(), model.config());
    EXPECT_EQ(a.modules().size(), 6u);  // q, v, down in 2 layers
    double b_norm = 0;
    for (const LoraModule& m : a.modules())
      for (int64_t i = 0; i < m.b.view.numel(); ++i) b_norm += std::fabs(m.b.view.f32()[i]);
    EXPECT_GT(b_norm, 0) << "B starts at zero: training must move it";

    std::string resumed = (root_ / (name + "_b")).string();
    EXPECT_EQ(run(r, resumed, "step:5"), -SIGKILL);
    ASSERT_EQ(run(r, resumed), 0) << log_of(resumed);
    EXPECT_NE(log_of(resumed).find("resuming from"), std::string::npos);
    EXPECT_TRUE(bytes_of(ckpt / "adapter_model.safetensors") ==
                bytes_of(fs::path(resumed) / "checkpoint-6" / "adapter_model.safetensors"))
        << name << ": the resumed adapter differs";
  }

  static fs::path root_;
};

fs::path LoraTrain::root_;

TEST_F(LoraTrain, AdamwCheckpointsAndResumesBitExactly) {
  train_and_resume("adamw", "adamw");
}

TEST_F(LoraTrain, AdamwWithDropoutResumesBitExactly) {
  train_and_resume("dropout", "adamw", "  dropout: 0.2\n");
  // The masks changed the training: another adapter than without dropout.
  std::string plain = (root_ / "no_dropout").string();
  ASSERT_EQ(run(recipe("no_dropout", "adamw"), plain), 0) << log_of(plain);
  EXPECT_FALSE(bytes_of(root_ / "dropout_a/checkpoint-6/adapter_model.safetensors") ==
               bytes_of(fs::path(plain) / "checkpoint-6/adapter_model.safetensors"));
}

TEST_F(LoraTrain, MezoCheckpointsAndResumesBitExactly) {
  train_and_resume("mezo", "mezo-sgd");
}

TEST_F(LoraTrain, RsLoraTrainsAndResumes) {
  train_and_resume("rslora", "adamw", "  rslora: true\n");
}

TEST_F(LoraTrain, BadPeftSectionIsOneLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"--peft.r 0", "peft.r (the LoRA rank) must be positive, got 0"},
      {"--peft.target_modules foo_proj", "LoRA target module 'foo_proj' matches no linear layer"},
      {"--peft.method dora", "peft.method 'dora' is not supported"},
      {"--peft.bias all", "peft.bias: 'all' is not one of none"},
  };
  std::string r = recipe("bad", "adamw");
  for (const auto& [override_args, expect] : cases) {
    std::string command = std::string("'") + ZOFT_BINARY + "' train '" + r + "' " + override_args +
                          " --trainer.output_dir '" + (root_ / "bad_out").string() + "' 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) output.append(chunk, n);
    int status = pclose(pipe);
    EXPECT_EQ(WEXITSTATUS(status), 1) << output;
    EXPECT_NE(output.find(expect), std::string::npos) << output;
  }
}

// peft.PeftModel.from_pretrained loads a zoft-trained adapter and computes the logits zoft
// computes (tools/check_peft_adapter.py). Skipped where python3 has no torch / transformers /
// peft (they are needed for tools/ only, not at CI time).
TEST_F(LoraTrain, PeftLoadsTheTrainedAdapter) {
  if (std::system("python3 -c 'import peft, transformers, torch' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with peft, transformers and torch is not available";
  std::string out = (root_ / "peft_check").string();
  ASSERT_EQ(run(recipe("peft_check", "adamw"), out), 0) << log_of(out);
  std::string adapter = out + "/checkpoint-6";
  Decoder model = Decoder::load((root_ / "model").string());
  auto adapters = attach_peft_adapter(model, adapter);
  const std::vector<int32_t> ids = {1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203};
  TokenBatch batch = TokenBatch::from_sequences({ids}, 0, false);
  std::vector<float> logits(ids.size() * size_t(model.config().vocab_size));
  model.logits(batch, logits.data());
  std::string ids_text;
  for (int32_t id : ids) ids_text += (ids_text.empty() ? "" : ",") + std::to_string(id);
  std::string json_path = (root_ / "peft_logits.json").string();
  std::string command = "python3 '" + std::string(ZOFT_SOURCE_DIR) +
                        "/tools/check_peft_adapter.py' '" + (root_ / "model").string() + "' '" +
                        adapter + "' --ids " + ids_text + " --out '" + json_path + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  nlohmann::json j = read_json_file(json_path);
  std::vector<float> ref = j.at("logits").get<std::vector<float>>();
  ASSERT_EQ(ref.size(), logits.size());
  double diff = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    diff = std::max(diff, std::fabs(double(ref[i]) - logits[i]));
  EXPECT_LE(diff, 1e-4);
  EXPECT_GT(j.at("adapter_effect").get<double>(), 1e-4);  // the adapter changed PEFT's logits
}

}  // namespace
}  // namespace zoft::test::lora_train

namespace zoft::test::lora_train {
namespace {

// MeZO-LoRA: one step perturbs the adapters only, along z keyed by the adapter parameters' ids
// (the same Philox streams as full MeZO), and moves them by -lr g z with g the projected
// gradient; plain and zo2 orders give the same bits.
TEST(MezoLora, OneStepIsTheReferenceUpdate) {
  auto run_step = [](ZoOrder order, std::vector<std::vector<float>>& before, double& g,
                     std::vector<std::vector<float>>& after) {
    Decoder model = Decoder::load(golden_dir("llama"));
    auto adapters = attach_peft_adapter(
        model, std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/lora/llama/adapter");
    std::vector<ParameterRef> params = lora_parameters(*adapters);
    before.clear();
    for (const ParameterRef& p : params)
      before.emplace_back(p.tensor.f32(), p.tensor.f32() + p.tensor.numel());
    zo::MezoOptions o;
    o.lr = 0.5;
    o.eps = 1e-3;
    o.seed = 77;
    zo::MezoSgd optimizer(o);
    ZoStepper stepper(model, optimizer, order, &params);
    GoldenCase c = load_golden("llama", "right");
    std::vector<int32_t> targets = Decoder::next_token_targets(c.batch);
    stepper.forward_passes(c.batch, targets, mean_loss_over(targets));
    stepper.end_step();
    g = optimizer.state().pending_grad.at(0);
    stepper.finish();
    after.clear();
    for (const ParameterRef& p : params)
      after.emplace_back(p.tensor.f32(), p.tensor.f32() + p.tensor.numel());
  };
  std::vector<std::vector<float>> before, after, before2, after2;
  double g = 0, g2 = 0;
  run_step(ZoOrder::Plain, before, g, after);
  run_step(ZoOrder::Zo2, before2, g2, after2);
  EXPECT_EQ(g, g2);
  EXPECT_TRUE(after == after2) << "zo2 and plain MeZO-LoRA differ";
  ASSERT_NE(g, 0.0);
  double worst = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    std::vector<float> z(before[i].size());
    zo::fill_normal(z.data(), 0, int64_t(z.size()), 77, uint32_t(i), 0, 0);
    for (size_t j = 0; j < z.size(); ++j) {
      double expected = double(before[i][j]) - 0.5 * g * double(z[j]);
      worst = std::max(worst, std::fabs(expected - after[i][j]));
    }
  }
  EXPECT_LE(worst, 1e-6);
}

TEST(LoraDropout, MaskIsSeededAndKeepsExpectation) {
  const int64_t n = 100000;
  std::vector<float> a(size_t(n), 1.0f), b(size_t(n), 1.0f), c(size_t(n), 1.0f);
  lora_dropout(a.data(), n, 0.25, 9, 3, 17, 0);
  lora_dropout(b.data(), n, 0.25, 9, 3, 17, 0);
  lora_dropout(c.data(), n, 0.25, 9, 3, 18, 0);  // another step: another mask
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  int64_t dropped = std::count(a.begin(), a.end(), 0.0f);
  EXPECT_NEAR(double(dropped) / double(n), 0.25, 0.01);
  for (float v : a) ASSERT_TRUE(v == 0.0f || v == float(1.0 / 0.75));
}

}  // namespace
}  // namespace zoft::test::lora_train
