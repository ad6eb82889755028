// Resuming with another recipe: which keys of the checkpoint's recipe.yaml differ from this
// run's in a way that changes what is trained (recipe_changes.cc lists the keys that do not).
#pragma once

#include <string>
#include <vector>

namespace zoft {

struct RecipeChange {
  std::string key;  // dotted, "optim.lr"
  std::string saved, current;
};

// Training-relevant keys whose values differ between two recipe_to_yaml() texts. A key only one
// of them has (a recipe saved by another version of zoft) is not compared.
std::vector<RecipeChange> changed_training_keys(const std::string& saved_yaml,
                                                const std::string& current_yaml);

// "optim.lr 0.001 -> 0.002, trainer.batch_size 4 -> 8"
std::string describe_changes(const std::vector<RecipeChange>& changes);

// A resumed run must train as the checkpoint's run did: one line naming the changed keys when
// `checkpoint`/recipe.yaml differs from `recipe_yaml` in a training-relevant key, unless
// `allow_changed` (trainer.allow_changed_recipe), which prints them when `report`. A checkpoint
// without recipe.yaml passes. dist: every rank decides alike.
void check_recipe_unchanged(const std::string& recipe_source, bool allow_changed,
                            const std::string& checkpoint, const std::string& recipe_yaml,
                            bool report);

}  // namespace zoft
