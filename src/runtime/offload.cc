#include "runtime/offload.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "model/gguf_import.h"

namespace zoft::runtime {

namespace {

uint64_t align(uint64_t n, uint64_t to) {
  return (n + to - 1) / to * to;
}

// Bytes parameter p takes when resident: its storage now, or after make_trainable (matrices in
// the compute dtype, vectors f32).
uint64_t resident_bytes(const ParameterRef& p, DType compute, bool trainable) {
  uint64_t now = p.tensor.nbytes();
  if (!trainable || !p.decay) return now;
  return std::max(now, uint64_t(p.tensor.numel()) * dtype_size(compute));
}

// Gives back the memory behind a parameter's former storage once it has been copied elsewhere:
// a converted copy owned by the weights is freed; pages of the checkpoint's mmap are dropped
// (the file still holds them, so a later read would fault them back in, never see zeros).
void release_source(ModelWeights& w, const void* ptr, size_t n, bool mmap_backed) {
  for (auto it = w.owned.begin(); it != w.owned.end(); ++it) {
    auto* begin = static_cast<const uint8_t*>(it->data());
    if (ptr >= begin && ptr < begin + it->size()) {
      if (ptr == begin) w.owned.erase(it);
      return;
    }
  }
  if (!mmap_backed || n == 0) return;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  uintptr_t begin = uintptr_t(ptr) / page * page;
  uintptr_t end = (uintptr_t(ptr) + n + page - 1) / page * page;
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

std::vector<uint64_t> block_bytes(Decoder& model, bool trainable) {
  std::vector<uint64_t> out(size_t(model.num_blocks()), 0);
  const DType compute = model.weights().compute_dtype;
  for (const ParameterRef& p : list_parameters(model))
    out[size_t(p.block)] += align(resident_bytes(p, compute, trainable), 64);
  return out;
}

uint64_t activation_bytes(const ModelConfig& c, int64_t rows, int forwards, int64_t loss_rows) {
  const uint64_t M = uint64_t(rows), H = uint64_t(c.hidden_size), I = uint64_t(c.intermediate_size);
  const uint64_t qd = uint64_t(c.q_dim()), kd = uint64_t(c.kv_dim()), V = uint64_t(c.vocab_size);
  // Per forward in flight: hidden states and a one-layer KV cache.
  uint64_t per_forward = M * H + 2 * M * kd;
  // Shared scratch of a layer: normed, q, k, v, attn, tmp, gate, up (and a fused qkv).
  uint64_t scratch = M * (H + 2 * qd + 2 * kd + std::max(H, qd) + 2 * I + qd + 2 * kd);
  // Losses: logits a chunk of scored rows at a time (~8M floats at most), plus picked rows.
  uint64_t chunk = std::max<uint64_t>(1, (uint64_t(8) << 20) / V);
  uint64_t loss = std::min<uint64_t>(chunk, uint64_t(std::max<int64_t>(loss_rows, 1))) * (V + H);
  return 4 * (uint64_t(forwards) * per_forward + scratch + loss);
}

std::unique_ptr<Offload> Offload::attach(Decoder& model, const std::string& model_path,
                                         const OffloadOptions& o) {
  if (o.max_memory.empty()) return nullptr;
  PlanInput in;
  in.budgets = parse_max_memory(o.max_memory);
  in.prefetch = o.prefetch;
  in.activation_bytes = o.activation_bytes;
  const std::vector<ParameterRef> params = list_parameters(model);
  in.block_bytes = block_bytes(model, o.trainable);
  Plan plan = make_plan(in);
  if (!plan.streams_from_disk()) {
    if (o.print_plan)
      std::fprintf(stderr, "zoft: %severything is resident: nothing streams\n",
                   describe(plan).c_str());
    return nullptr;
  }

  std::unique_ptr<Offload> off(new Offload(model));
  off->plan_ = plan;
  // Layout: streamed blocks back to back (4 KiB aligned), parameters 64-byte aligned in each.
  BlockLayout& L = off->layout_;
  const size_t blocks = size_t(model.num_blocks());
  L.streamed.assign(blocks, false);
  L.file_offset.assign(blocks, 0);
  L.image_bytes.assign(blocks, 0);
  L.param_offset.assign(params.size(), 0);
  L.param_block.assign(params.size(), 0);
  for (size_t b = 0; b < blocks; ++b) L.streamed[b] = plan.home[b] == Tier::Disk;
  for (const ParameterRef& p : params) {
    L.param_block[p.id] = p.block;
    if (!L.streamed[size_t(p.block)]) continue;
    L.param_offset[p.id] = L.image_bytes[size_t(p.block)];
    L.image_bytes[size_t(p.block)] += align(p.tensor.nbytes(), 64);
    off->streamed_ids_[p.name] = p.id;
  }
  uint64_t file_bytes = 0;
  for (size_t b = 0; b < blocks; ++b)
    if (L.streamed[b]) {
      L.file_offset[b] = file_bytes;
      file_bytes += align(L.image_bytes[b], 4096);
    }

  // Write the streamed blocks out of the loaded weights, releasing each tensor's memory as it
  // goes, so that the peak stays near the budget while the file is made.
  off->file_ = std::make_unique<OffloadFile>(o.offload_dir, file_bytes, o.keep_file);
  ModelWeights& w = model.mutable_weights();
  const bool mmap_backed = !is_gguf_file(model_path);
  auto start = std::chrono::steady_clock::now();
  for (const ParameterRef& p : params) {
    if (!L.streamed[size_t(p.block)]) continue;
    off->file_->write(p.tensor.data, p.tensor.nbytes(),
                      L.file_offset[size_t(p.block)] + L.param_offset[p.id]);
    release_source(w, p.tensor.data, p.tensor.nbytes(), mmap_backed);
  }
  off->file_->sync();
  double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  off->write_mbps_ = double(file_bytes) / 1e6 / std::max(write_s, 1e-9);
  off->read_mbps_ = off->file_->measure_read_mbps(uint64_t(64) << 20);

  // Streamed blocks point at a read-only zero mapping until a slot holds them: reading it
  // costs no RAM (the kernel's zero page), writing it faults.
  off->unbound_bytes_ = size_t(plan.slot_bytes);
  off->unbound_ = ::mmap(nullptr, off->unbound_bytes_, PROT_READ,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (off->unbound_ == MAP_FAILED)
    fail("offload: cannot map {} bytes of address space", plan.slot_bytes);
  for (size_t b = 0; b < blocks; ++b)
    if (L.streamed[b])
      bind_block(model, int64_t(b), [&](const ParameterRef& p) {
        return static_cast<uint8_t*>(off->unbound_) + L.param_offset[p.id];
      });
  if (o.trainable) {
    // Resident blocks become writable copies; their former storage is released after.
    make_trainable(model, [&](int64_t block) { return L.streamed[size_t(block)]; });
    for (const ParameterRef& p : params)
      if (!L.streamed[size_t(p.block)])
        release_source(w, p.tensor.data, p.tensor.nbytes(), mmap_backed);
  }
  off->executor_ = std::make_unique<BlockExecutor>(model, *off->file_, L, plan.ram_slots,
                                                   plan.slot_bytes, plan.prefetch, off->unbound_);
  model.set_residency(off->executor_.get());

  off->plan_text_ = describe(plan, off->read_mbps_, off->write_mbps_) +
                    fmt::format("  offload file {}{}\n", off->file_->path(),
                                o.keep_file ? " (kept at exit)" : " (removed at exit)");
  if (o.print_plan) std::fprintf(stderr, "zoft: %s", off->plan_text_.c_str());
  return off;
}

Offload::~Offload() {
  if (model_.residency() == executor_.get()) model_.set_residency(nullptr);
  executor_.reset();  // completes queued writes before the file closes
  if (unbound_ && unbound_ != MAP_FAILED) ::munmap(unbound_, unbound_bytes_);
}

void Offload::write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  flush();
  // io's writer lays the file out; streamed tensors go in as zeros (read from the unbound zero
  // mapping, so no RAM) and are then overwritten in place from the offload file. The caller
  // makes the file visible only after this returns (save_checkpoint renames the directory).
  std::vector<NamedTensor> staged = tensors;
  std::vector<std::pair<std::string, uint32_t>> patches;
  for (NamedTensor& t : staged) {
    auto it = streamed_ids_.find(t.name);
    if (it == streamed_ids_.end()) continue;
    ZOFT_CHECK(t.tensor.nbytes() <= unbound_bytes_, "offload: tensor '{}' is larger than a slot",
               t.name);
    t.tensor.data = unbound_;
    patches.emplace_back(t.name, it->second);
  }
  zoft::write_safetensors(path, staged, metadata);
  SafetensorsFile written = SafetensorsFile::open(path);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    fail("{}: cannot reopen to write the streamed tensors: {}", path, std::strerror(errno));
  try {
    for (const auto& [name, id] : patches) {
      const SafetensorsInfo* info = written.find(name);
      ZOFT_CHECK(info, "{}: tensor '{}' missing after writing", path, name);
      const int64_t block = layout_.param_block[id];
      file_->copy_to(fd, info->offset, info->nbytes,
                     layout_.file_offset[size_t(block)] + layout_.param_offset[id]);
    }
    if (::fsync(fd) != 0) fail("{}: fsync failed: {}", path, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

std::vector<uint8_t> Offload::parameter_bytes(const ParameterRef& p) {
  std::vector<uint8_t> out(p.tensor.nbytes());
  const int64_t block = layout_.param_block[p.id];
  if (!layout_.streamed[size_t(block)]) {
    std::memcpy(out.data(), p.tensor.data, out.size());
    return out;
  }
  flush();
  file_->read(out.data(), out.size(),
              layout_.file_offset[size_t(block)] + layout_.param_offset[p.id]);
  return out;
}

}  // namespace zoft::runtime
