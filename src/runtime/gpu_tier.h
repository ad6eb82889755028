// The GPU tier as the commands run it (zoft eval / generate / train with placement.max_memory
// gpu=B on placement.device cuda): the device, the model marked as computing there
// (Decoder::set_compute_device) with its weights left in host memory, a DeviceResidency within B
// (runtime/device_residency.h), the plan printout (resident and streamed blocks, bytes over the
// bus per ZO2 step and per forward, the bus floor at the host-to-device bandwidth measured here)
// and the run's measured figures (bytes moved, time the host waited for uploads, peak device
// memory).
//
// placement.device sim is a testing aid, not a device users pick: a SimDevice
// (runtime/sim_device.h) whose capacity is the budget stands in for the GPU, and the CPU ops
// compute on its memory (host memory). CI runs the commands through it on machines without a
// GPU; results are bit-identical to the resident CPU run, and an allocation beyond the budget
// fails as a GPU out of memory would.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/parameters.h"
#include "runtime/device_residency.h"
#include "runtime/streams.h"

namespace zoft::runtime {

class SimDevice;

// Whether placement.device `device` computes through the GPU tier when given a gpu= budget.
bool is_gpu_tier_device(const std::string& device);  // "cuda" or "sim"

struct GpuTierOptions {
  std::string device = "cuda";  // "cuda", or "sim" (the testing aid above)
  uint64_t budget = 0;          // bytes of device memory for the weights
  int64_t prefetch = 2;         // streamed blocks uploaded ahead of the one computing
  bool print = true;            // the plan, to stderr
};

// What a run through the tier measured.
struct GpuTierReport {
  ResidencyStats stats;
  double seconds = 0;   // since attach
  double h2d_gbps = 0;  // measured at attach
  uint64_t peak_device_bytes = 0, budget = 0;
  // The bytes moved over the measured bandwidth: the least time the bus allows (ZO2: up and
  // down overlap on their own streams, so the larger direction counts).
  double bus_floor_seconds() const;
  std::string text() const;  // one line
};

class GpuTier {
 public:
  // Plans and attaches (one line on a bad budget). For training the model must be trainable
  // first (make_trainable): write-backs land in the homes.
  static std::unique_ptr<GpuTier> attach(Decoder& model, const GpuTierOptions& options);
  // Detaches (the homes then hold the latest weights) and marks the model as on the CPU again.
  ~GpuTier();
  GpuTier(const GpuTier&) = delete;
  GpuTier& operator=(const GpuTier&) = delete;

  const ResidencyPlan& plan() const { return residency_->plan(); }
  const std::string& plan_text() const { return plan_text_; }
  GpuTierReport report() const;
  // The weights in host memory, up to date (between forwards): what a checkpoint writes.
  const std::vector<ParameterRef>& synced_homes();

 private:
  GpuTier(Decoder& model) : model_(model) {}
  void open_device(const GpuTierOptions& options);

  Decoder& model_;
  std::unique_ptr<Device> device_;
  SimDevice* sim_ = nullptr;  // device_, when simulated
  std::unique_ptr<DeviceResidency> residency_;
  std::vector<ParameterRef> homes_;  // residency_->homes() marked as host memory
  std::string plan_text_;
  double h2d_gbps_ = 0;
  uint64_t budget_ = 0;
  double start_ = 0;  // steady clock, seconds
};

// Host-to-device bandwidth in GB/s (1e9 B/s): the best of a few copies of `bytes` from ordinary
// host memory (where the tier's homes are) into device memory.
double measure_h2d_gbps(Device& device, uint64_t bytes);

}  // namespace zoft::runtime
