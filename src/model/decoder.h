// The generic decoder: one forward pass for every architecture, steered by ModelConfig flags.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "model/arch.h"
#include "model/rope.h"
#include "model/weights.h"

namespace zoft {

// A right- or left-padded batch: ids and mask are [batch, seq], mask 1 = real token.
struct TokenBatch {
  int64_t batch = 0;
  int64_t seq = 0;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;

  static TokenBatch from_sequences(const std::vector<std::vector<int32_t>>& sequences,
                                   int32_t pad_id, bool left_pad);
  int64_t rows() const { return batch * seq; }
  // Sequences [begin, end) of this batch (a rank's or a micro-batch's share).
  TokenBatch slice(int64_t begin, int64_t end) const;
};

// Keys and values of past tokens, [batch, capacity, kv_heads, head_dim] per layer, in the
// memory of `device` (the model's: Decoder::device()); the bookkeeping (valid keys, positions,
// length) stays on the host. The batched forward without generation uses a one-layer cache of
// capacity seq.
class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, bool one_layer_only,
          Device device = Device::CPU);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  float* keys(int64_t layer);
  float* values(int64_t layer);

 private:
  friend class Decoder;
  int64_t batch_, capacity_, kv_dim_, length_ = 0;
  bool one_layer_only_;
  DeviceBuffer k_, v_;
  std::vector<uint8_t> valid_;          // [batch, capacity]
  std::vector<int32_t> next_position_;  // valid tokens seen so far, per sequence
};

// Writes the embedding-table rows of `ids` (host memory) as f32, times `scale`, into out
// [rows, hidden] on the model's device: what ops::embedding writes, from rows a caller
// substitutes (e.g. perturbed ones) without touching the table.
using EmbeddingRowsFn =
    std::function<void(const int32_t* ids, int64_t rows, float scale, float* out)>;

// Where a block's weights come from when not all of them are resident (runtime/ offload):
// acquire(b) returns once block b's weights are in memory and the model points at them;
// release(b, modified) lets them go (modified: written by a ZO pass, to be saved back);
// held(b): acquired and not yet released. Blocks are acquired in execution order, so an
// implementation can read ahead.
class BlockResidency {
 public:
  virtual ~BlockResidency() = default;
  virtual void acquire(int64_t block) = 0;
  virtual void release(int64_t block, bool modified) = 0;
  virtual bool held(int64_t block) const = 0;
};

// The activations of one forward pass while it moves through the blocks one at a time:
// block 0 = embeddings, blocks 1..L = decoder layers, block L+1 = final norm (the LM head is
// applied by losses()/logits on the result). Two states can be interleaved block by block,
// which is how the ZO2 schedule runs both perturbed passes while a block's weights are
// resident.
// hidden lives on the model's device; the host vectors are mirrored there (device_*: the
// vectors themselves on the CPU, copies made by begin_forward on a GPU).
struct ForwardState {
  const TokenBatch* batch = nullptr;
  KvCache* cache = nullptr;
  DeviceBuffer hidden;             // [rows, hidden_size] f32
  std::vector<int32_t> positions;  // per row, counting real tokens only
  std::vector<uint8_t> key_valid;  // [batch, kv_len]
  std::vector<int32_t> embed_ids;  // ids with pads replaced by 0
  const int32_t* device_positions = nullptr;
  const uint8_t* device_key_valid = nullptr;
  const int32_t* device_embed_ids = nullptr;
  DeviceBuffer staged;  // the device copies, on a GPU
  float* h() const { return hidden.as<float>(); }
};

// One layer's intermediates kept for the backward (model/backprop.h).
struct LayerActs;

class LoraAdapters;  // model/lora.h

// First-order training (Decoder::loss_and_grad, model/decoder_backward.cc).
struct BackwardOptions {
  // LoRA training: the gradients are those of the adapters (attached with attach_lora), one
  // buffer per lora_parameters(*lora) entry in that order; the base weights get none (frozen).
  const LoraAdapters* lora = nullptr;
  // Activation checkpointing: keep only each block's input during the forward and recompute a
  // layer's internals during its backward (less memory, one more forward). Gradients are
  // bit-identical either way.
  bool checkpoint_blocks = false;
};

class Decoder {
 public:
  // path: an HF directory (config.json + safetensors) or a .gguf file (dequantised to f32 in
  // memory on load). compute: f32 or bf16.
  static Decoder load(const std::string& path, DType compute = DType::F32);
  // A model with no checkpoint, for benchmarks of shapes one has no weights for: the
  // architecture and sizes from a config.json (a file, or a directory holding one), weights
  // drawn in memory as HF initialises them (model/random_init.cc), deterministic in `seed`.
  static Decoder random_init(const std::string& config_path, DType compute = DType::F32,
                             uint64_t seed = 0);
  static Decoder random_init(const JsonConfig& config, DType compute = DType::F32,
                             uint64_t seed = 0);

  // Placement: a copy of this model whose weights live on `device` (uploaded once, in the
  // dtypes they have here; a tied table once), owned and writable (ZO training perturbs them in
  // place). The same forward then runs there, with its scratch and KV caches on that device.
  // Throws one clear line when the device cannot run here. Offload (set_residency) and the
  // backward stay on the CPU.
  Decoder to_device(Device device) const;
  // The GPU tier (runtime/device_residency.h): the weights stay in host memory (their homes)
  // and the residency binds each block to device memory before it computes, so the forward, its
  // scratch and KV caches run on `device` without a copy of the model there. Marks the model and
  // its tensors as on `device` (Device::CPU undoes it); the rope tables are uploaded. Set it
  // before attaching the residency, and back after detaching it.
  void set_compute_device(Device device);
  // Where the weights are and every op of the forward runs.
  Device device() const { return weights_.device; }

  const ModelConfig& config() const { return config_; }
  const ArchTable& arch() const { return *arch_; }
  const ModelWeights& weights() const { return weights_; }

  // Host memory in and out: logits, forward_cached's out, token_losses' targets and loss.
  // logits: [batch, seq, vocab] for every position (pad positions hold unspecified values).
  void logits(const TokenBatch& batch, float* logits);

  // Appends the batch to the cache and writes logits of the rows selected by `rows`
  // (indices into [batch * seq]) into out [rows.size(), vocab].
  void forward_cached(const TokenBatch& batch, KvCache& cache, const std::vector<int64_t>& rows,
                      float* out);

  // loss[b*seq + t] = -log p(targets[b*seq + t] | tokens <= t); 0 where targets < 0.
  // Logits are made a chunk of rows at a time: the [batch, seq, vocab] tensor never exists.
  void token_losses(const TokenBatch& batch, const int32_t* targets, float* loss);

  // Next-token targets: ids[b, t+1] where both t and t+1 are real tokens, else -1.
  static std::vector<int32_t> next_token_targets(const TokenBatch& batch);

  // Block-by-block forward (see ForwardState). begin_forward validates the batch and fills
  // positions; run_block(b) runs block b; end_forward commits the batch to the cache.
  int64_t num_blocks() const { return config_.num_layers + 2; }
  void begin_forward(const TokenBatch& batch, KvCache& cache, ForwardState& state) const;
  void run_block(int64_t block, ForwardState& state,
                 const EmbeddingRowsFn* embedding_rows = nullptr);
  void end_forward(ForwardState& state) const;
  // run_block for every block in order, each acquired from and released to the residency when
  // one is set (offload): what a caller outside the ZO stepper should use to run a whole pass.
  void run_blocks(ForwardState& state);
  // out[i, j] = logit of token ids[j] at hidden row rows[i]: only those LM-head rows are computed
  // (a loss over a few candidate tokens needs no [rows, vocab] product). hidden on the model's
  // device (a ForwardState's), out in host memory.
  void candidate_logits(const float* hidden, const std::vector<int64_t>& rows,
                        const std::vector<int32_t>& ids, float* out) const;
  // Per-token losses from final hidden states [rows, hidden] on the model's device (LM head +
  // chunked cross-entropy); targets and loss in host memory.
  void losses_from_hidden(const float* hidden, int64_t rows, const int32_t* targets, float* loss);
  // First-order training: returns the summed loss over the rows with a target >= 0 (the sum of
  // token_losses) and ACCUMULATES loss_scale * d(summed loss)/d(parameter) into grads, f32, one
  // buffer per list_parameters(*this) entry in that order (made and zeroed when grads is
  // empty). Accumulating lets a caller sum micro-batches and choose the normalisation.
  double loss_and_grad(const TokenBatch& batch, const int32_t* targets, float loss_scale,
                       std::vector<Buffer>& grads, const BackwardOptions& options = {});
  // Mutable access for trainers: the weights are owned copies after make_trainable().
  ModelWeights& mutable_weights() { return weights_; }
  // Offload: every whole forward (logits, losses, cached decoding) then acquires each block
  // before running it and releases it after, and run_block acquires a block its caller does not
  // hold (the ZO stepper holds each block across all its passes). Null (the default): all
  // weights are resident and nothing is called.
  void set_residency(BlockResidency* residency) { residency_ = residency; }
  BlockResidency* residency() const { return residency_; }

 private:
  friend class Backprop;  // model/backprop.h: the backward (its forward is layer_forward)
  // On the model's device; grow-only.
  struct Scratch {
    DeviceBuffer normed, q, k, v, qkv, attn, tmp, gate, up, logits, picked, loss, ints;
  };
  void forward_hidden(const TokenBatch& batch, KvCache& cache, ForwardState& state);
  void stage_on_device(ForwardState& state) const;
  void embed_forward(ForwardState& state, const EmbeddingRowsFn* embedding_rows);
  void layer_forward(int64_t layer, ForwardState& state, LayerActs* sink = nullptr);
  struct LayerBuffers;
  LayerBuffers layer_buffers(int64_t layer, int64_t rows, LayerActs* sink);
  void attention_block(int64_t layer, ForwardState& state, const LayerBuffers& b);
  void mlp_block(int64_t layer, ForwardState& state, const LayerBuffers& b);
  void add_branch(const NormWeights& post_norm, const float* y, float* branch, float* h,
                  int64_t rows) const;
  void norm(const NormWeights& w, const float* x, float* out, int64_t rows, int64_t dim) const;
  void linear(const LinearWeights& w, const float* x, int64_t rows, float* y) const;
  void head_logits(const float* hidden, int64_t rows, float* logits) const;
  // head_logits into host memory, a chunk at a time through device scratch off the CPU.
  void head_logits_to_host(const float* hidden, int64_t rows, float* host_logits);
  // Gathers hidden rows `rows` into [rows.size(), hidden] device scratch.
  float* pick_rows(const float* hidden, const int64_t* rows, int64_t n, DeviceBuffer& into);
  // `ints` on the model's device: itself on the CPU, a copy in `into` elsewhere.
  const int32_t* on_device(const std::vector<int32_t>& ints, DeviceBuffer& into);
  const float* inv_freq(bool sliding) const;
  void make_rope_tables();
  void upload_rope_tables();  // rope_freq_*_ on device() (none on the CPU)

  const ArchTable* arch_ = nullptr;
  ModelConfig config_;
  ModelWeights weights_;
  RopeTable rope_global_, rope_local_;
  DeviceBuffer rope_freq_global_, rope_freq_local_;  // inv_freq off the CPU
  Scratch scratch_;
  BlockResidency* residency_ = nullptr;
};

}  // namespace zoft
