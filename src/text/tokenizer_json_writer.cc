// TokenizerSpec -> tokenizer.json, in the layout HF `tokenizers` writes (version 1.0, BPE model,
// merges as [left, right] pairs so that tokens with spaces survive).
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "text/gguf_tokenizer.h"

namespace zoft::text {

namespace {

using json = nlohmann::json;

const char* behavior_name(SplitBehavior b) {
  switch (b) {
    case SplitBehavior::kRemoved:
      return "Removed";
    case SplitBehavior::kIsolated:
      return "Isolated";
    case SplitBehavior::kMergedWithPrevious:
      return "MergedWithPrevious";
    case SplitBehavior::kMergedWithNext:
      return "MergedWithNext";
    case SplitBehavior::kContiguous:
      return "Contiguous";
  }
  return "Isolated";
}

// The regexes tokenizer_json.cc recognises, spelled exactly as the HF files spell them.
const char* regex_text(SplitPattern p) {
  switch (p) {
    case SplitPattern::kGpt2Regex:
      return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    case SplitPattern::kLlama3Regex:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    case SplitPattern::kQwen2Regex:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    default:
      return nullptr;
  }
}

const char* prepend_name(PreTokenizerStep::Prepend p) {
  switch (p) {
    case PreTokenizerStep::Prepend::kAlways:
      return "always";
    case PreTokenizerStep::Prepend::kFirst:
      return "first";
    case PreTokenizerStep::Prepend::kNever:
      return "never";
  }
  return "always";
}

// A list of steps as one component: null, the step itself, or a Sequence of them.
json sequence(std::vector<json> steps, const char* list_key) {
  if (steps.empty()) return nullptr;
  if (steps.size() == 1) return steps[0];
  return {{"type", "Sequence"}, {list_key, steps}};
}

json normalizer_json(const std::vector<NormalizerStep>& steps) {
  std::vector<json> out;
  for (const NormalizerStep& s : steps) {
    switch (s.kind) {
      case NormalizerStep::Kind::kNfc:
        out.push_back({{"type", "NFC"}});
        break;
      case NormalizerStep::Kind::kPrepend:
        out.push_back({{"type", "Prepend"}, {"prepend", s.text}});
        break;
      case NormalizerStep::Kind::kReplace:
        out.push_back(
            {{"type", "Replace"}, {"pattern", {{"String", s.text}}}, {"content", s.replacement}});
        break;
    }
  }
  return sequence(out, "normalizers");
}

json split_json(const PreTokenizerStep& s) {
  if (s.pattern == SplitPattern::kNumberChar)
    return {{"type", "Digits"}, {"individual_digits", s.behavior == SplitBehavior::kIsolated}};
  json pattern = s.pattern == SplitPattern::kLiteral ? json{{"String", s.literal}}
                                                     : json{{"Regex", regex_text(s.pattern)}};
  return {{"type", "Split"},
          {"pattern", pattern},
          {"behavior", behavior_name(s.behavior)},
          {"invert", false}};
}

json pre_tokenizer_json(const std::vector<PreTokenizerStep>& steps) {
  std::vector<json> out;
  for (const PreTokenizerStep& s : steps) {
    switch (s.kind) {
      case PreTokenizerStep::Kind::kSplit:
        out.push_back(split_json(s));
        break;
      case PreTokenizerStep::Kind::kByteLevel:
        out.push_back({{"type", "ByteLevel"},
                       {"add_prefix_space", s.add_prefix_space},
                       {"trim_offsets", true},
                       {"use_regex", s.use_regex}});
        break;
      case PreTokenizerStep::Kind::kMetaspace:
        out.push_back({{"type", "Metaspace"},
                       {"replacement", s.replacement},
                       {"prepend_scheme", prepend_name(s.prepend)},
                       {"split", s.split}});
        break;
    }
  }
  return sequence(out, "pretokenizers");
}

json decoder_json(const std::vector<DecoderStep>& steps) {
  std::vector<json> out;
  for (const DecoderStep& s : steps) {
    switch (s.kind) {
      case DecoderStep::Kind::kByteLevel:
        out.push_back({{"type", "ByteLevel"},
                       {"add_prefix_space", true},
                       {"trim_offsets", true},
                       {"use_regex", true}});
        break;
      case DecoderStep::Kind::kReplace:
        out.push_back(
            {{"type", "Replace"}, {"pattern", {{"String", s.text}}}, {"content", s.replacement}});
        break;
      case DecoderStep::Kind::kByteFallback:
        out.push_back({{"type", "ByteFallback"}});
        break;
      case DecoderStep::Kind::kFuse:
        out.push_back({{"type", "Fuse"}});
        break;
      case DecoderStep::Kind::kStrip:
        out.push_back(
            {{"type", "Strip"}, {"content", s.text}, {"start", s.start}, {"stop", s.stop}});
        break;
      case DecoderStep::Kind::kMetaspace:
        out.push_back({{"type", "Metaspace"},
                       {"replacement", s.text},
                       {"prepend_scheme", s.prepend ? "always" : "never"},
                       {"split", true}});
        break;
    }
  }
  return sequence(out, "decoders");
}

// BOS / EOS around a sequence as a TemplateProcessing; null when nothing is added.
json post_processor_json(const TokenizerSpec& spec) {
  if (spec.prefix_ids.empty() && spec.suffix_ids.empty()) return nullptr;
  json single = json::array(), pair = json::array(), special = json::object();
  auto add = [&](int32_t id, json& list, int type_id) {
    std::string name = token_text(spec, id);
    if (name.empty()) fail("the template adds token id {}, which has no name", id);
    list.push_back({{"SpecialToken", {{"id", name}, {"type_id", type_id}}}});
    special[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
  };
  for (int type_id : {0, 1}) {
    json& list = type_id == 0 ? single : pair;
    for (int32_t id : spec.prefix_ids) add(id, list, type_id);
    list.push_back({{"Sequence", {{"id", type_id == 0 ? "A" : "B"}, {"type_id", type_id}}}});
    for (int32_t id : spec.suffix_ids) add(id, list, type_id);
    if (type_id == 0) pair = single;  // the pair template is A's, then B's
  }
  return {{"type", "TemplateProcessing"},
          {"single", single},
          {"pair", pair},
          {"special_tokens", special}};
}

json added_tokens_json(const TokenizerSpec& spec) {
  json list = json::array();
  for (const AddedToken& t : spec.added_tokens)
    list.push_back({{"id", t.id},
                    {"content", t.content},
                    {"single_word", t.single_word},
                    {"lstrip", t.lstrip},
                    {"rstrip", t.rstrip},
                    {"normalized", t.normalized},
                    {"special", t.special}});
  return list;
}

json string_or_null(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

// JSON text of a string; throws a one-line Error for bytes that are not UTF-8.
std::string quoted(const std::string& s) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    fail("token '{}' is not valid UTF-8: tokenizer.json cannot hold it", s.substr(0, 40));
  }
}

std::string dump(const json& value) {
  try {
    return value.dump();
  } catch (const json::exception&) {
    fail("the tokenizer holds a token that is not valid UTF-8: tokenizer.json cannot hold it");
  }
}

// model.vocab in id order and model.merges one per line, written by hand: an ordered JSON
// object of 262,144 keys would be built in quadratic time.
std::string model_json(const TokenizerSpec& spec) {
  std::unordered_map<std::string, size_t> seen;
  std::string vocab;
  for (size_t id = 0; id < spec.vocab.size(); ++id) {
    const std::string& token = spec.vocab[id];
    if (token.empty()) continue;
    auto [it, fresh] = seen.emplace(token, id);
    if (!fresh)
      fail("token '{}' has two ids ({} and {}): tokenizer.json cannot hold it", token.substr(0, 40),
           it->second, id);
    vocab += (vocab.empty() ? "\n      " : ",\n      ") + quoted(token) + ": " + std::to_string(id);
  }
  std::string merges;
  for (const auto& [left, right] : spec.merges)
    merges +=
        (merges.empty() ? "\n      [" : ",\n      [") + quoted(left) + ", " + quoted(right) + "]";
  json head = {{"type", "BPE"},
               {"dropout", nullptr},
               {"unk_token", string_or_null(spec.unk_token)},
               {"continuing_subword_prefix", string_or_null(spec.continuing_subword_prefix)},
               {"end_of_word_suffix", string_or_null(spec.end_of_word_suffix)},
               {"fuse_unk", spec.fuse_unk},
               {"byte_fallback", spec.byte_fallback},
               {"ignore_merges", spec.ignore_merges}};
  std::string out = dump(head);
  out.pop_back();  // the closing brace: vocab and merges follow
  return out + ",\n    \"vocab\": {" + vocab + "\n    },\n    \"merges\": [" + merges +
         "\n    ]\n  }";
}

}  // namespace

std::string tokenizer_json_from_spec(const TokenizerSpec& spec) {
  std::string out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": " + dump(added_tokens_json(spec)) + ",\n";
  out += "  \"normalizer\": " + dump(normalizer_json(spec.normalizer)) + ",\n";
  out += "  \"pre_tokenizer\": " + dump(pre_tokenizer_json(spec.pre_tokenizer)) + ",\n";
  out += "  \"post_processor\": " + dump(post_processor_json(spec)) + ",\n";
  out += "  \"decoder\": " + dump(decoder_json(spec.decoder)) + ",\n";
  out += "  \"model\": " + model_json(spec) + "\n}\n";
  return out;
}

}  // namespace zoft::text
