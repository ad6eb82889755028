// Seeded, platform-independent choices of examples: subsets (MeZO's 1000 train / 500 dev / 1000
// eval), k-shot sets (k per label), and the shuffled order examples are trained in, with a
// position that a checkpoint saves so that a resumed run sees exactly the examples an
// uninterrupted one would.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/task.h"

namespace zoft::data {

// A uniformly random permutation of 0..n-1 determined by the seed alone (std::mt19937_64, whose
// output the C++ standard fixes, with unbiased bounded draws; the same on every platform).
std::vector<size_t> permutation(size_t n, uint64_t seed);

// k examples of each label, the first k of that label in permutation(examples.size(), seed),
// returned in that permutation's order (labels interleaved). Throws when a label of
// 0..max label has fewer than k examples.
std::vector<size_t> k_shot_indices(const std::vector<TaskExample>& examples, size_t k,
                                   uint64_t seed);

// MeZO's sample_train_sets / sample_subset: train and dev are the first train + dev of a seeded
// permutation of the train pool, dev its last `dev`; eval the first `eval` of a permutation of
// the eval pool. MeZO's numbers are the defaults (CB uses dev = 100).
struct SplitSizes {
  size_t train = 1000, dev = 500, eval = 1000;
};
struct Splits {
  std::vector<size_t> train, dev, eval;  // indices into the train pool / the eval pool
};
// Smaller pools give smaller splits; throws if the train pool cannot hold dev plus one example.
Splits mezo_splits(size_t train_pool, size_t eval_pool, const SplitSizes& sizes, uint64_t seed);

// Picks elements by index: select(examples, splits.train).
template <class T>
std::vector<T> select(const std::vector<T>& items, const std::vector<size_t>& indices) {
  std::vector<T> out;
  out.reserve(indices.size());
  for (size_t i : indices) out.push_back(items.at(i));
  return out;
}

// The order examples are visited in: epoch e is permutation(size, seed mixed with e) (or
// 0..size-1 unshuffled); next() runs on into the next epoch when one is used up.
class DataOrder {
 public:
  struct Position {
    uint64_t epoch = 0, index = 0;  // the next example is epoch's order[index]
  };

  DataOrder(size_t size, uint64_t seed, bool shuffle = true);

  size_t next();
  std::vector<size_t> next(size_t count);
  Position position() const { return position_; }
  void seek(Position position);  // throws if index > size
  const std::vector<size_t>& epoch_order() const { return order_; }

  // {"size", "seed", "shuffle", "epoch", "index"}; restore() throws zoft::Error when the saved
  // size, seed or shuffle differ from this order's (the data or its sampling changed).
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);

 private:
  void build_epoch();

  size_t size_;
  uint64_t seed_;
  bool shuffle_;
  Position position_;
  std::vector<size_t> order_;  // of position_.epoch
};

}  // namespace zoft::data
