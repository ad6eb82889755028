// MeZO's prompt templates (large_models/templates.py) and label conventions (tasks.py), over
// records with the field names of the HF datasets MeZO loads (glue/sst2, super_glue/*, boolq).
// Labels are accepted as the HF integers and as the original SuperGLUE names.
#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "data/task.h"

namespace zoft::data {

namespace {

using Spellings = std::vector<std::vector<std::string>>;

const Spellings kFalseTrue = {{"0", "false", "False"}, {"1", "true", "True"}};

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The full prompts of a task whose candidates are verbalizer words appended to the context.
TaskExample with_words(const Record& record, const std::string& context,
                       const std::vector<std::string>& words, std::string_view separator,
                       int32_t label) {
  std::vector<std::string> full;
  for (const auto& word : words) full.push_back(context + std::string(separator) + word);
  return example_from_prompts(record, context, full, label);
}

// SST2Template: "<sentence> It was" + " terrible" / " great" (labels 0 / 1).
TaskExample sst2(const Record& r) {
  std::string text(strip_whitespace(r.get("sentence")));
  int32_t label = parse_label(r, "label", {{"0", "negative"}, {"1", "positive"}}, "labels");
  return with_words(r, text + " It was", {"terrible", "great"}, " ", label);
}

// The demo task: SST-2's template over the fine-food reviews, great first (label great / other).
TaskExample fine_foods(const Record& r) {
  std::string text(strip_whitespace(r.get("text")));
  int32_t label = parse_label(r, "label", {{"great"}, {"other"}}, "labels");
  return with_words(r, text + " It was", {"great", "terrible"}, " ", label);
}

// RTETemplate (PromptSource): 0 = entailment -> "Yes", 1 -> "No".
TaskExample rte(const Record& r) {
  std::string context = r.get("premise") + "\nDoes this mean that \"" + r.get("hypothesis") +
                        "\" is true? Yes or No?\n";
  int32_t label = parse_label(r, "label", {{"0", "entailment"}, {"1", "not_entailment"}}, "labels");
  return with_words(r, context, {"Yes", "No"}, "", label);
}

// CBTemplate (PromptSource): 0 entailment / 1 contradiction / 2 neutral -> Yes / No / Maybe.
TaskExample cb(const Record& r) {
  std::string context = "Suppose " + r.get("premise") + " Can we infer that \"" +
                        r.get("hypothesis") + "\"? Yes, No, or Maybe?\n";
  int32_t label = parse_label(
      r, "label", {{"0", "entailment"}, {"1", "contradiction"}, {"2", "neutral"}}, "labels");
  return with_words(r, context, {"Yes", "No", "Maybe"}, "", label);
}

// BoolQTemplateV3 (MeZO's default version 2): "<passage> <Question?>\n" + "Yes" / "No".
TaskExample boolq(const Record& r) {
  std::string question = r.get("question");
  if (question.empty()) fail("{}: field 'question' is empty", r.origin);
  if (question.back() != '?') question += '?';
  question[0] = char(std::toupper(static_cast<unsigned char>(question[0])));
  std::string context = r.get("passage") + " " + question + "\n";
  // boolq has answer: true/false; super_glue/boolq has label: 1 (true) / 0.
  const char* field = r.find("answer") ? "answer" : "label";
  int32_t label = parse_label(r, field, {{"true", "True", "1"}, {"false", "False", "0"}}, "labels");
  return with_words(r, context, {"Yes", "No"}, "", label);
}

// WSCTemplate (PromptSource): 0 -> "No", 1 -> "Yes".
TaskExample wsc(const Record& r) {
  std::string context = r.get("text") + "\nIn the previous sentence, does the pronoun \"" +
                        ascii_lower(r.get("span2_text")) + "\" refer to " + r.get("span1_text") +
                        "? Yes or No?\n";
  return with_words(r, context, {"No", "Yes"}, "", parse_label(r, "label", kFalseTrue, "labels"));
}

// WICTemplate (PromptSource): 0 -> "No", 1 -> "Yes".
TaskExample wic(const Record& r) {
  std::string context = "Does the word \"" + r.get("word") +
                        "\" have the same meaning in these two sentences? Yes, No?\n" +
                        r.get("sentence1") + "\n" + r.get("sentence2") + "\n";
  return with_words(r, context, {"No", "Yes"}, "", parse_label(r, "label", kFalseTrue, "labels"));
}

// MultiRCTemplate (PromptSource): 0 -> "No", 1 -> "Yes".
TaskExample multirc(const Record& r) {
  std::string context = r.get("paragraph") + "\nQuestion: " + r.get("question") +
                        "\nI found this answer \"" + r.get("answer") +
                        "\". Is that correct? Yes or No?\n";
  return with_words(r, context, {"No", "Yes"}, "", parse_label(r, "label", kFalseTrue, "labels"));
}

// CopaTemplate's "correct" capitalization: the first word lower-cased unless it is "I".
std::string copa_choice(std::string_view choice) {
  size_t space = choice.find(' ');
  std::string_view first = choice.substr(0, space);
  if (first == "I") return std::string(choice);
  return ascii_lower(first) +
         std::string(space == std::string_view::npos ? "" : choice.substr(space));
}

// CopaTemplate: "<premise without its final period> because|so" + " <choice>".
TaskExample copa(const Record& r) {
  const std::string& question = r.get("question");
  if (question != "cause" && question != "effect")
    fail("{}: field 'question' is '{}', not 'cause' or 'effect'", r.origin, question);
  std::string premise(r.get("premise"));
  while (!premise.empty() && std::isspace(static_cast<unsigned char>(premise.back())))
    premise.pop_back();
  if (!premise.empty() && premise.back() == '.') premise.pop_back();
  std::string context = premise + (question == "effect" ? " so " : " because ");
  int32_t label = parse_label(r, "label", {{"0"}, {"1"}}, "labels");
  std::vector<std::string> full = {context + copa_choice(r.get("choice1")),
                                   context + copa_choice(r.get("choice2"))};
  return example_from_prompts(r, context, full, label);
}

struct Builtin {
  const char* name;
  TaskExample (*make)(const Record&);
};

const Builtin kBuiltins[] = {
    {"sst2", sst2}, {"rte", rte},         {"cb", cb},     {"boolq", boolq},           {"wsc", wsc},
    {"wic", wic},   {"multirc", multirc}, {"copa", copa}, {"fine_foods", fine_foods},
};

}  // namespace

std::vector<std::string> Task::builtin_names() {
  std::vector<std::string> names;
  for (const auto& b : kBuiltins) names.emplace_back(b.name);
  return names;
}

Task Task::builtin(std::string_view name) {
  std::string key = ascii_lower(name);
  key.erase(std::remove(key.begin(), key.end(), '-'), key.end());  // "SST-2" -> "sst2"
  for (const auto& b : kBuiltins)
    if (key == b.name) return Task(b.name, b.make);
  std::string known;
  for (const auto& b : kBuiltins) known += (known.empty() ? "" : ", ") + std::string(b.name);
  fail("unknown task '{}' (built-in: {}; or a .yaml task file)", name, known);
}

}  // namespace zoft::data
