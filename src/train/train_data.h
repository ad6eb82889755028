// What the trainer trains and evaluates on, behind one interface: a prompt task's examples
// (task.name / task.file: candidates, accuracy) or a causal-LM corpus (no task: TXT / JSONL /
// CSV cut into blocks, HF run_clm's group_texts; eval loss and perplexity).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/encode.h"
#include "data/task.h"
#include "dist/communicator.h"
#include "dist/startup.h"
#include "model/decoder.h"
#include "text/tokenizer.h"
#include "train/recipe.h"

namespace zoft {

struct EvalResult {
  std::map<std::string, double> metrics;  // "eval/accuracy", or "eval/loss" + "eval/perplexity"
  double score = 0;                       // higher is better: picks the best checkpoint
  std::string summary;                    // one line for the log
};

class TrainData {
 public:
  virtual ~TrainData() = default;
  virtual size_t train_size() const = 0;  // examples or blocks
  virtual bool has_eval() const = 0;
  virtual const data::BatchOptions& batch_options() const = 0;
  // The training batch of items[indices[i]] (indices from data::DataOrder).
  virtual data::Batch batch(const std::vector<size_t>& indices) const = 0;
  // Scores the eval set; dist: every rank takes a share and every rank gets the same result.
  virtual EvalResult evaluate(Decoder& model, int64_t batch_size, const char* progress_label,
                              dist::Communicator& comm) const = 0;
  // A validation set held out of data.train (trainer.validation_fraction); metrics are named
  // "validation/...". Task data only.
  virtual bool has_validation() const { return false; }
  virtual EvalResult validate(Decoder& model, int64_t batch_size, const char* progress_label,
                              dist::Communicator& comm) const;
  // For the memory estimate: the longest row, and rows per training example (candidates).
  virtual int64_t max_row_length() const = 0;
  virtual int64_t rows_per_example() const = 0;
  // Feeds everything a rank loaded into the start-up check (every rank must agree).
  virtual void fingerprint(dist::Fingerprint& f) const = 0;
};

// Examples of a task from a data file, optionally a seeded subset of `limit` of them (or a
// k-shot pick when k_shot > 0), encoded. validation (when not null): first the fraction
// `validation_fraction` of the file's examples is held out into it (a pick that depends on the
// file alone); the subset is then drawn from the rest.
std::vector<data::EncodedExample> load_task_examples(
    const data::Task& task, const std::string& path, int64_t limit, int64_t k_shot, uint64_t seed,
    const text::Tokenizer& tokenizer, const data::EncodeOptions& encode,
    double validation_fraction = 0, std::vector<data::EncodedExample>* validation = nullptr);

// Loads data.train / data.eval as the recipe says: a task when task.name or task.file is set,
// else a causal-LM corpus. Throws one clear line for an empty corpus, one shorter than a block,
// a record without the text field, or examples with nothing to score.
std::unique_ptr<TrainData> load_train_data(const Recipe& recipe, const text::Tokenizer& tokenizer,
                                           const ModelConfig& config);

}  // namespace zoft
