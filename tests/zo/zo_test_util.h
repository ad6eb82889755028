// Shared by the zo tests: the fixtures of tools/zo_reference.py, bit views of floats.
#pragma once

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/json_file.h"

namespace zoft::test {

inline const nlohmann::json& zo_fixture() {
  static const nlohmann::json j =
      read_json_file(std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/zo/zo_reference.json");
  return j;
}

// Little-endian hex of T elements (float32 or uint16), as the reference writes them.
template <class T>
std::vector<T> from_hex(const std::string& hex) {
  std::vector<uint8_t> bytes(hex.size() / 2);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = uint8_t(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

inline uint32_t bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

// Big numbers are strings in the fixtures (JSON readers may not keep 64-bit integers).
inline uint64_t u64(const nlohmann::json& j) {
  return std::stoull(j.get<std::string>());
}

inline uint64_t fnv1a64(const std::vector<float>& v) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (float x : v) h = (h ^ bits(x)) * 0x100000001B3ull;
  return h;
}

}  // namespace zoft::test
