// attention against the full-softmax double reference: head sizes, GQA ratios, windows,
// softcap, padding masks on either side, and KV-cache decode (q_offset > 0).
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "op_test_util.h"
#include "reference.h"

namespace zoft::testing {
namespace {

struct Case {
  int64_t batch, q_len, kv_len, kv_capacity, q_heads, kv_heads, head_dim;
  int64_t window = 0;
  float softcap = 0;
  int padding = 0;  // 0 none, 1 left padding, 2 right padding, 3 both (one per sequence)
  bool bf16_products = false;
};

// v rounded to bf16 and back.
std::vector<float> bf16_values(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return r;
}

class AttentionTest : public BackendTest {
 protected:
  void check(const Case& c) {
    cpu::AttentionShape s{c.batch,   c.q_len,    c.kv_len,   c.kv_capacity,
                          c.q_heads, c.kv_heads, c.head_dim, c.bf16_products};
    // Scores of a few units so that softmax is neither flat nor one-hot (softcap bites at 5).
    std::vector<float> q = normal(c.batch * c.q_len * c.q_heads * c.head_dim, 1.5f);
    std::vector<float> k = normal(c.batch * c.kv_capacity * c.kv_heads * c.head_dim, 1.5f);
    std::vector<float> v = uniform(c.batch * c.kv_capacity * c.kv_heads * c.head_dim);
    std::vector<uint8_t> valid(c.batch * c.kv_len, 1);
    for (int64_t b = 0; b < c.batch; ++b) {
      bool left = c.padding == 1 || (c.padding == 3 && b % 2 == 0);
      bool right = c.padding == 2 || (c.padding == 3 && b % 2 == 1);
      int64_t pad = std::min<int64_t>(c.kv_len, 3 + 5 * b);
      for (int64_t i = 0; i < pad; ++i) {
        if (left) valid[b * c.kv_len + i] = 0;
        if (right) valid[b * c.kv_len + c.kv_len - 1 - i] = 0;
      }
    }
    const uint8_t* mask = c.padding ? valid.data() : nullptr;
    const float scale = 1.0f / std::sqrt(float(c.head_dim));
    std::vector<float> out(q.size(), NAN);
    be().attention(q.data(), k.data(), v.data(), mask, out.data(), s, scale, c.window, c.softcap);
    std::string what = "B=" + std::to_string(c.batch) + " T=" + std::to_string(c.q_len) +
                       " S=" + std::to_string(c.kv_len) + " H=" + std::to_string(c.q_heads) + "/" +
                       std::to_string(c.kv_heads) + " D=" + std::to_string(c.head_dim) +
                       " window=" + std::to_string(c.window) +
                       " softcap=" + std::to_string(c.softcap) +
                       " padding=" + std::to_string(c.padding);
    if (!c.bf16_products) {
      expect_close(out, reference::attention(q, k, v, mask, s, scale, c.window, c.softcap), 2e-5,
                   1e-5, what);
      return;
    }
    // Either the f32 kernel ran (the f32 tolerance against the plain reference), or the bf16
    // one: against the reference on bf16-rounded q, k, v, what is left is the rounding of the
    // probabilities to bf16 (2^-9 relative) before p.v.
    const double f32_excess = worst_excess(
        out, reference::attention(q, k, v, mask, s, scale, c.window, c.softcap), 2e-5, 1e-5);
    const double bf16_excess =
        worst_excess(out,
                     reference::attention(bf16_values(q), bf16_values(k), bf16_values(v), mask, s,
                                          scale, c.window, c.softcap),
                     4e-3, 4e-3);
    EXPECT_TRUE(f32_excess <= 0 || bf16_excess <= 0)
        << what << " bf16 products: beyond the f32 tolerance by " << f32_excess
        << " and the bf16 one by " << bf16_excess;
  }

  // Data-parallel ranks may hold different sequences and run different thread counts: a
  // sequence's output must have the same bits alone as in a batch, on 1 or 3 threads (CPU paths).
  void check_sequence_bits_alone(cpu::AttentionShape s, float softcap) {
    std::vector<float> q = normal(s.batch * s.q_len * s.q_heads * s.head_dim, 1.5f);
    std::vector<float> k = normal(s.batch * s.kv_capacity * s.kv_heads * s.head_dim, 1.5f);
    std::vector<float> v = uniform(k.size());
    std::vector<uint8_t> valid(s.batch * s.kv_len, 1);
    for (int64_t i = 0; i < 7; ++i) valid[s.kv_len + i] = 0;  // sequence 1 left-padded
    std::vector<float> all(q.size());
    be().attention(q.data(), k.data(), v.data(), valid.data(), all.data(), s, 0.2f, 60, softcap);
    cpu::AttentionShape one = s;
    one.batch = 1;
    const int64_t q_row = s.q_len * s.q_heads * s.head_dim;
    const int64_t kv_row = s.kv_capacity * s.kv_heads * s.head_dim;
    for (int threads : {1, 3}) {
      ThreadPool::set_global_threads(threads);
      std::vector<float> alone(q_row);
      be().attention(q.data() + q_row, k.data() + kv_row, v.data() + kv_row,
                     valid.data() + s.kv_len, alone.data(), one, 0.2f, 60, softcap);
      ThreadPool::set_global_threads(0);
      for (int64_t i = 0; i < q_row; ++i)
        ASSERT_EQ(alone[i], all[q_row + i]) << threads << " threads, element " << i;
    }
  }

  // max_i |got[i] - want[i]| - (atol + rtol |want[i]|): <= 0 when every element is close.
  static double worst_excess(const std::vector<float>& got, const std::vector<double>& want,
                             double atol, double rtol) {
    double worst = -INFINITY;
    for (size_t i = 0; i < got.size(); ++i) {
      const double err = std::abs(double(got[i]) - want[i]);
      worst =
          std::isnan(got[i]) ? INFINITY : std::max(worst, err - atol - rtol * std::abs(want[i]));
    }
    return worst;
  }
};

TEST_P(AttentionTest, HeadSizes) {
  check({2, 37, 37, 37, 2, 2, 48});
  check({1, 70, 70, 70, 2, 2, 64});
  check({1, 65, 65, 80, 2, 1, 80});
  check({1, 40, 40, 40, 2, 2, 128});
  check({1, 20, 20, 24, 2, 1, 256});
  check({1, 9, 9, 9, 1, 1, 20});  // head_dim not a multiple of 16
}

TEST_P(AttentionTest, GroupedQueryHeads) {
  check({2, 33, 33, 33, 4, 4, 64});  // ratio 1
  check({1, 50, 50, 50, 4, 2, 64});  // ratio 2
  check({2, 31, 31, 31, 8, 2, 32});  // ratio 4
}

TEST_P(AttentionTest, SlidingWindowAndSoftcap) {
  check({1, 140, 140, 140, 2, 1, 64, 16});
  check({1, 70, 70, 70, 2, 2, 48, 1});        // each query sees only itself
  check({2, 45, 45, 45, 4, 2, 64, 0, 5.0f});  // Gemma-2 style softcap (small, so it matters)
  check({1, 100, 100, 100, 2, 1, 64, 30, 5.0f, 3});
}

TEST_P(AttentionTest, PaddingMasks) {
  check({2, 30, 30, 30, 2, 2, 64, 0, 0, 1});  // left: early queries see no key -> zeros
  check({2, 30, 30, 30, 2, 2, 64, 0, 0, 2});
  check({4, 75, 75, 80, 2, 1, 64, 0, 0, 3});
}

TEST_P(AttentionTest, DecodeWithCache) {
  check({2, 1, 100, 128, 4, 2, 64});           // one new token, q_offset 99
  check({1, 1, 150, 160, 2, 2, 128, 50});      // with a window
  check({2, 5, 133, 140, 4, 1, 80, 0, 0, 1});  // a chunk after a cached prefix, padded
  check({1, 1, 1, 1, 1, 1, 64});
}

TEST_P(AttentionTest, QueryTilesAndKeyTiles) {
  check({1, 200, 200, 200, 1, 1, 64});
  check({1, 130, 260, 260, 2, 1, 64, 100});
}

TEST_P(AttentionTest, ThreadCounts) {
  for (int threads : {1, 3}) {
    ThreadPool::set_global_threads(threads);
    check({3, 70, 70, 70, 2, 1, 32, 20, 0, 3});
  }
  ThreadPool::set_global_threads(0);
}

TEST_P(AttentionTest, SequenceBitsDoNotDependOnBatchOrThreads) {
  if (GetParam().rfind("cpu", 0) != 0) GTEST_SKIP() << "a CPU guarantee";
  check_sequence_bits_alone({3, 150, 150, 160, 4, 2, 48}, 5.0f);
}

// bf16_products lets the amx path run attention on AMX tiles (attention_amx.cc); elsewhere, and
// for shapes it does not take (softcap, head_dim not a multiple of 32, decoding), the f32 kernel
// runs. Either way the result is within bf16 rounding of the reference.
TEST_P(AttentionTest, Bf16Products) {
  for (int64_t D : {32, 64, 128, 256}) check({2, 37, 37, 37, 4, 2, D, 0, 0, 0, true});
  check({1, 200, 200, 200, 2, 1, 64, 0, 0, 0, true});   // several query tiles
  check({1, 140, 140, 140, 2, 1, 64, 16, 0, 0, true});  // window
  check({4, 75, 75, 80, 2, 1, 64, 0, 0, 3, true});      // padding on either side
  check({2, 20, 133, 140, 4, 1, 64, 0, 0, 1, true});    // a chunk after a cached prefix
  check({2, 45, 45, 45, 4, 2, 64, 0, 5.0f, 0, true});   // softcap: f32 kernel
  check({2, 1, 100, 128, 4, 2, 64, 0, 0, 0, true});     // decode: f32 kernel
  check({2, 37, 37, 37, 2, 2, 48, 0, 0, 0, true});      // head_dim 48: f32 kernel
}

TEST_P(AttentionTest, Bf16ProductsSequenceBitsDoNotDependOnBatchOrThreads) {
  if (GetParam().rfind("cpu", 0) != 0) GTEST_SKIP() << "a CPU guarantee";
  check_sequence_bits_alone({3, 150, 150, 160, 4, 2, 64, true}, 0.0f);
}

TEST_P(AttentionTest, RejectsBadGrouping) {
  cpu::AttentionShape s{1, 1, 1, 1, 3, 2, 8};
  std::vector<float> buf(64);
  EXPECT_THROW(
      be().attention(buf.data(), buf.data(), buf.data(), nullptr, buf.data(), s, 1.0f, 0, 0),
      Error);
}

ZOFT_INSTANTIATE_BACKENDS(AttentionTest);

}  // namespace
}  // namespace zoft::testing
