// runtime/streams.h on a CUDA GPU (ZOFT_CUDA builds only). The compute stream is the backend's
// (cuda::context().stream, where every cuda:: op enqueues), so work the streamer's callers
// enqueue through backend/ops.h is ordered by the same events. Copy streams are created
// non-blocking: they do not serialise with the legacy default stream, only through events.
// Every CUDA call is checked (ZOFT_CUDA_CHECK): a failure throws Error naming the call.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/streams.h"

namespace zoft::runtime {

class CudaDevice final : public Device {
 public:
  CudaDevice();  // throws Error when there is no GPU
  ~CudaDevice() override;

  const char* name() const override { return "cuda"; }
  Stream& compute_stream() override { return *compute_; }
  std::unique_ptr<Stream> make_stream() override;
  std::unique_ptr<Event> make_event() override;

  void* allocate(size_t bytes) override;
  void release(void* device_memory) override;
  void* allocate_pinned(size_t bytes) override;
  void release_pinned(void* host_memory) override;

  void copy_to_device(Stream& s, void* device_dst, const void* host_src, size_t n) override;
  void copy_to_host(Stream& s, void* host_dst, const void* device_src, size_t n) override;
  void copy_on_device(Stream& s, void* device_dst, const void* device_src, size_t n) override;

  void record(Event& e, Stream& s) override;
  void wait(Stream& s, Event& e) override;
  void synchronize(Event& e) override;
  void synchronize(Stream& s) override;

  static cudaStream_t native(Stream& s);

 private:
  std::unique_ptr<Stream> compute_;
};

}  // namespace zoft::runtime
