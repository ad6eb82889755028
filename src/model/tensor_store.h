// TensorStore: where the weight loader finds a model's tensors by HF name. Either a safetensors
// checkpoint (mmap-ed, so tensors are zero-copy views of the files) or tensors already in memory
// (a GGUF file dequantised and renamed by model/gguf_import.h). The loader sees one interface.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace zoft {

class Checkpoint;

struct NamedOwnedTensor {
  std::string name;
  OwnedTensor tensor;
};

class TensorStore {
 public:
  explicit TensorStore(std::shared_ptr<const Checkpoint> checkpoint);
  // Tensors in memory; `origin` (e.g. the GGUF path) names the store in error messages.
  TensorStore(std::string origin, std::vector<NamedOwnedTensor> tensors);

  const std::string& origin() const { return origin_; }
  bool has(const std::string& name) const;
  // The tensor (F32 / F16 / BF16), valid while this store lives. Throws Error naming the store
  // and the tensor if it is absent or of a dtype a Tensor cannot hold (e.g. I64 buffers).
  Tensor view(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  uint64_t total_bytes() const;            // as stored: the checkpoint's, or the f32 copies'

 private:
  std::string origin_;
  std::shared_ptr<const Checkpoint> checkpoint_;  // set for a checkpoint...
  std::map<std::string, OwnedTensor> tensors_;    // ...else the tensors live here
};

}  // namespace zoft
