// Scenarios for the GPU block streamer, generic over the device (runtime/streams.h): the CPU
// tests run them on the simulated device with random delays (tests/runtime/), the GPU tests on
// CUDA (tests/gpu/). Blocks are f32 arrays of different lengths, some homed in (pinned) RAM,
// some in the offload file. "Compute" is y += x on the compute stream; the resident reference
// does the same additions in the same order on device buffers that never move, so every result
// must match bit for bit.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/gpu_streamer.h"
#include "runtime/offload_file.h"
#include "runtime/plan.h"
#include "runtime/streams.h"

namespace zoft::runtime::testing {

// y[0..n) += x[0..n), enqueued on stream s of the device (both pointers device memory).
struct Kernels {
  virtual ~Kernels() = default;
  virtual void add(Stream& s, float* y, const float* x, int64_t n) = 0;
};

struct Scenario {
  int64_t blocks = 3, slots = 2, prefetch = 1, staging = 2;
  bool disk = true;  // odd blocks live on disk, even ones in RAM
  uint64_t seed = 1;
  size_t size_scale = 1;  // block lengths are size_scale * (700 .. 2199) floats
};

inline std::string describe(const Scenario& s) {
  return "blocks " + std::to_string(s.blocks) + " slots " + std::to_string(s.slots) + " prefetch " +
         std::to_string(s.prefetch) + " staging " + std::to_string(s.staging) +
         (s.disk ? " with disk" : " ram only");
}

// Device memory holding a host vector (copied in on the compute stream).
class DeviceFloats {
 public:
  DeviceFloats(Device& device, const std::vector<float>& host)
      : device_(device), n_(host.size()), data_(static_cast<float*>(device.allocate(bytes()))) {
    device_.copy_to_device(device_.compute_stream(), data_, host.data(), bytes());
    device_.synchronize(device_.compute_stream());  // `host` may go away
  }
  ~DeviceFloats() { device_.release(data_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  float* data() const { return data_; }
  size_t bytes() const { return n_ * sizeof(float); }
  std::vector<float> to_host() {
    std::vector<float> out(n_);
    device_.synchronize(device_.compute_stream());
    void* pinned = device_.allocate_pinned(bytes());
    device_.copy_to_host(device_.compute_stream(), pinned, data_, bytes());
    device_.synchronize(device_.compute_stream());
    std::memcpy(out.data(), pinned, bytes());
    device_.release_pinned(pinned);
    return out;
  }

 private:
  Device& device_;
  size_t n_;
  float* data_;
};

inline std::vector<float> random_floats(std::mt19937_64& rng, size_t n, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// The blocks of a scenario: initial images, their homes (pinned RAM or the file), and the
// per-block device vectors the scenarios add (delta, update, eps) and accumulate into (out).
class Fixture {
 public:
  Fixture(Device& device, const Scenario& sc) : device_(device), sc_(sc) {
    std::mt19937_64 rng(sc.seed);
    uint64_t offset = 0;
    for (int64_t b = 0; b < sc.blocks; ++b) {
      size_t n =
          sc.size_scale * (700 + size_t(rng() % 1500));  // different sizes: a slot fits the largest
      images.push_back(random_floats(rng, n, 1.0f));
      StreamedBlock sb;
      sb.bytes = n * sizeof(float);
      sb.home = sc.disk && b % 2 == 1 ? Tier::Disk : Tier::Cpu;
      sb.file_offset = offset;
      offset += (sb.bytes + 4095) / 4096 * 4096;
      blocks.push_back(sb);
    }
    if (sc.disk) {
      static int counter = 0;
      dir_ = std::filesystem::temp_directory_path() /
             ("zoft_streamer_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
      file = std::make_unique<OffloadFile>(dir_.string(), std::max<uint64_t>(offset, 4096), false);
    }
    for (int64_t b = 0; b < sc.blocks; ++b) {
      StreamedBlock& sb = blocks[size_t(b)];
      if (sb.home == Tier::Cpu) {
        sb.host = device.allocate_pinned(sb.bytes);
        std::memcpy(sb.host, images[size_t(b)].data(), sb.bytes);
      } else {
        file->write(images[size_t(b)].data(), sb.bytes, sb.file_offset);
      }
      size_t n = images[size_t(b)].size();
      delta.push_back(std::make_unique<DeviceFloats>(device, random_floats(rng, n, 0.01f)));
      update.push_back(std::make_unique<DeviceFloats>(device, random_floats(rng, n, 0.001f)));
      std::vector<float> e = random_floats(rng, n, 0.001f), m(n);
      for (size_t i = 0; i < n; ++i) m[i] = -2.0f * e[i];  // exact: a power of two
      eps.push_back(std::make_unique<DeviceFloats>(device, e));
      minus_two_eps.push_back(std::make_unique<DeviceFloats>(device, m));
      out.push_back(std::make_unique<DeviceFloats>(device, std::vector<float>(n, 0.0f)));
      out_minus.push_back(std::make_unique<DeviceFloats>(device, std::vector<float>(n, 0.0f)));
      order.push_back(b);
    }
  }
  ~Fixture() {
    for (StreamedBlock& sb : blocks)
      if (sb.host) device_.release_pinned(sb.host);
    file.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  int64_t n(int64_t b) const { return int64_t(images[size_t(b)].size()); }
  // The block's image at its home now (call after the streamer's flush()).
  std::vector<float> home_image(int64_t b) const {
    const StreamedBlock& sb = blocks[size_t(b)];
    std::vector<float> v(size_t(n(b)));
    if (sb.home == Tier::Cpu)
      std::memcpy(v.data(), sb.host, sb.bytes);
    else
      file->read(v.data(), sb.bytes, sb.file_offset);
    return v;
  }
  StreamerOptions options() const { return {sc_.slots, sc_.prefetch, sc_.staging}; }

  std::vector<std::vector<float>> images;  // initial
  std::vector<StreamedBlock> blocks;
  std::unique_ptr<OffloadFile> file;
  std::vector<std::unique_ptr<DeviceFloats>> delta, update, eps, minus_two_eps, out, out_minus;
  std::vector<int64_t> order;

 private:
  Device& device_;
  Scenario sc_;
  std::filesystem::path dir_;
};

// Every block resident on the device: the reference the streamer must equal.
class Resident {
 public:
  Resident(Device& device, const Fixture& f) {
    for (const auto& image : f.images)
      theta.push_back(std::make_unique<DeviceFloats>(device, image));
  }
  std::vector<std::unique_ptr<DeviceFloats>> theta;
};

inline void expect_same(const std::vector<float>& a, const std::vector<float>& b,
                        const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

// Inference: `passes` forwards read every block (out += theta); nothing is written back.
inline void inference(Device& device, Kernels& k, const Scenario& sc, int passes) {
  SCOPED_TRACE(describe(sc));
  Fixture streamed(device, sc), reference(device, sc);
  Resident resident(device, reference);
  {
    GpuBlockStreamer streamer(device, streamed.blocks, streamed.file.get(), streamed.options());
    for (int p = 0; p < passes; ++p)
      streamer.run(
          streamed.order, {},
          [&](int64_t b, void* slot, Stream& s) {
            k.add(s, streamed.out[size_t(b)]->data(), static_cast<float*>(slot), streamed.n(b));
          },
          false);
    streamer.flush();
    EXPECT_EQ(streamer.stats().bytes_written_back, 0u);
    EXPECT_EQ(streamer.stats().uploads, passes * sc.blocks);
  }
  for (int p = 0; p < passes; ++p)
    for (int64_t b = 0; b < sc.blocks; ++b)
      k.add(device.compute_stream(), reference.out[size_t(b)]->data(),
            resident.theta[size_t(b)]->data(), reference.n(b));
  for (int64_t b = 0; b < sc.blocks; ++b) {
    expect_same(streamed.out[size_t(b)]->to_host(), reference.out[size_t(b)]->to_host(),
                "output of block " + std::to_string(b));
    expect_same(streamed.home_image(b), streamed.images[size_t(b)],
                "home of block " + std::to_string(b) + " unchanged");
  }
}

// Training: every pass changes each block (theta += delta) after reading it (out += theta);
// the changed block must land in its own home (RAM image or file region) and be what the
// next pass reads.
inline void training(Device& device, Kernels& k, const Scenario& sc, int passes) {
  SCOPED_TRACE(describe(sc));
  Fixture streamed(device, sc), reference(device, sc);
  Resident resident(device, reference);
  auto work = [&](Fixture& f, int64_t b, float* theta, Stream& s) {
    k.add(s, f.out[size_t(b)]->data(), theta, f.n(b));
    k.add(s, theta, f.delta[size_t(b)]->data(), f.n(b));
  };
  {
    GpuBlockStreamer streamer(device, streamed.blocks, streamed.file.get(), streamed.options());
    for (int p = 0; p < passes; ++p)
      streamer.run(
          streamed.order, {},
          [&](int64_t b, void* slot, Stream& s) {
            work(streamed, b, static_cast<float*>(slot), s);
          },
          true);
    streamer.flush();
    EXPECT_EQ(streamer.stats().write_backs, passes * sc.blocks);
  }
  for (int p = 0; p < passes; ++p)
    for (int64_t b = 0; b < sc.blocks; ++b)
      work(reference, b, resident.theta[size_t(b)]->data(), device.compute_stream());
  for (int64_t b = 0; b < sc.blocks; ++b) {
    expect_same(streamed.out[size_t(b)]->to_host(), reference.out[size_t(b)]->to_host(),
                "output of block " + std::to_string(b));
    expect_same(streamed.home_image(b), resident.theta[size_t(b)]->to_host(),
                "home of block " + std::to_string(b));
  }
}

// The ZO2 schedule (update fused at upload, both passes per resident block, write-back) over
// `steps` steps and a final update, against the plain order on resident blocks: each step
// first updates every block, then runs the +eps pass over all blocks, then the -eps pass.
inline void zo2_vs_plain(Device& device, Kernels& k, const Scenario& sc, int steps) {
  SCOPED_TRACE(describe(sc));
  Fixture streamed(device, sc), reference(device, sc);
  Resident resident(device, reference);
  auto update = [&](Fixture& f, int64_t b, float* theta, Stream& s, bool first) {
    if (!first) k.add(s, theta, f.update[size_t(b)]->data(), f.n(b));  // pending update
    k.add(s, theta, f.eps[size_t(b)]->data(), f.n(b));                 // + eps z
  };
  {
    GpuBlockStreamer streamer(device, streamed.blocks, streamed.file.get(), streamed.options());
    for (int t = 0; t < steps; ++t) {
      auto as = [&](auto fn) {
        return [&, fn](int64_t b, void* slot, Stream& s) { fn(b, static_cast<float*>(slot), s); };
      };
      GpuBlockStreamer::Zo2Work w;
      w.update =
          as([&, t](int64_t b, float* th, Stream& s) { update(streamed, b, th, s, t == 0); });
      w.plus_pass = as([&](int64_t b, float* th, Stream& s) {
        k.add(s, streamed.out[size_t(b)]->data(), th, streamed.n(b));
      });
      w.flip = as([&](int64_t b, float* th, Stream& s) {
        k.add(s, th, streamed.minus_two_eps[size_t(b)]->data(), streamed.n(b));
      });
      w.minus_pass = as([&](int64_t b, float* th, Stream& s) {
        k.add(s, streamed.out_minus[size_t(b)]->data(), th, streamed.n(b));
      });
      w.restore = as([&](int64_t b, float* th, Stream& s) {
        k.add(s, th, streamed.eps[size_t(b)]->data(), streamed.n(b));
      });
      streamer.zo2_step(streamed.order, w);
    }
    // finish(): the last pending update, every block streamed once.
    streamer.run(
        streamed.order,
        [&](int64_t b, void* slot, Stream& s) {
          k.add(s, static_cast<float*>(slot), streamed.update[size_t(b)]->data(), streamed.n(b));
        },
        {}, true);
    streamer.flush();
  }
  Stream& c = device.compute_stream();
  for (int t = 0; t < steps; ++t) {
    for (int64_t b = 0; b < sc.blocks; ++b)
      update(reference, b, resident.theta[size_t(b)]->data(), c, t == 0);
    for (int64_t b = 0; b < sc.blocks; ++b)
      k.add(c, reference.out[size_t(b)]->data(), resident.theta[size_t(b)]->data(), reference.n(b));
    for (int64_t b = 0; b < sc.blocks; ++b) {
      float* th = resident.theta[size_t(b)]->data();
      k.add(c, th, reference.minus_two_eps[size_t(b)]->data(), reference.n(b));
      k.add(c, reference.out_minus[size_t(b)]->data(), th, reference.n(b));
      k.add(c, th, reference.eps[size_t(b)]->data(), reference.n(b));
    }
  }
  for (int64_t b = 0; b < sc.blocks; ++b)
    k.add(c, resident.theta[size_t(b)]->data(), reference.update[size_t(b)]->data(),
          reference.n(b));
  for (int64_t b = 0; b < sc.blocks; ++b) {
    std::string name = "block " + std::to_string(b);
    expect_same(streamed.out[size_t(b)]->to_host(), reference.out[size_t(b)]->to_host(),
                "+ " + name);
    expect_same(streamed.out_minus[size_t(b)]->to_host(), reference.out_minus[size_t(b)]->to_host(),
                "- " + name);
    expect_same(streamed.home_image(b), resident.theta[size_t(b)]->to_host(), "theta " + name);
  }
}

// Slot counts, prefetch depths and block counts the scenarios run over.
inline std::vector<Scenario> scenarios() {
  std::vector<Scenario> out;
  uint64_t seed = 1;
  for (int64_t blocks : {1, 3, 7})
    for (int64_t slots : {1, 2, 3, 5})
      for (int64_t prefetch : {0, 1, 4}) {
        Scenario s;
        s.blocks = blocks, s.slots = slots, s.prefetch = prefetch;
        s.staging = 1 + int64_t(seed % 2);
        s.disk = seed % 3 != 0;
        s.seed = seed++;
        out.push_back(s);
      }
  return out;
}

}  // namespace zoft::runtime::testing
