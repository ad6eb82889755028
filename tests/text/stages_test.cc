// Pre-tokenizers and NFC on their own, against what `tokenizers` gives for every fixture text
// (expected_stages.json, made by tools/make_tokenizer_fixtures.py).
#include <gtest/gtest.h>

#include "text/pipeline.h"
#include "text/tokenizer_fixtures.h"
#include "text/unicode.h"

namespace zoft::text {
namespace {

using testing::fixture_json;

PreTokenizerStep split_step(SplitPattern pattern, SplitBehavior behavior, std::string literal) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::kSplit;
  step.pattern = pattern;
  step.behavior = behavior;
  step.literal = std::move(literal);
  return step;
}

// The steps zoft builds for each pre-tokenizer the fixture names.
std::vector<PreTokenizerStep> steps_for(const std::string& name) {
  using B = SplitBehavior;
  if (name == "gpt2_regex") return {split_step(SplitPattern::kGpt2Regex, B::kIsolated, "")};
  if (name == "llama3_regex") return {split_step(SplitPattern::kLlama3Regex, B::kIsolated, "")};
  if (name == "qwen2_regex") return {split_step(SplitPattern::kQwen2Regex, B::kIsolated, "")};
  if (name == "digits") return {split_step(SplitPattern::kNumberChar, B::kContiguous, "")};
  if (name == "digits_individual") return {split_step(SplitPattern::kNumberChar, B::kIsolated, "")};
  if (name == "space_removed") return {split_step(SplitPattern::kLiteral, B::kRemoved, " ")};
  if (name == "space_isolated") return {split_step(SplitPattern::kLiteral, B::kIsolated, " ")};
  if (name == "space_merged_with_previous")
    return {split_step(SplitPattern::kLiteral, B::kMergedWithPrevious, " ")};
  if (name == "space_merged_with_next")
    return {split_step(SplitPattern::kLiteral, B::kMergedWithNext, " ")};
  if (name == "space_contiguous") return {split_step(SplitPattern::kLiteral, B::kContiguous, " ")};
  PreTokenizerStep step;
  if (name == "byte_level_prefix_space") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = true;
    return {step};
  }
  step.kind = PreTokenizerStep::Kind::kMetaspace;
  if (name == "metaspace") return {step};
  if (name == "metaspace_first_nosplit") {
    step.prepend = PreTokenizerStep::Prepend::kFirst;
    step.split = false;
    return {step};
  }
  ADD_FAILURE() << "no steps for " << name;
  return {};
}

TEST(Stages, PreTokenizersMatchTokenizers) {
  nlohmann::json texts = fixture_json("texts.json")["texts"];
  nlohmann::json expected = fixture_json("expected_stages.json");
  ASSERT_GE(expected["pre_tokenizers"].size(), 13u);
  for (const auto& [name, per_text] : expected["pre_tokenizers"].items()) {
    std::vector<PreTokenizerStep> steps = steps_for(name);
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<Piece> words;
      pre_tokenize(texts[i]["text"].get<std::string>(), true, steps, words);
      std::vector<std::string> got;
      for (const Piece& w : words) got.push_back(w.text);
      EXPECT_EQ(got, per_text[i].get<std::vector<std::string>>())
          << name << " on " << texts[i]["name"];
    }
  }
}

TEST(Stages, NfcMatchesTokenizers) {
  nlohmann::json texts = fixture_json("texts.json")["texts"];
  nlohmann::json expected = fixture_json("expected_stages.json")["nfc"];
  for (size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(nfc(texts[i]["text"].get<std::string>()), expected[i].get<std::string>())
        << texts[i]["name"];
}

TEST(Stages, NfcSpecialCases) {
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                                 // e + acute -> é
  EXPECT_EQ(nfc("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), "\xED\x95\x9C");  // jamo -> 한
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                   // Angstrom sign -> Å (singleton)
  EXPECT_EQ(nfc("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");   // excluded from composition
  EXPECT_EQ(nfc("a\xCC\xA3\xCC\x87"), "\xE1\xBA\xA1\xCC\x87");  // dot below before dot above
  EXPECT_EQ(nfc("x\xFF\xCC\x81y"), "x\xFF\xCC\x81y");           // ill-formed bytes pass through
}

TEST(Stages, Utf8MaximalSubparts) {
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  EXPECT_EQ(to_valid_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(to_valid_utf8("\xE2\x82"
                          "a"),
            r + "a");                                           // truncated: one replacement
  EXPECT_EQ(to_valid_utf8("\xF0\x80\x80\x80"), r + r + r + r);  // overlong: byte by byte
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), r + r + r);          // surrogate
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(to_valid_utf8("\xC0\xAF\xFF"), r + r + r);
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98"), r);  // truncated 4-byte
}

TEST(Stages, CharClasses) {
  EXPECT_TRUE(is_letter('a'));
  EXPECT_TRUE(is_letter(0x4E2D));   // 中
  EXPECT_TRUE(is_number(0x0663));   // Arabic-Indic three
  EXPECT_TRUE(is_number(0x00BD));   // ½ (No)
  EXPECT_TRUE(is_space(0x3000));    // ideographic space
  EXPECT_TRUE(is_space(0x0085));    // NEL
  EXPECT_FALSE(is_space(0x200B));   // zero width space is Cf
  EXPECT_FALSE(is_letter(0x0301));  // combining acute is Mn
  EXPECT_TRUE(is_word_char(0x0301));
  EXPECT_EQ(char_class(kInvalidCodePoint), CharClass::kOther);
}

}  // namespace
}  // namespace zoft::text
