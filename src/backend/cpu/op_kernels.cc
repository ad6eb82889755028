// The table of one copy of the per-instruction-set ops (op_kernels.h), compiled with it.
#include "backend/cpu/op_kernels.h"

#if !defined(ZOFT_OPS_ISA)
#error "op_kernels.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {

const OpKernels kOpKernels = {
    .attention = attention,
    .attention_backward = attention_backward,
    .add_inplace = add_inplace,
    .activation = activation,
    .gated_activation = gated_activation,
    .softcap = softcap,
    .rope = rope,
    .layer_norm = layer_norm,
    .rms_norm = rms_norm,
    .embedding = embedding,
    .cross_entropy = cross_entropy,
    .activation_backward = activation_backward,
    .gated_activation_backward = gated_activation_backward,
    .rope_backward = rope_backward,
    .softcap_backward = softcap_backward,
    .layer_norm_backward = layer_norm_backward,
    .rms_norm_backward = rms_norm_backward,
    .embedding_backward = embedding_backward,
    .cross_entropy_backward = cross_entropy_backward,
};

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
