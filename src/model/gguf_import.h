// Importing llama.cpp GGUF models: the metadata becomes the config.json that Hugging Face uses
// for the model, and the tensors get HF names, HF layouts and f32 values, so that everything
// after the import (loader, `zoft convert`) sees an ordinary HF checkpoint.
//
// llama.cpp's converter changes three things that the import undoes:
//  - `llama` models: the rows of q/k are interleaved per head for llama.cpp's rope;
//  - Gemma: norm weights are stored as 1 + w (HF computes x * (1 + w));
//  - settings its runtime hard-codes are not in the file (Gemma 3's every-6th-layer-global
//    pattern, its local rope base, query_pre_attn_scalar): the import supplies them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/tensor_store.h"

namespace zoft {

class GgufFile;

struct ImportedModel {
  nlohmann::json config;                  // config.json as transformers writes it for the model
  std::vector<NamedOwnedTensor> tensors;  // HF names ("model.layers.0.self_attn.q_proj.weight")
};

// Throws Error naming the file for an architecture zoft cannot import (listing those it can),
// a tensor without an HF counterpart, or missing metadata.
ImportedModel import_gguf(const GgufFile& gguf);
// Only the config.json (reads no weights, except the tiny rope_freqs.weight of Llama 3 files).
nlohmann::json gguf_model_config(const GgufFile& gguf);
// The tensors import_gguf would make, by HF name and shape, with no data (null views): for
// checking a file against its config without dequantising it.
std::vector<NamedOwnedTensor> gguf_tensor_shapes(const GgufFile& gguf);
std::string supported_gguf_architectures();  // "llama, gemma3"

// A regular file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

}  // namespace zoft
