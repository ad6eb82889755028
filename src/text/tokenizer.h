// Tokenizers as Hugging Face's `tokenizers` runs them from a tokenizer.json: byte-level BPE
// (GPT-2, OPT, Qwen, Llama-3) and SentencePiece-style BPE with byte fallback (Llama-2, Gemma).
// encode() returns the ids `tokenizers` returns, decode() the text it decodes to.
//
// A tokenizer is a pipeline: added tokens are split out of the raw text first, the rest is
// normalized, pre-tokenized into words, and each word is merged by the BPE model; a template
// then adds BOS/EOS. TokenizerSpec describes that pipeline in memory, so that a tokenizer can be
// built from a tokenizer.json, from vocab.json + merges.txt, or from a GGUF file's metadata.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zoft::text {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;      // dropped by decode(skip_special_tokens = true)
  bool lstrip = false;       // swallows the whitespace on its left
  bool rstrip = false;       // swallows the whitespace on its right
  bool single_word = false;  // matches only between non-word characters
  bool normalized = false;   // matched in the normalized text instead of the raw one
};

struct NormalizerStep {
  enum class Kind { kNfc, kPrepend, kReplace } kind = Kind::kNfc;
  std::string text;         // kPrepend: what to put in front; kReplace: the literal to find
  std::string replacement;  // kReplace only
};

enum class SplitPattern {
  kLiteral,      // PreTokenizerStep::literal
  kGpt2Regex,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3Regex,  // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|...
  kQwen2Regex,   // the same as kLlama3Regex with \p{N} (single digits) instead of \p{N}{1,3}
  kNumberChar,   // each \p{N} character (the Digits pre-tokenizer)
};
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace } kind = Kind::kSplit;
  // kSplit
  SplitPattern pattern = SplitPattern::kLiteral;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  // kByteLevel: optional leading space, optional GPT-2 regex split, then bytes -> GPT-2 chars
  bool add_prefix_space = false;
  bool use_regex = true;
  // kMetaspace: spaces -> replacement, optional leading replacement, split before each one
  std::string replacement = "\xE2\x96\x81";  // U+2581 '▁'
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
};

struct DecoderStep {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind = Kind::kFuse;
  std::string text;         // kReplace: literal to find; kStrip: the character; kMetaspace: '▁'
  std::string replacement;  // kReplace only
  int start = 0, stop = 0;  // kStrip: how many leading / trailing `text` characters to drop
  bool prepend = true;      // kMetaspace: the first token's leading '▁' is not a space
};

struct TokenizerSpec {
  std::vector<std::string> vocab;  // the BPE model's vocabulary, indexed by id ("" = no token)
  std::vector<std::pair<std::string, std::string>> merges;  // best (rank 0) first
  std::vector<AddedToken> added_tokens;
  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::vector<DecoderStep> decoder;
  std::vector<int32_t> prefix_ids, suffix_ids;  // put around a sequence by add_special_tokens
  std::string unk_token;                        // empty: unknown characters are dropped
  bool byte_fallback = false;                   // unknown characters -> <0xXX> byte tokens
  bool fuse_unk = false;                        // consecutive unknowns -> one unk token
  bool ignore_merges = false;                   // a word found whole in vocab is not merged
  std::string continuing_subword_prefix, end_of_word_suffix;
  std::string bos_token, eos_token, pad_token;  // empty when the tokenizer has none

  // The usual pipelines, for vocabularies that come without one (vocab.json + merges.txt, GGUF).
  // GPT-2 byte-level BPE: the GPT-2 regex, byte mapping, ByteLevel decoder.
  static TokenizerSpec byte_level_bpe(std::vector<std::string> vocab,
                                      std::vector<std::pair<std::string, std::string>> merges);
  // Llama-2 SentencePiece BPE: prepend '▁', spaces -> '▁', byte fallback, and the matching
  // decoder (▁ -> space, <0xXX> -> bytes, strip the first space).
  static TokenizerSpec sentencepiece_bpe(std::vector<std::string> vocab,
                                         std::vector<std::pair<std::string, std::string>> merges);
};

// SentencePiece models (and GGUF files of them) rank merges by the score of the merged token
// rather than listing them: every split of a token into two vocabulary tokens becomes a merge,
// ranked by the token's score, highest first.
std::vector<std::pair<std::string, std::string>> merges_from_scores(
    const std::vector<std::string>& vocab, const std::vector<float>& scores);

// The files Tokenizer::from_file may read in a model directory (each name with or without
// ".xz"), in the order it looks for them: a copy of the model (a training checkpoint) must carry
// all that exist.
std::vector<std::string> tokenizer_file_names();

class Tokenizer {
 public:
  // PATH is a tokenizer.json (plain or .xz), a model directory holding tokenizer.json (with its
  // tokenizer_config.json, which names BOS/EOS/PAD), or a directory with GPT-2's vocab.json +
  // merges.txt (or encoder.json + vocab.bpe). Throws zoft::Error naming the file and the problem.
  static Tokenizer from_file(const std::string& path);
  // The text of a tokenizer.json; `origin` names it in error messages.
  static Tokenizer from_json(std::string_view json, const std::string& origin = "tokenizer.json");

  explicit Tokenizer(TokenizerSpec spec);  // throws zoft::Error on an inconsistent spec
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Text is UTF-8. Byte-level tokenizers take any bytes (and decode gives them back); the others
  // replace ill-formed UTF-8 by U+FFFD first, as reading the text with errors="replace" would.
  // Thread-safe: encode and decode may run concurrently on one Tokenizer.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ids the tokenizer does not know are skipped, as `tokenizers` does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The bytes one token stands for (byte-level mapping undone, '▁' -> ' ', <0xXX> -> the byte),
  // for streaming output one token at a time; "" for unknown ids.
  std::string token_bytes(int32_t id) const;

  int32_t bos_id() const;     // -1 if none
  int32_t eos_id() const;     // -1 if none
  int32_t pad_id() const;     // -1 if none
  size_t vocab_size() const;  // 1 + the largest id, added tokens included
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // "" for unknown ids
  bool is_special(int32_t id) const;

  struct Impl;  // opaque: the pipeline's tables, in tokenizer.cc

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace zoft::text
