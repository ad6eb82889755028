// Tokenizers built in memory: a tiny tokenizer.json exercising the added-token flags (expected
// ids from the `tokenizers` package), and the ready-made specs for GGUF-style vocabularies.
#include <gtest/gtest.h>

#include "core/error.h"
#include "text/pipeline.h"
#include "text/tokenizer.h"

namespace zoft::text {
namespace {

// Single characters, three merges, Llama-2's normalizer and decoder, and added tokens with
// lstrip (<L>), rstrip (<R>), single_word (word) and normalized (</n>). The ids written in
// added_tokens (100...) are wrong on purpose: tokenizers renumbers them after the vocabulary.
const char* kTinyJson =
    R"json({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [{"id": 100, "content": "<L>", "lstrip": true, "rstrip": false, "single_word": false, "normalized": false, "special": true}, {"id": 101, "content": "<R>", "lstrip": false, "rstrip": true, "single_word": false, "normalized": false, "special": true}, {"id": 102, "content": "word", "lstrip": false, "rstrip": false, "single_word": true, "normalized": false, "special": false}, {"id": 103, "content": "</n>", "lstrip": false, "rstrip": false, "single_word": false, "normalized": true, "special": false}, {"id": 104, "content": "<L><R>", "lstrip": false, "rstrip": false, "single_word": false, "normalized": false, "special": true}], "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}, "pre_tokenizer": null, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<L>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<R>", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {"<L>": {"id": "<L>", "ids": [35], "tokens": ["<L>"]}, "<R>": {"id": "<R>", "ids": [36], "tokens": ["<R>"]}}}, "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}, "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 8, "j": 9, "k": 10, "l": 11, "m": 12, "n": 13, "o": 14, "p": 15, "q": 16, "r": 17, "s": 18, "t": 19, "u": 20, "v": 21, "w": 22, "x": 23, "y": 24, "z": 25, "▁": 26, "<": 27, ">": 28, "/": 29, "!": 30, "<unk>": 31, "▁a": 32, "bc": 33, "▁abc": 34}, "merges": [["▁", "a"], ["b", "c"], ["▁a", "bc"]]}})json";

TEST(TinyTokenizer, AddedTokenFlagsMatchTokenizers) {
  Tokenizer tok = Tokenizer::from_json(kTinyJson, "tiny.json");
  struct Case {
    std::string text;
    std::vector<int32_t> ids;
  };
  // From tokenizers 0.23 on the same JSON.
  std::vector<Case> cases = {
      {"abc", {35, 34, 36}},
      {"  <L>  x", {35, 35, 26, 26, 26, 23, 36}},
      {"x  <R>  y", {35, 26, 23, 26, 26, 36, 26, 24, 36}},
      {"word words sword word!",
       {35, 37, 26, 26, 22, 14, 17, 3, 18, 26, 18, 22, 14, 17, 3, 26, 37, 26, 30, 36}},
      {"a</n>b", {35, 32, 27, 29, 13, 28, 1, 36}},
      {"a </n>b", {35, 32, 38, 1, 36}},
      {"<L><R>", {35, 39, 36}},
      {"abc 123 é", {35, 34, 26, 31, 26, 31, 36}},
      {"bc", {35, 26, 33, 36}},
      {"", {35, 36}},
  };
  for (const Case& c : cases) EXPECT_EQ(tok.encode(c.text), c.ids) << c.text;
  EXPECT_EQ(tok.vocab_size(), 40u);
  EXPECT_EQ(tok.token_to_id("</n>"), 38);
  EXPECT_EQ(tok.bos_id(), 35);  // the template's first token
}

TEST(TinyTokenizer, DecodeMatchesTokenizers) {
  Tokenizer tok = Tokenizer::from_json(kTinyJson, "tiny.json");
  EXPECT_EQ(tok.decode({35, 34, 36}), "<L> abc<R>");
  EXPECT_EQ(tok.decode({35, 34, 36}, true), "abc");
  EXPECT_EQ(tok.decode({35, 32, 38, 1, 36}, true), "a </n>b");  // normalized form decoded
  EXPECT_EQ(tok.decode({35, 39, 36}, true), "");
  EXPECT_EQ(tok.decode({35, 34, 26, 31, 26, 31, 36}, true), "abc <unk> <unk>");
}

// GPT-2 style byte-level BPE from a vocabulary and merges (vocab.json + merges.txt, GGUF).
TEST(SpecBuilders, ByteLevelBpe) {
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    append_byte_level(ch, std::string(1, char(b)));
    vocab.push_back(ch);
  }
  std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"he", "l"}, {"hel", "l"}, {"hell", "o"}, {"\xC4\xA0", "w"}};
  for (const auto& [a, b] : merges) vocab.push_back(a + b);
  Tokenizer tok(TokenizerSpec::byte_level_bpe(vocab, merges));
  int32_t hello = tok.token_to_id("hello").value(), gw = tok.token_to_id("\xC4\xA0w").value();
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{hello, gw, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(tok.decode(tok.encode("hello world")), "hello world");
  // Any bytes: ill-formed UTF-8 is encoded byte by byte and token_bytes gives it back.
  std::string raw = "\xFF\xFEhi\xC3";
  std::string back;
  for (int32_t id : tok.encode(raw)) back += tok.token_bytes(id);
  EXPECT_EQ(back, raw);
  EXPECT_EQ(tok.decode(tok.encode(raw)), "\xEF\xBF\xBD\xEF\xBF\xBDhi\xEF\xBF\xBD");  // lossy
  EXPECT_EQ(tok.bos_id(), -1);
}

// Llama-2 style SentencePiece BPE with byte fallback.
TEST(SpecBuilders, SentencePieceBpe) {
  std::vector<std::string> vocab = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) vocab.push_back(fmt::format("<0x{:02X}>", b));
  for (const char* t : {"\xE2\x96\x81", "a", "b",
                        "\xE2\x96\x81"
                        "a",
                        "ab"})
    vocab.push_back(t);
  std::vector<std::pair<std::string, std::string>> merges = {{"\xE2\x96\x81", "a"}, {"a", "b"}};
  TokenizerSpec spec = TokenizerSpec::sentencepiece_bpe(vocab, merges);
  spec.added_tokens = {{1, "<s>", true}, {2, "</s>", true}};
  spec.prefix_ids = {1};
  spec.bos_token = "<s>";
  Tokenizer tok(std::move(spec));
  int32_t sp = 259, a = 260, b = 261, sp_a = 262;
  int32_t e_hi = 3 + 0xC3, e_lo = 3 + 0xA9;  // é by byte fallback
  EXPECT_EQ(tok.encode("a b\xC3\xA9"), (std::vector<int32_t>{1, sp_a, sp, b, e_hi, e_lo}));
  EXPECT_EQ(tok.encode("ab", false), (std::vector<int32_t>{sp_a, b}));  // "▁a" outranks "ab"
  EXPECT_EQ(tok.decode({1, sp_a, sp, b, e_hi, e_lo}, true), "a b\xC3\xA9");
  EXPECT_EQ(tok.decode({e_hi}), "\xEF\xBF\xBD");  // half a character
  EXPECT_EQ(tok.token_bytes(e_hi), "\xC3");
  EXPECT_EQ(tok.token_bytes(sp_a), " a");
  EXPECT_EQ(tok.bos_id(), 1);
  (void)a;
}

TEST(SpecBuilders, MergesFromScores) {
  std::vector<std::string> vocab = {"a", "b", "c", "ab", "bc", "abc"};
  std::vector<float> scores = {0, 0, 0, -1, -2, -0.5};
  using Merges = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(merges_from_scores(vocab, scores),
            (Merges{{"a", "bc"}, {"ab", "c"}, {"a", "b"}, {"b", "c"}}));
  EXPECT_THROW(merges_from_scores(vocab, {1.0f}), Error);
}

}  // namespace
}  // namespace zoft::text
