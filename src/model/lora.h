// LoRA adapters (Hu et al. 2021) on the decoder's linear layers, as HF PEFT defines them:
// y = x W^T + s * (dropout(x) A^T) B^T with A [r, in], B [out, r] (nn.Linear layout for every
// architecture, GPT-2's Conv1D ones included) and s = alpha / r, or alpha / sqrt(r) (rsLoRA).
// The base weights are not touched: a LinearWeights points at its adapter and Decoder::linear
// adds the adapter's term to the base GEMM's output.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/arch.h"
#include "model/parameters.h"

namespace zoft {

class Decoder;

// PEFT LoraConfig's fields that zoft implements.
struct LoraSettings {
  int64_t r = 8;
  double alpha = 8;
  double dropout = 0;  // on the adapter's input, training only
  bool rslora = false;
  // PEFT's matching: a module is adapted when its name equals an entry or ends with "." + the
  // entry; "all-linear" = every linear layer of the decoder blocks. target_regex (PEFT's string
  // form) is matched against the whole module name instead, when it is not empty.
  std::vector<std::string> target_modules;
  std::string target_regex;
  std::string bias = "none";  // only "none": biases stay frozen with the base

  float scaling() const;
  // r > 0, 0 <= dropout < 1, finite alpha, targets given, bias "none"; errors name `origin`.
  void validate(const std::string& origin) const;
};

enum class LinearRole { Q, K, V, QKV, O, Gate, Up, Down };

// Applies dropout in place, training only: each element is zeroed with probability p and the
// others scaled by 1 / (1 - p). The mask is a pure function of (module id, element index) and
// the trainer's current step and micro-batch, so that the backward regenerates it from the same
// call instead of storing it.
using LoraDropoutFn = std::function<void(uint32_t module_id, float* values, int64_t count)>;

// One adapted linear layer.
struct LoraModule {
  std::string name;  // HF module name, e.g. "model.layers.0.self_attn.q_proj"
  int64_t layer = 0;
  LinearRole role = LinearRole::Q;
  int64_t in = 0, out = 0, r = 0;
  float scaling = 1;
  uint32_t id = 0;  // index in LoraAdapters::modules(): keys its dropout mask
  OwnedTensor a;    // lora_A [r, in] f32
  OwnedTensor b;    // lora_B [out, r] f32
  std::shared_ptr<LoraDropoutFn> dropout;  // shared by the set; empty function = no dropout
};

// A linear layer of the decoder blocks that an adapter can attach to.
struct LinearSlot {
  std::string name;  // HF module name
  int64_t layer = 0;
  LinearRole role = LinearRole::Q;
  int64_t in = 0, out = 0;
};

// Every linear layer of the decoder blocks of a model of this architecture, layer by layer in
// forward order (the LM head is not one: PEFT targets of lm_head / embeddings are refused).
std::vector<LinearSlot> linear_slots(const ArchTable& arch, const ModelConfig& config);

class LoraAdapters {
 public:
  // The modules `settings` selects in a model of this architecture, A and B zero. Throws,
  // naming `origin` and the model's linear module names, for a target that matches nothing.
  static LoraAdapters create(const ArchTable& arch, const ModelConfig& config,
                             const LoraSettings& settings, const std::string& origin);

  const LoraSettings& settings() const { return settings_; }
  std::vector<LoraModule>& modules() { return modules_; }
  const std::vector<LoraModule>& modules() const { return modules_; }
  LoraModule* find(const std::string& name);
  int64_t parameter_count() const;
  // Dropout while training (null: none, e.g. inference or dropout 0).
  void set_dropout(LoraDropoutFn fn) { *dropout_ = std::move(fn); }

 private:
  LoraSettings settings_;
  std::vector<LoraModule> modules_;
  std::shared_ptr<LoraDropoutFn> dropout_ = std::make_shared<LoraDropoutFn>();
};

// PEFT's name of a module's A or B: "base_model.model.<module>.lora_A.weight".
std::string peft_tensor_name(const LoraModule& m, bool b);

// The trainable parameters of a LoRA model: each module's A then B, modules in order, under
// PEFT's names (block = the module's layer + 1, as list_parameters numbers blocks; ids from 0).
// The tensors are views of the adapters' storage.
std::vector<ParameterRef> lora_parameters(const LoraAdapters& adapters);

// Points the model's linear layers at the adapters (LinearWeights::lora) until detach_lora;
// the adapters must outlive that. Throws if a module's shape disagrees with the model's layer.
void attach_lora(Decoder& model, const LoraAdapters& adapters);
void detach_lora(Decoder& model);

// y[rows, out] += s * (dropout(x) A^T) B^T for x [rows, in] (Decoder::linear).
void lora_forward(const LoraModule& m, const float* x, int64_t rows, float* y);

// The backward of lora_forward given its input x and the output gradient dy: dA [r, in] and
// dB [out, r] ACCUMULATE, dx [rows, in] gets the adapter's term ADDED (the base layer wrote its
// own first).
void lora_backward(const LoraModule& m, const float* x, const float* dy, int64_t rows, float* dx,
                   float* dA, float* dB);

// weight += s * B A, f32, laid out as the base weight: [out, in], or [in, out] when
// weight_is_kn (GPT-2's Conv1D). What `zoft merge` writes.
void lora_merge_into(const LoraModule& m, float* weight, bool weight_is_kn);

}  // namespace zoft
