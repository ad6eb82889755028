// The onednn path's bf16 GEMM (isa.h): oneDNN's matmul, whose own dispatch runs it on AMX
// tiles where the CPU has them (Sapphire Rapids and later) and on AVX-512 BF16 elsewhere.
//
// A row's result must not depend on how many rows share the call, nor on the thread count
// (data-parallel ranks, docs/dist.md), while oneDNN picks its kernels, blocking and thread
// split by the shape. So every oneDNN call here has one fixed shape per weight: kRows rows (the
// last chunk padded with zero rows) times one block of columns (all N when N <= kDenseCols,
// else kCols), run on one thread; the pool runs the (row chunk, column block) tasks side by side.
//
// Each call writes a dense [kRows, cols] output: oneDNN 2.6 runs its AMX brgemm only for a dense
// destination and falls back to its AVX-512 gemm:jit (a third of the speed) when the output rows
// are N apart. So a weight wider than one block writes each tile to scratch and copies it out. W is
// reordered into the matmul's preferred (blocked, for AMX tile-interleaved) layout once per call,
// block by block, which costs one pass over W against the 2 kRows flops per element of each chunk.
#include "backend/cpu/gemm_onednn.h"

#if defined(ZOFT_HAVE_DNNL)

#include <omp.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace zoft::cpu::detail {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

// The fixed call shape. Larger calls amortise oneDNN's per-call cost (bench_gemm through
// cpu::linear on Zen 4, one core: 32 x 512 reached 166-175 GFLOP/s, 64 x 1024 173-200, oneDNN
// in one call 195-214); a decode row pays for 64 (AMX tiles hold 16 rows). Column blocks: on a
// Xeon with AMX (docs/PERFORMANCE.md, issue 18) whole-width calls up to 4096 columns and
// 2048-wide blocks beyond ran the llama forward 10-15 % faster than 1024-wide blocks.
constexpr int64_t kRows = 64, kCols = 2048, kDenseCols = 4096;

dnnl::engine& engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// oneDNN runs as many OpenMP threads as the calling thread's ICV says; each call here is one
// task of our pool, so the ICV of every thread that calls it is 1 (a per-thread setting).
void single_threaded_onednn() {
  thread_local bool done = false;
  if (!done) omp_set_num_threads(1);
  done = true;
}

// One matmul shape: kRows x K x cols, W block as [K, cols] read from the packed layout.
struct Shape {
  int64_t K, N, cols;
  bool bias;
  bool operator<(const Shape& o) const {
    return std::tie(K, N, cols, bias) < std::tie(o.K, o.N, o.cols, o.bias);
  }
};

struct Matmul {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};

std::shared_ptr<const Matmul> make_matmul(const Shape& s) {
  memory::desc src({kRows, s.K}, Dt::bf16, memory::dims{s.K, 1});
  memory::desc wei({s.K, s.cols}, Dt::bf16, Tag::any);
  memory::desc dst({kRows, s.cols}, Dt::f32, Tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::desc desc =
      s.bias ? dnnl::matmul::desc(src, wei, memory::desc({1, s.cols}, Dt::f32, Tag::ab), dst)
             : dnnl::matmul::desc(src, wei, dst);
  dnnl::matmul::primitive_desc pd(desc, attr, engine());
  return std::make_shared<const Matmul>(Matmul{pd, dnnl::matmul(pd)});
}

// Primitives by shape, made once (a few ms each) and shared by all threads.
std::shared_ptr<const Matmul> matmul_for(const Shape& s) {
  static std::mutex mu;
  static std::map<Shape, std::shared_ptr<const Matmul>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& entry = cache[s];
  if (!entry) entry = make_matmul(s);
  return entry;
}

// Per-thread scratch, kept between calls (pool workers live as long as the process).
void* scratch(size_t bytes, int slot) {
  thread_local Buffer buffers[3];
  Buffer& b = buffers[slot];
  if (b.size() < bytes) b = Buffer(bytes);
  return b.data();
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

// W columns [n0, n0 + cols) as a plain [K, cols] view of W ([N,K] or [K,N] storage).
memory::desc weight_block(int64_t K, int64_t N, int64_t cols, bool kn) {
  return kn ? memory::desc({K, cols}, Dt::bf16, memory::dims{N, 1})
            : memory::desc({K, cols}, Dt::bf16, memory::dims{1, K});
}

struct Problem {
  const uint16_t* xb;  // x rounded to bf16, [chunks * kRows, K], padding rows zero
  int64_t M, K, N;
  const uint16_t* w;
  bool kn;
  const float* bias;
  float* y;
  int64_t blocks;
  std::vector<std::shared_ptr<const Matmul>> mm;  // per column block
  std::vector<uint8_t*> packed;                   // per column block
};

// The column block width of a weight with N outputs: depends on N only, so a column's bits do
// not depend on M.
int64_t block_width(int64_t N) {
  return N <= kDenseCols ? N : kCols;
}

int64_t block_cols(const Problem& p, int64_t j) {
  return std::min(block_width(p.N), p.N - j * block_width(p.N));
}

// Reorders W's column block j into the layout its matmul wants.
void pack_block(const Problem& p, int64_t j) {
  const Matmul& m = *p.mm[size_t(j)];
  const int64_t n0 = j * block_width(p.N), cols = block_cols(p, j);
  const uint16_t* src = p.kn ? p.w + n0 : p.w + n0 * p.K;
  memory from(weight_block(p.K, p.N, cols, p.kn), engine(), const_cast<uint16_t*>(src));
  memory to(m.pd.weights_desc(), engine(), p.packed[size_t(j)]);
  dnnl::reorder(from, to).execute(thread_stream(), from, to);
}

// Rows [i kRows, (i+1) kRows) x column block j. A tile that is not a dense part of y (a column
// block of a wide weight, or the padded last chunk) goes through scratch.
void run_task(const Problem& p, int64_t i, int64_t j) {
  const Matmul& m = *p.mm[size_t(j)];
  const int64_t cols = block_cols(p, j), n0 = j * block_width(p.N);
  const int64_t r0 = i * kRows, rows = std::min(kRows, p.M - r0);
  const bool direct = rows == kRows && cols == p.N;
  float* out =
      direct ? p.y + r0 * p.N : static_cast<float*>(scratch(sizeof(float) * kRows * cols, 0));
  memory src(m.pd.src_desc(), engine(), const_cast<uint16_t*>(p.xb + r0 * p.K));
  memory wei(m.pd.weights_desc(), engine(), p.packed[size_t(j)]);
  memory dst(m.pd.dst_desc(), engine(), out);
  memory pad(m.pd.scratchpad_desc(), engine(), scratch(m.pd.scratchpad_desc().get_size(), 1));
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src},
                                          {DNNL_ARG_WEIGHTS, wei},
                                          {DNNL_ARG_DST, dst},
                                          {DNNL_ARG_SCRATCHPAD, pad}};
  if (p.bias)
    args[DNNL_ARG_BIAS] = memory(m.pd.bias_desc(), engine(), const_cast<float*>(p.bias + n0));
  m.prim.execute(thread_stream(), args);
  if (!direct)
    for (int64_t r = 0; r < rows; ++r)
      std::copy(out + r * cols, out + (r + 1) * cols, p.y + (r0 + r) * p.N + n0);
}

// xb rows [r0, r1) = x rows rounded to bf16 (nearest even, as core/dtype.h), zero past M.
void round_rows(const float* x, int64_t M, int64_t K, int64_t r0, int64_t r1, uint16_t* xb) {
  for (int64_t r = r0; r < std::min(r1, M); ++r)
    for (int64_t k = 0; k < K; ++k) xb[r * K + k] = f32_to_bf16(x[r * K + k]);
  if (r1 > M) std::fill(xb + std::max(r0, M) * K, xb + r1 * K, uint16_t(0));
}

}  // namespace

void onednn_gemm_bf16(const float* x, int64_t M, int64_t K, const uint16_t* w, bool weight_is_kn,
                      int64_t N, const float* bias, float* y) {
  const int64_t chunks = (M + kRows - 1) / kRows;
  Problem p{nullptr, M, K, N, w, weight_is_kn, bias, y, (N + block_width(N) - 1) / block_width(N),
            {},      {}};
  try {
    size_t packed_bytes = 0;
    std::vector<size_t> offsets;
    for (int64_t j = 0; j < p.blocks; ++j) {
      p.mm.push_back(matmul_for({K, N, block_cols(p, j), bias != nullptr}));
      offsets.push_back(packed_bytes);
      packed_bytes += (p.mm.back()->pd.weights_desc().get_size() + 63) / 64 * 64;
    }
    // The calling thread's scratch: pool workers use slots 0 and 1 only.
    auto* packed = static_cast<uint8_t*>(scratch(packed_bytes + 2 * size_t(chunks * kRows * K), 2));
    for (int64_t j = 0; j < p.blocks; ++j) p.packed.push_back(packed + offsets[size_t(j)]);
    auto* xb = reinterpret_cast<uint16_t*>(packed + packed_bytes);
    p.xb = xb;
    parallel_for(chunks, [&](int64_t begin, int64_t end) {
      round_rows(x, M, K, begin * kRows, end * kRows, xb);
    });
    parallel_for(p.blocks, [&](int64_t begin, int64_t end) {
      single_threaded_onednn();
      for (int64_t j = begin; j < end; ++j) pack_block(p, j);
    });
    // Column block by column block: a block's packed W stays in cache while every row chunk
    // meets it (x, rounded, is a fraction of W's size for the shapes that matter).
    parallel_for(chunks * p.blocks, [&](int64_t begin, int64_t end) {
      single_threaded_onednn();
      for (int64_t t = begin; t < end; ++t) run_task(p, t % chunks, t / chunks);
    });
  } catch (const dnnl::error& e) {
    fail("oneDNN matmul {}x{}x{} failed: {}", M, K, N, e.what());
  }
}

std::string onednn_implementation() {
  static const std::string name = [] {
    try {
      return std::string(make_matmul({512, 512, 512, false})->pd.impl_info_str());
    } catch (const dnnl::error& e) {
      return std::string("none (") + e.what() + ")";
    }
  }();
  return name;
}

}  // namespace zoft::cpu::detail

#endif  // ZOFT_HAVE_DNNL
