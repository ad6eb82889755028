#include "data/sampling.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.h"
#include "io/json_file.h"

namespace zoft::data {

// A value in [0, n) from 64 random bits, without modulo bias (std::uniform_int_distribution
// would be biased-free too, but its algorithm, and so its output, differs between libraries).
static uint64_t bounded(std::mt19937_64& rng, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % n;
}

std::vector<size_t> permutation(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::mt19937_64 rng(seed);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[bounded(rng, i)]);  // Fisher-Yates
  return order;
}

std::vector<size_t> k_shot_indices(const std::vector<TaskExample>& examples, size_t k,
                                   uint64_t seed) {
  ZOFT_CHECK(k > 0, "k-shot sampling needs k > 0");
  int32_t labels = 0;
  for (const auto& example : examples) labels = std::max(labels, example.label + 1);
  std::vector<size_t> taken(size_t(labels), 0), chosen;
  for (size_t i : permutation(examples.size(), seed)) {
    int32_t label = examples[i].label;
    if (label >= 0 && taken[size_t(label)] < k) ++taken[size_t(label)], chosen.push_back(i);
  }
  for (int32_t label = 0; label < labels; ++label)
    if (taken[size_t(label)] < k)
      fail("k-shot sampling: label {} has {} examples, fewer than k = {}", label,
           taken[size_t(label)], k);
  ZOFT_CHECK(!chosen.empty(), "k-shot sampling: no labelled examples");
  return chosen;
}

Splits mezo_splits(size_t train_pool, size_t eval_pool, const SplitSizes& sizes, uint64_t seed) {
  if (train_pool <= sizes.dev)
    fail("the training data has {} examples; a dev split of {} needs more", train_pool, sizes.dev);
  std::vector<size_t> train = permutation(train_pool, seed);
  train.resize(std::min(train_pool, sizes.train + sizes.dev));
  Splits splits;
  splits.dev.assign(train.end() - int64_t(sizes.dev), train.end());
  splits.train.assign(train.begin(), train.end() - int64_t(sizes.dev));
  splits.eval = permutation(eval_pool, seed);
  splits.eval.resize(std::min(eval_pool, sizes.eval));
  return splits;
}

// Each epoch's seed: splitmix64 of (seed, epoch), so neighbouring epochs are unrelated.
static uint64_t epoch_seed(uint64_t seed, uint64_t epoch) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (epoch + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

DataOrder::DataOrder(size_t size, uint64_t seed, bool shuffle)
    : size_(size), seed_(seed), shuffle_(shuffle) {
  ZOFT_CHECK(size > 0, "no examples to visit");
  build_epoch();
}

void DataOrder::build_epoch() {
  if (shuffle_) {
    order_ = permutation(size_, epoch_seed(seed_, position_.epoch));
  } else {
    order_.resize(size_);
    std::iota(order_.begin(), order_.end(), size_t(0));
  }
}

size_t DataOrder::next() {
  if (position_.index == size_) {
    ++position_.epoch;
    position_.index = 0;
    build_epoch();
  }
  return order_[position_.index++];
}

std::vector<size_t> DataOrder::next(size_t count) {
  std::vector<size_t> out(count);
  for (auto& i : out) i = next();
  return out;
}

void DataOrder::seek(Position position) {
  ZOFT_CHECK(position.index <= size_, "data order position {} is past the {} examples",
             position.index, size_);
  bool same_epoch = position.epoch == position_.epoch;
  position_ = position;
  if (!same_epoch) build_epoch();
}

nlohmann::json DataOrder::state() const {
  return {{"size", size_},
          {"seed", seed_},
          {"shuffle", shuffle_},
          {"epoch", position_.epoch},
          {"index", position_.index}};
}

void DataOrder::restore(const nlohmann::json& state) {
  try {
    auto size = state.at("size").get<size_t>();
    auto seed = state.at("seed").get<uint64_t>();
    auto shuffle = state.at("shuffle").get<bool>();
    if (size != size_ || seed != seed_ || shuffle != shuffle_)
      fail(
          "resume: the data order was saved for {} examples (seed {}, shuffle {}), this run has "
          "{} (seed {}, shuffle {})",
          size, seed, shuffle, size_, seed_, shuffle_);
    seek({state.at("epoch").get<uint64_t>(), state.at("index").get<uint64_t>()});
  } catch (const nlohmann::json::exception& e) {
    fail("resume: malformed data order state {}: {}", state.dump(), json_error_text(e));
  }
}

}  // namespace zoft::data
