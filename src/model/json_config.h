// Typed, error-reporting access to config.json: every failure names the file and the key.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace zoft {

class JsonConfig {
 public:
  static JsonConfig load(const std::string& path);
  // A config made in memory (a GGUF file's metadata turned into config.json); `origin` names it
  // in error messages.
  static JsonConfig from_value(nlohmann::json value, const std::string& origin);
  JsonConfig(std::shared_ptr<const nlohmann::json> root, std::string path, std::string prefix);

  bool has(const std::string& key) const;  // present and not null
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::optional<JsonConfig> get_object(const std::string& key) const;      // nullopt if absent/null
  std::vector<std::string> get_string_list(const std::string& key) const;  // [] if absent
  const std::string& path() const { return path_; }

 private:
  const nlohmann::json* find(const std::string& key) const;
  [[noreturn]] void type_error(const std::string& key, const char* expected) const;

  std::shared_ptr<const nlohmann::json> root_;
  const nlohmann::json* node_;
  std::string path_;
  std::string prefix_;  // dotted path of node_ inside the file, for messages
};

}  // namespace zoft
