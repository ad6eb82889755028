#include "data/task.h"

#include "core/error.h"
#include "text/file_text.h"

namespace zoft::data {

static bool is_py_space(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

std::string_view strip_whitespace(std::string_view s) {
  while (!s.empty() && is_py_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_py_space(s.back())) s.remove_suffix(1);
  return s;
}

static std::string_view strip_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// MeZO's final prompt is (demos + sep + prompt.strip(' ')).lstrip().strip(' '): with no
// demonstrations, leading whitespace of any kind goes, and trailing spaces (only spaces).
static std::string_view mezo_prompt(std::string_view s) {
  s = strip_spaces(s);
  while (!s.empty() && is_py_space(s.front())) s.remove_prefix(1);
  return s;
}

TaskExample example_from_prompts(const Record& record, std::string_view context,
                                 const std::vector<std::string>& full_prompts, int32_t label) {
  TaskExample example;
  example.origin = record.origin;
  example.label = label;
  example.context = std::string(mezo_prompt(context));
  for (size_t c = 0; c < full_prompts.size(); ++c) {
    std::string_view full = mezo_prompt(full_prompts[c]);
    // A full prompt is its context with a candidate appended, so this holds unless the
    // candidate is empty (or only spaces), which leaves nothing to score.
    if (full.size() <= example.context.size() ||
        full.substr(0, example.context.size()) != example.context)
      fail("{}: candidate {} adds nothing to the prompt (prompt: '{}')", record.origin, c,
           example.context);
    example.candidates.emplace_back(full.substr(example.context.size()));
  }
  return example;
}

static std::string spellings_text(const std::vector<std::vector<std::string>>& accepted) {
  std::string out;
  for (const auto& spellings : accepted) {
    out += out.empty() ? "" : ", ";
    for (size_t i = 0; i < spellings.size(); ++i) out += (i ? "|" : "") + spellings[i];
  }
  return out;
}

int32_t parse_label(const Record& record, std::string_view field,
                    const std::vector<std::vector<std::string>>& accepted, std::string_view noun) {
  const std::string& value = record.get(field);
  for (size_t i = 0; i < accepted.size(); ++i)
    for (const auto& spelling : accepted[i])
      if (value == spelling) return int32_t(i);
  fail("{}: field '{}' is '{}', not one of the {} ({})", record.origin, field, value, noun,
       spellings_text(accepted));
}

std::vector<TaskExample> Task::make_examples(const std::vector<Record>& records) const {
  std::vector<TaskExample> examples;
  examples.reserve(records.size());
  for (const auto& record : records) examples.push_back(make_(record));
  return examples;
}

static bool has_suffix(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Task Task::load(const std::string& name_or_path) {
  if (has_suffix(name_or_path, ".yaml") || has_suffix(name_or_path, ".yml") ||
      text::is_regular_file(name_or_path))
    return from_yaml_file(name_or_path);
  return builtin(name_or_path);
}

}  // namespace zoft::data
