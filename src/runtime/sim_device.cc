#include "runtime/sim_device.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include "core/error.h"

namespace zoft::runtime {

// One record made and completed is one step of the counters; wait / synchronize compare
// against the number of records made when they were called (CUDA's "latest record" rule).
class SimDevice::SimEvent final : public Event {
 public:
  std::mutex mutex;
  std::condition_variable cv;
  uint64_t recorded = 0, completed = 0;

  void complete(uint64_t record) {
    std::lock_guard<std::mutex> lock(mutex);
    completed = std::max(completed, record);
    cv.notify_all();
  }
  void wait_for(uint64_t record) {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return completed >= record; });
  }
};

class SimDevice::SimStream final : public Stream {
 public:
  SimStream(SimDevice& device, uint64_t seed) : device_(device), random_(seed) {
    worker_ = std::thread([this] { loop(); });
  }
  ~SimStream() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();  // the queue is drained first
  }

  void push(std::function<void()> work) {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(work));
    cv_.notify_all();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> work;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      delay();
      try {
        work();
      } catch (...) {
        std::lock_guard<std::mutex> lock(device_.error_mutex_);
        if (!device_.error_) device_.error_ = std::current_exception();
      }
    }
  }

  void delay() {
    int max = device_.options_.max_delay_us;
    if (max <= 0) return;
    int us = std::uniform_int_distribution<int>(0, max)(random_);
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }

  SimDevice& device_;
  std::mt19937_64 random_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

SimDevice::SimDevice(SimOptions options) : options_(std::move(options)) {
  compute_ = std::make_unique<SimStream>(*this, options_.seed);
}

SimDevice::~SimDevice() {
  compute_.reset();
  std::lock_guard<std::mutex> lock(memory_mutex_);
  for (auto& [base, size] : device_memory_) std::free(const_cast<uint8_t*>(base));
}

Stream& SimDevice::compute_stream() {
  return *compute_;
}

std::unique_ptr<Stream> SimDevice::make_stream() {
  return std::make_unique<SimStream>(*this, options_.seed + 1000003 * ++streams_made_);
}

std::unique_ptr<Event> SimDevice::make_event() {
  return std::make_unique<SimEvent>();
}

void* SimDevice::allocate(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(memory_mutex_);
    if (options_.capacity && in_use_ + bytes > options_.capacity)
      fail("simulated device: out of memory: {} bytes in use + {} > capacity {}", in_use_, bytes,
           options_.capacity);
  }
  void* p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  ZOFT_CHECK(p != nullptr, "simulated device: out of memory allocating {} bytes", bytes);
  std::lock_guard<std::mutex> lock(memory_mutex_);
  device_memory_[static_cast<const uint8_t*>(p)] = bytes;
  in_use_ += bytes;
  peak_ = std::max(peak_, in_use_);
  return p;
}

uint64_t SimDevice::bytes_in_use() const {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  return in_use_;
}

uint64_t SimDevice::peak_bytes() const {
  std::lock_guard<std::mutex> lock(memory_mutex_);
  return peak_;
}

void SimDevice::release(void* device_memory) {
  if (!device_memory) return;
  std::lock_guard<std::mutex> lock(memory_mutex_);
  auto it = device_memory_.find(static_cast<const uint8_t*>(device_memory));
  ZOFT_CHECK(it != device_memory_.end(), "simulated device: release of memory not allocated");
  in_use_ -= it->second;
  device_memory_.erase(it);
  std::free(device_memory);
}

void* SimDevice::allocate_pinned(size_t bytes) {
  void* p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  ZOFT_CHECK(p != nullptr, "simulated device: out of host memory allocating {} bytes", bytes);
  return p;
}

void SimDevice::release_pinned(void* host_memory) {
  std::free(host_memory);
}

bool SimDevice::is_device(const void* p, size_t n) const {
  const uint8_t* q = static_cast<const uint8_t*>(p);
  std::lock_guard<std::mutex> lock(memory_mutex_);
  auto it = device_memory_.upper_bound(q);
  if (it == device_memory_.begin()) return false;
  --it;
  return q >= it->first && q + n <= it->first + it->second;
}

void SimDevice::check_device(const void* p, size_t n, const char* what) const {
  ZOFT_CHECK(is_device(p, n), "simulated device: {} ({} bytes) is not device memory", what, n);
}

SimDevice::SimStream& SimDevice::cast(Stream& s) {
  return static_cast<SimStream&>(s);
}

void SimDevice::copy_to_device(Stream& s, void* device_dst, const void* host_src, size_t n) {
  check_device(device_dst, n, "copy_to_device destination");
  ZOFT_CHECK(!is_device(host_src, 1), "simulated device: copy_to_device from device memory");
  cast(s).push([this, device_dst, host_src, n] {
    if (options_.on_access) options_.on_access(device_dst, n, true, true);
    std::memcpy(device_dst, host_src, n);
    if (options_.on_access) options_.on_access(device_dst, n, true, false);
  });
}

void SimDevice::copy_to_host(Stream& s, void* host_dst, const void* device_src, size_t n) {
  check_device(device_src, n, "copy_to_host source");
  ZOFT_CHECK(!is_device(host_dst, 1), "simulated device: copy_to_host into device memory");
  cast(s).push([this, host_dst, device_src, n] {
    if (options_.on_access) options_.on_access(device_src, n, false, true);
    std::memcpy(host_dst, device_src, n);
    if (options_.on_access) options_.on_access(device_src, n, false, false);
  });
}

void SimDevice::copy_on_device(Stream& s, void* device_dst, const void* device_src, size_t n) {
  check_device(device_dst, n, "copy_on_device destination");
  check_device(device_src, n, "copy_on_device source");
  cast(s).push([this, device_dst, device_src, n] {
    if (options_.on_access) options_.on_access(device_src, n, false, true);
    if (options_.on_access) options_.on_access(device_dst, n, true, true);
    std::memmove(device_dst, device_src, n);
    if (options_.on_access) options_.on_access(device_dst, n, true, false);
    if (options_.on_access) options_.on_access(device_src, n, false, false);
  });
}

void SimDevice::record(Event& e, Stream& s) {
  SimEvent& event = static_cast<SimEvent&>(e);
  uint64_t record;
  {
    std::lock_guard<std::mutex> lock(event.mutex);
    record = ++event.recorded;
  }
  cast(s).push([&event, record] { event.complete(record); });
}

void SimDevice::wait(Stream& s, Event& e) {
  SimEvent& event = static_cast<SimEvent&>(e);
  uint64_t record;
  {
    std::lock_guard<std::mutex> lock(event.mutex);
    record = event.recorded;  // the latest record made before this call
  }
  if (record == 0 || options_.drop_waits) return;
  cast(s).push([&event, record] { event.wait_for(record); });
}

void SimDevice::synchronize(Event& e) {
  SimEvent& event = static_cast<SimEvent&>(e);
  uint64_t record;
  {
    std::lock_guard<std::mutex> lock(event.mutex);
    record = event.recorded;
  }
  event.wait_for(record);
  rethrow();
}

void SimDevice::synchronize(Stream& s) {
  SimEvent done;
  record(done, s);
  synchronize(done);
}

void SimDevice::enqueue(Stream& s, std::function<void()> work) {
  cast(s).push(std::move(work));
}

void SimDevice::rethrow() {
  std::lock_guard<std::mutex> lock(error_mutex_);
  if (error_) std::rethrow_exception(error_);
}

}  // namespace zoft::runtime
