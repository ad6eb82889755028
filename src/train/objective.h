// Losses and accuracy from per-token losses of a data::Batch.
#pragma once

#include <vector>

#include "data/batch.h"

namespace zoft {

// Length-normalised log-likelihood of each row: -(sum of its token losses) / (scored tokens).
std::vector<double> row_scores(const data::Batch& batch, const std::vector<float>& token_loss);

// The training objective of a batch:
//   kAnswerOnly / kFullSequence: mean loss over scored tokens (HF's causal-LM loss);
//   kClassification: mean over examples of the cross-entropy of the correct candidate under a
//   softmax of the candidates' length-normalised log-likelihoods (MeZO train_as_classification).
double batch_loss(const data::Batch& batch, const std::vector<float>& token_loss,
                  data::LossMode mode);

// Examples whose correct candidate scores highest (ties go to the lower index), and how many.
struct Accuracy {
  int64_t correct = 0;
  int64_t total = 0;
};
Accuracy batch_accuracy(const data::Batch& batch, const std::vector<float>& token_loss);

}  // namespace zoft
