// The toy quadratic of the ZO method references (tools/zo_momentum_reference.py,
// tools/zo_fzoo_reference.py): a few f32 or bf16 parameters with the references' starting
// values and loss, for bit-for-bit comparisons of whole optimiser runs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/tensor.h"
#include "zo/mezo.h"
#include "zo/zo_test_util.h"

namespace zoft::zo::toy_quadratic {

struct Toy {
  DType dtype;
  std::vector<OwnedTensor> params;
  std::vector<bool> decayable;

  Toy clone() const {
    Toy c{dtype, {}, decayable};
    for (const OwnedTensor& t : params) {
      OwnedTensor copy = OwnedTensor::zeros(dtype, {t.view.numel()});
      std::memcpy(copy.view.data, t.view.data, t.view.nbytes());
      c.params.push_back(std::move(copy));
    }
    return c;
  }
};

inline Toy make_toy(const nlohmann::json& c) {
  Toy toy;
  toy.dtype = c.at("dtype") == "f32" ? DType::F32 : DType::BF16;
  for (size_t p = 0; p < c.at("sizes").size(); ++p) {
    const int64_t count = c.at("sizes")[p].get<int64_t>();
    OwnedTensor t = OwnedTensor::zeros(toy.dtype, {count});
    for (int64_t i = 0; i < count; ++i) {
      const float v = float(((i * 37) % 101 - 50) / 64.0);
      if (toy.dtype == DType::F32)
        t.view.f32()[i] = v;
      else
        t.view.ptr<uint16_t>()[i] = f32_to_bf16(v);
    }
    toy.params.push_back(std::move(t));
    toy.decayable.push_back(c.at("decayable")[p].get<bool>());
  }
  return toy;
}

inline float value(const Tensor& t, int64_t i) {
  return t.dtype == DType::F32 ? t.f32()[i] : bf16_to_f32(t.ptr<uint16_t>()[i]);
}

// The reference's toy loss: sum_i (i % 7 + 1) / 8 (theta_i - 1/4)^2, each term exact in double.
inline double loss(const Toy& toy) {
  double total = 0;
  for (const OwnedTensor& t : toy.params)
    for (int64_t i = 0; i < t.view.numel(); ++i) {
      const double d = double(value(t.view, i)) - 0.25;
      total += double(i % 7 + 1) / 8.0 * d * d;
    }
  return total;
}

inline void apply(const ZPass& pass, Toy& toy) {
  for (size_t p = 0; p < toy.params.size(); ++p)
    pass.apply(toy.params[p].view, uint32_t(p), toy.decayable[p]);
}

inline std::vector<std::vector<uint8_t>> bytes(const Toy& toy) {
  std::vector<std::vector<uint8_t>> out;
  for (const OwnedTensor& t : toy.params) {
    auto* b = static_cast<const uint8_t*>(t.view.data);
    out.emplace_back(b, b + t.view.nbytes());
  }
  return out;
}

// The reference run's final weights (the case's "params", little-endian hex), bit for bit.
inline void expect_reference_weights(const Toy& toy, const nlohmann::json& c) {
  for (size_t p = 0; p < toy.params.size(); ++p) {
    const Tensor& t = toy.params[p].view;
    const std::string hex = c.at("params")[p].get<std::string>();
    if (toy.dtype == DType::F32) {
      EXPECT_EQ(std::vector<float>(t.f32(), t.f32() + t.numel()), test::from_hex<float>(hex)) << p;
    } else {
      const uint16_t* b = t.ptr<uint16_t>();
      EXPECT_EQ(std::vector<uint16_t>(b, b + t.numel()), test::from_hex<uint16_t>(hex)) << p;
    }
  }
}

}  // namespace zoft::zo::toy_quadratic
