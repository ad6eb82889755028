// cpu::attention_backward against the double reference of backward_reference.h, which is first
// checked against central finite differences of reference::attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backend/ops_backward.h"
#include "backward_reference.h"
#include "core/thread_pool.h"
#include "op_test_util.h"
#include "reference.h"

namespace zoft::testing {
// Named, not anonymous: the unity build shares one anonymous namespace with attention_test.cc.
namespace attention_backward_test {

using namespace zoft::backward_reference;

struct Case {
  std::string name;
  AttentionShape shape;
  float scale;
  int64_t window;
  float softcap;
  std::vector<uint8_t> key_valid;  // empty: all valid
};

class AttentionBackwardTest : public ::testing::Test, public RandomInputs {
 protected:
  AttentionBackwardTest() : RandomInputs(777) {}
};

// cpu::attention_backward on each kernel path.
class AttentionBackwardPathTest : public KernelPathTest, public RandomInputs {
 protected:
  AttentionBackwardPathTest() : RandomInputs(777) {}
};
ZOFT_INSTANTIATE_KERNEL_PATHS(AttentionBackwardPathTest);

int64_t q_size(const AttentionShape& s) {
  return s.batch * s.q_len * s.q_heads * s.head_dim;
}
int64_t kv_size(const AttentionShape& s) {
  return s.batch * s.kv_capacity * s.kv_heads * s.head_dim;
}

TEST_F(AttentionBackwardTest, ReferenceMatchesFiniteDifferences) {
  AttentionShape s;
  s.batch = 2, s.q_len = 3, s.kv_len = 5, s.kv_capacity = 6, s.q_heads = 4, s.kv_heads = 2,
  s.head_dim = 4;
  const std::vector<uint8_t> valid = {1, 1, 1, 1, 1, 0, 1, 1, 0, 1};
  for (float softcap : {0.0f, 1.5f}) {
    std::vector<float> q = uniform(q_size(s), -2, 2), k = uniform(kv_size(s), -2, 2),
                       v = uniform(kv_size(s)), dout = uniform(q_size(s));
    const double scale = 0.9;
    const int64_t window = 3;
    auto loss = [&](const std::vector<float>& qs, const std::vector<float>& ks,
                    const std::vector<float>& vs) {
      return dot(dout, reference::attention(qs, ks, vs, valid.data(), s, scale, window, softcap));
    };
    AttentionGrads g = attention(q, k, v, valid.data(), dout, s, scale, window, softcap);
    const std::string what = softcap > 0 ? " softcap" : "";
    expect_relative(g.dq, finite_difference(q, [&](auto& x) { return loss(x, k, v); }), 1e-6,
                    "dq" + what);
    expect_relative(g.dk, finite_difference(k, [&](auto& x) { return loss(q, x, v); }), 1e-6,
                    "dk" + what);
    expect_relative(g.dv, finite_difference(v, [&](auto& x) { return loss(q, k, x); }), 1e-6,
                    "dv" + what);
  }
}

AttentionShape make_shape(int64_t B, int64_t T, int64_t S, int64_t cap, int64_t Hq, int64_t Hkv,
                          int64_t D) {
  AttentionShape s;
  s.batch = B, s.q_len = T, s.kv_len = S, s.kv_capacity = cap, s.q_heads = Hq, s.kv_heads = Hkv,
  s.head_dim = D;
  return s;
}

// Left padding in sequence 0 (its first queries see no key), right padding in sequence 1.
std::vector<uint8_t> padded(int64_t B, int64_t S, int64_t left, int64_t right) {
  std::vector<uint8_t> valid(B * S, 1);
  for (int64_t j = 0; j < left; ++j) valid[j] = 0;
  if (B > 1)
    for (int64_t j = S - right; j < S; ++j) valid[S + j] = 0;
  return valid;
}

TEST_P(AttentionBackwardPathTest, MatchesReference) {
  const std::vector<Case> cases = {
      {"plain", make_shape(1, 9, 9, 9, 2, 2, 8), 0.35f, 0, 0.0f, {}},
      {"gqa", make_shape(2, 37, 37, 37, 4, 2, 16), 0.25f, 0, 0.0f, {}},
      {"padding", make_shape(2, 70, 70, 70, 4, 1, 24), 0.2f, 0, 0.0f, padded(2, 70, 5, 9)},
      {"window", make_shape(2, 100, 100, 100, 2, 1, 16), 0.25f, 7, 0.0f, {}},
      {"softcap", make_shape(1, 50, 50, 50, 2, 2, 32), 1.5f, 0, 5.0f, {}},
      {"q_offset", make_shape(2, 20, 90, 100, 4, 2, 16), 0.25f, 0, 0.0f, {}},
      {"everything", make_shape(2, 70, 150, 160, 6, 2, 72), 0.3f, 40, 8.0f, padded(2, 150, 85, 3)},
  };
  for (const Case& c : cases) {
    const AttentionShape& s = c.shape;
    const uint8_t* valid = c.key_valid.empty() ? nullptr : c.key_valid.data();
    std::vector<float> q = uniform(q_size(s), -2, 2), k = uniform(kv_size(s), -2, 2),
                       v = uniform(kv_size(s)), dout = uniform(q_size(s));
    std::vector<float> out(q_size(s));
    cpu::attention(q.data(), k.data(), v.data(), valid, out.data(), s, c.scale, c.window,
                   c.softcap);
    std::vector<float> dq(q_size(s), NAN), dk(kv_size(s), NAN), dv(kv_size(s), NAN);
    cpu::attention_backward(q.data(), k.data(), v.data(), valid, out.data(), dout.data(), dq.data(),
                            dk.data(), dv.data(), s, c.scale, c.window, c.softcap);
    AttentionGrads want = attention(q, k, v, valid, dout, s, c.scale, c.window, c.softcap);
    expect_relative(dq, want.dq, 1e-5, c.name + " dq");
    expect_relative(dk, want.dk, 1e-5, c.name + " dk");
    expect_relative(dv, want.dv, 1e-5, c.name + " dv");
    // Exact zeros where nothing flows: queries that see no key (the reference's output row is
    // all zeros), rows past kv_len.
    auto ref_out = reference::attention(q, k, v, valid, s, c.scale, c.window, c.softcap);
    for (int64_t r = 0; r < q_size(s) / s.head_dim; ++r) {
      const auto* o = &ref_out[r * s.head_dim];
      if (std::all_of(o, o + s.head_dim, [](double x) { return x == 0.0; })) {
        for (int64_t d = 0; d < s.head_dim; ++d)
          ASSERT_EQ(dq[r * s.head_dim + d], 0.0f) << c.name << " dq of query row " << r;
      }
    }
    const int64_t row = s.kv_heads * s.head_dim;
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t i = s.kv_len * row; i < s.kv_capacity * row; ++i) {
        ASSERT_EQ(dk[b * s.kv_capacity * row + i], 0.0f) << c.name << " dk past kv_len";
        ASSERT_EQ(dv[b * s.kv_capacity * row + i], 0.0f) << c.name << " dv past kv_len";
      }
  }
}

// A query whose every visible key is padding gets a zero gradient (and gives none).
TEST_P(AttentionBackwardPathTest, QueryWithoutKeysHasZeroGradient) {
  const AttentionShape s = make_shape(1, 4, 4, 4, 1, 1, 16);
  const std::vector<uint8_t> valid = {0, 0, 1, 1};  // queries 0 and 1 see nothing
  std::vector<float> q = uniform(q_size(s)), k = uniform(kv_size(s)), v = uniform(kv_size(s)),
                     dout = uniform(q_size(s)), out(q_size(s));
  cpu::attention(q.data(), k.data(), v.data(), valid.data(), out.data(), s, 0.25f, 0, 0.0f);
  std::vector<float> dq(q_size(s), NAN), dk(kv_size(s), NAN), dv(kv_size(s), NAN);
  cpu::attention_backward(q.data(), k.data(), v.data(), valid.data(), out.data(), dout.data(),
                          dq.data(), dk.data(), dv.data(), s, 0.25f, 0, 0.0f);
  for (int64_t i = 0; i < 2 * s.head_dim; ++i) {
    EXPECT_EQ(dq[i], 0.0f) << "dq of a query without keys";
    EXPECT_EQ(dk[i], 0.0f) << "dk of a padded key";
    EXPECT_EQ(dv[i], 0.0f) << "dv of a padded key";
  }
  EXPECT_NE(dq[3 * s.head_dim], 0.0f);
}

// Data-parallel ranks may hold different sequences and run different thread counts: a
// sequence's gradients must have the same bits alone as in a batch, on 1 or 3 threads.
TEST_P(AttentionBackwardPathTest, SequenceBitsDoNotDependOnBatchOrThreads) {
  const AttentionShape s = make_shape(3, 70, 70, 72, 4, 2, 40);
  const std::vector<uint8_t> valid = padded(3, 70, 6, 4);
  std::vector<float> q = uniform(q_size(s), -2, 2), k = uniform(kv_size(s), -2, 2),
                     v = uniform(kv_size(s)), dout = uniform(q_size(s));
  struct Grads {
    std::vector<float> dq, dk, dv;
  };
  auto run = [&](const AttentionShape& shape, int64_t b0, int threads) {
    ThreadPool::set_global_threads(threads);
    const int64_t qo = b0 * s.q_len * s.q_heads * s.head_dim;
    const int64_t ko = b0 * s.kv_capacity * s.kv_heads * s.head_dim;
    std::vector<float> out(q_size(shape));
    Grads g{std::vector<float>(q_size(shape)), std::vector<float>(kv_size(shape)),
            std::vector<float>(kv_size(shape))};
    const uint8_t* m = valid.data() + b0 * s.kv_len;
    cpu::attention(q.data() + qo, k.data() + ko, v.data() + ko, m, out.data(), shape, 0.3f, 30,
                   6.0f);
    cpu::attention_backward(q.data() + qo, k.data() + ko, v.data() + ko, m, out.data(),
                            dout.data() + qo, g.dq.data(), g.dk.data(), g.dv.data(), shape, 0.3f,
                            30, 6.0f);
    ThreadPool::set_global_threads(0);
    return g;
  };
  const Grads all = run(s, 0, 2);
  AttentionShape one = s;
  one.batch = 1;
  for (int threads : {1, 3}) {
    const Grads alone = run(one, 1, threads);  // sequence 1 of the batch
    const size_t qn = alone.dq.size(), kn = alone.dk.size();
    for (size_t i = 0; i < qn; ++i)
      ASSERT_EQ(alone.dq[i], all.dq[qn + i]) << threads << " dq " << i;
    for (size_t i = 0; i < kn; ++i) {
      ASSERT_EQ(alone.dk[i], all.dk[kn + i]) << threads << " threads, dk " << i;
      ASSERT_EQ(alone.dv[i], all.dv[kn + i]) << threads << " threads, dv " << i;
    }
  }
}

}  // namespace attention_backward_test
}  // namespace zoft::testing
