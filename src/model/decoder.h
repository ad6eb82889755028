// The generic decoder: one forward pass for every architecture, steered by ModelConfig flags.
#pragma once

#include <string>
#include <vector>

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
};

// Keys and values of past tokens, [batch, capacity, kv_heads, head_dim] per layer.
// The batched forward without generation uses a one-layer cache of capacity seq.
class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, bool one_layer_only);

  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  float* keys(int64_t layer);
  float* values(int64_t layer);

 private:
  friend class Decoder;
  int64_t batch_, capacity_, kv_dim_, length_ = 0;
  bool one_layer_only_;
  Buffer k_, v_;
  std::vector<uint8_t> valid_;          // [batch, capacity]
  std::vector<int32_t> next_position_;  // valid tokens seen so far, per sequence
};

class Decoder {
 public:
  // model_dir: an HF directory (config.json + safetensors). compute: f32 or bf16.
  static Decoder load(const std::string& model_dir, DType compute = DType::F32);

  const ModelConfig& config() const { return config_; }
  const ArchTable& arch() const { return *arch_; }
  const ModelWeights& weights() const { return weights_; }

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

 private:
  struct Scratch {
    Buffer hidden, normed, q, k, v, qkv, attn, tmp, gate, up, logits, positions, key_valid;
  };
  void forward_hidden(const TokenBatch& batch, KvCache& cache, float* hidden);
  void layer_forward(int64_t layer, const TokenBatch& batch, KvCache& cache, float* h,
                     const int32_t* positions, const uint8_t* key_valid);
  void norm(const NormWeights& w, const float* x, float* out, int64_t rows, int64_t dim) const;
  void linear(const LinearWeights& w, const float* x, int64_t rows, float* y) const;
  void head_logits(const float* hidden, int64_t rows, float* logits) const;

  const ArchTable* arch_ = nullptr;
  ModelConfig config_;
  ModelWeights weights_;
  RopeTable rope_global_, rope_local_;
  Scratch scratch_;
};

}  // namespace zoft
