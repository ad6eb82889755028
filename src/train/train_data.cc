#include "train/train_data.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/causal_lm.h"
#include "data/encode.h"
#include "data/records.h"
#include "data/sampling.h"
#include "data/task.h"
#include "train/scoring.h"

namespace zoft {

namespace {

// A fixed sampling seed: runs with different training seeds are scored on the same examples.
constexpr uint64_t kEvalSubsetSeed = 1234;

}  // namespace

// The fixed pick of validation examples: a permutation of the file's examples by this seed.
constexpr uint64_t kValidationSeed = 4321;

EvalResult TrainData::validate(Decoder&, int64_t, const char*, dist::Communicator&) const {
  fail("this data has no validation set (trainer.validation_fraction applies to task data)");
}

std::vector<data::EncodedExample> load_task_examples(
    const data::Task& task, const std::string& path, int64_t limit, int64_t k_shot, uint64_t seed,
    const text::Tokenizer& tokenizer, const data::EncodeOptions& encode, double validation_fraction,
    std::vector<data::EncodedExample>* validation) {
  std::vector<data::TaskExample> examples = task.make_examples(data::read_records(path));
  if (examples.empty()) fail("{}: no examples", path);
  if (validation && validation_fraction > 0) {
    const size_t held = size_t(std::llround(validation_fraction * double(examples.size())));
    if (held == 0 || held >= examples.size())
      fail("{}: trainer.validation_fraction {} of {} examples leaves {} for validation", path,
           validation_fraction, examples.size(), held);
    std::vector<size_t> order = data::permutation(examples.size(), kValidationSeed);
    std::vector<size_t> rest(order.begin() + long(held), order.end());
    std::sort(rest.begin(), rest.end());  // the rest in file order, as a smaller file
    order.resize(held);
    *validation = data::encode_examples(data::select(examples, order), tokenizer, encode);
    examples = data::select(examples, rest);
  }
  std::vector<size_t> pick;
  if (k_shot > 0) {
    pick = data::k_shot_indices(examples, size_t(k_shot), seed);
  } else if (limit > 0 && size_t(limit) < examples.size()) {
    pick = data::permutation(examples.size(), seed);
    pick.resize(size_t(limit));
  }
  if (!pick.empty()) examples = data::select(examples, pick);
  return data::encode_examples(examples, tokenizer, encode);
}

namespace {

// dist: each rank's contiguous share [begin, end) of n items.
std::pair<size_t, size_t> my_share(size_t n, const dist::Communicator& comm) {
  const size_t ranks = size_t(comm.size()), rank = size_t(comm.rank());
  return {n * rank / ranks, n * (rank + 1) / ranks};
}

// Every example must leave at least one token to score in each row it makes (its answer, or
// each candidate): a row without one makes the batch loss non-finite, and every step that draws
// it would be skipped. Truncation to data.max_seq_length is what takes them away.
void check_every_row_scores(const std::vector<data::EncodedExample>& examples,
                            const data::BatchOptions& options, const char* key, int64_t max_length,
                            const std::string& source) {
  size_t unscored = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    data::Batch b = data::make_batch(examples, {i}, options);
    for (int64_t row = 0; row < b.rows; ++row) {
      auto begin = b.targets.begin() + row * b.seq;
      if (std::none_of(begin, begin + b.seq, [](int32_t t) { return t >= 0; })) {
        ++unscored;
        break;
      }
    }
  }
  if (unscored > 0)
    fail(
        "{}: {} of {} {} examples have no token left to score at {} tokens (an answer token "
        "needs a token before it): raise data.max_seq_length",
        source, unscored, examples.size(), key, max_length);
}

int64_t longest_example(const std::vector<data::EncodedExample>& examples) {
  int64_t longest = 1;
  for (const data::EncodedExample& e : examples) longest = std::max(longest, e.max_length());
  return longest;
}

void add_examples(dist::Fingerprint& f, const std::vector<data::EncodedExample>& examples) {
  f.add(int64_t(examples.size()));
  for (const data::EncodedExample& e : examples) {
    f.add(e.context_ids.data(), e.context_ids.size() * sizeof(int32_t)).add(int64_t(e.label));
    for (const auto& c : e.candidate_ids) f.add(c.data(), c.size() * sizeof(int32_t));
  }
}

class TaskData : public TrainData {
 public:
  TaskData(const Recipe& r, const text::Tokenizer& tokenizer, const ModelConfig& config) {
    data::Task task = data::Task::load(r.task.file.empty() ? r.task.name : r.task.file);
    data::EncodeOptions encode;
    encode.max_length = std::min(r.data.max_seq_length, config.max_positions);
    encode.truncate = r.data.truncate;
    const uint64_t seed = uint64_t(r.trainer.seed);
    train_ = load_task_examples(task, r.data.train, r.data.train_samples, r.task.k_shot, seed,
                                tokenizer, encode, r.trainer.validation_fraction, &valid_);
    if (!r.data.eval.empty())
      eval_ = load_task_examples(task, r.data.eval, r.data.eval_samples, 0, kEvalSubsetSeed,
                                 tokenizer, encode);
    pad_id_ = data::pad_token_for(tokenizer);
    options_.mode = r.task.train_as_classification ? data::LossMode::kClassification
                                                   : data::LossMode::kAnswerOnly;
    options_.pad_id = pad_id_;
    check_every_row_scores(train_, options_, "data.train", encode.max_length, r.source);
    data::BatchOptions eval_options = options_;  // evaluation scores every candidate
    eval_options.mode = data::LossMode::kClassification;
    check_every_row_scores(eval_, eval_options, "data.eval", encode.max_length, r.source);
    check_every_row_scores(valid_, eval_options, "the validation set", encode.max_length, r.source);
  }

  int64_t max_row_length() const override { return longest_example(train_); }
  int64_t rows_per_example() const override {
    if (options_.mode != data::LossMode::kClassification) return 1;
    int64_t candidates = 1;
    for (const data::EncodedExample& e : train_)
      candidates = std::max(candidates, int64_t(e.candidate_ids.size()));
    return candidates;
  }

  size_t train_size() const override { return train_.size(); }
  bool has_eval() const override { return !eval_.empty(); }
  const data::BatchOptions& batch_options() const override { return options_; }
  data::Batch batch(const std::vector<size_t>& indices) const override {
    return data::make_batch(train_, indices, options_);
  }

  EvalResult evaluate(Decoder& model, int64_t batch_size, const char* label,
                      dist::Communicator& comm) const override {
    return accuracy(eval_, "eval", model, batch_size, label, comm);
  }
  bool has_validation() const override { return !valid_.empty(); }
  EvalResult validate(Decoder& model, int64_t batch_size, const char* label,
                      dist::Communicator& comm) const override {
    return accuracy(valid_, "validation", model, batch_size, label, comm);
  }

  void fingerprint(dist::Fingerprint& f) const override {
    add_examples(f, train_);
    add_examples(f, eval_);
    add_examples(f, valid_);
  }

 private:
  // Accuracy by candidate scoring (train/scoring.h); dist: each rank scores a contiguous share
  // of the examples and the counts are summed.
  EvalResult accuracy(const std::vector<data::EncodedExample>& set, const char* name,
                      Decoder& model, int64_t batch_size, const char* label,
                      dist::Communicator& comm) const {
    auto [begin, end] = my_share(set.size(), comm);
    std::vector<data::EncodedExample> mine(set.begin() + long(begin), set.begin() + long(end));
    int64_t counts[2] = {
        count_correct(model, mine, batch_size, pad_id_, comm.is_root() ? label : nullptr),
        int64_t(mine.size())};
    if (comm.size() > 1) comm.all_reduce_sum(counts, 2);
    double accuracy = counts[1] ? double(counts[0]) / double(counts[1]) : 0.0;
    EvalResult result;
    result.metrics[std::string(name) + "/accuracy"] = accuracy;
    result.score = accuracy;
    result.summary = fmt::format("{} accuracy {:.4f} on {} examples", name, accuracy, set.size());
    return result;
  }

  std::vector<data::EncodedExample> train_, eval_, valid_;
  int32_t pad_id_ = 0;
  data::BatchOptions options_;
};

// Mean loss over the scored tokens of `batches` (this rank's share) and its exponential, as
// eval metrics; dist: the summed loss and token counts are added in rank order.
template <class MakeBatch>
EvalResult token_loss_eval(Decoder& model, size_t items, int64_t batch_size, const MakeBatch& make,
                           const char* unit, dist::Communicator& comm) {
  auto [begin, end] = my_share(items, comm);
  double nll = 0, tokens = 0;
  for (size_t b = begin; b < end; b += size_t(batch_size)) {
    std::vector<size_t> indices;
    for (size_t i = b; i < std::min(end, b + size_t(batch_size)); ++i) indices.push_back(i);
    data::Batch batch = make(indices);
    TokenBatch tb{batch.rows, batch.seq, batch.ids, batch.mask};
    std::vector<float> loss(size_t(batch.rows * batch.seq));
    model.token_losses(tb, batch.targets.data(), loss.data());
    for (size_t i = 0; i < loss.size(); ++i)
      if (batch.targets[i] >= 0) nll += loss[i], tokens += 1;
  }
  double sum[2] = {nll, tokens};
  dist::all_reduce_sum_in_rank_order(comm, sum, 2);
  const double mean = sum[1] > 0 ? sum[0] / sum[1] : 0.0;
  EvalResult result;
  result.metrics["eval/loss"] = mean;
  result.metrics["eval/perplexity"] = std::exp(mean);
  result.score = -mean;
  result.summary = fmt::format("eval loss {:.4f}, perplexity {:.3f} on {} {}", mean, std::exp(mean),
                               items, unit);
  return result;
}

// A causal-LM corpus: blocks of max_seq_length tokens, every next token scored.
class CorpusData : public TrainData {
 public:
  CorpusData(const Recipe& r, const text::Tokenizer& tokenizer, const ModelConfig& config) {
    data::CorpusOptions chunk;
    chunk.field = r.data.text_field;
    chunk.max_seq_length = std::min(r.data.max_seq_length, config.max_positions);
    if (chunk.max_seq_length < 2)
      fail("{}: data.max_seq_length {} leaves no next token to predict: use at least 2", r.source,
           r.data.max_seq_length);
    block_length_ = chunk.max_seq_length;
    train_ = load_blocks(r.data.train, r.data.train_samples, tokenizer, chunk);
    if (!r.data.eval.empty())
      eval_ = load_blocks(r.data.eval, r.data.eval_samples, tokenizer, chunk);
    options_.mode = data::LossMode::kFullSequence;
    options_.padding = data::Padding::kRight;
    options_.pad_id = data::pad_token_for(tokenizer);
  }

  size_t train_size() const override { return train_.size(); }
  bool has_eval() const override { return !eval_.empty(); }
  const data::BatchOptions& batch_options() const override { return options_; }
  data::Batch batch(const std::vector<size_t>& indices) const override {
    return data::make_lm_batch(train_, indices, options_);
  }
  int64_t max_row_length() const override { return block_length_; }
  int64_t rows_per_example() const override { return 1; }

  // Mean next-token loss over the eval blocks and its exponential; dist: blocks split among
  // ranks, the summed loss and token counts added in rank order.
  EvalResult evaluate(Decoder& model, int64_t batch_size, const char*,
                      dist::Communicator& comm) const override {
    auto make = [this](const std::vector<size_t>& i) {
      return data::make_lm_batch(eval_, i, options_);
    };
    return token_loss_eval(model, eval_.size(), batch_size, make, "blocks", comm);
  }

  void fingerprint(dist::Fingerprint& f) const override {
    f.add(int64_t(train_.size())).add(int64_t(eval_.size()));
    for (const auto* set : {&train_, &eval_})
      for (const std::vector<int32_t>& block : *set)
        f.add(block.data(), block.size() * sizeof(int32_t));
  }

 private:
  static std::vector<std::vector<int32_t>> load_blocks(const std::string& path, int64_t limit,
                                                       const text::Tokenizer& tokenizer,
                                                       const data::CorpusOptions& chunk) {
    std::vector<std::vector<int32_t>> blocks = data::read_lm_blocks(path, tokenizer, chunk);
    if (limit > 0 && size_t(limit) < blocks.size()) blocks.resize(size_t(limit));
    return blocks;
  }

  std::vector<std::vector<int32_t>> train_, eval_;
  data::BatchOptions options_;
  int64_t block_length_ = 0;
};

// Prompt / completion records (supervised fine-tuning): the loss on the completion tokens.
class SftData : public TrainData {
 public:
  SftData(const Recipe& r, const text::Tokenizer& tokenizer, const ModelConfig& config) {
    data::SftOptions sft;
    sft.prompt_field = r.data.prompt_field;
    sft.completion_field = r.data.completion_field;
    sft.max_seq_length = std::min(r.data.max_seq_length, config.max_positions);
    sft.truncate = r.data.truncate;
    train_ = limit(data::read_sft_examples(r.data.train, tokenizer, sft), r.data.train_samples);
    if (!r.data.eval.empty())
      eval_ = limit(data::read_sft_examples(r.data.eval, tokenizer, sft), r.data.eval_samples);
    options_.mode = data::LossMode::kAnswerOnly;
    options_.padding = data::Padding::kRight;
    options_.pad_id = data::pad_token_for(tokenizer);
  }

  size_t train_size() const override { return train_.size(); }
  bool has_eval() const override { return !eval_.empty(); }
  const data::BatchOptions& batch_options() const override { return options_; }
  data::Batch batch(const std::vector<size_t>& indices) const override {
    return data::make_batch(train_, indices, options_);
  }
  int64_t max_row_length() const override { return longest_example(train_); }
  int64_t rows_per_example() const override { return 1; }
  EvalResult evaluate(Decoder& model, int64_t batch_size, const char*,
                      dist::Communicator& comm) const override {
    auto make = [this](const std::vector<size_t>& i) {
      return data::make_batch(eval_, i, options_);
    };
    return token_loss_eval(model, eval_.size(), batch_size, make, "examples", comm);
  }
  void fingerprint(dist::Fingerprint& f) const override {
    add_examples(f, train_);
    add_examples(f, eval_);
  }

 private:
  static std::vector<data::EncodedExample> limit(std::vector<data::EncodedExample> v, int64_t n) {
    if (n > 0 && size_t(n) < v.size()) v.resize(size_t(n));
    return v;
  }

  std::vector<data::EncodedExample> train_, eval_;
  data::BatchOptions options_;
};

}  // namespace

std::unique_ptr<TrainData> load_train_data(const Recipe& r, const text::Tokenizer& tokenizer,
                                           const ModelConfig& config) {
  if (r.task.name.empty() && r.task.file.empty()) {
    if (r.data.format == "prompt_completion")
      return std::make_unique<SftData>(r, tokenizer, config);
    return std::make_unique<CorpusData>(r, tokenizer, config);
  }
  return std::make_unique<TaskData>(r, tokenizer, config);
}

}  // namespace zoft
