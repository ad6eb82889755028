// Opening a model for the loader, whatever it is stored as: an HF directory (config.json +
// safetensors) or a GGUF file (imported in memory: dequantised, renamed; no temporary files).
#pragma once

#include <memory>
#include <string>

#include "model/arch.h"
#include "model/tensor_store.h"

namespace zoft {

struct ModelSource {
  LoadedConfig loaded;
  std::shared_ptr<const TensorStore> tensors;
};

ModelSource open_model_source(const std::string& path);

}  // namespace zoft
