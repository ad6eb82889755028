// `zoft train RECIPE --find-lr`: a learning-rate range test. Each lr of a grid trains the
// recipe's method for a few dozen steps from the same starting weights on the same batches (the
// first batches of the recipe's run, in its data order, with its seed's perturbations); the one
// whose training loss ends lowest is the best. Nothing is written: it reports, and the user then
// trains with --optim.lr <best>.
//
// The score of an lr is the mean batch loss over the last half of its steps. Each batch's loss
// is measured before the method trains on it (a forward-only method's passes, or a first-order
// method's forward), and every lr sees the same batches, so the scores are held-out losses that
// differ only by what the lr did to the weights. lr 0 is always tried: it is what not training
// scores on the same batches, so a grid where every lr loses to it says that training with
// these settings does not help (its best is then 0). An lr diverges when a step's loss is
// non-finite or above trainer.divergence_factor times lr 0's on the same batch (as the trainer's
// guard); the larger lrs are then not tried.
//
// It drives the method through the TrainingMethod interface (train/method.h), as the trainer
// loop does, so it works for every optim.method and for LoRA; single process, CPU or a placed
// device, not with offload (placement.max_memory).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/recipe.h"

namespace zoft {

struct LrRangeOptions {
  std::vector<double> grid;  // explicit lrs (>= 0); empty: a log grid from min_lr to max_lr
  bool grid_given = false;   // the user gave a grid (then an empty one is an error)
  double min_lr = 1e-7, max_lr = 1e-3;
  int64_t points = 9;  // of the log grid, both ends included
  int64_t steps = 20;  // per lr
};

struct LrTrial {
  double lr = 0;
  std::vector<double> losses;  // per step
  double first_loss = 0;       // step 1's: the starting weights (the same for every lr)
  double score = 0;            // mean loss over the last half of the steps; +inf: diverged
  // A non-finite loss, or one above trainer.divergence_factor times lr 0's on the same batch;
  // the trial stopped there (diverged_loss).
  bool diverged = false;
  double diverged_loss = 0;
  bool skipped = false;  // not tried: a smaller lr diverged (diverged is set too)
};

struct LrRangeResult {
  std::vector<LrTrial> trials;  // ascending lr, lr 0 first (the larger lrs' trials too)
  double best_lr = 0;           // the lowest score (ties: the smaller lr); 0: training did not help
  int64_t steps = 0;
};

// The lrs to try, ascending, lr 0 first; throws one clear line for an empty grid, a negative or
// non-finite lr, non-positive or reversed bounds, fewer than 2 points or steps.
std::vector<double> lr_range_grid(const LrRangeOptions& options);

// "0,1e-5,1e-4" as lrs (not checked: lr_range_grid does); one clear line for a word that is not
// a number.
std::vector<double> parse_lr_list(const std::string& text);

// Runs the test on `recipe` (its optim.lr is replaced by each grid value in turn).
// Deterministic: the same recipe and options give the same scores, bit for bit.
LrRangeResult find_lr(const Recipe& recipe, const LrRangeOptions& options);

// The result as a table for the terminal, ending with the line naming the best lr.
std::string format_lr_range(const LrRangeResult& result, const std::string& method);

}  // namespace zoft
