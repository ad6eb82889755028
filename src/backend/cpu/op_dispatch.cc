// The public cpu:: entry points of the per-instruction-set ops (op_kernels.h): each forwards to
// the copy of the active kernel path (isa.h), chosen once per call by one atomic load.
#include "backend/cpu/gemm_amx.h"
#include "backend/cpu/op_kernels.h"
#include "core/error.h"

namespace zoft::cpu {
namespace detail {

// The copies CMakeLists.txt compiled.
#if defined(ZOFT_OPS_HAVE_base)
namespace base {
extern const OpKernels kOpKernels;
}
#endif
#if defined(ZOFT_OPS_HAVE_avx512)
namespace avx512 {
extern const OpKernels kOpKernels;
}
#endif

const OpKernels* op_kernels(Isa isa) {
  switch (isa) {
#if defined(ZOFT_OPS_HAVE_base)
    case Isa::avx2:
      return &base::kOpKernels;
#endif
#if defined(ZOFT_OPS_HAVE_avx512)
    case Isa::avx512:
    case Isa::avx512_bf16:
    case Isa::onednn:
    case Isa::amx:
      return &avx512::kOpKernels;
#endif
    default:
      return nullptr;
  }
}

}  // namespace detail

// isa_unavailable() refuses a path whose copy is missing, so active_isa() always has one.
static const detail::OpKernels& active() {
  const detail::OpKernels* kernels = detail::op_kernels(active_isa());
  ZOFT_CHECK(kernels, "CPU path {}: this build has no kernels for it", isa_name(active_isa()));
  return *kernels;
}

void attention(const float* q, const float* k, const float* v, const uint8_t* key_valid, float* out,
               const AttentionShape& shape, float scale, int64_t window, float softcap) {
  if (shape.bf16_products && active_isa() == Isa::amx &&
      detail::amx_attention_fits(shape, softcap)) {
    check_attention_shape(shape);
    return detail::amx_attention(q, k, v, key_valid, out, shape, scale, window);
  }
  active().attention(q, k, v, key_valid, out, shape, scale, window, softcap);
}

void attention_backward(const float* q, const float* k, const float* v, const uint8_t* key_valid,
                        const float* out, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionShape& shape, float scale, int64_t window, float softcap) {
  active().attention_backward(q, k, v, key_valid, out, dout, dq, dk, dv, shape, scale, window,
                              softcap);
}

void add_inplace(float* y, const float* x, int64_t n) {
  active().add_inplace(y, x, n);
}

void activation(Activation kind, float* x, int64_t n) {
  active().activation(kind, x, n);
}

void gated_activation(Activation kind, const float* gate, const float* up, int64_t in_row_stride,
                      float* out, int64_t rows, int64_t dim) {
  active().gated_activation(kind, gate, up, in_row_stride, out, rows, dim);
}

void softcap(float* x, int64_t n, float cap) {
  active().softcap(x, n, cap);
}

void rope(float* x, const int32_t* positions, int64_t rows, int64_t heads, int64_t head_dim,
          int64_t rotary_dim, const float* inv_freq, float attention_scaling) {
  active().rope(x, positions, rows, heads, head_dim, rotary_dim, inv_freq, attention_scaling);
}

void layer_norm(const float* x, const float* gamma, const float* beta, float* out, int64_t rows,
                int64_t dim, float eps) {
  active().layer_norm(x, gamma, beta, out, rows, dim, eps);
}

void rms_norm(const float* x, const float* gamma, float* out, int64_t rows, int64_t dim, float eps,
              bool unit_offset) {
  active().rms_norm(x, gamma, out, rows, dim, eps, unit_offset);
}

void embedding(const Tensor& table, const int32_t* ids, int64_t rows, float scale, float* out) {
  active().embedding(table, ids, rows, scale, out);
}

void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                   float* loss) {
  active().cross_entropy(logits, targets, rows, vocab, loss);
}

void activation_backward(Activation kind, const float* x, const float* dy, float* dx, int64_t n) {
  active().activation_backward(kind, x, dy, dx, n);
}

void gated_activation_backward(Activation kind, const float* gate, const float* up,
                               int64_t in_row_stride, const float* dy, float* dgate, float* dup,
                               int64_t out_row_stride, int64_t rows, int64_t dim) {
  active().gated_activation_backward(kind, gate, up, in_row_stride, dy, dgate, dup, out_row_stride,
                                     rows, dim);
}

void rope_backward(float* dx, const int32_t* positions, int64_t rows, int64_t heads,
                   int64_t head_dim, int64_t rotary_dim, const float* inv_freq,
                   float attention_scaling) {
  active().rope_backward(dx, positions, rows, heads, head_dim, rotary_dim, inv_freq,
                         attention_scaling);
}

void softcap_backward(const float* y, const float* dy, float* dx, int64_t n, float cap) {
  active().softcap_backward(y, dy, dx, n, cap);
}

void layer_norm_backward(const float* x, const float* gamma, const float* dy, float* dx,
                         float* dgamma, float* dbeta, int64_t rows, int64_t dim, float eps) {
  active().layer_norm_backward(x, gamma, dy, dx, dgamma, dbeta, rows, dim, eps);
}

void rms_norm_backward(const float* x, const float* gamma, const float* dy, float* dx,
                       float* dgamma, int64_t rows, int64_t dim, float eps, bool unit_offset) {
  active().rms_norm_backward(x, gamma, dy, dx, dgamma, rows, dim, eps, unit_offset);
}

void embedding_backward(const float* dout, const int32_t* ids, int64_t rows, int64_t dim,
                        float scale, float* dtable) {
  active().embedding_backward(dout, ids, rows, dim, scale, dtable);
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* dloss,
                            int64_t rows, int64_t vocab, float* dlogits) {
  active().cross_entropy_backward(logits, targets, dloss, rows, vocab, dlogits);
}

}  // namespace zoft::cpu
