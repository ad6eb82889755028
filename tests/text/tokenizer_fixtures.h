// Shared by the text tests: the real tokenizers of tests/fixtures/tokenizers, loaded once.
#pragma once

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "text/tokenizer.h"

namespace zoft::text::testing {

inline std::string fixture_dir() {
  return std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/tokenizers";
}

inline const Tokenizer& fixture_tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end())
    it = loaded.emplace(name, Tokenizer::from_file(fixture_dir() + "/" + name)).first;
  return it->second;
}

inline nlohmann::json fixture_json(const std::string& file) {
  std::ifstream in(fixture_dir() + "/" + file, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return nlohmann::json::parse(buffer.str());
}

}  // namespace zoft::text::testing
