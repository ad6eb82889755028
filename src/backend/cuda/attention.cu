// Flash-style causal attention: no T x T matrix. A block handles 8 consecutive queries of one
// (batch, query head), one warp per query. It sweeps the keys its queries may see in tiles of
// 32, staged in shared memory once for all 8 warps; each warp keeps its query's running maximum
// m, running sum l of exp(score - m) and accumulator acc of exp(score - m) * v, rescaling l and
// acc by exp(m_old - m_new) when a tile raises m (online softmax).
//
// Within a warp, lane j scores key j of the tile (a dot product over the head dimension), and
// lane d accumulates output dims d, d + 32, ... (head_dim <= 256: 8 accumulators per lane).
// Plain FP32 CUDA cores, no tensor cores: simple and exact to the CPU semantics; a tensor-core
// version is future work (docs/cuda.md).

#include "backend/cuda/check.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace zoft::cuda::kernels {
namespace {

constexpr int kQueriesPerBlock = 8;  // = warps per block
constexpr int kKeyTile = 32;         // = lanes per warp
constexpr int kMaxSlots = int(kMaxHeadDim / 32);

// Keys [first_key(qp), qp] may be seen by position from query position qp.
__device__ int64_t first_key(int64_t qp, int64_t window) {
  const int64_t first = qp - window + 1;
  return window > 0 && first > 0 ? first : 0;
}

// Shared memory: K tile [32][D + 1] (the pad puts lane j's reads of k_j[d] in distinct banks),
// V tile [32][D], and each warp's scaled query [warps][D].
__global__ void attention_kernel(AttentionArgs a) {
  extern __shared__ float smem[];
  const int64_t D = a.head_dim, k_stride = D + 1;
  float* k_tile = smem;
  float* v_tile = k_tile + kKeyTile * k_stride;
  float* q_rows = v_tile + kKeyTile * D;

  const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t b = blockIdx.z, h = blockIdx.y, hk = h / (a.q_heads / a.kv_heads);
  const int64_t q_offset = a.kv_len - a.q_len;
  const int64_t t0 = int64_t(blockIdx.x) * warps, t = t0 + warp;
  const bool active = t < a.q_len;
  const int64_t qp = q_offset + t;  // this warp's query position in the cache

  float* q = q_rows + warp * D;
  if (active)
    for (int64_t d = lane; d < D; d += 32)
      q[d] = a.q[((b * a.q_len + t) * a.q_heads + h) * D + d] * a.scale;

  float m = -INFINITY, l = 0.0f, acc[kMaxSlots];
  for (int i = 0; i < kMaxSlots; ++i) acc[i] = 0.0f;

  // Keys any query of the block may see: from the first query's window start to the last
  // query's own position.
  const int64_t last_t = (t0 + warps < a.q_len ? t0 + warps : a.q_len) - 1;
  const int64_t s_begin = first_key(q_offset + t0, a.window), s_end = q_offset + last_t;
  const float* k_head = a.k + (b * a.kv_capacity * a.kv_heads + hk) * D;
  const float* v_head = a.v + (b * a.kv_capacity * a.kv_heads + hk) * D;
  const int64_t row_stride = a.kv_heads * D;  // between consecutive keys

  for (int64_t s0 = s_begin; s0 <= s_end; s0 += kKeyTile) {
    __syncthreads();  // the previous tile is no longer read (and q is written, first time)
    for (int64_t idx = threadIdx.x; idx < kKeyTile * D; idx += blockDim.x) {
      int64_t j = idx / D, d = idx % D, s = s0 + j;
      bool exists = s <= s_end;
      k_tile[j * k_stride + d] = exists ? k_head[s * row_stride + d] : 0.0f;
      v_tile[j * D + d] = exists ? v_head[s * row_stride + d] : 0.0f;
    }
    __syncthreads();
    if (!active) continue;

    const int64_t s = s0 + lane;
    const bool visible = s <= qp && s >= first_key(qp, a.window) &&
                         (!a.key_valid || a.key_valid[b * a.kv_len + s] != 0);
    float score = -INFINITY;
    if (visible) {
      float dot = 0.0f;
      for (int64_t d = 0; d < D; ++d) dot += q[d] * k_tile[lane * k_stride + d];
      score = a.softcap > 0.0f ? a.softcap * tanhf(dot / a.softcap) : dot;
    }
    const float tile_max = warp_max(score);
    if (tile_max == -INFINITY) continue;  // this query sees no key of the tile (warp-uniform)
    const float m_new = fmaxf(m, tile_max);
    const float p = visible ? expf(score - m_new) : 0.0f;
    const float alpha = expf(m - m_new);  // 0 for the first tile seen (m = -inf)
    l = l * alpha + warp_sum(p);
    m = m_new;
    for (int i = 0; i < kMaxSlots; ++i) acc[i] *= alpha;
    for (int j = 0; j < kKeyTile; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      const float* vj = v_tile + j * D;
#pragma unroll
      for (int i = 0; i < kMaxSlots; ++i) {
        int64_t d = lane + 32 * i;
        if (d < D) acc[i] += pj * vj[d];
      }
    }
  }

  if (!active) return;
  float* out = a.out + ((b * a.q_len + t) * a.q_heads + h) * D;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no key seen: zeros
#pragma unroll
  for (int i = 0; i < kMaxSlots; ++i) {
    int64_t d = lane + 32 * i;
    if (d < D) out[d] = acc[i] * inv;
  }
}

}  // namespace

void attention(const AttentionArgs& a, cudaStream_t stream) {
  const int warps = int(a.q_len < kQueriesPerBlock ? a.q_len : kQueriesPerBlock);
  const size_t smem = sizeof(float) * size_t(kKeyTile * (a.head_dim + 1) + kKeyTile * a.head_dim +
                                             warps * a.head_dim);
  if (smem > 48 * 1024)  // beyond the default limit a kernel must opt in (head_dim > ~160)
    ZOFT_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  dim3 grid(unsigned((a.q_len + warps - 1) / warps), unsigned(a.q_heads), unsigned(a.batch));
  attention_kernel<<<grid, 32 * warps, smem, stream>>>(a);
  ZOFT_CUDA_CHECK_LAUNCH();
}

}  // namespace zoft::cuda::kernels
