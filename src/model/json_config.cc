#include "model/json_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_file.h"

namespace zoft {

JsonConfig JsonConfig::load(const std::string& path) {
  auto root = std::make_shared<const nlohmann::json>(read_json_file(path));
  if (!root->is_object()) fail("{}: expected a JSON object at the top level", path);
  return JsonConfig(root, path, "");
}

JsonConfig JsonConfig::from_value(nlohmann::json value, const std::string& origin) {
  if (!value.is_object()) fail("{}: expected a JSON object at the top level", origin);
  return JsonConfig(std::make_shared<const nlohmann::json>(std::move(value)), origin, "");
}

JsonConfig::JsonConfig(std::shared_ptr<const nlohmann::json> root, std::string path,
                       std::string prefix)
    : root_(std::move(root)),
      node_(root_.get()),
      path_(std::move(path)),
      prefix_(std::move(prefix)) {}

const nlohmann::json* JsonConfig::find(const std::string& key) const {
  auto it = node_->find(key);
  if (it == node_->end() || it->is_null()) return nullptr;
  return &*it;
}

void JsonConfig::type_error(const std::string& key, const char* expected) const {
  fail("{}: key '{}{}' must be {}, found {}", path_, prefix_, key, expected,
       find(key)->dump().substr(0, 60));
}

bool JsonConfig::has(const std::string& key) const {
  return find(key) != nullptr;
}

int64_t JsonConfig::get_int(const std::string& key) const {
  const nlohmann::json* v = find(key);
  if (!v) fail("{}: required key '{}{}' is missing", path_, prefix_, key);
  if (v->is_number_integer() || v->is_number_unsigned()) return v->get<int64_t>();
  if (v->is_number_float() && v->get<double>() == double(int64_t(v->get<double>())))
    return int64_t(v->get<double>());
  type_error(key, "an integer");
}

int64_t JsonConfig::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double JsonConfig::get_float(const std::string& key, double fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) type_error(key, "a number");
  return v->get<double>();
}

bool JsonConfig::get_bool(const std::string& key, bool fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) type_error(key, "true or false");
  return v->get<bool>();
}

std::string JsonConfig::get_string(const std::string& key) const {
  const nlohmann::json* v = find(key);
  if (!v) fail("{}: required key '{}{}' is missing", path_, prefix_, key);
  if (!v->is_string()) type_error(key, "a string");
  return v->get<std::string>();
}

std::string JsonConfig::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::optional<JsonConfig> JsonConfig::get_object(const std::string& key) const {
  const nlohmann::json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_object()) type_error(key, "an object");
  JsonConfig child(root_, path_, prefix_ + key + ".");
  child.node_ = v;
  return child;
}

std::vector<std::string> JsonConfig::get_string_list(const std::string& key) const {
  const nlohmann::json* v = find(key);
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_array()) type_error(key, "a list of strings");
  for (const auto& item : *v) {
    if (!item.is_string()) type_error(key, "a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace zoft
