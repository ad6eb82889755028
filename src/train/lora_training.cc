#include "train/lora_training.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/lora_io.h"
#include "zo/philox.h"

namespace zoft {

namespace {

// Philox keys of LoRA's random streams, apart from z's (seed alone) by construction.
constexpr uint64_t kDropoutStream = 0x4C6F526144726F70ull;  // "LoRaDrop"
constexpr uint64_t kInitStream = 0x4C6F5261496E6974ull;     // "LoRaInit"

// Element i's uniform in (0, 1): word i % 4 of Philox(counter {i / 4, c1, c2, c3}, key).
template <class Body>
void for_each_uniform(int64_t begin, int64_t end, uint64_t key, uint32_t c1, uint32_t c2,
                      uint32_t c3, const Body& body) {
  for (int64_t q = begin / 4; q * 4 < end; ++q) {
    zo::Philox4 x = zo::philox4x32_10({uint32_t(q), c1, c2, c3}, key);
    for (int64_t i = std::max(q * 4, begin); i < std::min(q * 4 + 4, end); ++i)
      body(i, zo::uniform_from_bits(x[size_t(i - q * 4)]));
  }
}

}  // namespace

LoraSettings lora_settings(const Recipe& r) {
  LoraSettings s;
  s.r = r.peft.r;
  s.alpha = r.peft.alpha;
  s.dropout = r.peft.dropout;
  s.rslora = r.peft.rslora;
  s.target_modules = r.peft.target_modules;
  s.bias = r.peft.bias;
  s.validate(r.source + ": peft");
  return s;
}

void init_lora_weights(LoraAdapters& adapters, uint64_t seed) {
  for (LoraModule& m : adapters.modules()) {
    const float bound = float(1.0 / std::sqrt(double(m.in)));
    float* a = m.a.view.f32();
    for_each_uniform(0, m.a.view.numel(), seed ^ kInitStream, m.id, 0, 0,
                     [&](int64_t i, float u) { a[i] = (2.0f * u - 1.0f) * bound; });
    std::memset(m.b.view.data, 0, m.b.view.nbytes());
  }
}

void lora_dropout(float* values, int64_t count, double p, uint64_t seed, uint32_t module_id,
                  uint64_t step, uint32_t stream) {
  const float keep_scale = float(1.0 / (1.0 - p)), drop = float(p);
  // Blocks of whole Philox words per thread: the mask does not depend on the split.
  const int64_t words = (count + 3) / 4;
  parallel_for(words, [&](int64_t w0, int64_t w1) {
    for_each_uniform(
        w0 * 4, std::min(w1 * 4, count), seed ^ kDropoutStream, module_id, uint32_t(step), stream,
        [&](int64_t i, float u) { values[i] = u < drop ? 0.0f : values[i] * keep_scale; });
  });
}

LoraTraining::LoraTraining(const Recipe& r, Decoder& model, const std::string& resume_dir)
    : model_(model), base_model_(r.model.path), seed_(uint64_t(r.trainer.seed)) {
  if (model.residency())
    fail("{}: peft.method lora keeps the base in memory: drop placement.max_memory", r.source);
  if (r.placement.device != "cpu")
    fail("{}: peft.method lora trains on the cpu only (placement.device {})", r.source,
         r.placement.device);
  LoraSettings settings = lora_settings(r);
  if (resume_dir.empty()) {
    adapters_ = std::make_unique<LoraAdapters>(
        LoraAdapters::create(model.arch(), model.config(), settings, r.source + ": peft"));
    init_lora_weights(*adapters_, seed_);
  } else {
    adapters_ =
        std::make_unique<LoraAdapters>(read_peft_adapter(resume_dir, model.arch(), model.config()));
  }
  attach_lora(model_, *adapters_);
  params_ = lora_parameters(*adapters_);
}

LoraTraining::~LoraTraining() {
  detach_lora(model_);
}

void LoraTraining::begin_pass(uint64_t step, uint32_t stream) {
  const double p = adapters_->settings().dropout;
  if (p <= 0) return;
  const uint64_t seed = seed_;
  adapters_->set_dropout([=](uint32_t module, float* values, int64_t count) {
    lora_dropout(values, count, p, seed, module, step, stream);
  });
}

void LoraTraining::end_pass() {
  adapters_->set_dropout(nullptr);
}

std::string LoraTraining::config_json() const {
  return peft_config_text(*adapters_, model_.arch(), base_model_);
}

}  // namespace zoft
