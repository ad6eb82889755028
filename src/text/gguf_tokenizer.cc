// TokenizerSpec from a GGUF file's tokenizer.ggml.* metadata.
#include "text/gguf_tokenizer.h"

#include "core/error.h"
#include "io/gguf.h"

namespace zoft::text {

namespace {

// llama.cpp's token types (llama_token_type); only these are stored in files.
enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

const std::string kSpace = "\xE2\x96\x81";  // '▁'

std::string replace_spaces(std::string s) {
  for (size_t at = s.find(' '); at != std::string::npos; at = s.find(' ', at + kSpace.size()))
    s.replace(at, 1, kSpace);
  return s;
}

// "Ġ t" -> {"Ġ", "t"}: tokens of a merge never hold a plain space (byte-level maps it to Ġ,
// SentencePiece to ▁), so the one space separates them.
std::vector<std::pair<std::string, std::string>> parse_merges(
    const GgufFile& f, const std::vector<std::string>& lines) {
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t space = lines[i].find(' ');
    if (space == std::string::npos || lines[i].find(' ', space + 1) != std::string::npos)
      fail("{}: tokenizer.ggml.merges[{}] '{}' is not two tokens separated by one space", f.path(),
           i, gguf_printable(lines[i]));
    merges.emplace_back(lines[i].substr(0, space), lines[i].substr(space + 1));
  }
  return merges;
}

// The regex pre-tokenizer llama.cpp uses for each tokenizer.ggml.pre of a byte-level model
// (llama-vocab.cpp), as tokenizer.json describes it.
void set_byte_level_pre_tokenizer(TokenizerSpec& spec, const std::string& pre, const GgufFile& f) {
  PreTokenizerStep digits, split, bytes;
  digits.kind = PreTokenizerStep::Kind::kSplit;
  digits.pattern = SplitPattern::kNumberChar;
  digits.behavior = SplitBehavior::kIsolated;
  split.kind = PreTokenizerStep::Kind::kSplit;
  split.behavior = SplitBehavior::kIsolated;
  bytes.kind = PreTokenizerStep::Kind::kByteLevel;
  bytes.add_prefix_space = false;
  bytes.use_regex = true;
  if (pre.empty() || pre == "default" || pre == "gpt-2" || pre == "gpt2") {
    spec.pre_tokenizer = {bytes};
  } else if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r" ||
             pre == "codeshell" || pre == "exaone" || pre == "minerva") {
    spec.pre_tokenizer = {digits, bytes};  // single digits, then GPT-2's regex
  } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe") {
    split.pattern = SplitPattern::kLlama3Regex;
    bytes.use_regex = false;
    spec.pre_tokenizer = {split, bytes};
    spec.ignore_merges = true;  // llama.cpp and Llama 3's tokenizer.json both say so
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2") {
    split.pattern = SplitPattern::kQwen2Regex;
    bytes.use_regex = false;
    spec.pre_tokenizer = {split, bytes};
  } else {
    fail(
        "{}: tokenizer.ggml.pre '{}' is not supported (default, gpt2, smollm, starcoder, "
        "refact, command-r, codeshell, exaone, minerva, llama3, llama-bpe, qwen2, stablelm2)",
        f.path(), gguf_printable(pre));
  }
}

// SentencePiece models: llama.cpp writes user-defined pieces with spaces where the model has
// '▁', and gives user-defined and control pieces score -1000 where SentencePiece has 0.
TokenizerSpec sentencepiece_spec(const GgufFile& f, std::vector<std::string> tokens,
                                 const std::vector<int32_t>& types) {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == kUserDefined) tokens[i] = replace_spaces(tokens[i]);
  std::vector<std::pair<std::string, std::string>> merges;
  if (auto lines = f.opt_string_array("tokenizer.ggml.merges")) {
    merges = parse_merges(f, *lines);
  } else {
    std::vector<float> scores = f.get_f32_array("tokenizer.ggml.scores");
    if (scores.size() != tokens.size())
      fail("{}: {} scores for {} tokens", f.path(), scores.size(), tokens.size());
    for (size_t i = 0; i < scores.size(); ++i)
      if (types[i] == kUserDefined || types[i] == kControl) scores[i] = 0.0f;
    merges = merges_from_scores(tokens, scores);
  }
  TokenizerSpec spec = TokenizerSpec::sentencepiece_bpe(std::move(tokens), std::move(merges));
  // add_space_prefix = false (Gemma): no '▁' in front of the text, none to strip when decoding.
  if (!f.opt_bool("tokenizer.ggml.add_space_prefix").value_or(true)) {
    std::erase_if(spec.normalizer,
                  [](const NormalizerStep& s) { return s.kind == NormalizerStep::Kind::kPrepend; });
    std::erase_if(spec.decoder,
                  [](const DecoderStep& s) { return s.kind == DecoderStep::Kind::kStrip; });
  }
  auto unk = f.opt_u32("tokenizer.ggml.unknown_token_id");
  if (unk && *unk < spec.vocab.size()) spec.unk_token = spec.vocab[*unk];
  return spec;
}

std::string special_name(const GgufFile& f, const TokenizerSpec& spec, const char* key) {
  auto id = f.opt_u32(key);
  if (!id) return "";
  if (*id >= spec.vocab.size())
    fail("{}: {} = {} is outside the vocabulary of {} tokens", f.path(), key, *id,
         spec.vocab.size());
  return spec.vocab[*id];
}

}  // namespace

std::string token_text(const TokenizerSpec& spec, int32_t id) {
  for (const AddedToken& t : spec.added_tokens)
    if (t.id == id) return t.content;
  return id >= 0 && size_t(id) < spec.vocab.size() ? spec.vocab[size_t(id)] : "";
}

TokenizerSpec tokenizer_spec_from_gguf(const GgufFile& f) {
  std::string model = f.get_string("tokenizer.ggml.model");
  std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  std::vector<int32_t> types = f.opt_i32_array("tokenizer.ggml.token_type")
                                   .value_or(std::vector<int32_t>(tokens.size(), kNormal));
  if (types.size() != tokens.size())
    fail("{}: {} token types for {} tokens", f.path(), types.size(), tokens.size());

  TokenizerSpec spec;
  bool sentencepiece = model == "llama";
  if (model == "gpt2") {
    spec = TokenizerSpec::byte_level_bpe(
        tokens, parse_merges(f, f.get_string_array("tokenizer.ggml.merges")));
    set_byte_level_pre_tokenizer(spec, f.opt_string("tokenizer.ggml.pre").value_or(""), f);
  } else if (sentencepiece) {
    spec = sentencepiece_spec(f, tokens, types);
  } else {
    fail(
        "{}: tokenizer.ggml.model '{}' is not supported (gpt2: byte-level BPE, llama: "
        "SentencePiece BPE)",
        f.path(), gguf_printable(model));
  }

  // Control, unknown and user-defined tokens are matched in the raw text before BPE runs.
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != kControl && types[i] != kUnknown && types[i] != kUserDefined) continue;
    AddedToken t;
    t.id = int32_t(i);
    t.content = spec.vocab[i];
    t.special = types[i] != kUserDefined;
    t.normalized = false;
    spec.added_tokens.push_back(t);
  }
  spec.bos_token = special_name(f, spec, "tokenizer.ggml.bos_token_id");
  spec.eos_token = special_name(f, spec, "tokenizer.ggml.eos_token_id");
  spec.pad_token = special_name(f, spec, "tokenizer.ggml.padding_token_id");
  // llama.cpp's defaults: SentencePiece models add BOS, byte-level ones do not.
  bool add_bos = f.opt_bool("tokenizer.ggml.add_bos_token").value_or(sentencepiece);
  bool add_eos = f.opt_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (add_bos && !spec.bos_token.empty())
    spec.prefix_ids = {int32_t(*f.opt_u32("tokenizer.ggml.bos_token_id"))};
  if (add_eos && !spec.eos_token.empty())
    spec.suffix_ids = {int32_t(*f.opt_u32("tokenizer.ggml.eos_token_id"))};
  return spec;
}

}  // namespace zoft::text
