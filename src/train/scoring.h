// Task accuracy by candidate scoring: each example's candidates are ranked by their
// length-normalised log-likelihood after the shared context (MeZO's evaluation).
#pragma once

#include <cstdint>
#include <vector>

#include "data/encode.h"
#include "model/decoder.h"

namespace zoft {

// `batch_size` examples per forward. When every candidate of every example is one token (" great"
// / " terrible"), one row per example suffices: the candidates are read off the log-softmax at
// the context's last position, so only those rows of the LM head are computed.
// Returns how many examples' correct candidate scores highest; progress_label null = silent.
int64_t count_correct(Decoder& model, const std::vector<data::EncodedExample>& examples,
                      int64_t batch_size, int32_t pad_id, const char* progress_label);

}  // namespace zoft
