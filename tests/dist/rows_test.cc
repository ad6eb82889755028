// The premise of bit-exact data parallelism: a row's per-token losses do not depend on which
// other rows share its batch. A rank runs rows [a, b) of the global batch (with the global
// batch's seq); the losses must equal those rows of the whole batch's forward, bit for bit, for
// every architecture, f32 and bf16, through both the whole forward and the block-by-block one.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "model/decoder.h"
#include "model/golden_util.h"

namespace zoft::test {
namespace {

// rows x seq random ids, left-padded to lengths between seq/3 and seq.
TokenBatch random_batch(int64_t rows, int64_t seq, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TokenBatch b;
  b.batch = rows;
  b.seq = seq;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t len = seq / 3 + int64_t(rng() % uint64_t(seq - seq / 3 + 1));
    if (r == 0) len = seq;
    for (int64_t t = 0; t < seq; ++t) {
      bool real = t >= seq - len;
      b.ids.push_back(real ? int32_t(rng() % uint64_t(vocab)) : 0);
      b.mask.push_back(real ? 1 : 0);
    }
  }
  return b;
}

TokenBatch rows_of(const TokenBatch& b, int64_t begin, int64_t end) {
  TokenBatch s;
  s.batch = end - begin;
  s.seq = b.seq;
  s.ids.assign(b.ids.begin() + begin * b.seq, b.ids.begin() + end * b.seq);
  s.mask.assign(b.mask.begin() + begin * b.seq, b.mask.begin() + end * b.seq);
  return s;
}

std::vector<float> whole_forward(Decoder& model, const TokenBatch& b,
                                 const std::vector<int32_t>& targets) {
  std::vector<float> loss(size_t(b.rows()));
  model.token_losses(b, targets.data(), loss.data());
  return loss;
}

std::vector<float> block_forward(Decoder& model, const TokenBatch& b,
                                 const std::vector<int32_t>& targets) {
  KvCache cache(model.config(), b.batch, b.seq, true);
  ForwardState state;
  model.begin_forward(b, cache, state);
  for (int64_t block = 0; block < model.num_blocks(); ++block) model.run_block(block, state);
  std::vector<float> loss(size_t(b.rows()));
  model.losses_from_hidden(state.h(), b.rows(), targets.data(), loss.data());
  return loss;
}

struct Case {
  const char* model;
  DType dtype;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.model << (c.dtype == DType::BF16 ? " (bf16 compute)" : "");
}

class Rows : public testing::TestWithParam<Case> {};

// Runs every split of `b` that 2, 3, 4 and 6 ranks would make and compares each shard's losses
// with the whole batch's.
void expect_shards_match(Decoder& model, const TokenBatch& b, const std::vector<int32_t>& targets,
                         const std::string& what) {
  const int64_t seq = b.seq;
  for (auto forward : {whole_forward, block_forward}) {
    std::vector<float> all = forward(model, b, targets);
    for (std::vector<int64_t> bounds :
         {std::vector<int64_t>{0, 3, 6}, {0, 2, 4, 6}, {0, 1, 3, 4, 6}, {0, 1, 2, 3, 4, 5, 6}}) {
      for (size_t p = 0; p + 1 < bounds.size(); ++p) {
        const int64_t a = bounds[p], e = bounds[p + 1];
        TokenBatch s = rows_of(b, a, e);
        std::vector<int32_t> t(targets.begin() + a * seq, targets.begin() + e * seq);
        std::vector<float> part = forward(model, s, t);
        ASSERT_EQ(std::memcmp(part.data(), all.data() + a * seq, part.size() * sizeof(float)), 0)
            << what << ": rows [" << a << ", " << e << ") of " << b.batch << " ("
            << (forward == whole_forward ? "whole" : "block-by-block") << " forward)";
      }
    }
  }
}

// Targets on the last `per_row` real positions of each row only (short answers): the LM head
// then sees as many rows as the shard has scored tokens.
std::vector<int32_t> last_targets(const TokenBatch& b, const std::vector<int32_t>& targets,
                                  int64_t per_row) {
  std::vector<int32_t> out(targets.size(), -1);
  for (int64_t r = 0; r < b.batch; ++r)
    for (int64_t t = b.seq - 1 - per_row; t < b.seq - 1; ++t)
      out[size_t(r * b.seq + t)] = targets[size_t(r * b.seq + t)];
  return out;
}

TEST_P(Rows, ShardOfABatchGivesTheSameLossesAsTheWholeBatch) {
  Decoder model = Decoder::load(golden_dir(GetParam().model), GetParam().dtype);
  TokenBatch b = random_batch(6, 40, model.config().vocab_size, 7);
  std::vector<int32_t> targets = Decoder::next_token_targets(b);
  expect_shards_match(model, b, targets, std::string(GetParam().model) + ", every target");
  expect_shards_match(model, b, last_targets(b, targets, 3),
                      std::string(GetParam().model) + ", 3 targets per row");
}

// A shard with one or two scored tokens runs the LM head through the small-M f32 GEMM
// (gemm_small.cc), which must sum each output in the packed kernel's order.
TEST_P(Rows, ShardWithOneOrTwoScoredTokens) {
  Decoder model = Decoder::load(golden_dir(GetParam().model), GetParam().dtype);
  TokenBatch b = random_batch(6, 40, model.config().vocab_size, 7);
  std::vector<int32_t> targets = Decoder::next_token_targets(b);
  expect_shards_match(model, b, last_targets(b, targets, 1),
                      std::string(GetParam().model) + ", 1 target per row");
}

INSTANTIATE_TEST_SUITE_P(Golden, Rows,
                         testing::Values(Case{"llama", DType::F32}, Case{"llama-bf16", DType::BF16},
                                         Case{"opt", DType::F32}, Case{"gpt2", DType::F32},
                                         Case{"mistral", DType::F32}, Case{"qwen2", DType::F32},
                                         Case{"qwen3", DType::F32}, Case{"gemma3", DType::F32},
                                         Case{"qwen3", DType::BF16}),
                         [](const testing::TestParamInfo<Case>& i) {
                           std::string n = std::string(i.param.model) +
                                           (i.param.dtype == DType::BF16 ? "_bf16c" : "");
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace zoft::test
