// Token-level data: causal-LM chunks, MeZO-style encoding of task examples, truncation.
#include "data/encode.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "data/data_test_util.h"
#include "data/lm_chunks.h"

namespace zoft::data {
namespace {

using namespace testing;

using Ids = std::vector<int32_t>;

std::vector<Record> txt_records(const TempDir& dir, const std::string& text, bool keep_linebreaks) {
  write_bytes(dir.file("corpus.txt"), text);
  ReadOptions options;
  options.keep_linebreaks = keep_linebreaks;
  return read_records(dir.file("corpus.txt"), options);
}

TEST(LmChunks, Gpt2ConcatenatesAndDropsTheRemainder) {
  // GPT-2 adds no special tokens: "Hello world\n" = [15496, 995, 198].
  TempDir dir;
  const auto& gpt2 = tokenizer("gpt2");
  auto records = txt_records(dir, "Hello world\nHello world\nHello world\n", true);
  LmChunkOptions options;
  options.max_seq_length = 4;
  auto chunks = lm_chunks(records, gpt2, options);
  ASSERT_EQ(chunks.size(), 2u);  // 9 tokens -> 2 blocks of 4, 1 dropped
  EXPECT_EQ(chunks[0], (Ids{15496, 995, 198, 15496}));
  EXPECT_EQ(chunks[1], (Ids{995, 198, 15496, 995}));
  auto no_breaks = lm_chunks(txt_records(dir, "Hello world\nHello world\n", false), gpt2, options);
  ASSERT_EQ(no_breaks.size(), 1u);
  EXPECT_EQ(no_breaks[0], (Ids{15496, 995, 15496, 995}));
}

TEST(LmChunks, RemainderDroppedPerGroupOfRecords) {
  TempDir dir;
  auto records = txt_records(dir, "Hello world\nHello world\nHello world\n", true);
  LmChunkOptions options;
  options.max_seq_length = 2;
  options.records_per_group = 1;  // each 3-token record gives one block of 2
  auto chunks = lm_chunks(records, tokenizer("gpt2"), options);
  ASSERT_EQ(chunks.size(), 3u);
  for (const auto& chunk : chunks) EXPECT_EQ(chunk, (Ids{15496, 995}));
  options.records_per_group = 0;  // the whole corpus at once: 9 tokens -> 4 blocks
  EXPECT_EQ(lm_chunks(records, tokenizer("gpt2"), options).size(), 4u);
}

TEST(LmChunks, BosOfEachTextAsTheTokenizerAddsIt) {
  TempDir dir;
  const auto& llama = tokenizer("llama2");
  auto records = txt_records(dir, "Hello world\nHello world\n", false);
  LmChunkOptions options;
  options.max_seq_length = 3;
  options.records_per_group = 0;
  Ids one = llama.encode("Hello world");
  ASSERT_EQ(one.front(), 1);  // <s>
  Ids joined = one;
  joined.insert(joined.end(), one.begin(), one.end());
  auto chunks = lm_chunks(records, llama, options);
  ASSERT_EQ(chunks.size(), joined.size() / 3);
  for (size_t i = 0; i < chunks.size(); ++i)
    EXPECT_EQ(chunks[i], Ids(joined.begin() + int64_t(3 * i), joined.begin() + int64_t(3 * i + 3)));
}

TEST(LmChunks, Errors) {
  TempDir dir;
  auto records = txt_records(dir, "Hello world\n", true);
  LmChunkOptions options;
  options.max_seq_length = 64;
  expect_error([&] { lm_chunks(records, tokenizer("gpt2"), options); },
               {"corpus.txt: 3 tokens in all, fewer than one block of max_seq_length 64"});
  options.field = "body";
  expect_error([&] { lm_chunks(records, tokenizer("gpt2"), options); },
               {"corpus.txt:1: no field 'body' (fields: text)"});
}

TaskExample example(std::string context, std::vector<std::string> candidates, int32_t label) {
  return {std::move(context), std::move(candidates), label, "t.jsonl:3"};
}

TEST(Encode, MezoOptionTokensWithGpt2) {
  const auto& gpt2 = tokenizer("gpt2");
  auto ex = example("a gripping , funny movie . It was", {" terrible", " great"}, 1);
  EncodedExample enc = encode_example(ex, gpt2);
  EXPECT_EQ(enc.context_ids, gpt2.encode(ex.context));
  ASSERT_EQ(enc.candidate_ids.size(), 2u);
  EXPECT_EQ(enc.candidate_ids[0], (Ids{*gpt2.token_to_id("\xC4\xA0terrible")}));
  EXPECT_EQ(enc.candidate_ids[1], (Ids{*gpt2.token_to_id("\xC4\xA0great")}));
  EXPECT_EQ(enc.label, 1);
  EXPECT_EQ(leading_special_tokens(gpt2), 0u);
}

TEST(Encode, ContextKeepsTheBos) {
  const auto& llama = tokenizer("llama2");
  EXPECT_EQ(leading_special_tokens(llama), 1u);
  auto ex = example("Suppose it rains. Yes, No, or Maybe?\n", {"Yes", "No", "Maybe"}, 2);
  EncodedExample enc = encode_example(ex, llama);
  EXPECT_EQ(enc.context_ids.front(), 1);
  for (size_t c = 0; c < 3; ++c) {
    Ids joined = enc.context_ids;
    joined.insert(joined.end(), enc.candidate_ids[c].begin(), enc.candidate_ids[c].end());
    EXPECT_EQ(joined, llama.encode(ex.context + ex.candidates[c]));
    EXPECT_EQ(enc.context_ids, llama.encode(ex.context));
  }
}

// The context/candidate boundary falls inside a word: the shared context is the common prefix
// and context + candidate is still the full prompt's encoding.
TEST(Encode, BoundaryInsideAToken) {
  const auto& gpt2 = tokenizer("gpt2");
  auto ex = example("Hello wor", {"ld", "m"}, 0);
  EncodedExample enc = encode_example(ex, gpt2);
  EXPECT_EQ(enc.context_ids, (Ids{15496}));
  for (size_t c = 0; c < 2; ++c) {
    Ids joined = enc.context_ids;
    joined.insert(joined.end(), enc.candidate_ids[c].begin(), enc.candidate_ids[c].end());
    EXPECT_EQ(joined, gpt2.encode(ex.context + ex.candidates[c]));
  }
}

// The claim in encode.h: for MeZO's templates the context's own encoding is a prefix of every
// full prompt's, with each tokenizer at hand, so the scored tokens are exactly MeZO's options.
TEST(Encode, MezoTemplatesSplitCleanlyWithEveryTokenizer) {
  using Fields = std::vector<std::pair<std::string, std::string>>;
  const std::vector<std::pair<std::string, Fields>> samples = {
      {"sst2", {{"sentence", "a gripping , funny movie . "}, {"label", "1"}}},
      {"rte",
       {{"premise", "Reeve died."}, {"hypothesis", "Reeve had an accident."}, {"label", "0"}}},
      {"cb", {{"premise", "It was peeled down."}, {"hypothesis", "it was"}, {"label", "1"}}},
      {"boolq", {{"question", "is it"}, {"passage", "It is."}, {"answer", "false"}}},
      {"wsc",
       {{"text", "Mark lied. He was wrong."},
        {"span1_text", "Mark"},
        {"span2_text", "He"},
        {"label", "1"}}},
      {"wic",
       {{"word", "place"}, {"sentence1", "My place."}, {"sentence2", "No place."}, {"label", "0"}}},
      {"multirc", {{"paragraph", "P."}, {"question", "Q?"}, {"answer", "A"}, {"label", "1"}}},
      {"copa",
       {{"premise", "The man broke his toe."},
        {"choice1", "He got a hole in his sock."},
        {"choice2", "I dropped a hammer on his foot."},
        {"question", "effect"},
        {"label", "1"}}},
      {"fine_foods", {{"text", "Tasty!  "}, {"label", "great"}}},
  };
  for (const char* name : {"gpt2", "qwen3", "llama2", "gemma3"}) {
    const auto& tok = tokenizer(name);
    for (const auto& [task, fields] : samples) {
      Record r;
      r.fields = fields;
      r.origin = "x:1";
      TaskExample ex = Task::builtin(task).make_example(r);
      EncodedExample enc = encode_example(ex, tok);
      EXPECT_EQ(enc.context_ids, tok.encode(ex.context)) << name << " " << task;
      for (size_t c = 0; c < ex.candidates.size(); ++c) {
        Ids joined = enc.context_ids;
        joined.insert(joined.end(), enc.candidate_ids[c].begin(), enc.candidate_ids[c].end());
        EXPECT_EQ(joined, tok.encode(ex.context + ex.candidates[c])) << name << " " << task;
      }
    }
  }
}

TEST(Encode, TruncatesFromTheLeftAfterBos) {
  const auto& llama = tokenizer("llama2");
  auto ex =
      example("one two three four five six seven eight nine ten It was", {" great", " bad"}, 0);
  EncodedExample full = encode_example(ex, llama);
  EncodeOptions options;
  options.max_length = 8;
  EncodedExample cut = encode_example(ex, llama, options);
  EXPECT_EQ(cut.max_length(), 8);
  EXPECT_EQ(cut.context_ids.front(), 1);
  EXPECT_EQ(cut.candidate_ids, full.candidate_ids);
  size_t kept = cut.context_ids.size() - 1;
  EXPECT_EQ(Ids(cut.context_ids.begin() + 1, cut.context_ids.end()),
            Ids(full.context_ids.end() - int64_t(kept), full.context_ids.end()));
  options.truncate = false;
  expect_error([&] { encode_example(ex, llama, options); },
               {"t.jsonl:3: ", "more than max_length 8"});
  options.truncate = true;
  options.max_length = 2;
  auto long_candidate = example("ctx", {" a very long candidate indeed"}, 0);
  expect_error([&] { encode_example(long_candidate, llama, options); },
               {"t.jsonl:3: a candidate of", "does not fit in max_length 2"});
}

// The shipped tasks made by tools/make_task_data.py (recipes/tasks/, datasets/): balanced test
// sets, no text in both splits, the label values mapped to the candidates in label_words order
// in both splits, and truncation at the demo's max_seq_length keeps the question at the
// template's end and the candidates whole (it cuts the front of the text).
struct ShippedTask {
  std::string name;
  std::vector<std::string> labels, candidates;  // label_words, in file order
  std::string question;                         // the template after {text}
  size_t test_size;
  double min_truncated;  // fraction of test examples longer than 64 tokens
};

TEST(ShippedTasks, BalancedSplitsAndTruncationKeepsTheQuestion) {
  const std::vector<ShippedTask> tasks = {
      {"austen_novels",
       {"persuasion", "northanger_abbey"},
       {" Anne", " Catherine"},
       "\nThe heroine of this novel is",
       1000,
       1.0},
      {"fortunes", {"science", "politics"}, {" science", " politics"}, "\nTopic:", 500, 0.05}};
  const auto& llama = tokenizer("llama2");  // a BOS tokenizer: the BOS must stay too
  for (const ShippedTask& t : tasks) {
    Task task = Task::load(source_path("recipes/tasks/" + t.name + ".yaml"));
    std::map<std::string, size_t> test_texts;
    for (const char* split : {"train", "test"}) {
      auto records = read_records(source_path("datasets/" + t.name + "/" + split + ".jsonl.xz"));
      auto examples = task.make_examples(records);
      std::vector<size_t> per_label(t.labels.size(), 0);
      for (size_t i = 0; i < examples.size(); ++i) {
        const std::string& label = records[i].get("label");
        const std::string& text = records[i].get("text");
        size_t want = size_t(std::find(t.labels.begin(), t.labels.end(), label) - t.labels.begin());
        ASSERT_LT(want, t.labels.size()) << t.name << " label " << label;
        EXPECT_EQ(examples[i].label, int32_t(want)) << t.name << " " << split;
        EXPECT_EQ(examples[i].candidates, t.candidates);
        ++per_label[want];
        if (std::string(split) == "test")
          ++test_texts[text];
        else
          EXPECT_EQ(test_texts.count(text), 0u) << t.name << ": a text in both splits";
      }
      for (size_t n : per_label) EXPECT_EQ(n, per_label[0]) << t.name << " " << split;
      if (std::string(split) == "train") continue;
      EXPECT_EQ(examples.size(), t.test_size) << t.name;
      EncodeOptions options;
      options.max_length = 64;
      auto full = encode_examples(examples, llama);
      auto cut = encode_examples(examples, llama, options);
      const Ids question = llama.encode(t.question, false);
      size_t truncated = 0;
      for (size_t i = 0; i < examples.size(); ++i) {
        EXPECT_LE(cut[i].max_length(), 64);
        EXPECT_EQ(cut[i].candidate_ids, full[i].candidate_ids);
        if (full[i].max_length() <= 64) {
          EXPECT_EQ(cut[i].context_ids, full[i].context_ids);
          continue;
        }
        ++truncated;
        EXPECT_EQ(cut[i].context_ids.front(), full[i].context_ids.front());  // the BOS
        // The kept context is the end of the full one, so it ends with the question.
        const Ids& c = cut[i].context_ids;
        ASSERT_GE(c.size(), question.size() + 8) << t.name << ": little text left";
        EXPECT_TRUE(
            std::equal(c.begin() + 1, c.end(), full[i].context_ids.end() - int64_t(c.size() - 1)));
      }
      EXPECT_GE(double(truncated) / double(examples.size()), t.min_truncated) << t.name;
    }
    auto first =
        task.make_examples(read_records(source_path("datasets/" + t.name + "/test.jsonl.xz")));
    EXPECT_TRUE(first[0].context.ends_with(t.question)) << t.name;
  }
}

TEST(Encode, BadExamples) {
  const auto& gpt2 = tokenizer("gpt2");
  expect_error(
      [&] {
        encode_example(example("ctx", {" a", ""}, 0), gpt2);
      },
      {"t.jsonl:3: candidate 1 ('') encodes to no tokens"});
  expect_error([&] { encode_example(example("ctx", {" a"}, 3), gpt2); },
               {"t.jsonl:3: label 3 is not a candidate index"});
}

TEST(Encode, ManyExamplesAgreeWithOneAtATime) {
  std::vector<TaskExample> examples;
  for (int i = 0; i < 40; ++i)
    examples.push_back(
        example("review " + std::to_string(i) + " It was", {" great", " terrible"}, i % 2));
  auto all = encode_examples(examples, tokenizer("qwen3"));
  for (size_t i = 0; i < examples.size(); ++i) {
    EncodedExample one = encode_example(examples[i], tokenizer("qwen3"));
    EXPECT_EQ(all[i].context_ids, one.context_ids);
    EXPECT_EQ(all[i].candidate_ids, one.candidate_ids);
  }
  examples[7].label = 9;
  examples[30].label = 9;
  expect_error([&] { encode_examples(examples, tokenizer("qwen3")); }, {"label 9", "t.jsonl:3"});
}

}  // namespace
}  // namespace zoft::data
