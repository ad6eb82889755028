// LoRA adapters in HF PEFT's format: a directory with adapter_config.json (PEFT's LoraConfig)
// and adapter_model.safetensors (tensors "base_model.model.<module>.lora_A.weight" / lora_B),
// which peft.PeftModel.from_pretrained loads; and merged checkpoints (W + s B A).
#pragma once

#include <memory>
#include <string>

#include "model/lora.h"

namespace zoft {

// adapter_config.json of a PEFT LoRA adapter directory. Refuses, in one line naming the file,
// another PEFT type and the LoRA variants zoft does not implement (DoRA, per-module ranks,
// modules_to_save, layers_to_transform, ...).
LoraSettings read_peft_config(const std::string& dir);

// The adapter of `dir` for a model of this architecture and config: every module target_modules
// selects must have its A and B with the shapes of this model's layer, and every tensor of the
// file must be one of them (otherwise the adapter was made for another base model: one line
// naming the tensor and what was expected).
LoraAdapters read_peft_adapter(const std::string& dir, const ArchTable& arch,
                               const ModelConfig& config);

// read_peft_adapter for `model`, attached to it (attach_lora); the result must outlive the
// model's use of it (--adapter on generate / eval).
std::unique_ptr<LoraAdapters> attach_peft_adapter(Decoder& model, const std::string& dir);

// adapter_config.json's text for these adapters: PEFT's LoraConfig naming `base_model`.
std::string peft_config_text(const LoraAdapters& adapters, const ArchTable& arch,
                             const std::string& base_model);

// Writes `dir` (created) as PEFT writes an adapter: f32 tensors under PEFT's names and a
// LoraConfig that names `base_model` (base_model_name_or_path).
void write_peft_adapter(const std::string& dir, const LoraAdapters& adapters, const ArchTable& arch,
                        const std::string& base_model);

// `zoft merge`: the HF checkpoint directory `base_dir` with the adapter of `adapter_dir` merged
// into its weights (W + s B A, computed in f32, stored in each weight's own dtype), written to
// out_dir as one model.safetensors plus every other file of base_dir (config, tokenizer).
// Returns the number of merged weights.
size_t write_merged_checkpoint(const std::string& base_dir, const std::string& adapter_dir,
                               const std::string& out_dir);

}  // namespace zoft
