// Pieces the C++ benchmarks share.
#pragma once

#include <random>

#include "model/decoder.h"

namespace zoft::bench {

// A batch x seq batch of uniformly random token ids, no padding, fixed seed: both sides of a
// side-by-side benchmark see the same shape of work.
inline TokenBatch random_token_batch(int64_t vocab, int64_t batch, int64_t seq) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, int32_t(vocab - 1));
  TokenBatch b;
  b.batch = batch;
  b.seq = seq;
  for (int64_t i = 0; i < batch * seq; ++i) {
    b.ids.push_back(token(rng));
    b.mask.push_back(1);
  }
  return b;
}

}  // namespace zoft::bench
