// Causal-LM blocks and prompt / completion examples for first-order fine-tuning, against token
// streams checked by hand with HF's tokenizers (transformers AutoTokenizer on the fixtures).
#include "data/causal_lm.h"

#include <gtest/gtest.h>

#include "data/batch.h"
#include "data/data_test_util.h"
#include "data/sampling.h"

namespace zoft::data {
namespace {

using namespace testing;

using Ids = std::vector<int32_t>;

// GPT-2: "Hello world" = [15496, 995], EOS <|endoftext|> = 50256, no BOS.
TEST(LmBlocks, JsonlDocumentsEndWithEos) {
  TempDir dir;
  write_bytes(
      dir.file("c.jsonl"),
      "{\"text\": \"Hello world\"}\n{\"text\": \"Hello world\"}\n\n{\"text\": \"Hello world\"}\n");
  CorpusOptions options;
  options.max_seq_length = 4;
  auto blocks = read_lm_blocks(dir.file("c.jsonl"), tokenizer("gpt2"), options);
  ASSERT_EQ(blocks.size(), 2u);  // 9 tokens: 2 blocks, 1 dropped (run_clm's group_texts)
  EXPECT_EQ(blocks[0], (Ids{15496, 995, 50256, 15496}));
  EXPECT_EQ(blocks[1], (Ids{995, 50256, 15496, 995}));
  write_bytes(dir.file("c.jsonl.xz"), xz_compress(read_bytes(dir.file("c.jsonl"))));
  EXPECT_EQ(read_lm_blocks(dir.file("c.jsonl.xz"), tokenizer("gpt2"), options), blocks);
  options.append_eos = false;  // run_clm itself: [15496, 995] x 3 -> 1 block
  blocks = read_lm_blocks(dir.file("c.jsonl"), tokenizer("gpt2"), options);
  EXPECT_EQ(blocks, (std::vector<Ids>{{15496, 995, 15496, 995}}));
}

// Llama-style: tokenizer("Hello world\n") = [1, 22557, 1526, 13] (BOS 1), EOS 2.
TEST(LmBlocks, TxtLinesGetBosAndEos) {
  TempDir dir;
  write_bytes(dir.file("c.txt"), "Hello world\nHello world\n");
  CorpusOptions options;
  options.max_seq_length = 3;
  auto blocks = read_lm_blocks(dir.file("c.txt"), tokenizer("llama2"), options);
  // [1 22557 1526 13 2 | 1 22557 1526 13 2]: 10 tokens, 3 blocks, 1 dropped
  EXPECT_EQ(blocks, (std::vector<Ids>{{1, 22557, 1526}, {13, 2, 1}, {22557, 1526, 13}}));
}

// Gemma 3: tokenizer("Hello world") = [2, 9259, 1902] (BOS 2); this fixture's EOS (its
// tokenizer_config's eos_token) is <end_of_turn> = 106.
TEST(LmBlocks, GemmaBosAndEos) {
  TempDir dir;
  write_bytes(dir.file("c.jsonl"), "{\"text\": \"Hello world\"}\n{\"text\": \"Hello world\"}\n");
  CorpusOptions options;
  options.max_seq_length = 8;
  auto blocks = read_lm_blocks(dir.file("c.jsonl"), tokenizer("gemma3"), options);
  EXPECT_EQ(blocks, (std::vector<Ids>{{2, 9259, 1902, 106, 2, 9259, 1902, 106}}));
}

TEST(LmBlocks, CsvColumnAndNoDoubleEos) {
  TempDir dir;
  write_bytes(dir.file("c.csv"), "id,body\n1,Hello world</s>\n2,Hello world\n");
  CorpusOptions options;
  options.field = "body";
  options.max_seq_length = 8;
  auto blocks = read_lm_blocks(dir.file("c.csv"), tokenizer("llama2"), options);
  // "Hello world</s>" already ends with EOS: no second one.
  EXPECT_EQ(blocks, (std::vector<Ids>{{1, 22557, 1526, 2, 1, 22557, 1526, 2}}));
}

TEST(LmBlocks, TargetsAreTheNextTokenInsideABlock) {
  std::vector<Ids> blocks = {{5, 6, 7, 8}, {9, 10, 11, 12}};
  BatchOptions options;
  options.padding = Padding::kRight;
  Batch batch = make_lm_batch(blocks, {1, 0}, options);
  EXPECT_EQ(batch.ids, (Ids{9, 10, 11, 12, 5, 6, 7, 8}));
  EXPECT_EQ(batch.targets, (Ids{10, 11, 12, -1, 6, 7, 8, -1}));  // as next_token_targets
}

TEST(LmBlocks, Errors) {
  TempDir dir;
  const auto& gpt2 = tokenizer("gpt2");
  write_bytes(dir.file("empty.jsonl"), "\n\n");
  expect_error([&] { read_lm_blocks(dir.file("empty.jsonl"), gpt2); }, {"empty.jsonl: empty file"});
  write_bytes(dir.file("short.jsonl"), "{\"text\": \"Hello world\"}\n");
  CorpusOptions options;
  options.max_seq_length = 64;
  expect_error([&] { read_lm_blocks(dir.file("short.jsonl"), gpt2, options); },
               {"short.jsonl: 3 tokens in all, fewer than one block of max_seq_length 64"});
  write_bytes(dir.file("nofield.jsonl"), "{\"text\": \"Hello\"}\n{\"body\": \"world\"}\n");
  expect_error([&] { read_lm_blocks(dir.file("nofield.jsonl"), gpt2); },
               {"nofield.jsonl:2: no field 'text' (fields: body)"});
  write_bytes(dir.file("nocolumn.csv"), "a,b\n1,2\n");
  expect_error([&] { read_lm_blocks(dir.file("nocolumn.csv"), gpt2); },
               {"nocolumn.csv: no column 'text' (columns: a, b)"});
}

// tokenizer("Q: 2+2?") = [1, 1186, 28747, 28705, 28750, 28806, 28750, 28804] and
// tokenizer("Q: 2+2? A: 4") = that + [330, 28747, 28705, 28781] (llama2 fixture).
const Ids kPrompt = {1, 1186, 28747, 28705, 28750, 28806, 28750, 28804};
const Ids kCompletion = {330, 28747, 28705, 28781};

TEST(SftExamples, PromptCompletionAndEos) {
  TempDir dir;
  write_bytes(dir.file("sft.jsonl"),
              "{\"prompt\": \"Q: 2+2?\", \"completion\": \" A: 4\"}\n"
              "{\"prompt\": \"Hello\", \"completion\": \" world\"}\n");
  const auto& llama = tokenizer("llama2");
  auto examples = read_sft_examples(dir.file("sft.jsonl"), llama);
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0].context_ids, kPrompt);
  Ids completion = kCompletion;
  completion.push_back(2);  // EOS
  EXPECT_EQ(examples[0].candidate_ids, std::vector<Ids>{completion});
  EXPECT_EQ(examples[0].label, 0);
  EXPECT_EQ(examples[1].context_ids, (Ids{1, 22557}));
  EXPECT_EQ(examples[1].candidate_ids, (std::vector<Ids>{{1526, 2}}));

  // Loss on the completion only, right padding with pad id 0 here.
  BatchOptions options;
  options.mode = LossMode::kAnswerOnly;
  options.padding = Padding::kRight;
  Batch batch = make_batch(examples, {1, 0}, options);
  ASSERT_EQ(batch.seq, 13);
  Ids ids1 = {1, 22557, 1526, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  Ids targets1 = {-1, 1526, 2, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
  Ids targets0 = {-1, -1, -1, -1, -1, -1, -1, 330, 28747, 28705, 28781, 2, -1};
  EXPECT_EQ(Ids(batch.ids.begin(), batch.ids.begin() + 13), ids1);
  EXPECT_EQ(Ids(batch.targets.begin(), batch.targets.begin() + 13), targets1);
  EXPECT_EQ(Ids(batch.targets.begin() + 13, batch.targets.end()), targets0);
  EXPECT_EQ(batch.scored_tokens(), 2 + 5);
}

TEST(SftExamples, TruncationKeepsBosAndTheCompletion) {
  TempDir dir;
  write_bytes(dir.file("sft.jsonl"), "{\"prompt\": \"Q: 2+2?\", \"completion\": \" A: 4\"}\n");
  SftOptions options;
  options.max_seq_length = 8;  // 8 + 5 tokens: 5 prompt tokens go, BOS stays
  auto examples = read_sft_examples(dir.file("sft.jsonl"), tokenizer("llama2"), options);
  EXPECT_EQ(examples[0].context_ids, (Ids{1, 28750, 28804}));
  EXPECT_EQ(examples[0].max_length(), 8);
  options.truncate = false;
  expect_error(
      [&] { read_sft_examples(dir.file("sft.jsonl"), tokenizer("llama2"), options); },
      {"sft.jsonl:1: 12 tokens (context 8 + longest candidate 4), more than max_length 7"});
}

TEST(SftExamples, Errors) {
  TempDir dir;
  const auto& llama = tokenizer("llama2");
  write_bytes(dir.file("a.jsonl"),
              "{\"prompt\": \"Q\", \"completion\": \" A\"}\n{\"prompt\": \"Q\"}\n");
  expect_error([&] { read_sft_examples(dir.file("a.jsonl"), llama); },
               {"a.jsonl:2: no field 'completion' (fields: prompt)"});
  write_bytes(dir.file("b.csv"), "prompt,answer\nQ,A\n");
  expect_error([&] { read_sft_examples(dir.file("b.csv"), llama); },
               {"b.csv: no column 'completion' (columns: prompt, answer)"});
  write_bytes(dir.file("c.jsonl"), "{\"prompt\": \"Q\", \"completion\": \"\"}\n");
  expect_error([&] { read_sft_examples(dir.file("c.jsonl"), llama); },
               {"c.jsonl:1: candidate 0 ('') encodes to no tokens of its own"});
}

// The shuffled order of blocks is DataOrder's: a restored order gives the same batches.
TEST(LmBlocks, BatchOrderResumes) {
  std::vector<Ids> blocks;
  for (int32_t i = 0; i < 10; ++i) blocks.push_back({i, i + 100});
  DataOrder run(blocks.size(), 42);
  for (int i = 0; i < 3; ++i) run.next(4);  // into the second epoch
  DataOrder resumed(blocks.size(), 42);
  resumed.restore(run.state());
  for (int i = 0; i < 4; ++i) {
    auto a = make_lm_batch(blocks, run.next(4), {});
    auto b = make_lm_batch(blocks, resumed.next(4), {});
    EXPECT_EQ(a.ids, b.ids);
  }
}

}  // namespace
}  // namespace zoft::data
