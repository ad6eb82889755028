#include "runtime/cuda/cuda_device.h"

#include "backend/cuda/check.h"
#include "backend/cuda/context.h"
#include "core/error.h"

namespace zoft::runtime {

namespace {

class CudaStream final : public Stream {
 public:
  CudaStream(cudaStream_t stream, bool owned) : stream(stream), owned(owned) {}
  ~CudaStream() override {
    if (owned) cudaStreamDestroy(stream);  // at exit the driver may be gone: not checked
  }
  cudaStream_t stream;
  bool owned;
};

class CudaEvent final : public Event {
 public:
  // Timing off: a timing event costs more to record and the streamer never reads times.
  CudaEvent() { ZOFT_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming)); }
  ~CudaEvent() override { cudaEventDestroy(event); }
  cudaEvent_t event = nullptr;
};

cudaEvent_t native_event(Event& e) {
  return static_cast<CudaEvent&>(e).event;
}

}  // namespace

CudaDevice::CudaDevice() {
  compute_ = std::make_unique<CudaStream>(cuda::context().stream, false);
}

CudaDevice::~CudaDevice() = default;

cudaStream_t CudaDevice::native(Stream& s) {
  return static_cast<CudaStream&>(s).stream;
}

std::unique_ptr<Stream> CudaDevice::make_stream() {
  cudaStream_t stream = nullptr;
  ZOFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return std::make_unique<CudaStream>(stream, true);
}

std::unique_ptr<Event> CudaDevice::make_event() {
  return std::make_unique<CudaEvent>();
}

// Slots are long-lived and large: cudaMalloc directly, not the pool (whose blocks are reused
// in the order of the compute stream only, while slots are written by the upload stream).
void* CudaDevice::allocate(size_t bytes) {
  void* p = nullptr;
  ZOFT_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

void CudaDevice::release(void* device_memory) {
  if (device_memory) ZOFT_CUDA_CHECK(cudaFree(device_memory));
}

// Page-locked, so that cudaMemcpyAsync is a DMA that overlaps with kernels; portable: usable
// from any context of the process.
void* CudaDevice::allocate_pinned(size_t bytes) {
  void* p = nullptr;
  ZOFT_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocPortable));
  return p;
}

void CudaDevice::release_pinned(void* host_memory) {
  if (host_memory) ZOFT_CUDA_CHECK(cudaFreeHost(host_memory));
}

void CudaDevice::copy_to_device(Stream& s, void* device_dst, const void* host_src, size_t n) {
  if (n == 0) return;
  ZOFT_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, n, cudaMemcpyHostToDevice, native(s)));
}

void CudaDevice::copy_to_host(Stream& s, void* host_dst, const void* device_src, size_t n) {
  if (n == 0) return;
  ZOFT_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, n, cudaMemcpyDeviceToHost, native(s)));
}

void CudaDevice::copy_on_device(Stream& s, void* device_dst, const void* device_src, size_t n) {
  if (n == 0) return;
  ZOFT_CUDA_CHECK(cudaMemcpyAsync(device_dst, device_src, n, cudaMemcpyDeviceToDevice, native(s)));
}

void CudaDevice::record(Event& e, Stream& s) {
  ZOFT_CUDA_CHECK(cudaEventRecord(native_event(e), native(s)));
}

void CudaDevice::wait(Stream& s, Event& e) {
  ZOFT_CUDA_CHECK(cudaStreamWaitEvent(native(s), native_event(e), 0));
}

void CudaDevice::synchronize(Event& e) {
  ZOFT_CUDA_CHECK(cudaEventSynchronize(native_event(e)));
}

void CudaDevice::synchronize(Stream& s) {
  ZOFT_CUDA_CHECK(cudaStreamSynchronize(native(s)));
}

}  // namespace zoft::runtime
