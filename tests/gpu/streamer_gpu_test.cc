// The GPU block streamer on CUDA (runtime/cuda/cuda_device.h): the scenarios of
// tests/runtime/gpu_streamer_test.cc (there on the simulated device) with real streams, events,
// pinned memory and cudaMemcpyAsync; "compute" is cuda::add_inplace on the backend's stream.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include "backend/cuda/context.h"
#include "backend/cuda/ops.h"
#include "core/error.h"
#include "gpu_test_util.h"
#include "runtime/cuda/cuda_device.h"
#include "runtime/streamer_scenarios.h"

namespace zoft::runtime {
namespace {

// The cuda:: ops enqueue on the backend's stream, which is the device's compute stream.
class CudaKernels final : public testing::Kernels {
 public:
  explicit CudaKernels(CudaDevice& device) : device_(device) {}
  void add(Stream& s, float* y, const float* x, int64_t n) override {
    ASSERT_EQ(CudaDevice::native(s), CudaDevice::native(device_.compute_stream()));
    cuda::add_inplace(y, x, n);
  }

 private:
  CudaDevice& device_;
};

TEST(GpuStreamerCuda, InferenceEqualsResidentBitForBit) {
  ZOFT_REQUIRE_GPU();
  CudaDevice device;
  CudaKernels kernels(device);
  for (const testing::Scenario& sc : testing::scenarios())
    testing::inference(device, kernels, sc, 2);
}

TEST(GpuStreamerCuda, TrainingWritesEachBlockBackToItsHome) {
  ZOFT_REQUIRE_GPU();
  CudaDevice device;
  CudaKernels kernels(device);
  for (const testing::Scenario& sc : testing::scenarios())
    testing::training(device, kernels, sc, 3);
}

TEST(GpuStreamerCuda, Zo2ScheduleEqualsPlainOrder) {
  ZOFT_REQUIRE_GPU();
  CudaDevice device;
  CudaKernels kernels(device);
  for (const testing::Scenario& sc : testing::scenarios())
    testing::zo2_vs_plain(device, kernels, sc, 3);
}

// Large blocks, so that copies and kernels take long enough to overlap for real: a missing
// event would show as a wrong result here rather than in the small scenarios.
TEST(GpuStreamerCuda, LargeBlocksOverlapAndStayExact) {
  ZOFT_REQUIRE_GPU();
  CudaDevice device;
  CudaKernels kernels(device);
  testing::Scenario sc;
  sc.blocks = 6, sc.slots = 2, sc.prefetch = 1, sc.staging = 2, sc.disk = true;
  sc.size_scale = 1024;  // 0.7-2.2 M floats (3-9 MB) per block
  testing::training(device, kernels, sc, 2);
  testing::zo2_vs_plain(device, kernels, sc, 2);
}

TEST(GpuStreamerCuda, ErrorsAreChecked) {
  ZOFT_REQUIRE_GPU();
  CudaDevice device;
  // Out of memory is an Error naming the call (and leaves the context usable).
  EXPECT_THROW(device.allocate(size_t(1) << 52), Error);
  cudaGetLastError();
  void* a = device.allocate(1024);
  device.release(a);
}

}  // namespace
}  // namespace zoft::runtime
