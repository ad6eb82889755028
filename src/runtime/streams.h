// Streams, events and asynchronous copies between host and device memory: what the GPU block
// streamer (runtime/gpu_streamer.h) needs from a device, and nothing more. Two implementations:
// runtime/cuda/cuda_device.h (cudaStream_t, cudaEvent_t, cudaMemcpyAsync from cudaHostAlloc
// memory; ZOFT_CUDA builds only) and runtime/sim_device.h (a "device" simulated on the CPU with
// one worker thread per stream, so that the streamer's ordering is tested on any machine).
//
// The semantics are CUDA's:
//   - work enqueued on one stream runs in enqueue order; different streams run concurrently;
//   - record(e, s): e completes once everything enqueued on s so far has run;
//   - wait(s, e): work enqueued on s after this call starts only once the LATEST record of e
//     made before this call has completed (no record yet: no wait). The host does not block;
//   - synchronize(e): the host blocks until that latest record has completed.
// So the order between streams is carried by events, and the host waits only where the host
// itself touches memory the device uses (a pinned staging buffer it is about to refill).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace zoft::runtime {

class Stream {
 public:
  virtual ~Stream() = default;
};

class Event {
 public:
  virtual ~Event() = default;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual const char* name() const = 0;

  // The stream compute runs on (CUDA: the backend's stream, where every cuda:: op enqueues);
  // owned by the device.
  virtual Stream& compute_stream() = 0;
  // A further stream (copies), concurrent with the compute stream.
  virtual std::unique_ptr<Stream> make_stream() = 0;
  virtual std::unique_ptr<Event> make_event() = 0;

  // Device memory, and page-locked host memory (the only host memory a copy can be truly
  // asynchronous from). Both throw Error when out of memory.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* device_memory) = 0;
  virtual void* allocate_pinned(size_t bytes) = 0;
  virtual void release_pinned(void* host_memory) = 0;

  // Enqueued copies; they return at once.
  virtual void copy_to_device(Stream& s, void* device_dst, const void* host_src, size_t n) = 0;
  virtual void copy_to_host(Stream& s, void* host_dst, const void* device_src, size_t n) = 0;
  virtual void copy_on_device(Stream& s, void* device_dst, const void* device_src, size_t n) = 0;

  virtual void record(Event& e, Stream& s) = 0;
  virtual void wait(Stream& s, Event& e) = 0;
  virtual void synchronize(Event& e) = 0;
  // The host blocks until everything enqueued on s so far has run.
  virtual void synchronize(Stream& s) = 0;
};

}  // namespace zoft::runtime
