#include "train/zo_step.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "zo/perturb.h"

namespace zoft {

double ZoStepResult::mean_loss() const {
  double sum = 0;
  for (double loss : losses) sum += loss;
  return sum / double(losses.size());
}

bool ZoStepResult::finite() const {
  for (double loss : losses)
    if (!std::isfinite(loss)) return false;
  return true;
}

LossOfHidden token_loss_head(const std::vector<int32_t>& targets, const LossOfTokens& loss_of) {
  return [&targets, &loss_of](Decoder& model, const float* hidden, int64_t rows) {
    std::vector<float> token_loss(static_cast<size_t>(rows));
    model.losses_from_hidden(hidden, rows, targets.data(), token_loss.data());
    return loss_of(token_loss);
  };
}

ZoStepper::ZoStepper(Decoder& model, zo::MezoSgd& optimizer, ZoOrder order,
                     const std::vector<ParameterRef>* trained)
    : model_(model), optimizer_(optimizer), order_(order) {
  if (model_.residency() && order_ == ZoOrder::Plain)  // offload streams block by block
    fail(
        "trainer.schedule plain cannot stream weights from disk: use zo2 with "
        "placement.max_memory");
  if (model_.device() != Device::CPU &&
      optimizer_.options().samples + 1 > zo::kMaxDeviceTerms)  // a pass's terms, on the device
    fail("optim.samples must be < {} with the model on {}", zo::kMaxDeviceTerms,
         device_name(model_.device()));
  if (trained) {  // LoRA: the base is frozen and never perturbed
    params_ = *trained;
    return;
  }
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

// The copy lives on the weights' device (a device-to-device copy on a GPU).
void ZoStepper::save_weights(int64_t block) {
  const Device device = model_.device();
  size_t bytes = 0;
  for (const ParameterRef& p : params_)
    if (block < 0 || p.block == block) bytes += p.tensor.nbytes();
  if (saved_.size() < bytes || saved_.device() != device) {
    saved_ = DeviceBuffer();  // back to the pool first
    saved_ = DeviceBuffer(device, bytes);
  }
  uint8_t* at = saved_.as<uint8_t>();
  for (const ParameterRef& p : params_)
    if (block < 0 || p.block == block) {
      ops::copy(device, at, p.tensor.data, p.tensor.nbytes());
      at += p.tensor.nbytes();
    }
}

void ZoStepper::restore_weights(int64_t block) {
  const uint8_t* at = saved_.as<uint8_t>();
  for (const ParameterRef& p : params_)
    if (block < 0 || p.block == block) {
      ops::copy(model_.device(), p.tensor.data, at, p.tensor.nbytes());
      at += p.tensor.nbytes();
    }
}

ZoStepResult ZoStepper::forward_passes(const TokenBatch& batch, const LossOfHidden& head) {
  std::vector<zo::ZPass> perturbations;
  for (int k = 0; k < optimizer_.num_forwards(); ++k)
    perturbations.push_back(optimizer_.perturbation(k));
  ZoStepResult r;
  r.losses = run_forwards(optimizer_.update(), perturbations, batch, head);
  if (optimizer_.options().estimator == zo::Estimator::TwoSided)
    for (size_t k = 0; k < r.losses.size(); ++k)
      (k % 2 == 0 ? r.loss_plus : r.loss_minus).push_back(r.losses[k]);
  if (r.finite()) optimizer_.record_forwards(r.losses);
  return r;
}

std::vector<double> ZoStepper::run_forwards(const zo::ZPass& update,
                                            const std::vector<zo::ZPass>& perturbations,
                                            const TokenBatch& batch, const LossOfHidden& head) {
  return order_ == ZoOrder::Plain ? plain(update, perturbations, batch, head)
                                  : zo2(update, perturbations, batch, head);
}

std::vector<double> ZoStepper::plain(const zo::ZPass& update,
                                     const std::vector<zo::ZPass>& perturbations,
                                     const TokenBatch& batch, const LossOfHidden& head) {
  apply_pass(update, -1);
  save_weights(-1);
  std::vector<double> losses;
  for (const zo::ZPass& perturbation : perturbations) {
    apply_pass(perturbation, -1);
    KvCache cache(model_.config(), batch.batch, batch.seq, true, model_.device());
    ForwardState state;
    model_.begin_forward(batch, cache, state);
    model_.run_blocks(state);
    losses.push_back(head(model_, state.h(), batch.rows()));
    if (!perturbation.is_identity()) restore_weights(-1);
  }
  return losses;
}

std::vector<double> ZoStepper::zo2(const zo::ZPass& update,
                                   const std::vector<zo::ZPass>& perturbations,
                                   const TokenBatch& batch, const LossOfHidden& head) {
  const size_t forwards = perturbations.size();
  const int64_t last = model_.num_blocks() - 1;
  std::vector<KvCache> caches;
  std::vector<ForwardState> states(forwards);
  for (size_t k = 0; k < forwards; ++k)
    caches.emplace_back(model_.config(), batch.batch, batch.seq, true, model_.device());
  for (size_t k = 0; k < forwards; ++k) model_.begin_forward(batch, caches[k], states[k]);

  // A tied table is updated and perturbed with the last block; the embedding lookup of forward
  // k sees it as it will be then: the looked-up rows, updated and perturbed in a copy (on the
  // table's device), then embedded from that copy.
  auto perturbed_rows = [&](size_t k) {
    return EmbeddingRowsFn([this, k, &update, &perturbations](const int32_t* ids, int64_t rows,
                                                              float scale, float* out) {
      const Tensor& table = tied_table_->tensor;
      const Device device = table.device;
      const int64_t H = table.dim(1);
      const size_t row_bytes = size_t(H) * dtype_size(table.dtype);
      DeviceBuffer copy(device, size_t(rows) * row_bytes);
      std::vector<int32_t> copy_ids(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        uint8_t* row = copy.as<uint8_t>() + size_t(r) * row_bytes;
        ops::copy(device, row, static_cast<const uint8_t*>(table.data) + size_t(ids[r]) * row_bytes,
                  row_bytes);
        Tensor view(row, table.dtype, {H});
        view.device = device;
        const uint64_t offset = uint64_t(ids[r]) * uint64_t(H);
        update.apply_at(view, tied_table_->id, tied_table_->decay, offset);
        perturbations[k].apply_at(view, tied_table_->id, tied_table_->decay, offset);
        copy_ids[size_t(r)] = int32_t(r);
      }
      Tensor copied(copy.data(), table.dtype, {rows, H});
      copied.device = device;
      DeviceBuffer device_ids(device, copy_ids.size() * sizeof(int32_t) + 1);
      ops::upload(device, device_ids.data(), copy_ids.data(), copy_ids.size() * sizeof(int32_t));
      ops::embedding(copied, device_ids.as<int32_t>(), rows, scale, out);
    });
  };

  std::vector<double> losses(forwards);
  // Offload (runtime/): a streamed block is read into a slot (read ahead) before its update
  // and forwards and written back after them, while the next block computes.
  BlockResidency* residency = model_.residency();
  for (int64_t block = 0; block <= last; ++block) {
    if (residency) {
      residency->acquire(block);
      refresh_block(model_, block, params_);
    }
    apply_pass(update, block);
    save_weights(block);
    for (size_t k = 0; k < forwards; ++k) {
      apply_pass(perturbations[k], block);
      ForwardState& state = states[k];
      if (block == 0 && tied_table_) {
        EmbeddingRowsFn rows = perturbed_rows(k);
        model_.run_block(block, state, &rows);
      } else {
        model_.run_block(block, state);
      }
      if (block == last)  // the LM head is the last block's
        losses[k] = head(model_, state.h(), batch.rows());
      if (!perturbations[k].is_identity()) restore_weights(block);
    }
    if (residency) residency->release(block, true);
  }
  return losses;
}

}  // namespace zoft
