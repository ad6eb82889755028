// Batches (shapes, padding, targets, row maps), sampling and the resumable data order.
#include "data/batch.h"

#include <gtest/gtest.h>

#include <set>

#include "data/data_test_util.h"
#include "data/sampling.h"

namespace zoft::data {
namespace {

using namespace testing;

using Ids = std::vector<int32_t>;

std::vector<EncodedExample> two_examples() {
  EncodedExample a{{1, 2, 3}, {{4}, {5, 6}}, 1};
  EncodedExample b{{7}, {{8, 9}, {10}}, 0};
  return {a, b};
}

TEST(Batch, AnswerOnlyLeftPadded) {
  BatchOptions options;  // answer-only, left padding, pad 0
  Batch batch = make_batch(two_examples(), {0, 1}, options);
  ASSERT_EQ(batch.rows, 2);
  ASSERT_EQ(batch.seq, 5);
  EXPECT_EQ(batch.ids, (Ids{1, 2, 3, 5, 6, /**/ 0, 0, 7, 8, 9}));
  EXPECT_EQ(batch.mask, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0, 0, 1, 1, 1}));
  // The logits at t predict t + 1: only the correct candidate's tokens are targets.
  EXPECT_EQ(batch.targets, (Ids{-1, -1, 5, 6, -1, /**/ -1, -1, 8, 9, -1}));
  EXPECT_EQ(batch.row_example, (Ids{0, 1}));
  EXPECT_EQ(batch.row_candidate, (Ids{1, 0}));
  EXPECT_EQ(batch.labels, (Ids{1, 0}));
  EXPECT_EQ(batch.scored_tokens(), 4);
}

TEST(Batch, ClassificationRightPaddedToMultiple) {
  BatchOptions options;
  options.mode = LossMode::kClassification;
  options.padding = Padding::kRight;
  options.pad_id = 99;
  options.pad_to_multiple_of = 8;
  Batch batch = make_batch(two_examples(), {1, 0}, options);
  ASSERT_EQ(batch.rows, 4);
  ASSERT_EQ(batch.seq, 8);
  EXPECT_EQ(Ids(batch.ids.begin(), batch.ids.begin() + 8), (Ids{7, 8, 9, 99, 99, 99, 99, 99}));
  EXPECT_EQ(Ids(batch.targets.begin(), batch.targets.begin() + 8),
            (Ids{8, 9, -1, -1, -1, -1, -1, -1}));
  EXPECT_EQ(Ids(batch.targets.begin() + 8, batch.targets.begin() + 16),
            (Ids{10, -1, -1, -1, -1, -1, -1, -1}));
  EXPECT_EQ(Ids(batch.ids.begin() + 24, batch.ids.end()), (Ids{1, 2, 3, 5, 6, 99, 99, 99}));
  EXPECT_EQ(Ids(batch.targets.begin() + 24, batch.targets.end()),
            (Ids{-1, -1, 5, 6, -1, -1, -1, -1}));
  EXPECT_EQ(batch.row_example, (Ids{0, 0, 1, 1}));
  EXPECT_EQ(batch.row_candidate, (Ids{0, 1, 0, 1}));
  EXPECT_EQ(batch.labels, (Ids{0, 1}));  // example 1 (label 0), then example 0 (label 1)
}

TEST(Batch, FullSequenceAndLmChunks) {
  BatchOptions options;
  options.mode = LossMode::kFullSequence;
  Batch batch = make_batch(two_examples(), {0}, options);
  EXPECT_EQ(batch.targets, (Ids{2, 3, 5, 6, -1}));
  std::vector<Ids> chunks = {{1, 2, 3}, {4, 5, 6}};
  Batch lm = make_lm_batch(chunks, {1, 0}, {});
  EXPECT_EQ(lm.ids, (Ids{4, 5, 6, 1, 2, 3}));
  EXPECT_EQ(lm.targets, (Ids{5, 6, -1, 2, 3, -1}));
  expect_error([&] { make_lm_batch(chunks, {}, {}); }, {"an empty batch"});
}

TEST(Batch, PadToken) {
  EXPECT_EQ(pad_token_for(tokenizer("qwen3")), 151643);  // its pad
  EXPECT_EQ(pad_token_for(tokenizer("llama2")), 2);      // no pad: EOS
}

TEST(Sampling, PermutationIsFixedBySeed) {
  auto p = permutation(10, 0);
  EXPECT_EQ(p, permutation(10, 0));
  EXPECT_NE(p, permutation(10, 1));
  EXPECT_EQ(std::set<size_t>(p.begin(), p.end()).size(), 10u);
  // Pinned: mt19937_64's output is fixed by the C++ standard, so this holds everywhere.
  EXPECT_EQ(p, (std::vector<size_t>{7, 2, 0, 8, 3, 9, 6, 1, 5, 4}));
}

std::vector<TaskExample> fine_food_examples() {
  return Task::builtin("fine_foods").make_examples(read_records(fixture("fine_foods_train.jsonl")));
}

TEST(Sampling, KShotIsDeterministicAndBalanced) {
  auto examples = fine_food_examples();  // 37 great, 13 other
  auto a = k_shot_indices(examples, 4, 42);
  EXPECT_EQ(a, k_shot_indices(examples, 4, 42));
  EXPECT_NE(a, k_shot_indices(examples, 4, 43));
  ASSERT_EQ(a.size(), 8u);
  int per_label[2] = {0, 0};
  for (size_t i : a) ++per_label[examples[i].label];
  EXPECT_EQ(per_label[0], 4);
  EXPECT_EQ(per_label[1], 4);
  EXPECT_EQ(std::set<size_t>(a.begin(), a.end()).size(), 8u);
  expect_error([&] { k_shot_indices(examples, 16, 0); },
               {"label 1 has 13 examples, fewer than k = 16"});
}

TEST(Sampling, MezoSplits) {
  Splits s = mezo_splits(4000, 1000, {}, 0);
  EXPECT_EQ(s.train.size(), 1000u);
  EXPECT_EQ(s.dev.size(), 500u);
  EXPECT_EQ(s.eval.size(), 1000u);
  std::set<size_t> train(s.train.begin(), s.train.end());
  for (size_t i : s.dev) EXPECT_FALSE(train.count(i));
  auto again = mezo_splits(4000, 1000, {}, 0);
  EXPECT_EQ(again.train, s.train);
  EXPECT_EQ(again.dev, s.dev);
  Splits small = mezo_splits(50, 50, {16, 8, 1000}, 3);  // pools smaller than asked
  EXPECT_EQ(small.train.size(), 16u);
  EXPECT_EQ(small.dev.size(), 8u);
  EXPECT_EQ(small.eval.size(), 50u);
  Splits tiny = mezo_splits(10, 5, {1000, 4, 1000}, 3);
  EXPECT_EQ(tiny.train.size(), 6u);
  EXPECT_EQ(tiny.dev.size(), 4u);
  expect_error([] { mezo_splits(500, 10, {}, 0); },
               {"500 examples; a dev split of 500 needs more"});
}

TEST(DataOrder, EpochsArePermutations) {
  DataOrder order(5, 9);
  for (int epoch = 0; epoch < 3; ++epoch) {
    auto seen = order.next(5);
    EXPECT_EQ(std::set<size_t>(seen.begin(), seen.end()).size(), 5u);
  }
  EXPECT_EQ(order.position().epoch, 2u);
  EXPECT_EQ(order.position().index, 5u);
  DataOrder plain(4, 9, false);
  EXPECT_EQ(plain.next(6), (std::vector<size_t>{0, 1, 2, 3, 0, 1}));
}

TEST(DataOrder, ResumeContinuesExactly) {
  DataOrder run(7, 123);
  run.next(11);  // into the second epoch
  nlohmann::json saved = nlohmann::json::parse(run.state().dump());
  EXPECT_EQ(saved["epoch"], 1);
  EXPECT_EQ(saved["index"], 4);
  auto uninterrupted = run.next(20);
  DataOrder resumed(7, 123);
  resumed.restore(saved);
  EXPECT_EQ(resumed.next(20), uninterrupted);
  DataOrder other(8, 123);
  expect_error(
      [&] { other.restore(saved); },
      {"resume: the data order was saved for 7 examples (seed 123, shuffle true), this run has 8"});
  expect_error(
      [&] {
        resumed.restore(nlohmann::json{{"size", 7}});
      },
      {"resume: malformed data order state"});
  expect_error([&] { resumed.seek({0, 8}); }, {"position 8 is past the 7 examples"});
}

}  // namespace
}  // namespace zoft::data
