// Reading tokenizer files into a TokenizerSpec: tokenizer.json, tokenizer_config.json, and
// GPT-2's vocab.json + merges.txt. Internal to the text layer; nlohmann stays in the .cc files.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace zoft::text {

// Token -> id pairs as a vector indexed by id (holes left ""); `where` prefixes errors.
std::vector<std::string> vocab_by_id(std::vector<std::pair<std::string, int64_t>>& entries,
                                     const std::string& where);
// `origin` names the file in errors ("<origin>: ...").
TokenizerSpec parse_tokenizer_json(std::string_view text, const std::string& origin);
// BOS / EOS / PAD names, from tokenizer_config.json. For a vocab.json + merges.txt tokenizer it
// also makes them added special tokens and applies add_bos_token / add_eos_token, which
// tokenizer.json otherwise states in its post_processor.
void apply_tokenizer_config(TokenizerSpec& spec, std::string_view text, const std::string& origin,
                            bool from_vocab_files);
// Without tokenizer_config.json: the conventional names, where the vocabulary has them.
void guess_special_names(TokenizerSpec& spec);
TokenizerSpec parse_vocab_and_merges(std::string_view vocab_json, const std::string& vocab_origin,
                                     std::string_view merges_txt, const std::string& merges_origin);

}  // namespace zoft::text
