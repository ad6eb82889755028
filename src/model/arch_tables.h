// The architecture tables, one per file (arch_*.cc), collected by arch.cc.
#pragma once

#include "model/arch.h"

namespace zoft {

extern const ArchTable kLlamaArch;
extern const ArchTable kQwen3Arch;
extern const ArchTable kGemma3Arch;
extern const ArchTable kOptArch;
extern const ArchTable kGpt2Arch;

}  // namespace zoft
