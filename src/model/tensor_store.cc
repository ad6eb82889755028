#include "model/tensor_store.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace zoft {

TensorStore::TensorStore(std::shared_ptr<const Checkpoint> checkpoint)
    : origin_(checkpoint->path()), checkpoint_(std::move(checkpoint)) {}

TensorStore::TensorStore(std::string origin, std::vector<NamedOwnedTensor> tensors)
    : origin_(std::move(origin)) {
  for (NamedOwnedTensor& t : tensors) {
    if (tensors_.count(t.name)) fail("{}: tensor '{}' appears twice", origin_, t.name);
    tensors_.emplace(std::move(t.name), std::move(t.tensor));
  }
}

bool TensorStore::has(const std::string& name) const {
  return checkpoint_ ? checkpoint_->has(name) : tensors_.count(name) != 0;
}

Tensor TensorStore::view(const std::string& name) const {
  if (!has(name)) fail("{}: tensor '{}' not found", origin_, name);
  if (!checkpoint_) return tensors_.at(name).view;
  const SafetensorsInfo& info = checkpoint_->info(name);
  if (!info.has_dtype)
    fail("{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", origin_, name, info.dtype_name);
  return checkpoint_->view(name);
}

std::vector<std::string> TensorStore::names() const {
  if (checkpoint_) return checkpoint_->names();
  std::vector<std::string> out;
  for (const auto& entry : tensors_) out.push_back(entry.first);
  return out;
}

uint64_t TensorStore::total_bytes() const {
  if (checkpoint_) return checkpoint_->total_bytes();
  uint64_t bytes = 0;
  for (const auto& entry : tensors_) bytes += entry.second.view.nbytes();
  return bytes;
}

}  // namespace zoft
