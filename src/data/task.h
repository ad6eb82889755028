// Prompt tasks: how a record becomes a context and the candidate continuations a model scores,
// as MeZO (large_models/templates.py, tasks.py) builds them. Built in: MeZO's SST-2, RTE, CB,
// BoolQ, WSC, WIC, MultiRC and Copa templates, and fine_foods (the demo sentiment task); any
// other task is a YAML file:
//
//   name: fine_foods
//   template: "{text} It was"      # {field} is the record's field; {{ and }} are braces
//   label_field: label
//   label_words:                   # label value -> candidate text, in candidate order
//     great: " great"
//     other: " terrible"
//   fields: [text, label]          # optional: fields every record must have (default: the
//                                  # template's fields and label_field)
//   strip_fields: true             # optional: strip whitespace around field values (default,
//                                  # as MeZO's SST-2 template strips the sentence)
//   description: ...               # optional
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/records.h"

namespace zoft::data {

// The model input for candidate c is context + candidates[c], exactly the string MeZO scores
// (MeZO's verbalize()), with MeZO's stripping applied: no leading whitespace, no trailing spaces.
struct TaskExample {
  std::string context;                  // MeZO's encode(sample)
  std::vector<std::string> candidates;  // usually start with a space: " great"
  int32_t label = -1;                   // index of the correct candidate
  std::string origin;                   // the record's "path:line", for errors
};

class Task {
 public:
  using MakeFn = std::function<TaskExample(const Record&)>;

  Task(std::string name, MakeFn make) : name_(std::move(name)), make_(std::move(make)) {}

  // "sst2", "rte", "cb", "boolq", "wsc", "wic", "multirc", "copa", "fine_foods" (any case).
  static Task builtin(std::string_view name);
  static std::vector<std::string> builtin_names();
  // A YAML task file (see above). Errors name the file, line and key.
  static Task from_yaml_file(const std::string& path);
  static Task from_yaml(std::string_view yaml, const std::string& origin);
  // A path ending in .yaml / .yml, or a built-in name.
  static Task load(const std::string& name_or_path);

  const std::string& name() const { return name_; }
  // Throws zoft::Error naming the record's origin and field (missing field, unknown label).
  TaskExample make_example(const Record& record) const { return make_(record); }
  std::vector<TaskExample> make_examples(const std::vector<Record>& records) const;

 private:
  std::string name_;
  MakeFn make_;
};

// The pieces shared by built-in and YAML tasks (task.cc).
// Python's str.strip(): ASCII whitespace and \x1c-\x1f (not the other Unicode spaces).
std::string_view strip_whitespace(std::string_view s);
// An example from a prompt without its answer and the full prompt with each candidate, applying
// MeZO's stripping: encode(sample).strip(' '), verbalize(sample, c).strip(' '), and the .lstrip()
// of the final prompt. Each full prompt must start with the context.
TaskExample example_from_prompts(const Record& record, std::string_view context,
                                 const std::vector<std::string>& full_prompts, int32_t label);
// The index in `accepted` (one list of spellings per label) of the record's field value, or a
// zoft::Error "<origin>: field 'label' is 'x', not one of the <noun> (a, b|c)".
int32_t parse_label(const Record& record, std::string_view field,
                    const std::vector<std::vector<std::string>>& accepted, std::string_view noun);

}  // namespace zoft::data
