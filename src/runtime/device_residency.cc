#include "runtime/device_residency.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "runtime/plan.h"

namespace zoft::runtime {

namespace {

uint64_t align256(uint64_t n) {
  return (n + 255) / 256 * 256;
}

}  // namespace

std::string ResidencyPlan::text() const {
  int64_t streamed_count = 0, layers = int64_t(streamed.size()) - 2;
  uint64_t streamed_bytes = 0;
  for (size_t b = 0; b < streamed.size(); ++b)
    if (streamed[b]) ++streamed_count, streamed_bytes += block_bytes[b];
  return fmt::format(
      "gpu tier: {} of {} layers resident with the embeddings and head ({}), {} streamed from RAM "
      "({}) through {} slot(s) of {}; device memory {}; bus per ZO2 step {} (each streamed "
      "block up and back once)",
      layers - streamed_count, layers, format_bytes(resident_bytes), streamed_count,
      format_bytes(streamed_bytes), slots, format_bytes(slot_bytes), format_bytes(device_bytes()),
      format_bytes(bytes_moved_per_step));
}

ResidencyPlan plan_device_residency(Decoder& model, uint64_t budget, int64_t prefetch) {
  if (budget == 0)
    fail("--max-memory gpu=0: the GPU tier needs memory (drop gpu= to keep every weight in RAM)");
  ZOFT_CHECK(prefetch >= 0, "--prefetch must be >= 0, got {}", prefetch);
  ResidencyPlan p;
  const int64_t blocks = model.num_blocks(), last = blocks - 1;
  p.block_bytes.assign(size_t(blocks), 0);
  for (const ParameterRef& ref : list_parameters(model))
    p.block_bytes[size_t(ref.block)] += align256(ref.tensor.nbytes());
  p.streamed.assign(size_t(blocks), false);
  uint64_t total = 0, largest = 0;
  for (int64_t b = 0; b < blocks; ++b) total += p.block_bytes[size_t(b)];
  for (int64_t b = 1; b < last; ++b) largest = std::max(largest, p.block_bytes[size_t(b)]);
  p.resident_bytes = p.block_bytes[0] + p.block_bytes[size_t(last)];
  if (total <= budget) {  // everything resident, nothing moves
    p.resident_bytes = total;
    return p;
  }
  p.slots = prefetch + 1;
  p.slot_bytes = largest;
  const uint64_t slots_bytes = uint64_t(p.slots) * largest;
  if (p.resident_bytes + slots_bytes > budget)
    fail(
        "--max-memory gpu={}: too small: blocks 0 and {} (embeddings, head) need {} on the device "
        "and {} slot(s) of the largest layer another {}: give at least gpu={}",
        format_bytes(budget), last, format_bytes(p.resident_bytes), p.slots,
        format_bytes(slots_bytes), format_bytes(p.resident_bytes + slots_bytes));
  bool streaming = false;  // resident layers are a prefix: the first that does not fit streams
  for (int64_t b = 1; b < last; ++b) {
    const uint64_t bytes = p.block_bytes[size_t(b)];
    if (!streaming && p.resident_bytes + bytes + slots_bytes <= budget) {
      p.resident_bytes += bytes;
    } else {
      streaming = true;
      p.streamed[size_t(b)] = true;
      p.bytes_moved_per_step += 2 * bytes;
    }
  }
  return p;
}

std::unique_ptr<DeviceResidency> DeviceResidency::attach(Decoder& model, Device& device,
                                                         uint64_t budget, int64_t prefetch) {
  ZOFT_CHECK(!model.residency(), "the model already has a residency (offload) attached");
  ResidencyPlan plan = plan_device_residency(model, budget, prefetch);
  std::unique_ptr<DeviceResidency> r(new DeviceResidency(model, device, std::move(plan)));
  r->prefetch_ = prefetch;
  model.set_residency(r.get());
  return r;
}

DeviceResidency::DeviceResidency(Decoder& model, Device& device, ResidencyPlan plan)
    : model_(model), device_(device), plan_(std::move(plan)) {
  homes_ = list_parameters(model_);
  const size_t blocks = plan_.streamed.size();
  held_.assign(blocks, false);
  dirty_.assign(blocks, false);
  resident_.assign(blocks, nullptr);
  computed_ = device_.make_event();  // outlives every wait on it (the streams are drained first)
  upload_stream_ = device_.make_stream();
  write_back_stream_ = device_.make_stream();
  for (size_t b = 0; b < blocks; ++b) {
    if (plan_.streamed[b]) continue;
    resident_[b] = device_.allocate(plan_.block_bytes[b]);
    copy_in(int64_t(b), resident_[b], *upload_stream_);
  }
  for (int64_t i = 0; i < plan_.slots; ++i) {
    Slot s;
    s.memory = device_.allocate(plan_.slot_bytes);
    s.uploaded = device_.make_event();
    s.written = device_.make_event();
    slots_.push_back(std::move(s));
  }
  device_.synchronize(*upload_stream_);
  for (size_t b = 0; b < blocks; ++b)
    if (resident_[b]) bind(int64_t(b), resident_[b]);
}

void DeviceResidency::sync_homes() {
  device_.synchronize(*upload_stream_);
  device_.synchronize(*write_back_stream_);
  device_.record(*computed_, device_.compute_stream());
  device_.wait(*write_back_stream_, *computed_);
  for (size_t b = 0; b < resident_.size(); ++b)
    if (resident_[b] && dirty_[b]) copy_out(int64_t(b), resident_[b], *write_back_stream_);
  device_.synchronize(*write_back_stream_);
  std::fill(dirty_.begin(), dirty_.end(), false);
}

DeviceResidency::~DeviceResidency() {
  try {
    sync_homes();
    for (size_t b = 0; b < resident_.size(); ++b) bind(int64_t(b), nullptr);
  } catch (...) {  // a destructor must not throw; the device error was already reported
  }
  model_.set_residency(nullptr);
  for (void* p : resident_) device_.release(p);
  for (Slot& s : slots_) device_.release(s.memory);
}

std::vector<uint64_t> DeviceResidency::offsets(int64_t block) const {
  std::vector<uint64_t> out(homes_.size(), 0);
  uint64_t at = 0;
  for (const ParameterRef& p : homes_)
    if (p.block == block) {
      out[p.id] = at;
      at += align256(p.tensor.nbytes());
    }
  return out;
}

void DeviceResidency::copy_in(int64_t block, void* image, Stream& stream) {
  std::vector<uint64_t> at = offsets(block);
  for (const ParameterRef& p : homes_)
    if (p.block == block)
      device_.copy_to_device(stream, static_cast<uint8_t*>(image) + at[p.id], p.tensor.data,
                             p.tensor.nbytes());
}

void DeviceResidency::copy_out(int64_t block, const void* image, Stream& stream) {
  std::vector<uint64_t> at = offsets(block);
  for (const ParameterRef& p : homes_)
    if (p.block == block)
      device_.copy_to_host(stream, p.tensor.data, static_cast<const uint8_t*>(image) + at[p.id],
                           p.tensor.nbytes());
}

void DeviceResidency::bind(int64_t block, void* image) {
  std::vector<uint64_t> at = offsets(block);
  bind_block(model_, block, [&](const ParameterRef& p) -> void* {
    return image ? static_cast<uint8_t*>(image) + at[p.id] : homes_[p.id].tensor.data;
  });
}

int64_t DeviceResidency::slot_of(int64_t block) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].in_use && slots_[i].block == block) return int64_t(i);
  return -1;
}

int64_t DeviceResidency::next_streamed(int64_t after) const {
  const int64_t blocks = int64_t(plan_.streamed.size());
  for (int64_t k = 1; k <= blocks; ++k) {
    int64_t b = (after + k) % blocks;
    if (plan_.streamed[size_t(b)]) return b;
  }
  return -1;
}

bool DeviceResidency::upload(int64_t block) {
  Slot* slot = nullptr;
  for (Slot& s : slots_)
    if (!s.in_use) slot = &s;
  if (!slot)  // a block read ahead but not acquired gives its slot up (it is unmodified)
    for (Slot& s : slots_)
      if (!held_[size_t(s.block)]) slot = &s;
  if (!slot) return false;
  slot->block = block;
  slot->in_use = true;
  // The slot's previous block, and this block's last image, must be written back first.
  for (Slot& s : slots_) device_.wait(*upload_stream_, *s.written);
  copy_in(block, slot->memory, *upload_stream_);
  device_.record(*slot->uploaded, *upload_stream_);
  stats_.uploads += 1;
  stats_.bytes_uploaded += plan_.block_bytes[size_t(block)];
  return true;
}

void DeviceResidency::acquire(int64_t block) {
  ZOFT_CHECK(!held_[size_t(block)], "block {} acquired twice", block);
  if (!plan_.streamed[size_t(block)]) {
    held_[size_t(block)] = true;
    return;
  }
  if (slot_of(block) < 0) ZOFT_CHECK(upload(block), "no free device slot for block {}", block);
  Slot& slot = slots_[size_t(slot_of(block))];
  held_[size_t(block)] = true;  // before reading ahead: this slot is not to be given up
  int64_t ahead = block;
  for (int64_t i = 0; i < prefetch_; ++i) {
    ahead = next_streamed(ahead);
    if (ahead < 0 || ahead == block) break;
    if (slot_of(ahead) < 0 && !upload(ahead)) break;
  }
  const auto start = std::chrono::steady_clock::now();
  device_.synchronize(*slot.uploaded);
  stats_.upload_wait_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bind(block, slot.memory);
}

void DeviceResidency::release(int64_t block, bool modified) {
  ZOFT_CHECK(held_[size_t(block)], "block {} released but not held", block);
  held_[size_t(block)] = false;
  if (!plan_.streamed[size_t(block)]) {
    dirty_[size_t(block)] = dirty_[size_t(block)] || modified;
    return;
  }
  Slot& slot = slots_[size_t(slot_of(block))];
  if (modified) {
    // The compute that wrote the slot is ordered before the copy back (host compute on the
    // simulated device has already run; a GPU's compute stream is waited for).
    device_.record(*computed_, device_.compute_stream());
    device_.wait(*write_back_stream_, *computed_);
    copy_out(block, slot.memory, *write_back_stream_);
    device_.record(*slot.written, *write_back_stream_);
    stats_.write_backs += 1;
    stats_.bytes_written_back += plan_.block_bytes[size_t(block)];
  }
  bind(block, nullptr);
  slot.in_use = false;
  slot.block = -1;
}

}  // namespace zoft::runtime
