// A device simulated on the CPU, for testing what runs on streams (runtime/streams.h) on a
// machine without a GPU. "Device memory" is host memory the device keeps track of; each stream
// is a worker thread that runs its queue in order; an event is a pair of counters (records made,
// records completed). Optional random delays before every queued operation make a missing
// event show up as a wrong result instead of passing by luck of timing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/streams.h"

namespace zoft::runtime {

struct SimOptions {
  int max_delay_us = 0;  // each queued operation first sleeps uniform [0, max] microseconds
  uint64_t seed = 1;     // of the delays (one generator per stream)
  // Called on the stream's thread around every copy that touches device memory: begin = true
  // before the bytes move, false after; write = the device memory is the destination. Tests use
  // it to see that a slot is never refilled while compute or a write-back still reads it.
  std::function<void(const void* device_memory, size_t n, bool write, bool begin)> on_access;
  // Tests only: make wait() a no-op, to show that the delays expose a missing event.
  bool drop_waits = false;
  // Device memory the simulated device has (0: unlimited); allocate() beyond it throws, as a GPU
  // out of memory does.
  uint64_t capacity = 0;
};

class SimDevice final : public Device {
 public:
  explicit SimDevice(SimOptions options = {});
  ~SimDevice() override;  // drains every stream

  const char* name() const override { return "simulated"; }
  Stream& compute_stream() override;
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

  // Simulated kernels: `work` runs on the stream's thread in stream order. Rethrown by the next
  // synchronize when it throws.
  void enqueue(Stream& s, std::function<void()> work);
  // Whether p lies inside memory from allocate() (copies check their device side).
  bool is_device(const void* p, size_t n) const;
  // Device memory allocated now, and the most allocated at once (bytes asked for).
  uint64_t bytes_in_use() const;
  uint64_t peak_bytes() const;

 private:
  class SimStream;
  class SimEvent;

  SimStream& cast(Stream& s);
  void check_device(const void* p, size_t n, const char* what) const;
  void rethrow();

  SimOptions options_;
  std::unique_ptr<SimStream> compute_;
  std::atomic<uint64_t> streams_made_{0};
  mutable std::mutex memory_mutex_;
  std::map<const uint8_t*, size_t> device_memory_;  // base -> size
  uint64_t in_use_ = 0, peak_ = 0;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace zoft::runtime
