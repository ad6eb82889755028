// Decoder::random_init: a model made from a config alone, for benchmarks of large shapes whose
// weights one does not have (OPT-6.7B on a GPU) and for tests. The tensors are those
// load_weights would read (make_weights runs the same code), filled as HF's _init_weights does:
// matrices and embeddings ~ N(0, initializer_range), norm weights 1 (0 where the norm stores
// gamma - 1, Gemma), biases 0.
//
// Every element is a pure function of (seed, tensor name, index): a counter-based draw, so the
// model is the same for any thread count, and a tensor does not change when others are added.
#include <cmath>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/decoder.h"
#include "model/json_config.h"

namespace zoft {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a: the tensor's name keys its stream, so tensors do not depend on each other's order.
uint64_t name_hash(const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

constexpr double kTwoPi = 6.283185307179586;

// Two N(0, 1) draws (Box-Muller) for pair `index` of a stream; u1 in (0, 1] keeps log finite.
void normal_pair(uint64_t stream, uint64_t index, float& a, float& b) {
  uint64_t bits = splitmix64(stream ^ splitmix64(index));
  double u1 = (double((bits >> 32) & 0xFFFFFFFFu) + 1.0) / 4294967296.0;
  double u2 = double(bits & 0xFFFFFFFFu) / 4294967296.0;
  double r = std::sqrt(-2.0 * std::log(u1));
  a = float(r * std::cos(kTwoPi * u2));
  b = float(r * std::sin(kTwoPi * u2));
}

// Fills n elements of `out` (f32 or bf16) with N(0, std^2), in parallel chunks of pairs.
void fill_normal(void* out, DType dtype, int64_t n, double std, uint64_t stream) {
  const int64_t pairs = (n + 1) / 2;
  parallel_for(pairs, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float v[2];
      normal_pair(stream, uint64_t(p), v[0], v[1]);
      for (int64_t j = 0; j < 2 && 2 * p + j < n; ++j) {
        float x = float(std * double(v[j]));
        if (dtype == DType::F32)
          static_cast<float*>(out)[2 * p + j] = x;
        else
          static_cast<uint16_t*>(out)[2 * p + j] = f32_to_bf16(x);
      }
    }
  });
}

OwnedTensor make_tensor(const std::string& name, const std::vector<int64_t>& shape, DType compute,
                        double std, bool norm_stores_offset, uint64_t seed) {
  // Matrices in the compute dtype (load_weights then uses them in place); vectors in f32.
  DType dtype = shape.size() == 2 ? compute : DType::F32;
  OwnedTensor t;
  t.view = Tensor::with_shape(nullptr, dtype, shape.data(), int(shape.size()));
  t.buffer = Buffer(t.view.nbytes());
  t.view.data = t.buffer.data();
  const int64_t n = t.view.numel();
  const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  if (shape.size() == 2) {
    fill_normal(t.view.data, dtype, n, std, splitmix64(seed) ^ name_hash(name));
  } else {
    // Every 1-D weight of these architectures is a norm's gamma.
    float value = is_bias || norm_stores_offset ? 0.0f : 1.0f;
    std::fill(t.view.f32(), t.view.f32() + n, value);
  }
  return t;
}

}  // namespace

Decoder Decoder::random_init(const JsonConfig& json, DType compute, uint64_t seed) {
  Decoder d;
  LoadedConfig loaded = read_model_config_json(json);
  d.arch_ = loaded.arch;
  d.config_ = loaded.config;
  // HF names it initializer_range (OPT: init_std); 0.02 is every family's default.
  double std = json.get_float("initializer_range", json.get_float("init_std", 0.02));
  if (!(std >= 0) || !std::isfinite(std))
    fail("{}: initializer_range must be a finite number >= 0, got {}", json.path(), std);
  const bool offset = d.config_.norm_unit_offset;
  TensorFactory make = [&](const std::string& name, const std::vector<int64_t>& shape) {
    return make_tensor(name, shape, compute, std, offset, seed);
  };
  d.weights_ = make_weights(make, "random_init(" + json.path() + ")", *d.arch_, d.config_, compute);
  d.make_rope_tables();
  return d;
}

Decoder Decoder::random_init(const std::string& config_path, DType compute, uint64_t seed) {
  std::string path = config_path;
  if (std::filesystem::is_directory(path)) path += "/config.json";
  if (!std::filesystem::exists(path))
    fail("{}: not found (random_init needs a config.json, or a directory holding one)", path);
  return random_init(JsonConfig::load(path), compute, seed);
}

}  // namespace zoft
