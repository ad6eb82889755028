// The four real tokenizers against the ids and texts the `tokenizers` package produced
// (tools/make_tokenizer_fixtures.py).
#include "text/tokenizer_fixtures.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace zoft::text {
namespace {

using testing::fixture_json;
using testing::fixture_tokenizer;

class FixtureTest : public ::testing::TestWithParam<std::string> {};

std::map<std::string, std::string> texts_by_name() {
  std::map<std::string, std::string> texts;
  nlohmann::json file = fixture_json("texts.json");
  for (const auto& t : file["texts"])
    texts[t["name"].get<std::string>()] = t["text"].get<std::string>();
  return texts;
}

TEST_P(FixtureTest, IdsMatchTokenizers) {
  const Tokenizer& tok = fixture_tokenizer(GetParam());
  nlohmann::json expected = fixture_json("expected_" + GetParam() + ".json");
  auto texts = texts_by_name();
  EXPECT_EQ(tok.vocab_size(), expected["vocab_size"].get<size_t>());
  for (const auto& c : expected["cases"]) {
    std::string name = c["name"];
    const std::string& text = texts.at(name);
    EXPECT_EQ(tok.encode(text, true), c["ids"].get<std::vector<int32_t>>()) << name;
    EXPECT_EQ(tok.encode(text, false), c["ids_no_special"].get<std::vector<int32_t>>()) << name;
  }
}

TEST_P(FixtureTest, DecodeMatchesTokenizers) {
  const Tokenizer& tok = fixture_tokenizer(GetParam());
  nlohmann::json expected = fixture_json("expected_" + GetParam() + ".json");
  for (const auto& c : expected["cases"]) {
    std::string name = c["name"];
    auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.decode(ids, false), c["decoded"].get<std::string>()) << name;
    EXPECT_EQ(tok.decode(ids, true), c["decoded_skip_special"].get<std::string>()) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Real, FixtureTest, ::testing::Values("qwen3", "gemma3", "llama2", "gpt2"),
                         [](const auto& info) { return info.param; });

// Byte-level BPE loses nothing: decode(encode(x)) == x for every text (Qwen's NFC aside). The
// SentencePiece tokenizers are checked against what tokenizers decodes, above.
class ByteLevelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ByteLevelTest, RoundTrips) {
  const Tokenizer& tok = fixture_tokenizer(GetParam());
  auto texts = texts_by_name();
  ASSERT_GT(texts.size(), 30u);
  for (const auto& [name, text] : texts) {
    bool normalized = GetParam() == "qwen3" &&
                      (name.find("nfd") != std::string::npos || name == "combining_marks");
    if (normalized) continue;
    EXPECT_EQ(tok.decode(tok.encode(text, false)), text) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Real, ByteLevelTest, ::testing::Values("qwen3", "gpt2"),
                         [](const auto& info) { return info.param; });

// One tokenizer, many threads: the word cache is shared.
TEST(FixtureTokenizers, ConcurrentEncode) {
  const Tokenizer& tok = fixture_tokenizer("qwen3");
  auto texts = texts_by_name();
  std::map<std::string, std::vector<int32_t>> expected;
  for (const auto& [name, text] : texts) expected[name] = tok.encode(text);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < 5; ++round)
        for (const auto& [name, text] : texts)
          if (tok.encode(text) != expected[name]) ++mismatches;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(FixtureTokenizers, SpecialIds) {
  EXPECT_EQ(fixture_tokenizer("qwen3").bos_id(), -1);
  EXPECT_EQ(fixture_tokenizer("qwen3").eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(fixture_tokenizer("qwen3").pad_id(), 151643);  // <|endoftext|>
  EXPECT_EQ(fixture_tokenizer("gemma3").bos_id(), 2);
  EXPECT_EQ(fixture_tokenizer("gemma3").eos_id(), 106);  // <end_of_turn>
  EXPECT_EQ(fixture_tokenizer("gemma3").pad_id(), 0);
  EXPECT_EQ(fixture_tokenizer("llama2").bos_id(), 1);
  EXPECT_EQ(fixture_tokenizer("llama2").eos_id(), 2);
  EXPECT_EQ(fixture_tokenizer("llama2").pad_id(), -1);
  EXPECT_EQ(fixture_tokenizer("gpt2").bos_id(), 50256);
  EXPECT_EQ(fixture_tokenizer("gpt2").eos_id(), 50256);
}

TEST(FixtureTokenizers, TokenLookups) {
  const Tokenizer& qwen = fixture_tokenizer("qwen3");
  EXPECT_EQ(qwen.token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(qwen.id_to_token(151644), "<|im_start|>");
  EXPECT_TRUE(qwen.is_special(151644));
  EXPECT_EQ(qwen.token_to_id("Hello"), 9707);
  EXPECT_EQ(qwen.token_bytes(qwen.token_to_id("\xC4\xA0world").value()), " world");  // "Ġworld"
  EXPECT_FALSE(qwen.token_to_id("no such token").has_value());
  EXPECT_EQ(qwen.id_to_token(-1), "");
  EXPECT_EQ(qwen.id_to_token(1 << 30), "");
  const Tokenizer& llama = fixture_tokenizer("llama2");
  EXPECT_EQ(llama.token_bytes(13), "\n");  // <0x0A>
  EXPECT_EQ(llama.token_bytes(llama.token_to_id("\xE2\x96\x81world").value()), " world");
}

// Unknown ids are skipped, as tokenizers does.
TEST(FixtureTokenizers, DecodeSkipsUnknownIds) {
  const Tokenizer& tok = fixture_tokenizer("gpt2");
  EXPECT_EQ(tok.decode({15496, -5, 1 << 30, 995}), "Hello world");
}

}  // namespace
}  // namespace zoft::text
