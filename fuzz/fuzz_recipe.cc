// libFuzzer target for training recipes: any YAML must load (and print back to YAML that loads
// to the same recipe) or throw zoft::Error; yaml-cpp's own exceptions must not escape.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz_util.h"
#include "train/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zoft::Recipe recipe;
  try {
    recipe = zoft::load_recipe(zoft_fuzz::write_input(data, size, "recipe.yaml"));
  } catch (const zoft::Error&) {
    return 0;
  }
  // A loaded recipe is saved beside checkpoints and compared on resume: it must round-trip.
  std::string yaml = zoft::recipe_to_yaml(recipe);
  zoft::Recipe again;
  try {
    again = zoft::load_recipe(
        zoft_fuzz::write_input(reinterpret_cast<const uint8_t*>(yaml.data()), yaml.size(),
                               "recipe.yaml"));
  } catch (const zoft::Error& e) {
    std::fprintf(stderr, "%s\n--- printed recipe:\n%s", e.what(), yaml.c_str());
    zoft_fuzz::bug("recipe_to_yaml() printed a recipe that does not load");
  }
  if (zoft::recipe_to_yaml(again) != yaml) {
    std::fprintf(stderr, "--- printed:\n%s--- reloaded and printed:\n%s", yaml.c_str(),
                 zoft::recipe_to_yaml(again).c_str());
    zoft_fuzz::bug("recipe_to_yaml() does not round-trip");
  }
  return 0;
}
