// Recipe section `peft` with method lora: the training methods train LoRA adapters (model/lora.h)
// instead of the model's weights. The base stays frozen where it was loaded (mmap-ed views when
// its dtype is the compute dtype: no copy); checkpoints hold the adapter in PEFT's format plus
// the optimizer's state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/lora.h"
#include "train/recipe.h"

namespace zoft {

class LoraTraining {
 public:
  // The recipe's adapters attached to `model`: fresh ones (A as PEFT initialises it, a
  // Kaiming-uniform draw with bound 1/sqrt(in), here by Philox from trainer.seed; B zero), or,
  // when resume_dir is not empty, the adapter of that checkpoint.
  LoraTraining(const Recipe& recipe, Decoder& model, const std::string& resume_dir);
  ~LoraTraining();  // detaches the adapters from the model
  LoraTraining(const LoraTraining&) = delete;
  LoraTraining& operator=(const LoraTraining&) = delete;

  LoraAdapters& adapters() { return *adapters_; }
  const std::vector<ParameterRef>& parameters() const { return params_; }

  // Dropout (peft.dropout > 0) on for one forward and its backward, its mask keyed by
  // (trainer.seed, step, stream): the backward and the other passes of a step see the same mask.
  // Off (evaluation, generation) after end_pass().
  void begin_pass(uint64_t step, uint32_t stream);
  void end_pass();

  // adapter_config.json of a checkpoint (PEFT's LoraConfig naming the base model).
  std::string config_json() const;

 private:
  Decoder& model_;
  std::string base_model_;
  uint64_t seed_ = 0;
  std::unique_ptr<LoraAdapters> adapters_;
  std::vector<ParameterRef> params_;
};

// The recipe's peft section as LoRA settings (validated: one line naming the recipe).
LoraSettings lora_settings(const Recipe& recipe);

// Fills every A with PEFT's default draw (uniform in +-1/sqrt(in)) from `seed` and zeroes B.
void init_lora_weights(LoraAdapters& adapters, uint64_t seed);

// In place on values[0, count): zero with probability p, else scale by 1 / (1 - p); the mask
// of element i is a pure function of (seed, module id, step, stream, i).
void lora_dropout(float* values, int64_t count, double p, uint64_t seed, uint32_t module_id,
                  uint64_t step, uint32_t stream);

}  // namespace zoft
