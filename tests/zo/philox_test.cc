#include "zo/philox.h"

#include <gtest/gtest.h>

#include <set>

namespace zoft::zo {
namespace {

// Random123 kat_vectors for philox4x32_10.
TEST(Philox, KnownAnswers) {
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, 0u, 0u),
            (Philox4{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({~0u, ~0u, ~0u, ~0u}, ~0u, ~0u),
            (Philox4{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(
      philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0xa4093822u, 0x299f31d0u),
      (Philox4{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
  // The 64-bit seed form: k0 = low half, k1 = high half.
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                          uint64_t(0x299f31d0a4093822ull)),
            (Philox4{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, StreamsNeverShareACounter) {
  // z counters keep c3 < 2^31; rounding counters set the top bit and carry rs >> 32 below it.
  Philox4 z = z_counter(5, 7, (uint64_t(3) << 32) | 9, kMaxSamples - 1);
  Philox4 r = rounding_counter(5, 7, (uint64_t(3) << 32) | 9);
  EXPECT_EQ(z, (Philox4{5, 7, 9, 0x7fffffffu}));
  EXPECT_EQ(r, (Philox4{5, 7, 9, 0x80000003u}));
}

TEST(Philox, UniformIsExactAndOpen) {
  EXPECT_EQ(uniform_from_bits(0), 0x1p-24f);
  EXPECT_EQ(uniform_from_bits(~0u), 1.0f - 0x1p-24f);
  EXPECT_EQ(uniform_from_bits(0x80000000u), 0.5f + 0x1p-24f);
  // Distinct 23-bit values give distinct floats (no rounding collapsed two of them).
  std::set<float> seen;
  for (uint32_t m = (1u << 23) - 4096; m < (1u << 23); ++m) seen.insert(uniform_from_bits(m << 9));
  EXPECT_EQ(seen.size(), 4096u);
}

}  // namespace
}  // namespace zoft::zo
