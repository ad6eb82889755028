// The table of one copy of the per-instruction-set ops (op_kernels.h), compiled with it.
#include "backend/cpu/op_kernels.h"

#if !defined(ZOFT_OPS_ISA)
#error "op_kernels.cc is compiled once per instruction set (CMakeLists.txt, zoft_ops_<copy>)"
#endif

namespace zoft::cpu::detail::ZOFT_OPS_ISA {

const OpKernels kOpKernels = {
    .attention = attention,
    .attention_backward = attention_backward,
};

}  // namespace zoft::cpu::detail::ZOFT_OPS_ISA
