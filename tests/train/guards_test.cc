// The pieces behind `zoft train`'s guards (issue 11), one at a time: which recipe changes stop a
// resume, the memory estimate and what is available, the output-directory lock, the metrics
// rewrite on resume, and the tokenizer files a checkpoint must carry.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/config.h"
#include "runtime/offload.h"
#include "text/tokenizer.h"
#include "train/memory_check.h"
#include "train/metrics.h"
#include "train/output_lock.h"
#include "train/recipe.h"
#include "train/recipe_changes.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("zoft_guards_" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Recipe base_recipe() {
  Recipe r;
  r.model.path = "m";
  r.data.train = "train.jsonl";
  r.task.name = "sst2";
  r.optim.schedule = "linear";
  return r;
}

TEST(RecipeChanges, NamesEachChangedTrainingKeyWithBothValues) {
  Recipe saved = base_recipe(), now = saved;
  now.optim.lr = 2e-6;
  now.trainer.batch_size = 32;
  now.model.dtype = "bf16";
  now.data.train = "other.jsonl";
  now.trainer.seed = 7;
  std::vector<RecipeChange> c = changed_training_keys(recipe_to_yaml(saved), recipe_to_yaml(now));
  EXPECT_EQ(describe_changes(c),
            "model.dtype f32 -> bf16, data.train train.jsonl -> other.jsonl, optim.lr 1e-06 -> "
            "2e-06, trainer.batch_size 16 -> 32, trainer.seed 42 -> 7");
  EXPECT_EQ(c[2].saved, "9.9999999999999995e-07");  // the saved text, as compared
}

TEST(RecipeChanges, IgnoresWhereAndHowObservablyARunGoes) {
  Recipe saved = base_recipe(), now = saved;
  now.trainer.output_dir = "elsewhere";
  now.trainer.eval_interval = 5;
  now.trainer.save_interval = 5;
  now.trainer.save_total_limit = 9;
  now.trainer.eval_before = false;
  now.trainer.nan_policy = "stop";
  now.trainer.schedule = "plain";
  now.trainer.allow_changed_recipe = true;
  now.trainer.gradient_checkpointing = true;
  now.placement.threads = 3;
  now.placement.max_memory = "cpu=1GiB";
  now.dist.backend = "mpi";
  now.logging.log_interval = 1;
  now.logging.tensorboard = false;
  EXPECT_TRUE(changed_training_keys(recipe_to_yaml(saved), recipe_to_yaml(now)).empty());
}

TEST(RecipeChanges, StepsMatterOnlyToADecayingSchedule) {
  Recipe saved = base_recipe(), now = saved;
  now.trainer.steps = 500;
  EXPECT_EQ(describe_changes(changed_training_keys(recipe_to_yaml(saved), recipe_to_yaml(now))),
            "trainer.steps 100 -> 500");
  saved.optim.schedule = now.optim.schedule = "constant";
  EXPECT_TRUE(changed_training_keys(recipe_to_yaml(saved), recipe_to_yaml(now)).empty());
}

TEST(RecipeChanges, KeysOnlyOneRecipeHasAreNotCompared) {
  Recipe r = base_recipe();
  EXPECT_TRUE(changed_training_keys("optim:\n  lr: 9.9999999999999995e-07\n  old_key: 3\n",
                                    recipe_to_yaml(r))
                  .empty());
}

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 1000;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  return c;
}

TEST(MemoryCheck, EstimateIsTheRuntimesActivationsPlusWeightsAndBatch) {
  ModelConfig c = small_config();
  MemoryEstimate e = estimate_training_memory(c, 1e6, 8, 16, 100, 2);
  EXPECT_EQ(e.activations, double(runtime::activation_bytes(c, 800, 2, 800)));
  EXPECT_EQ(e.weights, 1e6);
  EXPECT_EQ(e.batch, 16.0 * 100 * 13);
  EXPECT_EQ(e.total(), e.weights + e.activations + e.batch);
}

TEST(MemoryCheck, AHugeBatchNeitherOverflowsNorFits) {
  ModelConfig c = small_config();
  MemoryEstimate small = estimate_training_memory(c, 0, int64_t(1) << 24, 1, 1, 2);
  MemoryEstimate huge = estimate_training_memory(c, 0, int64_t(1) << 40, 1, 1 << 20, 2);
  // Linear in the tokens beyond the size evaluated: 2^60 / 2^24 times as much.
  EXPECT_DOUBLE_EQ(huge.activations, small.activations * std::ldexp(1.0, 36));
  std::string m = message_of([&] {
    check_training_memory(huge, AvailableMemory{uint64_t(16) << 30, "MemAvailable"}, 1, "r.yaml");
  });
  EXPECT_NE(m.find("r.yaml: training needs about "), std::string::npos) << m;
  EXPECT_NE(m.find("but 16.0 GiB is available (MemAvailable); lower trainer.batch_size"),
            std::string::npos)
      << m;
}

TEST(MemoryCheck, FitsOrNotAgainstTheShareOfEachRank) {
  MemoryEstimate e;
  e.weights = 3.0 * (1 << 30);
  AvailableMemory eight{uint64_t(8) << 30, "the cgroup limit"};
  EXPECT_NO_THROW(check_training_memory(e, eight, 1, "r.yaml"));
  EXPECT_NO_THROW(check_training_memory(e, eight, 2, "r.yaml"));
  std::string m = message_of([&] { check_training_memory(e, eight, 4, "r.yaml"); });
  EXPECT_NE(m.find("but 2.0 GiB is available (the cgroup limit, shared by 4 ranks)"),
            std::string::npos)
      << m;
}

TEST(MemoryCheck, ReadsMemAvailable) {
  EXPECT_EQ(parse_mem_available("MemTotal: 100 kB\nMemFree:  50 kB\nMemAvailable:   7 kB\n"),
            std::optional<uint64_t>(7 * 1024));
  EXPECT_EQ(parse_mem_available("MemTotal: 100 kB\n"), std::nullopt);
  std::optional<AvailableMemory> here = available_memory();
  ASSERT_TRUE(here.has_value());  // Linux
  EXPECT_GT(here->bytes, 0u);
}

TEST(OutputLockTest, ASecondHolderIsRefusedWithTheFirstsPidAndHost) {
  TempDir dir;
  const std::string out = (dir.path() / "run").string();
  {
    OutputLock first(out);
    std::string m = message_of([&] { OutputLock second(out); });
    EXPECT_NE(m.find(out + ": another training run uses this output directory (pid " +
                     std::to_string(getpid()) + " on host "),
              std::string::npos)
        << m;
    EXPECT_NE(m.find(" since 20"), std::string::npos) << m;
  }
  EXPECT_NO_THROW(OutputLock again(out));  // released with its holder
}

TEST(OutputLockTest, AKilledHolderLeavesNoStaleLock) {
  TempDir dir;
  const std::string out = (dir.path() / "run").string();
  pid_t pid = fork();
  if (pid == 0) {
    OutputLock held(out);
    ::kill(::getpid(), SIGKILL);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_NE(slurp(fs::path(out) / ".lock").find("pid " + std::to_string(pid)), std::string::npos);
  EXPECT_NO_THROW(OutputLock next(out));
}

TEST(DropRowsAfter, KeepsTheRowsUpToTheCheckpointAndDropsATornLine) {
  TempDir dir;
  const fs::path path = dir.path() / "metrics.jsonl";
  std::ofstream(path) << "{\"step\": 0, \"eval/accuracy\": 0.5}\n{\"step\": 1, \"train/loss\": 1}\n"
                      << "{\"step\": 2, \"train/loss\": 0.9}\n{\"step\": 3, \"train/loss\": 0.8}\n"
                      << "{\"step\": 4, \"train/lo";
  drop_rows_after(path.string(), 2);
  EXPECT_EQ(slurp(path),
            "{\"step\": 0, \"eval/accuracy\": 0.5}\n{\"step\": 1, \"train/loss\": 1}\n"
            "{\"step\": 2, \"train/loss\": 0.9}\n");
  drop_rows_after(path.string(), -1);  // starting afresh: nothing of a former attempt remains
  EXPECT_EQ(slurp(path), "");
  drop_rows_after((dir.path() / "missing.jsonl").string(), 3);
  EXPECT_FALSE(fs::exists(dir.path() / "missing.jsonl"));
}

TEST(TokenizerFileNames, ListsEveryNameFromFileReadsCompressedOrNot) {
  std::vector<std::string> names = text::tokenizer_file_names();
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                           "encoder.json", "vocab.bpe"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    EXPECT_NE(std::find(names.begin(), names.end(), std::string(name) + ".xz"), names.end())
        << name;
  }
}

}  // namespace
}  // namespace zoft
