// Finding and reading tokenizer files: tokenizer.json (+ tokenizer_config.json), or GPT-2's
// vocab.json + merges.txt; any of them may be xz-compressed.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "io/gguf.h"
#include "io/json_file.h"
#include "text/file_text.h"
#include "text/gguf_tokenizer.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json.h"

namespace zoft::text {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json

static json parse_json_text(std::string_view text, const std::string& origin) {
  ZOFT_CHECK(!text.empty(), "{}: invalid JSON: the file is empty", origin);
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", origin, json_error_text(e));
  }
}

// "bos_token": "<s>", or {"content": "<s>", ...}, or null (none). nullopt when not stated.
static std::optional<std::string> config_token(const json& config, const char* key,
                                               const std::string& origin) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("{}: {}: expected a string, {{\"content\": ...}} or null", origin, key);
}

static bool config_flag(const json& config, const char* key, bool fallback) {
  auto it = config.find(key);
  return it != config.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

static int32_t vocab_index(const TokenizerSpec& spec, const std::string& token) {
  for (const AddedToken& t : spec.added_tokens)
    if (t.content == token) return t.id;
  for (size_t i = 0; i < spec.vocab.size(); ++i)
    if (spec.vocab[i] == token) return int32_t(i);
  return -1;
}

// transformers makes the named tokens of a slow (vocab + merges) tokenizer special, so that
// they are split out of text, and adds BOS / EOS as add_bos_token / add_eos_token say.
static void add_named_special_tokens(TokenizerSpec& spec, const json& config) {
  for (const std::string* name : {&spec.bos_token, &spec.eos_token, &spec.pad_token}) {
    int32_t id = name->empty() ? -1 : vocab_index(spec, *name);
    bool known = std::any_of(spec.added_tokens.begin(), spec.added_tokens.end(),
                             [&](const AddedToken& t) { return t.content == *name; });
    if (id >= 0 && !known) spec.added_tokens.push_back({id, *name, true});
  }
  int32_t bos = spec.bos_token.empty() ? -1 : vocab_index(spec, spec.bos_token);
  int32_t eos = spec.eos_token.empty() ? -1 : vocab_index(spec, spec.eos_token);
  if (config_flag(config, "add_bos_token", false) && bos >= 0) spec.prefix_ids = {bos};
  if (config_flag(config, "add_eos_token", false) && eos >= 0) spec.suffix_ids = {eos};
}

void apply_tokenizer_config(TokenizerSpec& spec, std::string_view text, const std::string& origin,
                            bool from_vocab_files) {
  json config = parse_json_text(text, origin);
  ZOFT_CHECK(config.is_object(), "{}: expected a JSON object", origin);
  if (auto name = config_token(config, "bos_token", origin)) spec.bos_token = *name;
  if (auto name = config_token(config, "eos_token", origin)) spec.eos_token = *name;
  if (auto name = config_token(config, "pad_token", origin)) spec.pad_token = *name;
  if (from_vocab_files) add_named_special_tokens(spec, config);
}

void guess_special_names(TokenizerSpec& spec) {
  auto first_known = [&](std::initializer_list<const char*> names) -> std::string {
    for (const char* name : names)
      if (vocab_index(spec, name) >= 0) return name;
    return "";
  };
  if (spec.bos_token.empty()) {
    // The token the template puts first is the BOS, if there is exactly one.
    if (spec.prefix_ids.size() == 1) {
      for (const AddedToken& t : spec.added_tokens)
        if (t.id == spec.prefix_ids[0]) spec.bos_token = t.content;
    }
    if (spec.bos_token.empty())
      spec.bos_token = first_known({"<s>", "<bos>", "<|begin_of_text|>", "<|startoftext|>"});
  }
  if (spec.eos_token.empty())
    spec.eos_token =
        first_known({"</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>", "<|im_end|>"});
  if (spec.pad_token.empty()) spec.pad_token = first_known({"<pad>", "<|pad|>", "[PAD]"});
}

// ---------------------------------------------------------------------------------------------
// vocab.json + merges.txt

static std::vector<std::pair<std::string, std::string>> parse_merges_txt(
    std::string_view text, const std::string& origin) {
  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.substr(0, 8) == "#version") continue;
    size_t space = line.find(' ');
    if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
      fail("{}: line {}: expected two tokens separated by one space", origin, line_no);
    merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }
  return merges;
}

TokenizerSpec parse_vocab_and_merges(std::string_view vocab_json, const std::string& vocab_origin,
                                     std::string_view merges_txt,
                                     const std::string& merges_origin) {
  json vocab = parse_json_text(vocab_json, vocab_origin);
  ZOFT_CHECK(vocab.is_object(), "{}: expected an object of token -> id", vocab_origin);
  std::vector<std::pair<std::string, int64_t>> entries;
  entries.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    ZOFT_CHECK(it->is_number_integer(), "{}: the id of '{}' is not an integer", vocab_origin,
               it.key());
    entries.emplace_back(it.key(), it->get<int64_t>());
  }
  TokenizerSpec spec = TokenizerSpec::byte_level_bpe(vocab_by_id(entries, vocab_origin),
                                                     parse_merges_txt(merges_txt, merges_origin));
  // GPT-2's one special token, which is also its BOS and EOS.
  int32_t eot = vocab_index(spec, "<|endoftext|>");
  if (eot >= 0) {
    spec.added_tokens.push_back({eot, "<|endoftext|>", true});
    spec.bos_token = spec.eos_token = "<|endoftext|>";
  }
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Finding the files

namespace fs = std::filesystem;

// The names Tokenizer::from_file looks for in a directory, each also tried with ".xz".
constexpr const char* kConfigName = "tokenizer_config.json";
constexpr const char* kTokenizerJson = "tokenizer.json";
constexpr const char* kVocabNames[] = {"vocab.json", "encoder.json"};
constexpr const char* kMergesNames[] = {"merges.txt", "vocab.bpe"};

std::vector<std::string> tokenizer_file_names() {
  std::vector<std::string> names;
  for (const char* name : {kConfigName, kTokenizerJson, kVocabNames[0], kVocabNames[1],
                           kMergesNames[0], kMergesNames[1]})
    for (const char* suffix : {"", ".xz"}) names.push_back(std::string(name) + suffix);
  return names;
}

// The first of `names` (each also tried with ".xz") that exists in dir.
static std::optional<std::string> find_in(const fs::path& dir,
                                          std::initializer_list<const char*> names) {
  for (const char* name : names)
    for (const char* suffix : {"", ".xz"}) {
      std::string path = (dir / (std::string(name) + suffix)).string();
      if (is_regular_file(path)) return path;
    }
  return std::nullopt;
}

// The tokenizer_config.json beside a tokenizer.json: same directory, "tokenizer.json" in the
// name replaced ("qwen3.tokenizer.json.xz" -> "qwen3.tokenizer_config.json").
static std::optional<std::string> config_beside(const std::string& path) {
  fs::path p(path);
  std::string name = p.filename().string();
  size_t at = name.rfind("tokenizer.json");
  if (at == std::string::npos) return std::nullopt;
  std::string config_name = name.substr(0, at) + "tokenizer_config.json";
  return find_in(p.parent_path().empty() ? fs::path(".") : p.parent_path(), {config_name.c_str()});
}

// Errors from building the tokenizer (a merge of unknown tokens...) get the file's name.
static Tokenizer build(TokenizerSpec spec, const std::string& path) {
  try {
    return Tokenizer(std::move(spec));
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

static Tokenizer load_tokenizer_json(const std::string& path,
                                     const std::optional<std::string>& config) {
  TokenizerSpec spec = parse_tokenizer_json(read_text_file(path), path);
  if (config)
    apply_tokenizer_config(spec, read_text_file(*config), *config, false);
  else
    guess_special_names(spec);
  return build(std::move(spec), path);
}

static Tokenizer load_vocab_files(const std::string& vocab, const std::string& merges,
                                  const std::optional<std::string>& config) {
  TokenizerSpec spec =
      parse_vocab_and_merges(read_text_file(vocab), vocab, read_text_file(merges), merges);
  if (config) apply_tokenizer_config(spec, read_text_file(*config), *config, true);
  return build(std::move(spec), vocab);
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  if (is_directory(path)) {
    fs::path dir(path);
    std::optional<std::string> config = find_in(dir, {kConfigName});
    if (auto json_path = find_in(dir, {kTokenizerJson}))
      return load_tokenizer_json(*json_path, config);
    auto vocab = find_in(dir, {kVocabNames[0], kVocabNames[1]});
    auto merges = find_in(dir, {kMergesNames[0], kMergesNames[1]});
    if (vocab && merges) return load_vocab_files(*vocab, *merges, config);
    fail(
        "{}: no tokenizer.json, and no vocab.json + merges.txt (or encoder.json + vocab.bpe) "
        "in this directory",
        path);
  }
  ZOFT_CHECK(is_regular_file(path), "{}: no such file or directory", path);
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0)
    return build(tokenizer_spec_from_gguf(*GgufFile::open(path)), path);
  return load_tokenizer_json(path, config_beside(path));
}

Tokenizer Tokenizer::from_json(std::string_view json_text, const std::string& origin) {
  TokenizerSpec spec = parse_tokenizer_json(json_text, origin);
  guess_special_names(spec);
  return build(std::move(spec), origin);
}

}  // namespace zoft::text
