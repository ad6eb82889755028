// tokenizer.json -> TokenizerSpec. Every component type the supported families use is read;
// any other type is refused with an error naming it, rather than tokenizing differently.
#include "text/tokenizer_json.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "io/json_file.h"
#include "text/json_tables.h"

namespace zoft::text {

using json = nlohmann::json;

namespace {

// The place a value came from, for error messages: "<file>: <json path>".
struct Where {
  const std::string& origin;
  std::string path;
  int depth = 0;  // Sequence components nest; a hostile file must not overflow the stack
  Where at(const std::string& key) const { return {origin, path + "." + key, depth + 1}; }
  Where at(size_t index) const {
    return {origin, path + "[" + std::to_string(index) + "]", depth + 1};
  }
};

[[noreturn]] void bad(const Where& w, const std::string& what) {
  fail("{}: {}: {}", w.origin, w.path, what);
}

// A field of an object; null when absent or null.
const json& field(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

std::string string_field(const json& obj, const char* key, const Where& w,
                         const std::string& fallback = "") {
  const json& v = field(obj, key);
  if (v.is_null()) return fallback;
  if (!v.is_string()) bad(w.at(key), "expected a string");
  return v.get<std::string>();
}

bool bool_field(const json& obj, const char* key, const Where& w, bool fallback) {
  const json& v = field(obj, key);
  if (v.is_null()) return fallback;
  if (!v.is_boolean()) bad(w.at(key), "expected true or false");
  return v.get<bool>();
}

int64_t int_field(const json& obj, const char* key, const Where& w, int64_t fallback) {
  const json& v = field(obj, key);
  if (v.is_null()) return fallback;
  if (!v.is_number_integer()) bad(w.at(key), "expected an integer");
  return v.get<int64_t>();
}

const json& array_field(const json& obj, const char* key, const Where& w) {
  const json& v = field(obj, key);
  if (!v.is_array()) bad(w.at(key), "expected an array");
  return v;
}

std::string type_of(const json& obj, const Where& w) {
  if (w.depth > 64) bad(w, "components nested too deeply");
  if (!obj.is_object()) bad(w, "expected an object");
  return string_field(obj, "type", w);
}

[[noreturn]] void unsupported(const Where& w, const std::string& type, const char* supported) {
  bad(w, fmt::format("type '{}' is not supported (zoft reads: {})", type, supported));
}

// {"String": "x"} patterns only; tokenizers also allows {"Regex": ...} in these places.
std::string literal_pattern(const json& obj, const Where& w) {
  const json& pattern = field(obj, "pattern");
  const json& literal = field(pattern, "String");
  if (!literal.is_string())
    bad(w.at("pattern"), "only {\"String\": ...} patterns are supported here");
  return literal.get<std::string>();
}

// ---- normalizer

void parse_normalizer(const json& n, const Where& w, std::vector<NormalizerStep>& out) {
  if (n.is_null()) return;
  std::string type = type_of(n, w);
  if (type == "Sequence") {
    const json& list = array_field(n, "normalizers", w);
    for (size_t i = 0; i < list.size(); ++i) parse_normalizer(list[i], w.at(i), out);
  } else if (type == "NFC") {
    out.push_back({NormalizerStep::Kind::kNfc, "", ""});
  } else if (type == "Prepend") {
    out.push_back({NormalizerStep::Kind::kPrepend, string_field(n, "prepend", w), ""});
  } else if (type == "Replace") {
    out.push_back(
        {NormalizerStep::Kind::kReplace, literal_pattern(n, w), string_field(n, "content", w)});
  } else {
    unsupported(w, type, "NFC, Prepend, Replace, Sequence");
  }
}

// ---- pre-tokenizer

// The regexes of the GPT-2 and Llama-3 / Qwen families, matched by hand in pretokenize.cc.
SplitPattern regex_pattern(const std::string& regex, const Where& w) {
  static const std::string kGpt2 =
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  static const std::string kLlama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string kQwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (regex == kGpt2) return SplitPattern::kGpt2Regex;
  if (regex == kLlama3) return SplitPattern::kLlama3Regex;
  if (regex == kQwen2) return SplitPattern::kQwen2Regex;
  bad(w, fmt::format("the split regex '{}' is not supported (zoft matches the GPT-2, Llama-3 "
                     "and Qwen2 regexes)",
                     regex));
}

SplitBehavior split_behavior(const std::string& name, const Where& w) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  bad(w, fmt::format("unknown split behavior '{}'", name));
}

PreTokenizerStep::Prepend prepend_scheme(const json& p, const Where& w) {
  // Older files say add_prefix_space instead of prepend_scheme.
  std::string scheme = string_field(p, "prepend_scheme", w, "");
  if (scheme.empty())
    return bool_field(p, "add_prefix_space", w, true) ? PreTokenizerStep::Prepend::kAlways
                                                      : PreTokenizerStep::Prepend::kNever;
  if (scheme == "always") return PreTokenizerStep::Prepend::kAlways;
  if (scheme == "first") return PreTokenizerStep::Prepend::kFirst;
  if (scheme == "never") return PreTokenizerStep::Prepend::kNever;
  bad(w.at("prepend_scheme"), fmt::format("unknown scheme '{}'", scheme));
}

void parse_pre_tokenizer(const json& p, const Where& w, std::vector<PreTokenizerStep>& out) {
  if (p.is_null()) return;
  std::string type = type_of(p, w);
  PreTokenizerStep step;
  if (type == "Sequence") {
    const json& list = array_field(p, "pretokenizers", w);
    for (size_t i = 0; i < list.size(); ++i) parse_pre_tokenizer(list[i], w.at(i), out);
    return;
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    const json& pattern = field(p, "pattern");
    if (field(pattern, "Regex").is_string()) {
      step.pattern = regex_pattern(pattern["Regex"].get<std::string>(), w.at("pattern"));
    } else {
      step.pattern = SplitPattern::kLiteral;
      step.literal = literal_pattern(p, w);
    }
    step.behavior = split_behavior(string_field(p, "behavior", w, "Isolated"), w.at("behavior"));
    if (bool_field(p, "invert", w, false)) bad(w.at("invert"), "inverted splits are not supported");
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = bool_field(p, "add_prefix_space", w, true);
    step.use_regex = bool_field(p, "use_regex", w, true);
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    step.replacement = string_field(p, "replacement", w, step.replacement);
    step.prepend = prepend_scheme(p, w);
    step.split = bool_field(p, "split", w, true);
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    step.pattern = SplitPattern::kNumberChar;
    step.behavior = bool_field(p, "individual_digits", w, false) ? SplitBehavior::kIsolated
                                                                 : SplitBehavior::kContiguous;
  } else {
    unsupported(w, type, "ByteLevel, Digits, Metaspace, Split, Sequence");
  }
  out.push_back(step);
}

// ---- post-processor: the special tokens put before and after a single sequence

// {"<s>": {"ids": [1], ...}} -> ids of a template's SpecialToken piece.
std::vector<int32_t> special_token_ids(const json& p, const std::string& name, const Where& w) {
  const json& entry = field(field(p, "special_tokens"), name.c_str());
  const json& ids = field(entry, "ids");
  if (!ids.is_array()) bad(w.at("special_tokens"), fmt::format("no ids for '{}'", name));
  std::vector<int32_t> out;
  for (const json& id : ids) {
    if (!id.is_number_integer()) bad(w.at("special_tokens"), "ids must be integers");
    out.push_back(id.get<int32_t>());
  }
  return out;
}

int32_t pair_id(const json& p, const char* key, const Where& w) {  // ["</s>", 2] -> 2
  const json& v = field(p, key);
  if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer())
    bad(w.at(key), "expected [token, id]");
  return v[1].get<int32_t>();
}

void parse_post_processor(const json& p, const Where& w, TokenizerSpec& spec) {
  if (p.is_null()) return;
  std::string type = type_of(p, w);
  if (type == "ByteLevel") return;  // only offsets change
  if (type == "Sequence") {
    const json& list = array_field(p, "processors", w);
    for (size_t i = 0; i < list.size(); ++i) parse_post_processor(list[i], w.at(i), spec);
  } else if (type == "TemplateProcessing") {
    const json& single = array_field(p, "single", w);
    bool after_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      if (field(single[i], "Sequence").is_object()) {
        after_sequence = true;
        continue;
      }
      std::string name = string_field(field(single[i], "SpecialToken"), "id", w.at("single"));
      std::vector<int32_t> ids = special_token_ids(p, name, w);
      auto& side = after_sequence ? spec.suffix_ids : spec.prefix_ids;
      side.insert(side.end(), ids.begin(), ids.end());
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    spec.prefix_ids.push_back(pair_id(p, "cls", w));
    spec.suffix_ids.push_back(pair_id(p, "sep", w));
  } else {
    unsupported(w, type,
                "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, "
                "Sequence");
  }
}

// ---- decoder

void parse_decoder(const json& d, const Where& w, std::vector<DecoderStep>& out) {
  if (d.is_null()) return;
  std::string type = type_of(d, w);
  DecoderStep step;
  if (type == "Sequence") {
    const json& list = array_field(d, "decoders", w);
    for (size_t i = 0; i < list.size(); ++i) parse_decoder(list[i], w.at(i), out);
    return;
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    step.text = literal_pattern(d, w);
    step.replacement = string_field(d, "content", w);
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    step.text = string_field(d, "content", w, " ");
    step.start = int(std::clamp<int64_t>(int_field(d, "start", w, 0), 0, 1 << 20));
    step.stop = int(std::clamp<int64_t>(int_field(d, "stop", w, 0), 0, 1 << 20));
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    step.text = string_field(d, "replacement", w, "\xE2\x96\x81");
    step.prepend = prepend_scheme(d, w) != PreTokenizerStep::Prepend::kNever;
  } else {
    unsupported(w, type, "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence");
  }
  out.push_back(step);
}

// ---- model and added tokens

}  // namespace

std::vector<std::string> vocab_by_id(std::vector<std::pair<std::string, int64_t>>& entries,
                                     const std::string& where) {
  int64_t max_id = -1;
  for (const auto& e : entries) max_id = std::max(max_id, e.second);
  if (max_id >= int64_t(1) << 24) fail("{}: token id {} is implausibly large", where, max_id);
  if (max_id >= int64_t(entries.size()) + (int64_t(1) << 16))
    fail("{}: token id {} is far beyond the {} tokens of the vocabulary", where, max_id,
         entries.size());
  std::vector<std::string> vocab(size_t(max_id + 1));
  for (auto& [token, id] : entries) {
    if (id < 0) fail("{}: token '{}' has a negative id", where, token);
    std::string& slot = vocab[size_t(id)];
    if (!slot.empty() && slot != token)
      fail("{}: id {} is given to both '{}' and '{}'", where, id, slot, token);
    slot = std::move(token);
  }
  return vocab;
}

namespace {

void parse_model(const json& m, TokenizerJsonTables& tables, const Where& w, TokenizerSpec& spec) {
  if (!m.is_object()) bad(w, "expected an object");
  std::string type = string_field(m, "type", w, "BPE");
  if (type != "BPE") unsupported(w, type, "BPE");
  if (!tables.has_vocab) bad(w.at("vocab"), "missing (expected an object of token -> id)");
  if (!tables.has_merges) bad(w.at("merges"), "missing (expected an array)");
  const json& dropout = field(m, "dropout");
  if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0))
    bad(w.at("dropout"), "BPE dropout is not supported");
  spec.vocab = vocab_by_id(tables.vocab, w.origin + ": " + w.at("vocab").path);
  spec.merges = std::move(tables.merges);
  spec.unk_token = string_field(m, "unk_token", w);
  spec.byte_fallback = bool_field(m, "byte_fallback", w, false);
  spec.fuse_unk = bool_field(m, "fuse_unk", w, false);
  spec.ignore_merges = bool_field(m, "ignore_merges", w, false);
  spec.continuing_subword_prefix = string_field(m, "continuing_subword_prefix", w);
  spec.end_of_word_suffix = string_field(m, "end_of_word_suffix", w);
}

void parse_added_tokens(const json& list, const Where& w, std::vector<AddedToken>& out) {
  if (list.is_null()) return;
  if (!list.is_array()) bad(w, "expected an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    Where wi = w.at(i);
    AddedToken token;
    int64_t id = int_field(t, "id", wi, -1);
    if (id < 0 || id >= int64_t(1) << 24) bad(wi.at("id"), "missing or out of range");
    token.id = int32_t(id);
    token.content = string_field(t, "content", wi);
    token.special = bool_field(t, "special", wi, false);
    token.lstrip = bool_field(t, "lstrip", wi, false);
    token.rstrip = bool_field(t, "rstrip", wi, false);
    token.single_word = bool_field(t, "single_word", wi, false);
    token.normalized = bool_field(t, "normalized", wi, !token.special);
    out.push_back(std::move(token));
  }
}

// tokenizers ignores the ids written in added_tokens: a token takes the id of its content in
// the vocabulary (or of an earlier added token), else the next id after the vocabulary's size.
void assign_added_ids(TokenizerSpec& spec) {
  int32_t next = int32_t(std::count_if(spec.vocab.begin(), spec.vocab.end(),
                                       [](const std::string& t) { return !t.empty(); }));
  std::unordered_map<std::string, int32_t> ids;
  for (size_t id = 0; id < spec.vocab.size(); ++id)
    if (!spec.vocab[id].empty()) ids.emplace(spec.vocab[id], int32_t(id));
  for (AddedToken& t : spec.added_tokens) {
    if (t.content.empty()) continue;
    auto [it, fresh] = ids.emplace(t.content, next);
    if (fresh) ++next;
    t.id = it->second;
  }
}

}  // namespace

TokenizerSpec parse_tokenizer_json(std::string_view text, const std::string& origin) {
  TokenizerJsonTables tables = parse_tokenizer_json_tables(text, origin);
  const json& root = tables.root;
  Where w{origin, "tokenizer"};
  if (!root.is_object()) bad(w, "expected a JSON object");
  TokenizerSpec spec;
  parse_model(field(root, "model"), tables, w.at("model"), spec);
  parse_added_tokens(field(root, "added_tokens"), w.at("added_tokens"), spec.added_tokens);
  assign_added_ids(spec);
  parse_normalizer(field(root, "normalizer"), w.at("normalizer"), spec.normalizer);
  parse_pre_tokenizer(field(root, "pre_tokenizer"), w.at("pre_tokenizer"), spec.pre_tokenizer);
  parse_post_processor(field(root, "post_processor"), w.at("post_processor"), spec);
  parse_decoder(field(root, "decoder"), w.at("decoder"), spec.decoder);
  return spec;
}

}  // namespace zoft::text
