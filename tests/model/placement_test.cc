// Decoder::to_device run without a GPU: a copy placed on the CPU goes through the whole
// placement path (weights uploaded into DeviceBuffers, a tied table once, norms / biases /
// RoPE frequencies, the forward's ops through backend/dispatch.cc, scratch and KV cache on the
// weights' device) and must compute bit for bit what the loaded model computes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/generate.h"
#include "model/golden_util.h"

namespace zoft::test {
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct PlacementCase {
  std::string model;
  DType dtype;
};

void PrintTo(const PlacementCase& c, std::ostream* os) {
  *os << c.model << "/" << dtype_name(c.dtype);
}

class PlacedOnCpu : public testing::TestWithParam<PlacementCase> {};

TEST_P(PlacedOnCpu, ComputesWhatTheLoadedModelComputes) {
  const PlacementCase& c = GetParam();
  GoldenCase g = load_golden(c.model, "left");
  Decoder model = Decoder::load(golden_dir(c.model), c.dtype);
  Decoder placed = model.to_device(Device::CPU);
  EXPECT_EQ(placed.device(), Device::CPU);
  EXPECT_TRUE(placed.weights().trainable);
  EXPECT_NE(placed.weights().embed_tokens.data, model.weights().embed_tokens.data);
  if (model.config().tie_embeddings &&
      model.weights().lm_head.weight.data == model.weights().embed_tokens.data) {
    EXPECT_EQ(placed.weights().lm_head.weight.data, placed.weights().embed_tokens.data)
        << "a tied table is one copy on the device";
  }
  const int64_t M = g.batch.rows(), V = model.config().vocab_size;

  std::vector<float> want(size_t(M * V)), got(size_t(M * V));
  model.logits(g.batch, want.data());
  placed.logits(g.batch, got.data());
  EXPECT_TRUE(same_bits(got, want)) << "logits";

  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  std::vector<float> want_loss(static_cast<size_t>(M)), got_loss(static_cast<size_t>(M));
  model.token_losses(g.batch, targets.data(), want_loss.data());
  placed.token_losses(g.batch, targets.data(), got_loss.data());
  EXPECT_TRUE(same_bits(got_loss, want_loss)) << "token losses";

  // Candidate scoring reads the final hidden rows where the model runs.
  std::vector<int64_t> rows = {0, M - 1};
  std::vector<int32_t> ids = {1, 2, int32_t(V - 1)};
  std::vector<float> want_cand(6), got_cand(6);
  for (auto [m, out] : {std::pair{&model, &want_cand}, std::pair{&placed, &got_cand}}) {
    KvCache cache(m->config(), g.batch.batch, g.batch.seq, true, m->device());
    ForwardState state;
    m->begin_forward(g.batch, cache, state);
    m->run_blocks(state);
    m->candidate_logits(state.h(), rows, ids, out->data());
  }
  EXPECT_TRUE(same_bits(got_cand, want_cand)) << "candidate logits";

  // Generation: the KV cache on the placed model's device.
  std::vector<int32_t> prompt(g.batch.ids.begin(), g.batch.ids.begin() + g.batch.seq);
  prompt.erase(std::remove(prompt.begin(), prompt.end(), 0), prompt.end());
  if (prompt.empty()) prompt = {1};
  SamplingOptions options;
  options.max_new_tokens = 6;
  EXPECT_EQ(generate(placed, prompt, options), generate(model, prompt, options));
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, PlacedOnCpu,
    testing::Values(PlacementCase{"llama", DType::F32}, PlacementCase{"llama", DType::BF16},
                    PlacementCase{"gemma3", DType::BF16}, PlacementCase{"gpt2", DType::F32},
                    PlacementCase{"opt", DType::BF16}, PlacementCase{"qwen3", DType::F32}));

// A device this build or machine lacks is one clear line.
TEST(PlacedOnCpu, UnavailableDeviceIsOneClearError) {
  Decoder model = Decoder::load(golden_dir("llama"), DType::F32);
  if (!ops::available(Device::CUDA)) {
    try {
      model.to_device(Device::CUDA);
      ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("device cuda: "), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace zoft::test
