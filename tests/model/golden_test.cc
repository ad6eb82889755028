// Every architecture against HF transformers' own logits and losses, with and without padding.
#include <gtest/gtest.h>

#include <cmath>

#include "model/golden_util.h"

namespace zoft::test {
namespace {

struct GoldenParam {
  std::string model;
  DType dtype;
  std::string case_name;
};

std::string param_name(const testing::TestParamInfo<GoldenParam>& info) {
  std::string s =
      info.param.model + "_" + dtype_name(info.param.dtype) + "_" + info.param.case_name;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

void PrintTo(const GoldenParam& p, std::ostream* os) {
  *os << p.model << "/" << dtype_name(p.dtype) << "/" << p.case_name;
}

class Golden : public testing::TestWithParam<GoldenParam> {};

TEST_P(Golden, LogitsAndLossMatchTransformers) {
  const GoldenParam& p = GetParam();
  GoldenCase g = load_golden(p.model, p.case_name);
  Decoder model = Decoder::load(golden_dir(p.model), p.dtype);
  const int64_t B = g.batch.batch, T = g.batch.seq, V = model.config().vocab_size;
  // bf16 compute, or bf16-stored weights compared with the f32 model's logits: bf16 tolerance.
  bool bf16 = p.dtype == DType::BF16 || model.weights().checkpoint_dtypes == "bf16";
  const double tolerance = bf16 ? 2e-2 : 1e-4;

  std::vector<float> logits(size_t(B * T * V));
  model.logits(g.batch, logits.data());
  double logits_error = masked_relative_error(logits, g.logits, g.batch.mask, V);
  EXPECT_LE(logits_error, tolerance) << "logits relative error";

  // Per-token losses wherever both the position and the next token are real; their mean is HF's
  // loss when no pad precedes a real token (HF also scores the first token after left padding).
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  std::vector<float> loss(size_t(B * T));
  model.token_losses(g.batch, targets.data(), loss.data());
  double ours_sum = 0, ref_sum = 0, count = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) {
      if (targets[size_t(b * T + t)] < 0) continue;
      double ref = g.token_loss[size_t(b * (T - 1) + t)];
      EXPECT_NEAR(loss[size_t(b * T + t)], ref, tolerance * std::max(1.0, std::fabs(ref)))
          << "token loss at sequence " << b << " position " << t;
      ours_sum += loss[size_t(b * T + t)];
      ref_sum += ref;
      ++count;
    }
  ASSERT_GT(count, 0);
  EXPECT_NEAR(ours_sum / count, ref_sum / count, tolerance * ref_sum / count);
  if (p.case_name != "left") {
    EXPECT_NEAR(ours_sum / count, g.loss, tolerance * g.loss);
  }
}

std::vector<GoldenParam> all_params() {
  std::vector<GoldenParam> out;
  for (const char* model : {"opt", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3",
                            "llama-sharded", "llama-bf16"})
    for (DType dtype : {DType::F32, DType::BF16})
      for (const char* c : {"nopad", "right", "left"}) out.push_back({model, dtype, c});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Golden, testing::ValuesIn(all_params()), param_name);

// Decoding one token at a time through the KV cache gives the logits of the full forward.
TEST(KvCache, IncrementalDecodeEqualsFullForward) {
  for (const char* name : {"llama", "gemma3", "opt", "gpt2"}) {
    GoldenCase g = load_golden(name, "left");
    Decoder model = Decoder::load(golden_dir(name), DType::F32);
    const int64_t B = g.batch.batch, T = g.batch.seq, V = model.config().vocab_size;
    std::vector<float> full(size_t(B * T * V));
    model.logits(g.batch, full.data());

    KvCache cache(model.config(), B, T, false);
    const int64_t prefill = 5;
    for (int64_t start = 0; start < T;) {
      int64_t len = start == 0 ? prefill : 1;
      TokenBatch step;
      step.batch = B;
      step.seq = len;
      std::vector<int64_t> rows;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < len; ++t) {
          step.ids.push_back(g.batch.ids[size_t(b * T + start + t)]);
          step.mask.push_back(g.batch.mask[size_t(b * T + start + t)]);
          rows.push_back(b * len + t);
        }
      std::vector<float> out(rows.size() * size_t(V));
      model.forward_cached(step, cache, rows, out.data());
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < len; ++t) {
          if (!g.batch.mask[size_t(b * T + start + t)]) continue;
          for (int64_t j = 0; j < V; ++j)
            ASSERT_NEAR(out[size_t((b * len + t) * V + j)],
                        full[size_t(((b * T) + start + t) * V + j)], 1e-4)
                << name << " sequence " << b << " position " << start + t;
        }
      start += len;
    }
  }
}

}  // namespace
}  // namespace zoft::test
