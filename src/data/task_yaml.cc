// User tasks from YAML (the format is in task.h): a template with {field} placeholders and a
// verbalizer from label values to candidate texts.
#include <yaml-cpp/yaml.h>

#include <memory>
#include <set>

#include "core/error.h"
#include "data/task.h"
#include "text/file_text.h"

namespace zoft::data {

namespace {

// A template cut into literal text and field references.
struct Piece {
  std::string text;  // literal text, or the field name
  bool field = false;
};

struct TemplateTask {
  std::vector<Piece> pieces;
  std::string label_field;
  std::vector<std::string> labels, words;  // label_words, in file order
  std::vector<std::string> required;       // fields every record must have
  bool strip_fields = true;
};

const char* const kKeys[] = {"name",   "template",     "label_field", "label_words",
                             "fields", "strip_fields", "description"};

std::string where(const std::string& origin, const YAML::Node& node) {
  return fmt::format("{}:{}", origin, node.Mark().line + 1);
}

const char* kind_of(const YAML::Node& node) {
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  if (node.IsNull()) return "nothing";
  return "a string";
}

std::string scalar(const YAML::Node& node, const std::string& origin, std::string_view key) {
  if (!node.IsScalar())
    fail("{}: key '{}' must be a string, got {}", where(origin, node), key, kind_of(node));
  return node.Scalar();
}

// "{text} It was {{x}}" -> [field text][" It was {x}"]; unbalanced braces are errors.
std::vector<Piece> parse_template(const std::string& tmpl, const std::string& at) {
  std::vector<Piece> pieces;
  std::string literal;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      literal += c;
      ++i;
    } else if (c == '}') {
      fail("{}: key 'template': unmatched '}}' at character {} (write '}}}}' for a brace)", at,
           i + 1);
    } else if (c == '{') {
      size_t close = tmpl.find_first_of("{}", i + 1);
      if (close == std::string::npos || tmpl[close] != '}')
        fail("{}: key 'template': unmatched '{{' at character {} (write '{{{{' for a brace)", at,
             i + 1);
      std::string name = tmpl.substr(i + 1, close - i - 1);
      if (name.empty())
        fail("{}: key 'template': empty field name '{{}}' at character {}", at, i + 1);
      if (!literal.empty()) pieces.push_back({std::move(literal), false});
      literal.clear();
      pieces.push_back({std::move(name), true});
      i = close;
    } else {
      literal += c;
    }
  }
  if (!literal.empty()) pieces.push_back({std::move(literal), false});
  return pieces;
}

void read_label_words(const YAML::Node& node, const std::string& origin, TemplateTask& task) {
  if (!node.IsMap() || node.size() == 0)
    fail("{}: key 'label_words' must be a map of label -> candidate text, got {}",
         where(origin, node), node.IsMap() ? "an empty map" : kind_of(node));
  std::set<std::string> labels, words;
  for (const auto& entry : node) {
    std::string label = scalar(entry.first, origin, "label_words");
    std::string word = scalar(entry.second, origin, "label_words." + label);
    if (word.empty()) fail("{}: key 'label_words.{}' is empty", where(origin, entry.second), label);
    if (!labels.insert(label).second)
      fail("{}: key 'label_words' names label '{}' twice", where(origin, entry.first), label);
    if (!words.insert(word).second)
      fail("{}: key 'label_words' gives '{}' to two labels", where(origin, entry.second), word);
    task.labels.push_back(label);
    task.words.push_back(word);
  }
}

void read_fields(const YAML::Node& node, const std::string& origin, TemplateTask& task) {
  if (!node.IsSequence())
    fail("{}: key 'fields' must be a list of field names, got {}", where(origin, node),
         kind_of(node));
  for (const auto& item : node) task.required.push_back(scalar(item, origin, "fields"));
}

bool read_bool(const YAML::Node& node, const std::string& origin, std::string_view key) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value))
    fail("{}: key '{}' must be true or false", where(origin, node), key);
  return value;
}

YAML::Node parse_yaml(std::string_view yaml, const std::string& origin) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    fail("{}:{}: invalid YAML: {}", origin, e.mark.line + 1, e.msg);
  }
}

void check_keys(const YAML::Node& root, const std::string& origin) {
  std::string known;
  for (const char* key : kKeys) known += (known.empty() ? "" : ", ") + std::string(key);
  std::set<std::string> seen;  // yaml-cpp would keep a repeated key's last value silently
  for (const auto& entry : root) {
    std::string key = scalar(entry.first, origin, "(a key)");
    if (!seen.insert(key).second)
      fail("{}: key '{}' is given twice: keep one", where(origin, entry.first), key);
    bool ok = false;
    for (const char* k : kKeys) ok |= key == k;
    if (!ok) fail("{}: unknown key '{}' (known: {})", where(origin, entry.first), key, known);
  }
}

YAML::Node required_key(const YAML::Node& root, const char* key, const std::string& origin) {
  YAML::Node node = root[key];
  if (!node) fail("{}: missing key '{}'", origin, key);
  return node;
}

std::string render(const TemplateTask& task, const Record& record) {
  std::string out;
  for (const auto& piece : task.pieces) {
    if (!piece.field) {
      out += piece.text;
      continue;
    }
    const std::string& value = record.get(piece.text);
    out += task.strip_fields ? strip_whitespace(value) : std::string_view(value);
  }
  return out;
}

TaskExample make_from_template(const TemplateTask& task, const Record& record) {
  for (const auto& field : task.required) record.get(field);
  std::vector<std::vector<std::string>> accepted;
  for (const auto& label : task.labels) accepted.push_back({label});
  int32_t label = parse_label(record, task.label_field, accepted, "label words");
  std::string context = render(task, record);
  std::vector<std::string> full;
  for (const auto& word : task.words) full.push_back(context + word);
  return example_from_prompts(record, context, full, label);
}

}  // namespace

Task Task::from_yaml(std::string_view yaml, const std::string& origin) {
  YAML::Node root = parse_yaml(yaml, origin);
  if (!root.IsMap()) fail("{}: a task file must be a map of keys, got {}", origin, kind_of(root));
  check_keys(root, origin);
  auto task = std::make_shared<TemplateTask>();
  std::string name = scalar(required_key(root, "name", origin), origin, "name");
  if (name.empty()) fail("{}: key 'name' is empty", where(origin, root["name"]));
  YAML::Node tmpl = required_key(root, "template", origin);
  task->pieces = parse_template(scalar(tmpl, origin, "template"), where(origin, tmpl));
  task->label_field = scalar(required_key(root, "label_field", origin), origin, "label_field");
  read_label_words(required_key(root, "label_words", origin), origin, *task);
  if (root["fields"])
    read_fields(root["fields"], origin, *task);
  else {
    for (const auto& piece : task->pieces)
      if (piece.field) task->required.push_back(piece.text);
  }
  if (root["strip_fields"])
    task->strip_fields = read_bool(root["strip_fields"], origin, "strip_fields");
  if (root["description"]) scalar(root["description"], origin, "description");
  return Task(name, [task](const Record& record) { return make_from_template(*task, record); });
}

Task Task::from_yaml_file(const std::string& path) {
  return from_yaml(text::read_text_file(path), path);
}

}  // namespace zoft::data
