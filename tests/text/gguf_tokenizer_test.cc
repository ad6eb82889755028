// Tokenizers from GGUF metadata (the tiny models of tools/make_gguf_model_fixture.py: a
// byte-level BPE with pre-tokenizer "smollm", and a SentencePiece one with scores only), and the
// tokenizer.json written from them. Expected ids come from the `tokenizers` package (0.23.3)
// loading the tokenizer.json that `zoft convert` writes for these files.
#include "text/gguf_tokenizer.h"

#include <gtest/gtest.h>

#include "io/gguf.h"

namespace zoft::text {
namespace {

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

TokenizerSpec spec_of(const std::string& name) {
  auto gguf = GgufFile::open(std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/gguf/" + name);
  return tokenizer_spec_from_gguf(*gguf);
}

// Our tokenizer from the spec, and from the tokenizer.json written from it, give `tokenizers`'
// ids and decode back to the same text.
void check(const std::string& name, const std::vector<Case>& cases) {
  TokenizerSpec spec = spec_of(name);
  Tokenizer direct(spec);
  Tokenizer via_json =
      Tokenizer::from_json(tokenizer_json_from_spec(spec), name + " tokenizer.json");
  for (const Case& c : cases) {
    EXPECT_EQ(direct.encode(c.text), c.ids) << name << ": " << c.text;
    EXPECT_EQ(via_json.encode(c.text), c.ids) << name << " via tokenizer.json: " << c.text;
    EXPECT_EQ(direct.decode(c.ids), via_json.decode(c.ids)) << name << ": " << c.text;
  }
}

TEST(GgufTokenizer, ByteLevelBpe) {
  check("llama-tiny.gguf",
        {{"The cat sat on the mat.", {1, 56, 100, 119, 107, 111, 107, 3, 105, 101, 3, 81, 107, 18}},
         {"  the   was her his!\n\nyou 1234 it's",
          {1, 3, 101, 3,  3,   117, 69, 87, 3,  100, 86, 3,   76, 114,
           5, 4, 4,   93, 124, 3,   21, 22, 23, 24,  3,  115, 11, 87}},
         {"Hello world! 123 4567\n",
          {1, 44, 73, 80, 80, 83, 117, 112, 80, 72, 5, 3, 21, 22, 23, 3, 24, 25, 26, 27, 4}}});
  TokenizerSpec spec = spec_of("llama-tiny.gguf");
  EXPECT_EQ(spec.bos_token, "<s>");
  EXPECT_EQ(spec.eos_token, "</s>");
  EXPECT_EQ(spec.prefix_ids, std::vector<int32_t>{1});  // add_bos_token = true
  EXPECT_EQ(spec.added_tokens.size(), 3u);              // the control tokens
}

TEST(GgufTokenizer, SentencePieceFromScores) {
  check("gemma3-tiny.gguf",
        {{"The cat sat on the mat.", {2, 38, 58, 77, 65, 69, 65, 11, 63, 59, 88, 65, 54}},
         // "  " and "\n" are user-defined pieces; the byte pieces spell é; C is unknown.
         {"  the   was her his!\n\nyou 1234 it's",
          {2, 7, 31, 58, 7, 106, 107, 108, 8, 6, 6, 36, 82, 11, 45, 46, 47, 48, 125, 56, 30}},
         {"Caf\xC3\xA9 <bos>the<end_of_turn> <|im_start|>x",
          {2, 3, 12, 17, 9, 10, 11, 2, 31, 58, 5, 11, 3, 20, 24, 3, 95, 74, 31, 3, 35}}});
  TokenizerSpec spec = spec_of("gemma3-tiny.gguf");
  EXPECT_EQ(spec.vocab[7], "\xE2\x96\x81\xE2\x96\x81");  // stored as "  " by llama.cpp
  EXPECT_EQ(spec.unk_token, "<unk>");
  EXPECT_EQ(spec.pad_token, "<pad>");
}

TEST(GgufTokenizer, JsonKeepsTokensWithSpacesAndQuotes) {
  TokenizerSpec spec = TokenizerSpec::sentencepiece_bpe({"<unk>", "a", "\"", "a\""}, {{"a", "\""}});
  spec.normalizer.clear();  // no '▁' in front: the vocabulary has none
  std::string json = tokenizer_json_from_spec(spec);
  Tokenizer tok = Tokenizer::from_json(json);
  EXPECT_EQ(tok.encode("a\"", false), (std::vector<int32_t>{3}));
}

}  // namespace
}  // namespace zoft::text
