#include "runtime/gpu_tier.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "runtime/plan.h"
#include "runtime/sim_device.h"
#ifdef ZOFT_CUDA
#include "runtime/cuda/cuda_device.h"
#endif

namespace zoft::runtime {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// "0-2, 7" for the blocks whose streamed flag equals `streamed`.
std::string block_ranges(const std::vector<bool>& is_streamed, bool streamed) {
  std::string out;
  const int64_t n = int64_t(is_streamed.size());
  for (int64_t b = 0; b < n; ++b) {
    if (is_streamed[size_t(b)] != streamed) continue;
    int64_t end = b;
    while (end + 1 < n && is_streamed[size_t(end + 1)] == streamed) ++end;
    out += (out.empty() ? "" : ", ") +
           (end == b ? fmt::format("{}", b) : fmt::format("{}-{}", b, end));
    b = end;
  }
  return out.empty() ? "none" : out;
}

uint64_t streamed_bytes(const ResidencyPlan& p) {
  uint64_t n = 0;
  for (size_t b = 0; b < p.streamed.size(); ++b)
    if (p.streamed[b]) n += p.block_bytes[b];
  return n;
}

// The plan printout: where each block lives, what crosses the bus, and the least time that
// takes at the bandwidth measured here.
std::string describe(const ResidencyPlan& p, const std::string& device, uint64_t budget,
                     double h2d_gbps) {
  const uint64_t up = streamed_bytes(p);
  const double floor_s = double(up) / (h2d_gbps * 1e9);
  return fmt::format(
      "gpu tier on {}, budget gpu={}:\n"
      "  {}\n"
      "  resident on the device: blocks {} (block 0 = embeddings, {} = final norm + LM head)\n"
      "  streamed from RAM: blocks {}\n"
      "  bus per ZO2 step: {} up + {} down; per forward (eval, each generated token): {} up\n"
      "  host-to-device measured {:.2f} GB/s -> bus floor {:.3g} s per ZO2 step (up and down "
      "overlap), {:.3g} s per forward\n",
      device, format_bytes(budget), p.text(), block_ranges(p.streamed, false),
      p.streamed.size() - 1, block_ranges(p.streamed, true), format_bytes(up), format_bytes(up),
      format_bytes(up), h2d_gbps, floor_s, floor_s);
}

}  // namespace

bool is_gpu_tier_device(const std::string& device) {
  return device == "cuda" || device == "sim";
}

double measure_h2d_gbps(Device& device, uint64_t bytes) {
  bytes = std::max<uint64_t>(bytes, 4096);
  std::vector<uint8_t> host(bytes, 1);
  void* target = device.allocate(bytes);
  std::unique_ptr<Stream> stream = device.make_stream();
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const double start = now_seconds();
    device.copy_to_device(*stream, target, host.data(), bytes);
    device.synchronize(*stream);
    best = std::min(best, now_seconds() - start);
  }
  device.release(target);
  return double(bytes) / std::max(best, 1e-9) / 1e9;
}

double GpuTierReport::bus_floor_seconds() const {
  const uint64_t larger = std::max(stats.bytes_uploaded, stats.bytes_written_back);
  return double(larger) / (std::max(h2d_gbps, 1e-9) * 1e9);
}

std::string GpuTierReport::text() const {
  return fmt::format(
      "gpu tier: uploaded {} in {} uploads, wrote back {} in {} write-backs over {:.3f} s (bus "
      "floor {:.3g} s at {:.2f} GB/s); compute waited {:.3g} s on uploads ({:.1f}% of the run "
      "overlapped); peak device memory {} of gpu={} ({} of {} bytes)",
      format_bytes(stats.bytes_uploaded), stats.uploads, format_bytes(stats.bytes_written_back),
      stats.write_backs, seconds, bus_floor_seconds(), h2d_gbps, stats.upload_wait_seconds,
      100.0 * (1.0 - stats.upload_wait_seconds / std::max(seconds, 1e-9)),
      format_bytes(peak_device_bytes), format_bytes(budget), peak_device_bytes, budget);
}

void GpuTier::open_device(const GpuTierOptions& o) {
  if (o.device == "sim") {
    SimOptions sim;
    sim.capacity = o.budget;  // beyond it allocate() throws, as a GPU out of memory does
    auto device = std::make_unique<SimDevice>(sim);
    sim_ = device.get();
    device_ = std::move(device);
    return;
  }
  ZOFT_CHECK(o.device == "cuda", "the GPU tier runs on cuda or sim, not '{}'", o.device);
#ifdef ZOFT_CUDA
  device_ = std::make_unique<CudaDevice>();
#else
  fail("--device cuda: this build has no CUDA backend (configure with -DZOFT_CUDA=ON)");
#endif
}

std::unique_ptr<GpuTier> GpuTier::attach(Decoder& model, const GpuTierOptions& o) {
  // The plan first: a bad budget is one line before any device work.
  ResidencyPlan plan = plan_device_residency(model, o.budget, o.prefetch);
  std::unique_ptr<GpuTier> tier(new GpuTier(model));
  tier->budget_ = o.budget;
  tier->open_device(o);
  const uint64_t probe = std::min<uint64_t>(
      {o.budget, uint64_t(64) << 20, std::max<uint64_t>(plan.slot_bytes, uint64_t(4) << 20)});
  tier->h2d_gbps_ = measure_h2d_gbps(*tier->device_, probe);
  tier->plan_text_ = describe(plan, tier->device_->name(), o.budget, tier->h2d_gbps_);
  if (o.print) std::fprintf(stderr, "zoft: %s", tier->plan_text_.c_str());
  if (!tier->sim_) model.set_compute_device(zoft::Device::CUDA);  // sim: the CPU ops compute
  try {
    tier->residency_ = DeviceResidency::attach(model, *tier->device_, o.budget, o.prefetch);
  } catch (...) {
    model.set_compute_device(zoft::Device::CPU);
    throw;
  }
  for (ParameterRef p : tier->residency_->homes()) {
    p.tensor.device =
        zoft::Device::CPU;  // the homes are host memory whatever the model computes on
    tier->homes_.push_back(p);
  }
  tier->start_ = now_seconds();
  return tier;
}

GpuTier::~GpuTier() {
  residency_.reset();  // writes every block back to its home and points the model there
  if (!sim_) {
    try {
      model_.set_compute_device(zoft::Device::CPU);
    } catch (...) {  // a destructor must not throw; the device error was already reported
    }
  }
}

GpuTierReport GpuTier::report() const {
  GpuTierReport r;
  r.stats = residency_->stats();
  r.seconds = now_seconds() - start_;
  r.h2d_gbps = h2d_gbps_;
  r.budget = budget_;
  // A GPU's weights are what the residency allocated; the simulated device counts every byte.
  r.peak_device_bytes = sim_ ? sim_->peak_bytes() : residency_->plan().device_bytes();
  return r;
}

const std::vector<ParameterRef>& GpuTier::synced_homes() {
  residency_->sync_homes();
  return homes_;
}

}  // namespace zoft::runtime
