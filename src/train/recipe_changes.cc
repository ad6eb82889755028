#include "train/recipe_changes.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "train/checkpoint.h"

namespace zoft {

namespace {

// Keys that say where, how fast or how observably a run goes, not what it computes: resuming
// with another value gives the same weights as not changing it.
//   trainer.output_dir              the checkpoint is found there; a moved directory is fine
//   trainer.eval_interval, save_interval, save_total_limit, eval_before: when to evaluate and
//                                   save; the steps in between are the same
//   trainer.nan_policy              what to do on a non-finite loss; the finite steps are the same
//   trainer.load_best_at_end, divergence_factor, early_stopping_patience: which model to end
//                                   with and when to stop; the steps run are the same
//   trainer.schedule                zo2 and plain give bit-identical weights (train/zo_step.h)
//   trainer.gradient_checkpointing  recomputed activations give bit-identical gradients
//   trainer.allow_changed_recipe    this check's own switch
//   placement.*                     threads, offload (same bytes as resident) and device
//   dist.backend                    ranks compute the global batch's loss exactly as one process
//   logging.*                       what is written, not what is trained
// Everything else (model, data, task, optim, trainer.steps/batch_size/seed) is relevant: data.eval
// and data.eval_samples too, since the best checkpoint is chosen by comparing eval metrics across
// the resume. trainer.steps is relevant except under a constant schedule (see below).
bool training_relevant(const std::string& key) {
  static const char* kIrrelevant[] = {"trainer.output_dir",
                                      "trainer.eval_interval",
                                      "trainer.save_interval",
                                      "trainer.save_total_limit",
                                      "trainer.eval_before",
                                      "trainer.nan_policy",
                                      "trainer.schedule",
                                      "trainer.allow_changed_recipe",
                                      "trainer.gradient_checkpointing",
                                      "trainer.load_best_at_end",
                                      "trainer.divergence_factor",
                                      "trainer.early_stopping_patience"};
  for (const char* prefix : {"placement.", "dist.", "logging."})
    if (key.rfind(prefix, 0) == 0) return false;
  return std::none_of(std::begin(kIrrelevant), std::end(kIrrelevant),
                      [&](const char* k) { return key == k; });
}

// ("section.key", scalar text) of a recipe_to_yaml() text, in its order.
std::vector<std::pair<std::string, std::string>> flatten(const std::string& yaml,
                                                         const char* which) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    fail("the {} recipe: invalid YAML: {}", which, e.msg);
  }
  std::vector<std::pair<std::string, std::string>> out;
  if (!root.IsMap()) return out;
  for (const auto& section : root) {
    if (!section.second.IsMap()) continue;
    for (const auto& item : section.second)
      if (item.second.IsScalar())
        out.emplace_back(section.first.Scalar() + "." + item.first.Scalar(), item.second.Scalar());
  }
  return out;
}

}  // namespace

std::vector<RecipeChange> changed_training_keys(const std::string& saved_yaml,
                                                const std::string& current_yaml) {
  const auto saved_keys = flatten(saved_yaml, "saved");
  const std::map<std::string, std::string> saved(saved_keys.begin(), saved_keys.end());
  const auto current = flatten(current_yaml, "current");
  // trainer.steps sets the total of linear and cosine decay, so changing it changes the learning
  // rate of every step (those already taken were computed with the old total). A constant
  // schedule never reads it: extending (or shortening) such a run is legitimate.
  auto it = saved.find("optim.schedule");
  auto now = std::find_if(current.begin(), current.end(),
                          [](const auto& kv) { return kv.first == "optim.schedule"; });
  const bool constant = it != saved.end() && it->second == "constant" && now != current.end() &&
                        now->second == "constant";
  std::vector<RecipeChange> changes;
  for (const auto& [key, value] : current) {
    if (!training_relevant(key) || (constant && key == "trainer.steps")) continue;
    auto it = saved.find(key);
    if (it != saved.end() && it->second != value) changes.push_back({key, it->second, value});
  }
  return changes;
}

// A value as a person wrote it: numbers in their shortest form (recipe_to_yaml prints 17
// digits: 1e-06, not 9.9999999999999995e-07), '' for an empty string.
static std::string readable(const std::string& value) {
  if (value.empty()) return "''";
  try {
    size_t used = 0;
    double v = std::stod(value, &used);
    if (used == value.size()) return fmt::format("{}", v);
  } catch (const std::exception&) {
  }
  return value;
}

std::string describe_changes(const std::vector<RecipeChange>& changes) {
  std::string out;
  for (const RecipeChange& c : changes)
    out += fmt::format("{}{} {} -> {}", out.empty() ? "" : ", ", c.key, readable(c.saved),
                       readable(c.current));
  return out;
}

void check_recipe_unchanged(const std::string& recipe_source, bool allow_changed,
                            const std::string& checkpoint, const std::string& recipe_yaml,
                            bool report) {
  const std::string saved_path = checkpoint + "/recipe.yaml";
  if (!std::filesystem::exists(saved_path)) return;
  std::vector<RecipeChange> changes = changed_training_keys(read_file(saved_path), recipe_yaml);
  if (changes.empty()) return;
  if (!allow_changed)
    fail(
        "{}: the recipe differs from the one {} was trained with: {}; resume anyway with "
        "--trainer.allow_changed_recipe true, or start afresh in another trainer.output_dir",
        recipe_source, checkpoint, describe_changes(changes));
  if (report)
    std::fprintf(stderr, "zoft: resuming with a changed recipe (allowed): %s\n",
                 describe_changes(changes).c_str());
}

}  // namespace zoft
