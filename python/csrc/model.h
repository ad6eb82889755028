// zoft._core.Model: a loaded decoder (plus its tokenizer, when the model has one) and the calls
// the Python API makes on it. Every call releases the GIL while the engine computes; one call
// at a time per model (the decoder's scratch buffers are shared).
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cli/common.h"
#include "host_array.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/perplexity.h"
#include "runtime/offload.h"
#include "text/tokenizer.h"

namespace zoft::python {

class Model {
 public:
  // The CLI's placement options and checks (cli/common.h), then the tokenizer and the weights.
  Model(const std::string& path, const cli::PlacementOptions& placement);

  const std::string& path() const { return path_; }
  std::string dtype() const { return dtype_name(dtype_); }
  pybind11::dict config() const;
  const ModelConfig& decoder_config() const { return decoder_->config(); }
  // Null when the model directory holds no tokenizer; tokenizer() then throws why.
  const text::Tokenizer& tokenizer() const;
  bool has_tokenizer() const { return tokenizer_ != nullptr; }

  // ids, mask: [batch, seq] (int32, uint8). Results are [batch, seq, vocab] / [batch, seq].
  HostArray logits(const TokenBatch& batch);
  HostArray token_losses(const TokenBatch& batch, const std::vector<int32_t>& targets);
  PerplexityResult perplexity(const std::vector<int32_t>& ids, int64_t window, int64_t stride);
  // `on_token(id)` runs with the GIL held after every new token (may be None); Ctrl-C stops.
  pybind11::dict generate(const std::vector<int32_t>& prompt, SamplingOptions sampling,
                          bool ignore_eos, const pybind11::object& on_token);

 private:
  std::string path_;
  DType dtype_ = DType::F32;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::string tokenizer_error_;
  std::optional<Decoder> decoder_;
  std::unique_ptr<runtime::Offload> offload_;   // after decoder_: detached before it goes
  std::unique_ptr<runtime::GpuTier> gpu_tier_;  // after offload_: detached before it
  std::mutex mutex_;
};

void bind_model(pybind11::module_& m);

}  // namespace zoft::python
