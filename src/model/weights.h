// ModelWeights: every tensor of a decoder, by role, in the layout the forward pass wants.
// Large matrices are zero-copy views of the mmap-ed checkpoint when its dtype is the compute
// dtype, otherwise converted copies; norms, biases and position tables are always f32.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"
#include "model/arch.h"
#include "model/tensor_store.h"

namespace zoft {

struct LoraModule;  // model/lora.h

struct LinearWeights {
  Tensor weight;                // [out, in] ([in, out] when ModelWeights::weights_are_kn)
  const float* bias = nullptr;  // [out] or null
  int64_t out_features = 0;
  int64_t in_features = 0;
  const LoraModule* lora = nullptr;  // a LoRA adapter added to the output (attach_lora)
};

struct NormWeights {
  const float* weight = nullptr;  // null: this norm is absent
  const float* bias = nullptr;    // LayerNorm only
};

struct LayerWeights {
  NormWeights attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffn_norm;
  LinearWeights q, k, v, qkv, o;  // qkv is used when the checkpoint fuses them (GPT-2)
  LinearWeights gate, up, down;   // up = fc1 and down = fc2 of a non-gated MLP
};

// Every pointer and Tensor points into the memory of `device` (host memory unless
// Decoder::to_device placed them elsewhere).
struct ModelWeights {
  DType compute_dtype = DType::F32;
  Device device = Device::CPU;
  bool trainable = false;  // every parameter is an owned, writable copy (make_trainable)
  bool weights_are_kn = false;
  Tensor embed_tokens;     // [vocab, hidden], storage dtype (embedding op converts rows)
  Tensor embed_positions;  // [positions, hidden] f32, learned positions only
  NormWeights final_norm;
  LinearWeights lm_head;  // the embedding table in the compute dtype when tied
  std::vector<LayerWeights> layers;

  int64_t parameter_count = 0;  // distinct parameters (a tied matrix counted once)
  uint64_t checkpoint_bytes = 0;
  std::string checkpoint_dtypes;  // e.g. "bf16" or "f32+bf16"

  std::vector<Buffer> owned;                  // converted copies
  std::vector<DeviceBuffer> device_owned;     // the copies on `device` (Decoder::to_device)
  std::shared_ptr<const TensorStore> source;  // keeps the mmap / tensors alive for the views
};

// Loads and checks every tensor the architecture needs: a missing tensor or a shape that
// disagrees with config.json throws Error naming the checkpoint, the tensor and the shapes.
ModelWeights load_weights(std::shared_ptr<const TensorStore> store, const ArchTable& arch,
                          const ModelConfig& config, DType compute_dtype);

// The checks of load_weights (every tensor present, shapes as config.json implies, a
// checkpoint large enough for the config) without converting or copying anything: for
// `zoft inspect` and `zoft convert`, which read a model without loading it.
void check_weights(std::shared_ptr<const TensorStore> store, const ArchTable& arch,
                   const ModelConfig& config);

// Makes one tensor the architecture needs when there is no checkpoint (model/random_init.h):
// `name` is its HF name, the result an owned tensor of `shape` in any dtype.
using TensorFactory =
    std::function<OwnedTensor(const std::string& name, const std::vector<int64_t>& shape)>;

// load_weights with every tensor made by `make` instead of read: the same names, shapes, dtype
// conversions and parameter count, so a made model is laid out exactly as a loaded one.
// `origin` names the model in messages.
ModelWeights make_weights(const TensorFactory& make, const std::string& origin,
                          const ArchTable& arch, const ModelConfig& config, DType compute_dtype);

}  // namespace zoft
