// Generation on the GPU (Decoder::to_device, forward_cached with a KvCache on the GPU) against the
// CPU decoder's cached forward on the golden models: the prefill's logits, then 16 greedy tokens
// that must be the same ids. Skipped without a device.
#include <cmath>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/golden_util.h"

namespace zoft::testing {
namespace {

using zoft::test::golden_dir;
using zoft::test::load_golden;

// The first sequence of the golden "nopad" batch.
std::vector<int32_t> golden_prompt(const std::string& model) {
  TokenBatch batch = load_golden(model, "nopad").batch;
  return std::vector<int32_t>(batch.ids.begin(), batch.ids.begin() + batch.seq);
}

class DeviceGeneration : public ::testing::TestWithParam<std::string> {};

TEST_P(DeviceGeneration, GreedyIdsMatchTheCpu) {
  ZOFT_REQUIRE_GPU();
  const std::string& name = GetParam();
  Decoder model = Decoder::load(golden_dir(name), DType::F32);
  Decoder device = model.to_device(Device::CUDA);
  std::vector<int32_t> prompt = golden_prompt(name);
  SamplingOptions options;
  options.max_new_tokens = 16;  // greedy (temperature 0), no stop ids

  std::vector<int32_t> cpu_ids = generate(model, prompt, options);
  KvCache cache(model.config(), 1, generation_capacity(model.config(), prompt, options), false,
                Device::CUDA);
  int steps = 0;
  std::vector<float> first_logits;
  auto step = [&](const TokenBatch& batch, float* logits) {
    device.forward_cached(batch, cache, {batch.seq - 1}, logits);
    if (steps++ == 0) first_logits.assign(logits, logits + model.config().vocab_size);
  };
  std::vector<int32_t> gpu_ids = generate(model.config(), step, prompt, options);
  EXPECT_EQ(gpu_ids, cpu_ids);

  // The prefill's last-position logits against the CPU's.
  KvCache cpu_cache(model.config(), 1, int64_t(prompt.size()), false);
  std::vector<float> cpu_logits(size_t(model.config().vocab_size));
  TokenBatch batch = TokenBatch::from_sequences({prompt}, 0, false);
  model.forward_cached(batch, cpu_cache, {batch.seq - 1}, cpu_logits.data());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < cpu_logits.size(); ++i) {
    diff += double(first_logits[i] - cpu_logits[i]) * (first_logits[i] - cpu_logits[i]);
    norm += double(cpu_logits[i]) * cpu_logits[i];
  }
  EXPECT_LE(std::sqrt(diff / norm), 1e-3) << "prefill logits, GPU vs CPU";
}

INSTANTIATE_TEST_SUITE_P(Architectures, DeviceGeneration,
                         ::testing::Values("llama", "mistral", "qwen2", "qwen3", "gemma3", "opt",
                                           "gpt2"));

}  // namespace
}  // namespace zoft::testing
