// Loads the golden fixtures made by tools/make_golden.py with HF transformers.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/decoder.h"

namespace zoft::test {

inline std::string golden_dir(const std::string& name) {
  return std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/golden/" + name;
}

struct GoldenCase {
  TokenBatch batch;
  double loss = 0;                // HF's mean loss (labels -100 on pads)
  std::vector<float> logits;      // [B, T, V]
  std::vector<float> token_loss;  // [B, T-1]
};

// name: fixture dir; its golden.json may point at another fixture ("golden_from").
inline GoldenCase load_golden(const std::string& name, const std::string& case_name) {
  nlohmann::json j = read_json_file(golden_dir(name) + "/golden.json");
  std::string from = j.value("golden_from", name);
  if (from != name) j = read_json_file(golden_dir(from) + "/golden.json");
  const nlohmann::json& c = j.at("cases").at(case_name);
  GoldenCase g;
  auto ids = c.at("input_ids").get<std::vector<std::vector<int32_t>>>();
  auto mask = c.at("attention_mask").get<std::vector<std::vector<int32_t>>>();
  g.batch.batch = int64_t(ids.size());
  g.batch.seq = int64_t(ids[0].size());
  for (size_t b = 0; b < ids.size(); ++b)
    for (size_t t = 0; t < ids[b].size(); ++t) {
      g.batch.ids.push_back(ids[b][t]);
      g.batch.mask.push_back(uint8_t(mask[b][t]));
    }
  g.loss = c.at("loss").get<double>();
  SafetensorsFile file = SafetensorsFile::open(golden_dir(from) + "/golden.safetensors");
  Tensor logits = file.view("logits." + case_name);
  Tensor token_loss = file.view("token_loss." + case_name);
  g.logits.assign(logits.f32(), logits.f32() + logits.numel());
  g.token_loss.assign(token_loss.f32(), token_loss.f32() + token_loss.numel());
  return g;
}

// ||a - b|| / ||b|| over the rows whose mask is 1 (pad rows hold unspecified values).
inline double masked_relative_error(const std::vector<float>& ours, const std::vector<float>& ref,
                                    const std::vector<uint8_t>& mask, int64_t width) {
  double diff = 0, norm = 0;
  for (size_t r = 0; r < mask.size(); ++r) {
    if (!mask[r]) continue;
    for (int64_t j = 0; j < width; ++j) {
      double a = ours[r * size_t(width) + size_t(j)], b = ref[r * size_t(width) + size_t(j)];
      diff += (a - b) * (a - b);
      norm += b * b;
    }
  }
  return std::sqrt(diff / norm);
}

// The LM objective of the ZO tests: mean per-token loss over the positions with a target.
inline auto mean_loss_over(const std::vector<int32_t>& targets) {
  return [&targets](const std::vector<float>& loss) {
    double sum = 0;
    int count = 0;
    for (size_t i = 0; i < loss.size(); ++i)
      if (targets[i] >= 0) sum += loss[i], ++count;
    return sum / count;
  };
}

}  // namespace zoft::test
