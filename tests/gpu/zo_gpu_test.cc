// z, perturb and the fused update on the GPU against the CPU kernels, bit for bit
// (docs/zo-rng.md: the same z on CPU and GPU). The CPU kernels are themselves checked against
// the NumPy reference's fixtures in tests/zo/.
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "gpu_test_util.h"
#include "zo/cuda/perturb.h"
#include "zo/perturb.h"
#include "zo/philox.h"

namespace zoft::testing {
namespace {

struct ZCase {
  uint64_t seed;
  uint32_t param_id;
  uint64_t step;
  uint32_t sample;
  int64_t begin, count;
};

// Seeds with both key halves set, a step >= 2^32, the largest sample, offsets inside a Philox
// block and beyond 2^33, lengths around the 4-element block and long enough for many blocks.
const ZCase kZCases[] = {
    {0, 0, 0, 0, 0, 1},
    {1, 0, 0, 0, 0, 4096},
    {1234567890123ull, 7, 5, 1, 1, 3},
    {0xffffffffffffffffull, 0xffffffffu, 0x100000003ull, 0x7fffffffu, 3, 65},
    {42, 3, 17, 2, 5, 1000},
    {42, 3, 17, 2, (int64_t(1) << 33) + 1, 777},
    {0x9e3779b97f4a7c15ull, 12, 1, 0, 63, 100003},
    {7, 1, 2, 3, (int64_t(1) << 34) - 5, 5},  // the last elements a tensor may have
};

TEST(ZoGpu, FillNormalMatchesCpu) {
  ZOFT_REQUIRE_GPU();
  for (const ZCase& c : kZCases) {
    std::vector<float> cpu(c.count), gpu_init(c.count, -1.0f);
    zo::fill_normal(cpu.data(), c.begin, c.count, c.seed, c.param_id, c.step, c.sample);
    DeviceVector<float> gpu(gpu_init);
    zo::cuda::fill_normal(gpu.data(), c.begin, c.count, c.seed, c.param_id, c.step, c.sample);
    std::vector<float> got = gpu.to_host();
    int64_t at = first_difference(got, cpu);
    EXPECT_EQ(at, -1) << "seed " << c.seed << " param " << c.param_id << " step " << c.step
                      << " sample " << c.sample << " begin " << c.begin << ": element " << at
                      << " is " << (at >= 0 ? got[at] : 0) << ", CPU " << (at >= 0 ? cpu[at] : 0);
  }
}

TEST(ZoGpu, FillNormalMillionElements) {
  ZOFT_REQUIRE_GPU();
  const int64_t n = 1 << 20;
  std::vector<float> cpu(n);
  zo::fill_normal(cpu.data(), 0, n, 2024, 5, 9, 1);
  DeviceVector<float> gpu{std::vector<float>(n)};
  zo::cuda::fill_normal(gpu.data(), 0, n, 2024, 5, 9, 1);
  EXPECT_EQ(first_difference(gpu.to_host(), cpu), -1);
}

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct UpdateCase {
  std::vector<zo::ZTerm> terms;
  float decay;
  uint64_t element_offset;
  int64_t n;
};

// MeZO's term lists (docs/zo-rng.md section 6): one term, +eps pairs, pending update + eps with
// decay; offsets that are not multiples of 4 or 8 and beyond 2^33; an empty list with decay.
std::vector<UpdateCase> update_cases() {
  return {
      {{{3, 0, 1e-3f}}, 1.0f, 0, 4096},
      {{{3, 0, -2e-3f}}, 1.0f, 13, 1001},
      {{{3, 0, 1e-3f}, {3, 1, 1e-3f}}, 1.0f, 6, 129},
      {{{2, 0, -1e-6f}, {2, 1, 2e-6f}, {2, 2, -3e-7f}, {3, 0, 1e-3f}}, 0.9999f, 0, 70001},
      {{{0x100000001ull, 0x7fffffffu, 5e-4f}}, 1.0f, (uint64_t(1) << 33) + 3, 257},
      {{}, 0.999f, 5, 300},
  };
}

TEST(ZoGpu, ApplyZTermsF32MatchesCpu) {
  ZOFT_REQUIRE_GPU();
  for (const UpdateCase& c : update_cases()) {
    std::vector<float> cpu = random_floats(c.n, 1);
    DeviceVector<float> gpu(cpu);
    const uint64_t seed = 99, rounding_step = 11;
    const uint32_t param_id = 4;
    zo::apply_z_terms(Tensor(cpu.data(), DType::F32, {c.n}), param_id, seed, c.terms.data(),
                      int(c.terms.size()), rounding_step, c.decay, c.element_offset);
    zo::cuda::apply_z_terms(Tensor(gpu.data(), DType::F32, {c.n}), param_id, seed, c.terms.data(),
                            int(c.terms.size()), rounding_step, c.decay, c.element_offset);
    EXPECT_EQ(first_difference(gpu.to_host(), cpu), -1)
        << c.terms.size() << " terms, offset " << c.element_offset << ", n " << c.n;
  }
}

TEST(ZoGpu, ApplyZTermsBf16MatchesCpu) {
  ZOFT_REQUIRE_GPU();
  for (const UpdateCase& c : update_cases()) {
    std::vector<float> f = random_floats(c.n, 2);
    std::vector<uint16_t> cpu(c.n);
    for (int64_t i = 0; i < c.n; ++i) cpu[i] = f32_to_bf16(f[i]);
    DeviceVector<uint16_t> gpu(cpu);
    // Rounding steps beyond 2^32 exercise the high word of the rounding-stream counter.
    for (uint64_t rounding_step : {uint64_t(12), (uint64_t(1) << 32) + 7}) {
      zo::apply_z_terms(Tensor(cpu.data(), DType::BF16, {c.n}), 4, 99, c.terms.data(),
                        int(c.terms.size()), rounding_step, c.decay, c.element_offset);
      zo::cuda::apply_z_terms(Tensor(gpu.data(), DType::BF16, {c.n}), 4, 99, c.terms.data(),
                              int(c.terms.size()), rounding_step, c.decay, c.element_offset);
      EXPECT_EQ(first_difference(gpu.to_host(), cpu), -1)
          << c.terms.size() << " terms, offset " << c.element_offset << ", n " << c.n
          << ", rounding step " << rounding_step;
    }
  }
}

// +eps, -2 eps, +eps on the GPU is the CPU's sequence of updates, bit for bit, for both dtypes.
TEST(ZoGpu, PerturbAndRestoreMatchesCpu) {
  ZOFT_REQUIRE_GPU();
  const int64_t n = 5003;
  std::vector<float> cpu = random_floats(n, 3);
  DeviceVector<float> gpu(cpu);
  const float eps = 1e-3f;
  uint64_t rounding_step = 0;
  for (float scale : {eps, -2 * eps, eps}) {
    zo::ZTerm term{8, 0, scale};
    zo::apply_z_terms(Tensor(cpu.data(), DType::F32, {n}), 2, 7, &term, 1, rounding_step);
    zo::cuda::perturb(Tensor(gpu.data(), DType::F32, {n}), 2, 7, 8, 0, scale, rounding_step);
    ++rounding_step;
  }
  EXPECT_EQ(first_difference(gpu.to_host(), cpu), -1);
}

TEST(ZoGpu, RejectsWhatTheCpuRejects) {
  ZOFT_REQUIRE_GPU();
  std::vector<uint16_t> h(8);
  DeviceVector<uint16_t> d(h);
  zo::ZTerm term{0, 0, 1.0f};
  EXPECT_THROW(zo::cuda::apply_z_terms(Tensor(d.data(), DType::F16, {8}), 0, 0, &term, 1, 0),
               Error);
  std::vector<zo::ZTerm> many(zo::cuda::kMaxDeviceTerms + 1, term);
  EXPECT_THROW(zo::cuda::apply_z_terms(Tensor(d.data(), DType::BF16, {8}), 0, 0, many.data(),
                                       int(many.size()), 0),
               Error);
  zo::ZTerm bad_sample{0, 0x80000000u, 1.0f};
  EXPECT_THROW(zo::cuda::apply_z_terms(Tensor(d.data(), DType::BF16, {8}), 0, 0, &bad_sample, 1, 0),
               Error);
}

}  // namespace
}  // namespace zoft::testing
