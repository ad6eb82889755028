#include "train/objective.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace zoft {

std::vector<double> row_scores(const data::Batch& batch, const std::vector<float>& token_loss) {
  std::vector<double> score(size_t(batch.rows), 0.0);
  for (int64_t r = 0; r < batch.rows; ++r) {
    double sum = 0;
    int64_t count = 0;
    for (int64_t t = 0; t < batch.seq; ++t) {
      size_t i = size_t(r * batch.seq + t);
      if (batch.targets[i] < 0) continue;
      sum += token_loss[i];
      ++count;
    }
    score[size_t(r)] = count ? -sum / double(count) : -std::numeric_limits<double>::infinity();
  }
  return score;
}

double batch_loss(const data::Batch& batch, const std::vector<float>& token_loss,
                  data::LossMode mode) {
  if (mode != data::LossMode::kClassification) {
    double sum = 0;
    int64_t count = 0;
    for (size_t i = 0; i < batch.targets.size(); ++i)
      if (batch.targets[i] >= 0) {
        sum += token_loss[i];
        ++count;
      }
    ZOFT_CHECK(count > 0, "a training batch has no scored tokens");
    return sum / double(count);
  }
  std::vector<double> score = row_scores(batch, token_loss);
  const size_t examples = batch.labels.size();
  // Per example: log-sum-exp over its candidates minus the correct candidate's score.
  std::vector<double> top(examples, -std::numeric_limits<double>::infinity()), correct(examples);
  for (int64_t r = 0; r < batch.rows; ++r) {
    size_t e = size_t(batch.row_example[size_t(r)]);
    top[e] = std::max(top[e], score[size_t(r)]);
    if (batch.row_candidate[size_t(r)] == batch.labels[e]) correct[e] = score[size_t(r)];
  }
  std::vector<double> sum_exp(examples, 0.0);
  for (int64_t r = 0; r < batch.rows; ++r) {
    size_t e = size_t(batch.row_example[size_t(r)]);
    sum_exp[e] += std::exp(score[size_t(r)] - top[e]);
  }
  double loss = 0;
  for (size_t e = 0; e < examples; ++e) loss += top[e] + std::log(sum_exp[e]) - correct[e];
  return loss / double(examples);
}

Accuracy batch_accuracy(const data::Batch& batch, const std::vector<float>& token_loss) {
  std::vector<double> score = row_scores(batch, token_loss);
  const size_t examples = batch.labels.size();
  std::vector<double> best(examples, -std::numeric_limits<double>::infinity());
  std::vector<int32_t> choice(examples, -1);
  for (int64_t r = 0; r < batch.rows; ++r) {
    size_t e = size_t(batch.row_example[size_t(r)]);
    if (score[size_t(r)] > best[e]) {
      best[e] = score[size_t(r)];
      choice[e] = batch.row_candidate[size_t(r)];
    }
  }
  Accuracy a;
  for (size_t e = 0; e < examples; ++e) {
    a.correct += choice[e] == batch.labels[e];
    ++a.total;
  }
  return a;
}

}  // namespace zoft
