// The trainable parameters of a decoder as a flat list: HF name, stable id, the block that
// uses it (for block-by-block schedules) and its storage. A tied embedding is one parameter,
// listed once (DESIGN decision 2: one z per step for a shared weight).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/decoder.h"

namespace zoft {

struct ParameterRef {
  std::string name;    // HF name, e.g. "model.layers.3.mlp.up_proj.weight"
  uint32_t id = 0;     // index in the list: keys the parameter's perturbation stream
  int64_t block = 0;   // 0 embeddings, 1..L decoder layers, L+1 final norm and LM head
  Tensor tensor;       // contiguous storage, writable after make_trainable()
  bool decay = false;  // weight decay applies: matrices, not biases or norm weights
};

// Copies every parameter into owned, writable buffers (matrices and embeddings in the compute
// dtype, vectors in f32) and re-points the model at them; the tied LM head becomes the very
// same buffer as the embedding table. Idempotent.
void make_trainable(Decoder& model);

// The list, in a fixed order (embeddings, layers in order, final norm, LM head when untied).
// The tied table belongs to the last block when tied (the LM head is its second use).
std::vector<ParameterRef> list_parameters(Decoder& model);

// --- Offload support (runtime/ streams some blocks through reusable RAM slots) ---
// make_trainable, except that the blocks for which `in_place(block)` is true are left as they
// are: their storage belongs to the offload runtime, which binds them with bind_block.
void make_trainable(Decoder& model, const std::function<bool(int64_t block)>& in_place);
// Re-points every parameter of `block` at where(p) (p as list_parameters would list it); a
// tied LM head follows the embedding table.
void bind_block(Decoder& model, int64_t block,
                const std::function<void*(const ParameterRef&)>& where);
// Copies the current storage pointers of `block`'s parameters into a list_parameters() list.
void refresh_block(Decoder& model, int64_t block, std::vector<ParameterRef>& params);

}  // namespace zoft
