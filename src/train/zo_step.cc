#include "train/zo_step.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace zoft {

double ZoStepResult::mean_loss() const {
  double sum = 0;
  for (size_t j = 0; j < loss_plus.size(); ++j) sum += loss_plus[j] + loss_minus[j];
  return sum / double(2 * loss_plus.size());
}

bool ZoStepResult::finite() const {
  for (size_t j = 0; j < loss_plus.size(); ++j)
    if (!std::isfinite(loss_plus[j]) || !std::isfinite(loss_minus[j])) return false;
  return true;
}

ZoStepper::ZoStepper(Decoder& model, zo::MezoSgd& optimizer, ZoOrder order)
    : model_(model), optimizer_(optimizer), order_(order) {
  if (model_.residency() && order_ == ZoOrder::Plain)  // offload streams block by block
    fail(
        "trainer.schedule plain cannot stream weights from disk: use zo2 with "
        "placement.max_memory");
  make_trainable(model_);
  params_ = list_parameters(model_);
  if (model_.config().tie_embeddings)
    for (const ParameterRef& p : params_)
      if (p.tensor.data == model_.weights().embed_tokens.data) tied_table_ = &p;
}

void ZoStepper::apply_pass(const zo::ZPass& pass, int64_t block) {
  for (const ParameterRef& p : params_)
    if (block < 0 || p.block == block) pass.apply(p.tensor, p.id, p.decay);
}

void ZoStepper::finish() {
  zo::ZPass pending = optimizer_.finish();
  BlockResidency* residency = model_.residency();
  if (!residency) return apply_pass(pending, -1);
  // Offload (runtime/): streamed blocks are in memory only between acquire and release.
  if (pending.is_identity()) return;
  for (int64_t block = 0; block < model_.num_blocks(); ++block) {
    residency->acquire(block);
    refresh_block(model_, block, params_);
    apply_pass(pending, block);
    residency->release(block, true);
  }
}

ZoStepResult ZoStepper::forward_passes(const TokenBatch& batch, const std::vector<int32_t>& targets,
                                       const LossOfTokens& loss_of) {
  std::vector<zo::ZPass> passes;
  for (int k = 0; k < optimizer_.num_passes(); ++k) passes.push_back(optimizer_.pass(k));
  ZoStepResult r = order_ == ZoOrder::Plain ? plain(batch, targets, loss_of, passes)
                                            : zo2(batch, targets, loss_of, passes);
  if (r.finite())
    for (size_t j = 0; j < r.loss_plus.size(); ++j)
      optimizer_.record(int(j), r.loss_plus[j], r.loss_minus[j]);
  return r;
}

ZoStepResult ZoStepper::plain(const TokenBatch& batch, const std::vector<int32_t>& targets,
                              const LossOfTokens& loss_of, const std::vector<zo::ZPass>& passes) {
  const int n = optimizer_.options().samples;
  ZoStepResult r;
  r.loss_plus.resize(size_t(n));
  r.loss_minus.resize(size_t(n));
  std::vector<float> token_loss(size_t(batch.rows()));
  for (int k = 0; k < 2 * n + 1; ++k) {
    apply_pass(passes[size_t(k)], -1);
    if (k == 2 * n) break;
    model_.token_losses(batch, targets.data(), token_loss.data());
    (k % 2 == 0 ? r.loss_plus : r.loss_minus)[size_t(k / 2)] = loss_of(token_loss);
  }
  return r;
}

ZoStepResult ZoStepper::zo2(const TokenBatch& batch, const std::vector<int32_t>& targets,
                            const LossOfTokens& loss_of, const std::vector<zo::ZPass>& passes) {
  const int n = optimizer_.options().samples, forwards = 2 * n;
  const int64_t last = model_.num_blocks() - 1;
  std::vector<KvCache> caches;
  std::vector<ForwardState> states(static_cast<size_t>(forwards));
  for (int k = 0; k < forwards; ++k)
    caches.emplace_back(model_.config(), batch.batch, batch.seq, true);
  for (int k = 0; k < forwards; ++k)
    model_.begin_forward(batch, caches[size_t(k)], states[size_t(k)]);

  // A tied table is perturbed in place with the last block; the embedding lookup of forward k
  // sees it as it will be then: the looked-up rows with passes 0..k applied to a copy of them.
  auto perturbed_rows = [&](int k) {
    return EmbeddingRowsFn([this, k, &passes](const int32_t* ids, int64_t rows, float* out) {
      const Tensor& table = tied_table_->tensor;
      const int64_t H = table.dim(1);
      std::vector<uint8_t> row(size_t(H) * dtype_size(table.dtype));
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* src = static_cast<const uint8_t*>(table.data) + size_t(ids[r]) * row.size();
        std::memcpy(row.data(), src, row.size());
        Tensor view(row.data(), table.dtype, {H});
        for (int j = 0; j <= k; ++j)
          passes[size_t(j)].apply_at(view, tied_table_->id, tied_table_->decay,
                                     uint64_t(ids[r]) * uint64_t(H));
        convert_to_f32(row.data(), table.dtype, out + r * H, size_t(H));
      }
    });
  };

  ZoStepResult r;
  r.loss_plus.resize(size_t(n));
  r.loss_minus.resize(size_t(n));
  std::vector<float> token_loss(size_t(batch.rows()));
  // Offload (runtime/): a streamed block is read into a slot (read ahead) before its passes
  // and written back after them, while the next block computes.
  BlockResidency* residency = model_.residency();
  for (int64_t block = 0; block <= last; ++block) {
    if (residency) {
      residency->acquire(block);
      refresh_block(model_, block, params_);
    }
    for (int k = 0; k <= forwards; ++k) {
      apply_pass(passes[size_t(k)], block);
      if (k == forwards) break;
      ForwardState& state = states[size_t(k)];
      if (block == 0 && tied_table_) {
        EmbeddingRowsFn rows = perturbed_rows(k);
        model_.run_block(block, state, &rows);
      } else {
        model_.run_block(block, state);
      }
      if (block == last) {
        model_.losses_from_hidden(state.h(), batch.rows(), targets.data(), token_loss.data());
        (k % 2 == 0 ? r.loss_plus : r.loss_minus)[size_t(k / 2)] = loss_of(token_loss);
      }
    }
    if (residency) residency->release(block, true);
  }
  return r;
}

}  // namespace zoft
