// A tokenizer.json parser that keeps model.vocab and model.merges out of the JSON tree: they
// are nearly all of the file (Gemma-3: 262k tokens, 515k merges, 33 MB), and go straight into
// flat vectors, which halves the load time. Internal to the text layer.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zoft::text {

struct TokenizerJsonTables {
  nlohmann::json root;  // everything else
  bool has_vocab = false, has_merges = false;
  std::vector<std::pair<std::string, int64_t>> vocab;       // model.vocab, file order
  std::vector<std::pair<std::string, std::string>> merges;  // model.merges, file order
};

// Throws zoft::Error "<origin>: invalid JSON: ..." or naming the malformed table entry.
TokenizerJsonTables parse_tokenizer_json_tables(std::string_view text, const std::string& origin);

}  // namespace zoft::text
