// The GPU block streamer's logic on the simulated device (runtime/sim_device.h): random delays
// before every queued operation, and an access tracker that fails the test when a buffer is
// written while anything else reads or writes it (a slot refilled while compute or a
// write-back still uses it). The same scenarios run on CUDA in tests/gpu/streamer_gpu_test.cc.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "core/error.h"
#include "runtime/sim_device.h"
#include "runtime/streamer_scenarios.h"

namespace zoft::runtime {
namespace {

using testing::Scenario;

// Per device buffer (by base pointer): readers and writers now, and a generation counter that
// every write bumps. A write while anyone else uses the buffer, or a read while it is written,
// is a violation; so is a read that sees the generation change under it.
class AccessTracker {
 public:
  struct Use {
    const void* p;
    bool write;
    uint64_t generation;
  };
  Use begin(const void* p, bool write) {
    std::lock_guard<std::mutex> lock(mutex_);
    State& s = states_[p];
    if (write ? s.readers + s.writers > 0 : s.writers > 0) ++violations;
    (write ? s.writers : s.readers) += 1;
    if (write) ++s.generation;
    return {p, write, s.generation};
  }
  void end(const Use& use) {
    std::lock_guard<std::mutex> lock(mutex_);
    State& s = states_[use.p];
    (use.write ? s.writers : s.readers) -= 1;
    if (s.generation != use.generation) ++violations;
  }
  void on_access(const void* p, bool write, bool begin) {
    std::lock_guard<std::mutex> lock(mutex_);
    State& s = states_[p];
    if (begin) {
      if (write ? s.readers + s.writers > 0 : s.writers > 0) ++violations;
      (write ? s.writers : s.readers) += 1;
      if (write) ++s.generation;
    } else {
      (write ? s.writers : s.readers) -= 1;
    }
  }
  int64_t violations = 0;

 private:
  struct State {
    int readers = 0, writers = 0;
    uint64_t generation = 0;
  };
  std::mutex mutex_;
  std::map<const void*, State> states_;
};

// y += x as a simulated kernel that registers its reads and writes with the tracker.
class SimKernels final : public testing::Kernels {
 public:
  SimKernels(SimDevice& device, AccessTracker& tracker) : device_(device), tracker_(tracker) {}
  void add(Stream& s, float* y, const float* x, int64_t n) override {
    device_.enqueue(s, [this, y, x, n] {
      AccessTracker::Use read = tracker_.begin(x, false), write = tracker_.begin(y, true);
      for (int64_t i = 0; i < n; ++i) y[i] += x[i];
      tracker_.end(write);
      tracker_.end(read);
    });
  }

 private:
  SimDevice& device_;
  AccessTracker& tracker_;
};

struct Sim {
  explicit Sim(uint64_t seed, int max_delay_us = 40, bool drop_waits = false) {
    SimOptions o;
    o.max_delay_us = max_delay_us;
    o.seed = seed;
    o.drop_waits = drop_waits;
    o.on_access = [this](const void* p, size_t, bool write, bool begin) {
      tracker.on_access(p, write, begin);
    };
    device = std::make_unique<SimDevice>(o);
    kernels = std::make_unique<SimKernels>(*device, tracker);
  }
  AccessTracker tracker;
  std::unique_ptr<SimDevice> device;
  std::unique_ptr<SimKernels> kernels;
};

TEST(GpuStreamer, InferenceEqualsResidentBitForBit) {
  for (const Scenario& sc : testing::scenarios()) {
    Sim sim(sc.seed);
    testing::inference(*sim.device, *sim.kernels, sc, 2);
    EXPECT_EQ(sim.tracker.violations, 0) << testing::describe(sc);
  }
}

TEST(GpuStreamer, TrainingWritesEachBlockBackToItsHome) {
  for (const Scenario& sc : testing::scenarios()) {
    Sim sim(sc.seed + 100);
    testing::training(*sim.device, *sim.kernels, sc, 3);
    EXPECT_EQ(sim.tracker.violations, 0) << testing::describe(sc);
  }
}

TEST(GpuStreamer, Zo2ScheduleEqualsPlainOrder) {
  for (const Scenario& sc : testing::scenarios()) {
    Sim sim(sc.seed + 200);
    testing::zo2_vs_plain(*sim.device, *sim.kernels, sc, 3);
    EXPECT_EQ(sim.tracker.violations, 0) << testing::describe(sc);
  }
}

// The check of the checks: with events ignored, the same delays make races visible, as
// accesses that overlap or as a pass that read another block's bytes.
TEST(GpuStreamer, DroppedEventsAreCaught) {
  int64_t violations = 0, wrong = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Sim sim(seed, 200, true);
    Scenario sc;
    sc.blocks = 5, sc.slots = 2, sc.prefetch = 1, sc.seed = seed;
    testing::Fixture f(*sim.device, sc);
    {
      GpuBlockStreamer streamer(*sim.device, f.blocks, f.file.get(), f.options());
      for (int p = 0; p < 2; ++p)
        streamer.run(
            f.order, {},
            [&](int64_t b, void* slot, Stream& s) {
              sim.kernels->add(s, f.out[size_t(b)]->data(), static_cast<float*>(slot), f.n(b));
            },
            false);
      streamer.flush();
    }
    for (int64_t b = 0; b < sc.blocks; ++b) {
      std::vector<float> out = f.out[size_t(b)]->to_host();
      for (size_t i = 0; i < out.size(); ++i) {
        float x = f.images[size_t(b)][i];
        if (out[i] != (0.0f + x) + x) ++wrong;
      }
    }
    violations += sim.tracker.violations;
  }
  EXPECT_GT(violations + wrong, 0);
}

TEST(GpuStreamer, CountsBytesAndClampsPrefetch) {
  Sim sim(7, 0);
  Scenario sc;
  sc.blocks = 4, sc.slots = 2, sc.prefetch = 5, sc.disk = true;
  testing::Fixture f(*sim.device, sc);
  GpuBlockStreamer streamer(*sim.device, f.blocks, f.file.get(), f.options());
  EXPECT_EQ(streamer.prefetch(), 1);
  streamer.run(f.order, {}, {}, true);
  streamer.flush();
  uint64_t all = 0, disk = 0;
  for (const StreamedBlock& b : f.blocks) {
    all += b.bytes;
    if (b.home == Tier::Disk) disk += b.bytes;
  }
  StreamerStats st = streamer.stats();
  EXPECT_EQ(st.bytes_uploaded, all);
  EXPECT_EQ(st.bytes_written_back, all);
  EXPECT_EQ(st.disk_read, disk);
  EXPECT_EQ(st.disk_written, disk);
  EXPECT_EQ(st.uploads, 4);
}

TEST(SimDevice, EventsOrderStreamsWithoutHostWaits) {
  SimOptions o;
  o.max_delay_us = 300;
  SimDevice device(o);
  auto other = device.make_stream();
  auto event = device.make_event();
  std::vector<int> log;
  std::mutex mutex;
  auto note = [&](int v) {
    std::lock_guard<std::mutex> lock(mutex);
    log.push_back(v);
  };
  device.wait(*other, *event);  // never recorded: no wait
  device.enqueue(device.compute_stream(), [&] { note(1); });
  device.record(*event, device.compute_stream());
  device.wait(*other, *event);
  device.enqueue(*other, [&] { note(2); });
  device.synchronize(*other);
  device.synchronize(device.compute_stream());
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  EXPECT_THROW(device.copy_to_device(*other, log.data(), log.data(), 4), Error);
}

}  // namespace
}  // namespace zoft::runtime
