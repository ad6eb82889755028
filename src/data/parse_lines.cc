// JSONL and TXT: both are read a line at a time.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/parsers.h"
#include "io/json_file.h"

namespace zoft::data {

// Objects keep their keys in file order (nlohmann::json would sort them).
using Json = nlohmann::ordered_json;

// Deeper nesting than this is no data record; a limit keeps hostile lines from exhausting the
// stack when the value is later printed back as JSON text.
static constexpr int kMaxJsonDepth = 64;

// Calls fn(line, line_number) for each line, without its "\n" (or "\r\n").
template <class Fn>
static void for_each_line(std::string_view text, Fn&& fn) {
  size_t pos = 0, number = 1;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, number);
    pos = end + 1;
    ++number;
  }
}

static std::string json_value_text(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();
}

static Json parse_json_line(std::string_view line, const std::string& where) {
  auto depth_guard = [&](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) fail("{}: JSON nested deeper than {} levels", where, kMaxJsonDepth);
    return true;
  };
  try {
    return Json::parse(line, depth_guard);
  } catch (const Json::exception& e) {
    fail("{}: invalid JSON: {}", where, json_error_text(e));
  }
}

static const char* json_kind(const Json& value) {
  if (value.is_array()) return "an array";
  if (value.is_string()) return "a string";
  if (value.is_number()) return "a number";
  if (value.is_boolean()) return "a boolean";
  return "null";
}

std::vector<Record> parse_jsonl(std::string_view text, const std::string& path) {
  std::vector<Record> records;
  for_each_line(text, [&](std::string_view line, size_t number) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;
    std::string where = fmt::format("{}:{}", path, number);
    Json value = parse_json_line(line, where);
    if (!value.is_object()) {
      if (number == 1 && value.is_array())
        fail("{}: a JSON array; expected JSON Lines (one object per line)", where);
      fail("{}: expected a JSON object, got {}", where, json_kind(value));
    }
    Record record;
    record.origin = std::move(where);
    record.fields.reserve(value.size());
    for (const auto& [key, field] : value.items())
      record.fields.emplace_back(key, json_value_text(field));
    records.push_back(std::move(record));
  });
  // A file of JSON that spans lines fails above; one that has no objects at all ends here.
  ZOFT_CHECK(!records.empty(), "{}: no records", path);
  return records;
}

// Lines as HF's text loader gives them: every line (blank ones too) with its "\n" kept or not,
// and no record after a final line break.
static std::vector<Record> txt_lines(std::string_view text, const std::string& path,
                                     const ReadOptions& options) {
  std::vector<Record> records;
  size_t pos = 0, number = 1;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(pos, next - pos);
    if (!options.keep_linebreaks) {
      if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    }
    Record record;
    record.origin = fmt::format("{}:{}", path, number);
    record.fields.emplace_back(options.txt_field, std::string(line));
    records.push_back(std::move(record));
    pos = next;
    ++number;
  }
  return records;
}

std::vector<Record> parse_txt(std::string_view text, const std::string& path,
                              const ReadOptions& options) {
  if (!options.txt_whole_file) return txt_lines(text, path, options);
  Record record;
  record.origin = path + ":1";
  record.fields.emplace_back(options.txt_field, std::string(text));
  return {std::move(record)};
}

}  // namespace zoft::data
