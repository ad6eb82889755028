// `zoft train` against misuse and bad luck (issue 11): a compressed tokenizer through a crash,
// two runs on one output directory, a resume with another recipe, repeated metrics rows, steps
// that all fail, examples with nothing to score and a batch too large for memory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "model/decoder.h"
#include "runtime/llama_maker.h"
#include "text/tokenizer.h"
#include "train/output_lock.h"

namespace zoft::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Outcome {
  int status = 0;  // exit status, or -signal
  std::string err;
};

class TrainRobust : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("zoft_robust_" + std::to_string(getpid()));
    fs::create_directories(root_);
    // The GPT-2 tokenizer, xz-compressed, under the names transformers saves it with.
    const fs::path model = root_ / "gpt2_model";
    LlamaShape shape;
    shape.vocab = 50257;
    make_llama(model.string(), shape);
    fs::remove(model / "tokenizer.json.xz");
    fs::remove(model / "tokenizer_config.json");
    const std::string tok = std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/tokenizers/gpt2/";
    fs::copy_file(tok + "encoder.json.xz", model / "vocab.json.xz");
    fs::copy_file(tok + "vocab.bpe.xz", model / "merges.txt.xz");
    const std::string src = ZOFT_SOURCE_DIR;
    std::ofstream(root_ / "recipe.yaml")
        << "model:\n  path: " << model.string() << "\n"
        << "data:\n  train: " << src << "/tests/fixtures/data/fine_foods_train.jsonl\n"
        << "  eval: " << src << "/tests/fixtures/data/fine_foods_test.jsonl.xz\n"
        << "  train_samples: 16\n  eval_samples: 8\n  max_seq_length: 64\n"
        << "task:\n  file: " << src << "/recipes/tasks/fine_foods.yaml\n"
        << "optim:\n  lr: 1.0e-3\n  eps: 1.0e-3\n  schedule: linear\n"
        << "trainer:\n  steps: 12\n  batch_size: 4\n  save_interval: 3\n  eval_interval: 6\n"
        << "  save_total_limit: 2\n  seed: 5\n"
        << "placement:\n  threads: 1\n"
        << "logging:\n  log_interval: 1\n  tensorboard: false\n";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // `zoft train` on the suite's recipe into `out` with extra overrides, to completion.
  static Outcome train(const std::string& out, std::vector<std::string> args = {},
                       const std::string& fault = "") {
    const fs::path err = root_ / "stderr.txt";
    std::vector<std::string> words = {ZOFT_BINARY, "train", (root_ / "recipe.yaml").string(),
                                      "--trainer.output_dir", out};
    words.insert(words.end(), args.begin(), args.end());
    pid_t pid = fork();
    if (pid == 0) {
      if (!fault.empty()) setenv("ZOFT_FAULT", fault.c_str(), 1);
      int devnull = open("/dev/null", O_WRONLY);
      int errfd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(devnull, 1);
      dup2(errfd, 2);
      std::vector<char*> argv;
      for (std::string& w : words) argv.push_back(w.data());
      argv.push_back(nullptr);
      execv(ZOFT_BINARY, argv.data());
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    Outcome r;
    r.status = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
    r.err = slurp(err);
    return r;
  }

  // metrics.jsonl as (step, tag, value) lines, the rate left out (it is a timing).
  static std::vector<std::string> metric_rows(const std::string& out) {
    std::vector<std::string> rows;
    std::istringstream lines(slurp(fs::path(out) / "metrics.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      nlohmann::json row = nlohmann::json::parse(line);
      row.erase("train/steps_per_s");
      rows.push_back(row.dump());
    }
    return rows;
  }

  static fs::path root_;
};

fs::path TrainRobust::root_;

TEST_F(TrainRobust, CompressedVocabAndMergesSurviveKillAndResume) {
  const std::string out = (root_ / "gpt2_resume").string();
  ASSERT_EQ(train(out, {}, "step:5").status, -SIGKILL);
  Outcome resumed = train(out);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  ASSERT_TRUE(fs::exists(fs::path(out) / "checkpoint-12"));
  for (const auto& entry : fs::directory_iterator(out)) {  // the last, the best, checkpoint-0
    if (entry.path().filename().string().rfind("checkpoint-", 0) != 0) continue;
    const fs::path ckpt = entry.path();
    EXPECT_EQ(slurp(ckpt / "vocab.json.xz"), slurp(root_ / "gpt2_model" / "vocab.json.xz"));
    EXPECT_EQ(slurp(ckpt / "merges.txt.xz"), slurp(root_ / "gpt2_model" / "merges.txt.xz"));
    // What generate loads: the checkpoint as a model directory with its tokenizer.
    text::Tokenizer tokenizer = text::Tokenizer::from_file(ckpt.string());
    EXPECT_EQ(tokenizer.encode("Hello world", false), (std::vector<int32_t>{15496, 995}));
    EXPECT_EQ(Decoder::load(ckpt.string()).config().vocab_size, 50257);
  }
}

TEST_F(TrainRobust, SecondRunOnOneOutputDirectoryRefusesNamingTheHolder) {
  const std::string out = (root_ / "locked").string();
  {
    OutputLock held(out);  // as a run in progress holds it
    Outcome second = train(out);
    EXPECT_EQ(second.status, 1);
    EXPECT_NE(second.err.find("another training run uses this output directory"), std::string::npos)
        << second.err;
    EXPECT_NE(second.err.find("pid " + std::to_string(getpid()) + " on host"), std::string::npos)
        << second.err;
    EXPECT_FALSE(fs::exists(fs::path(out) / "metrics.jsonl"));
  }
  EXPECT_EQ(train(out, {"--trainer.steps", "3"}).status, 0);  // released: the next run goes
}

TEST_F(TrainRobust, ResumeRefusesAChangedTrainingKeyUnlessAllowed) {
  const std::string out = (root_ / "changed").string();
  ASSERT_EQ(train(out, {}, "save:6").status, -SIGKILL);  // checkpoint-3 remains
  Outcome changed = train(out, {"--optim.lr", "0.002", "--trainer.batch_size", "8"});
  EXPECT_EQ(changed.status, 1);
  EXPECT_NE(changed.err.find("optim.lr 0.001 -> 0.002, trainer.batch_size 4 -> 8"),
            std::string::npos)
      << changed.err;
  EXPECT_NE(changed.err.find("--trainer.allow_changed_recipe true"), std::string::npos);
  Outcome steps = train(out, {"--trainer.steps", "13"});  // linear decay: the total matters
  EXPECT_EQ(steps.status, 1);
  EXPECT_NE(steps.err.find("trainer.steps 12 -> 13"), std::string::npos) << steps.err;
  // Keys that do not change what is trained pass.
  Outcome harmless = train(out,
                           {"--logging.log_interval", "5", "--trainer.save_total_limit", "3",
                            "--placement.threads", "2", "--trainer.eval_interval", "4"},
                           "step:5");
  EXPECT_EQ(harmless.status, -SIGKILL) << harmless.err;  // it went past the check
  Outcome allowed = train(out, {"--optim.lr", "0.002", "--trainer.allow_changed_recipe", "true"});
  EXPECT_EQ(allowed.status, 0) << allowed.err;
  EXPECT_NE(allowed.err.find("changed recipe (allowed): optim.lr 0.001 -> 0.002"),
            std::string::npos)
      << allowed.err;
}

TEST_F(TrainRobust, ResumedMetricsEqualAnUninterruptedRunsRowForRow) {
  const std::string reference = (root_ / "metrics_reference").string();
  ASSERT_EQ(train(reference).status, 0);
  const std::string out = (root_ / "metrics_resumed").string();
  ASSERT_EQ(train(out, {}, "save:6").status, -SIGKILL);  // rows 4..6 logged, checkpoint-3 kept
  ASSERT_EQ(train(out).status, 0);
  std::vector<std::string> expected = metric_rows(reference);
  ASSERT_GE(expected.size(), 14u);  // a row per step, and evaluations
  EXPECT_EQ(metric_rows(out), expected);
}

TEST_F(TrainRobust, SaysWhenStepsAreSkippedAndFailsWhenAllAre) {
  // Perturbations of 1e38 overflow the weights (f32): every loss is non-finite.
  Outcome all =
      train((root_ / "all_skipped").string(), {"--optim.eps", "1e38", "--trainer.steps", "4"});
  EXPECT_EQ(all.status, 1);
  EXPECT_NE(all.err.find("all 4 steps were skipped (non-finite loss): nothing was trained"),
            std::string::npos)
      << all.err;
  // The first update of 1e38 overflows the weights: the steps after it are skipped.
  Outcome some =
      train((root_ / "some_skipped").string(), {"--optim.lr", "1e38", "--trainer.steps", "4"});
  EXPECT_EQ(some.status, 0) << some.err;
  EXPECT_NE(some.err.find("zoft: 3 of 4 steps skipped (non-finite loss)"), std::string::npos)
      << some.err;
}

// Rows of metrics.jsonl with a value for `tag`, as (step, value).
std::vector<std::pair<int64_t, double>> metric_values(const std::string& out, const char* tag) {
  std::vector<std::pair<int64_t, double>> values;
  std::istringstream lines(slurp(fs::path(out) / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json row = nlohmann::json::parse(line);
    if (row.contains(tag)) values.emplace_back(row.at("step").get<int64_t>(), row.at(tag));
  }
  return values;
}

// A learning rate that wrecks the model: the loss trend stops the run, which ends with the best
// evaluated model (the starting one, or an early one), never worse than it started.
TEST_F(TrainRobust, DivergingRunStopsEarlyAndEndsWithTheBestModel) {
  const std::string out = (root_ / "diverging").string();
  Outcome r = train(out, {"--optim.lr", "0.03", "--optim.schedule", "constant", "--trainer.steps",
                          "60", "--trainer.save_interval", "0"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("zoft: stopped early at step 20: the training loss diverged"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(fs::exists(fs::path(out) / "checkpoint-20"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "checkpoint-21"));
  auto accuracy = metric_values(out, "eval/accuracy");
  ASSERT_GE(accuracy.size(), 3u);  // before, every 6 steps, (after), the best model's
  EXPECT_EQ(accuracy.front().first, 0);
  EXPECT_GE(accuracy.back().second, accuracy.front().second);
  for (const auto& [step, value] : accuracy) EXPECT_LE(value, accuracy.back().second) << step;
  const bool switched = r.err.find("zoft: ending with the best model") != std::string::npos;
  const bool last_was_best = accuracy[accuracy.size() - 1].first == 20;
  EXPECT_TRUE(switched || last_was_best) << r.err;
  // Off: the same run trains all its steps.
  Outcome off = train((root_ / "diverging_off").string(),
                      {"--optim.lr", "0.03", "--optim.schedule", "constant", "--trainer.steps",
                       "30", "--trainer.save_interval", "0", "--trainer.divergence_factor", "0"});
  ASSERT_EQ(off.status, 0) << off.err;
  EXPECT_EQ(off.err.find("stopped early"), std::string::npos) << off.err;
  EXPECT_TRUE(fs::exists(fs::path(root_ / "diverging_off") / "checkpoint-30"));
}

// A validation split of the training file picks the model (every 3 steps, with patience); the
// test file is scored before and on the chosen model. Killed and resumed, the run makes every
// decision and every byte as an uninterrupted one.
TEST_F(TrainRobust, ValidationSplitPicksTheModelAndAKilledRunResumesBitExactly) {
  const std::vector<std::string> args = {"--trainer.validation_fraction",
                                         "0.25",
                                         "--trainer.eval_interval",
                                         "3",
                                         "--trainer.early_stopping_patience",
                                         "3",
                                         "--optim.lr",
                                         "0.01",
                                         "--trainer.steps",
                                         "12"};
  const std::string reference = (root_ / "validation_reference").string();
  Outcome a = train(reference, args);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.err.find("zoft: step 0 validation accuracy"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("on 13 examples"), std::string::npos) << a.err;  // 25 % of 50, rounded
  EXPECT_GE(metric_values(reference, "validation/accuracy").size(), 2u);
  EXPECT_EQ(metric_values(reference, "eval/accuracy").size(), 2u);  // before, after (or best)
  const std::string out = (root_ / "validation_resumed").string();
  ASSERT_EQ(train(out, args, "step:5").status, -SIGKILL);
  Outcome b = train(out, args);
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(metric_rows(out), metric_rows(reference));
  for (const auto& entry : fs::directory_iterator(reference)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0) continue;
    EXPECT_EQ(slurp(entry.path() / "model.safetensors"),
              slurp(fs::path(out) / name / "model.safetensors"))
        << name;
    nlohmann::json state_a = nlohmann::json::parse(slurp(entry.path() / "trainer_state.json")),
                   state_b =
                       nlohmann::json::parse(slurp(fs::path(out) / name / "trainer_state.json"));
    EXPECT_EQ(fs::path(state_b.at("best_checkpoint").get<std::string>()).filename(),
              fs::path(state_a.at("best_checkpoint").get<std::string>()).filename());
    state_a.erase("best_checkpoint");  // a path in the output directory
    state_b.erase("best_checkpoint");
    EXPECT_EQ(state_b, state_a) << name;
  }
  auto end = [](const std::string& err) { return err.substr(err.rfind("zoft: ")); };
  EXPECT_EQ(end(b.err), end(a.err));  // the last line: the best model, or the last step's eval
  // Bad values are one line each.
  Outcome bad = train((root_ / "bad_fraction").string(), {"--trainer.validation_fraction", "1"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("trainer.validation_fraction must be in [0, 1), got 1"), std::string::npos)
      << bad.err;
}

TEST_F(TrainRobust, FailsBeforeTrainingWhenNoTokenIsLeftToScore) {
  // GPT-2 has no BOS: at one token the context is truncated away and the one-token answer has
  // no token before it to be predicted from.
  Outcome r = train((root_ / "nothing_scored").string(), {"--data.max_seq_length", "1"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("16 of 16 data.train examples have no token left to score at 1 tokens"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("raise data.max_seq_length"), std::string::npos);
  EXPECT_FALSE(fs::exists(fs::path(root_ / "nothing_scored") / "checkpoint-12"));
}

TEST_F(TrainRobust, HugeBatchFailsFastWithoutAllocating) {
  auto start = std::chrono::steady_clock::now();
  Outcome r = train((root_ / "huge_batch").string(), {"--trainer.batch_size", "1000000000"});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("training needs about"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("lower trainer.batch_size, data.max_seq_length or optim.samples"),
            std::string::npos);
  EXPECT_LT(seconds, 20.0);
}

}  // namespace
}  // namespace zoft::test
