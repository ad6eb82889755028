// MeZO's templates against the strings its templates.py produces (worked out by hand from its
// source: encode(sample).strip(' ') is the context, verbalize(sample, c).strip(' ') the full
// prompt), and YAML user tasks with their errors.
#include "data/task.h"

#include <gtest/gtest.h>

#include "data/data_test_util.h"

namespace zoft::data {
namespace {

using namespace testing;

Record record(std::initializer_list<std::pair<std::string, std::string>> fields) {
  Record r;
  r.origin = "data/train.jsonl:17";
  for (const auto& f : fields) r.fields.emplace_back(f.first, f.second);
  return r;
}

void expect_example(const TaskExample& ex, const std::string& context,
                    const std::vector<std::string>& candidates, int32_t label) {
  EXPECT_EQ(ex.context, context);
  EXPECT_EQ(ex.candidates, candidates);
  EXPECT_EQ(ex.label, label);
  EXPECT_EQ(ex.origin, "data/train.jsonl:17");
}

TEST(MezoTemplates, Sst2) {
  // SST2Template: f"{text} It was" / f"{text} It was {verbalizer[c]}", text = sentence.strip().
  auto ex = Task::builtin("SST-2").make_example(
      record({{"sentence", "  a gripping , funny movie . \n"}, {"label", "1"}, {"idx", "4"}}));
  expect_example(ex, "a gripping , funny movie . It was", {" terrible", " great"}, 1);
  EXPECT_EQ(ex.context + ex.candidates[1], "a gripping , funny movie . It was great");
}

TEST(MezoTemplates, Rte) {
  auto ex = Task::builtin("rte").make_example(
      record({{"premise",
               "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer."},
              {"hypothesis", "Christopher Reeve had an accident."},
              {"label", "not_entailment"}}));
  expect_example(ex,
                 "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer.\n"
                 "Does this mean that \"Christopher Reeve had an accident.\" is true? Yes or No?\n",
                 {"Yes", "No"}, 1);
}

TEST(MezoTemplates, Cb) {
  auto ex = Task::builtin("cb").make_example(
      record({{"premise", "It was a complex language. Not written down but handed down."},
              {"hypothesis", "the language was peeled down"},
              {"label", "2"}}));
  expect_example(ex,
                 "Suppose It was a complex language. Not written down but handed down. Can we "
                 "infer that \"the language was peeled down\"? Yes, No, or Maybe?\n",
                 {"Yes", "No", "Maybe"}, 2);
}

TEST(MezoTemplates, BoolqV3) {
  // BoolQTemplateV3 (MeZO's default): question capitalised, "?" added.
  auto ex = Task::builtin("boolq").make_example(
      record({{"question", "do iran and afghanistan speak the same language"},
              {"passage", "Persian language -- Persian is a western Iranian language."},
              {"answer", "true"}}));
  expect_example(ex,
                 "Persian language -- Persian is a western Iranian language. Do iran and "
                 "afghanistan speak the same language?\n",
                 {"Yes", "No"}, 0);
  auto glue = Task::builtin("boolq").make_example(
      record({{"question", "is it?"}, {"passage", "P."}, {"label", "0"}}));
  expect_example(glue, "P. Is it?\n", {"Yes", "No"}, 1);
}

TEST(MezoTemplates, Wsc) {
  auto ex = Task::builtin("wsc").make_example(
      record({{"text", "Mark told Pete many lies about himself. He should have been truthful."},
              {"span1_text", "Mark"},
              {"span2_text", "He"},
              {"label", "true"}}));
  expect_example(ex,
                 "Mark told Pete many lies about himself. He should have been truthful.\nIn the "
                 "previous sentence, does the pronoun \"he\" refer to Mark? Yes or No?\n",
                 {"No", "Yes"}, 1);
}

TEST(MezoTemplates, Wic) {
  auto ex = Task::builtin("wic").make_example(
      record({{"word", "place"},
              {"sentence1", "Do you want to come over to my place later?"},
              {"sentence2", "A political system with no place for the less prominent groups."},
              {"label", "0"}}));
  expect_example(ex,
                 "Does the word \"place\" have the same meaning in these two sentences? Yes, No?\n"
                 "Do you want to come over to my place later?\n"
                 "A political system with no place for the less prominent groups.\n",
                 {"No", "Yes"}, 0);
}

TEST(MezoTemplates, MultiRc) {
  auto ex = Task::builtin("multirc").make_example(
      record({{"paragraph", "While this process moved along, diplomacy continued its rounds."},
              {"question", "What did the effort include?"},
              {"answer", "Children, Gerd, or Dorian Popa"},
              {"label", "0"}}));
  expect_example(ex,
                 "While this process moved along, diplomacy continued its rounds.\nQuestion: What "
                 "did the effort include?\nI found this answer \"Children, Gerd, or Dorian Popa\". "
                 "Is that correct? Yes or No?\n",
                 {"No", "Yes"}, 0);
}

TEST(MezoTemplates, Copa) {
  // CopaTemplate: premise without its period + " because " / " so ", candidate lower-cased
  // unless its first word is "I"; the context loses its trailing space to .strip(' ').
  Task copa = Task::builtin("copa");
  auto cause = copa.make_example(record({{"premise", "My body cast a shadow over the grass. "},
                                         {"choice1", "The sun was rising."},
                                         {"choice2", "The grass was cut."},
                                         {"question", "cause"},
                                         {"label", "0"}}));
  expect_example(cause, "My body cast a shadow over the grass because",
                 {" the sun was rising.", " the grass was cut."}, 0);
  auto effect = copa.make_example(record({{"premise", "The man broke his toe."},
                                          {"choice1", "He got a hole in his sock."},
                                          {"choice2", "I dropped a hammer on his foot."},
                                          {"question", "effect"},
                                          {"label", "1"}}));
  expect_example(effect, "The man broke his toe so",
                 {" he got a hole in his sock.", " I dropped a hammer on his foot."}, 1);
  expect_error(
      [&] {
        copa.make_example(record({{"premise", "p"},
                                  {"choice1", "a"},
                                  {"choice2", "b"},
                                  {"question", "why"},
                                  {"label", "0"}}));
      },
      {"data/train.jsonl:17: field 'question' is 'why', not 'cause' or 'effect'"});
}

TEST(MezoTemplates, BadLabelsAndFieldsAreNamed) {
  expect_error(
      [] {
        Task::builtin("rte").make_example(
            record({{"premise", "p"}, {"hypothesis", "h"}, {"label", "2"}}));
      },
      {"data/train.jsonl:17: field 'label' is '2', not one of the labels (0|entailment, "
       "1|not_entailment)"});
  expect_error(
      [] {
        Task::builtin("sst2").make_example(record({{"text", "t"}, {"label", "1"}}));
      },
      {"data/train.jsonl:17: no field 'sentence' (fields: text, label)"});
  expect_error([] { Task::builtin("mnli"); }, {"unknown task 'mnli'", "sst2, rte, cb"});
}

std::vector<Record> fine_food_records() {
  return read_records(fixture("fine_foods_train.jsonl"));
}

TEST(FineFoods, BuiltinAndYamlFileAgree) {
  Task builtin = Task::builtin("fine_foods");
  Task yaml = Task::load(source_path("recipes/tasks/fine_foods.yaml"));
  EXPECT_EQ(yaml.name(), "fine_foods");
  auto records = fine_food_records();
  auto a = builtin.make_examples(records), b = yaml.make_examples(records);
  ASSERT_EQ(a.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].context, b[i].context);
    EXPECT_EQ(a[i].candidates, b[i].candidates);
    EXPECT_EQ(a[i].label, b[i].label);
  }
  EXPECT_EQ(a[0].context,
            "this stuff is  not stuffing  its  not good at all  save your money It was");
  EXPECT_EQ(a[0].candidates, (std::vector<std::string>{" great", " terrible"}));
  EXPECT_EQ(a[0].label, 1);  // other
  EXPECT_EQ(a[1].label, 0);  // great
}

Task yaml_task(const std::string& body) {
  return Task::from_yaml(body, "tasks/t.yaml");
}

const char* kGood =
    "name: sentiment\n"
    "template: \"Review: {text}\\nSentiment: {{{label}}}\"\n"
    "label_field: label\n"
    "label_words: {pos: \" positive\", neg: \" negative\"}\n"
    "strip_fields: false\n";

TEST(YamlTask, TemplateFieldsAndBraces) {
  Task task = yaml_task(kGood);
  auto ex = task.make_example(record({{"text", " fine "}, {"label", "neg"}}));
  EXPECT_EQ(ex.context, "Review:  fine \nSentiment: {neg}");
  EXPECT_EQ(ex.candidates, (std::vector<std::string>{" positive", " negative"}));
  EXPECT_EQ(ex.label, 1);
}

TEST(YamlTask, RecordErrors) {
  Task task = yaml_task(
      "name: fine_foods\ntemplate: \"{text} It was\"\nlabel_field: label\n"
      "label_words:\n  great: \" great\"\n  other: \" terrible\"\nfields: [text, product]\n");
  expect_error(
      [&] {
        task.make_example(record({{"text", "t"}, {"label", "neutral"}, {"product", "p"}}));
      },
      {"data/train.jsonl:17: field 'label' is 'neutral', not one of the label words (great, "
       "other)"});
  expect_error(
      [&] {
        task.make_example(record({{"text", "t"}, {"label", "great"}}));
      },
      {"data/train.jsonl:17: no field 'product' (fields: text, label)"});
  expect_error(
      [&] {
        task.make_example(record({{"txt", "t"}, {"label", "great"}, {"product", "p"}}));
      },
      {"data/train.jsonl:17: no field 'text' (fields: txt, label, product)"});
}

TEST(YamlTask, FileErrorsNameTheKey) {
  const std::string base = "name: t\ntemplate: \"{text} It was\"\nlabel_field: label\n";
  const std::string words = "label_words: {a: \" A\", b: \" B\"}\n";
  expect_error([&] { yaml_task(base + words + "label_word: x\n"); },
               {"tasks/t.yaml:5: unknown key 'label_word' (known: name, template"});
  expect_error(
      [&] { yaml_task(base + "label_words: [\" A\", \" B\"]\n"); },
      {"tasks/t.yaml:4: key 'label_words' must be a map of label -> candidate text, got a list"});
  expect_error([&] { yaml_task("name: t\ntemplate: {text: 1}\nlabel_field: label\n" + words); },
               {"tasks/t.yaml:2: key 'template' must be a string, got a map"});
  expect_error([&] { yaml_task("name: t\nlabel_field: label\n" + words); },
               {"tasks/t.yaml: missing key 'template'"});
  expect_error([&] { yaml_task(base); }, {"tasks/t.yaml: missing key 'label_words'"});
  expect_error([&] { yaml_task(base + "label_words: {}\n"); },
               {"key 'label_words' must be a map", "an empty map"});
  expect_error([&] { yaml_task(base + "label_words: {a: \" A\", b: \" A\"}\n"); },
               {"tasks/t.yaml:4: key 'label_words' gives ' A' to two labels"});
  expect_error([&] { yaml_task(base + words + "strip_fields: maybe\n"); },
               {"tasks/t.yaml:5: key 'strip_fields' must be true or false"});
  expect_error([&] { yaml_task(base + words + "fields: text\n"); },
               {"tasks/t.yaml:5: key 'fields' must be a list of field names"});
  expect_error(
      [&] { yaml_task("name: t\ntemplate: \"{text It was\"\nlabel_field: label\n" + words); },
      {"tasks/t.yaml:2: key 'template': unmatched '{' at character 1"});
  expect_error(
      [&] { yaml_task("name: t\ntemplate: \"text} It was\"\nlabel_field: label\n" + words); },
      {"tasks/t.yaml:2: key 'template': unmatched '}' at character 5"});
  expect_error([&] { yaml_task("name: [t\n"); }, {"tasks/t.yaml:", "invalid YAML"});
  expect_error([&] { yaml_task("- a\n- b\n"); },
               {"tasks/t.yaml: a task file must be a map of keys, got a list"});
  expect_error([&] { yaml_task(""); },
               {"tasks/t.yaml: a task file must be a map of keys, got nothing"});
  expect_error([] { Task::load("/nonexistent/task.yaml"); },
               {"/nonexistent/task.yaml: cannot open"});
}

// yaml-cpp keeps both entries of a repeated key; the task must not silently take one of them.
TEST(YamlTask, DuplicateKeysAreRefused) {
  const std::string words = "label_words: {a: \" A\", b: \" B\"}\n";
  expect_error(
      [&] {
        yaml_task("name: t\ntemplate: \"{text}\"\nlabel_field: label\n" + words +
                  "template: \"{other}\"\n");
      },
      {"tasks/t.yaml:5: key 'template' is given twice"});
  expect_error(
      [&] {
        yaml_task(
            "name: t\ntemplate: \"{text}\"\nlabel_field: label\n"
            "label_words: {a: \" A\", a: \" B\"}\n");
      },
      {"key 'label_words' names label 'a' twice"});
}

}  // namespace
}  // namespace zoft::data
