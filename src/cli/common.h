// Flags that mean the same in every subcommand (DESIGN.md: placement flags).
#pragma once

#include <string>

#include "core/dtype.h"

namespace CLI {
class App;
}

namespace zoft::cli {

struct PlacementOptions {
  std::string device = "cpu";
  std::string dtype = "f32";
  int threads = 0;  // 0 = all cores
};

void add_placement_options(CLI::App* cmd, PlacementOptions& options);
// Validates the flags, sizes the thread pool, and returns the compute dtype.
DType apply_placement(const PlacementOptions& options);

// Reads a whole file ("-" = stdin); errors name the path.
std::string read_text_file(const std::string& path);

}  // namespace zoft::cli
