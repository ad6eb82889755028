#include "model.h"

#include <pybind11/stl.h>

#include <chrono>
#include <cstring>

#include "core/error.h"

namespace py = pybind11;

namespace zoft::python {

namespace {

using Clock = std::chrono::steady_clock;

// A C-contiguous 2-D buffer of `format` (the Python layer makes one with numpy.ascontiguousarray).
py::buffer_info matrix(const py::buffer& b, const char* what, const std::string& format) {
  py::buffer_info info = b.request();
  if (info.ndim != 2 || info.format != format || info.strides[1] != info.itemsize ||
      info.strides[0] != info.itemsize * info.shape[1])
    fail("{}: expected a C-contiguous 2-D array of {}", what, format);
  return info;
}

TokenBatch batch_from(const py::buffer& ids, const py::buffer& mask) {
  py::buffer_info i = matrix(ids, "ids", py::format_descriptor<int32_t>::format());
  py::buffer_info m = matrix(mask, "attention_mask", py::format_descriptor<uint8_t>::format());
  if (i.shape != m.shape) fail("ids and attention_mask have different shapes");
  TokenBatch b;
  b.batch = i.shape[0];
  b.seq = i.shape[1];
  const auto* id = static_cast<const int32_t*>(i.ptr);
  const auto* mk = static_cast<const uint8_t*>(m.ptr);
  b.ids.assign(id, id + b.rows());
  b.mask.assign(mk, mk + b.rows());
  return b;
}

std::vector<int32_t> vector_from(const py::buffer& targets, const TokenBatch& batch) {
  py::buffer_info t = matrix(targets, "labels", py::format_descriptor<int32_t>::format());
  if (t.shape[0] != batch.batch || t.shape[1] != batch.seq)
    fail("labels must have the shape of ids [{}, {}]", batch.batch, batch.seq);
  const auto* p = static_cast<const int32_t*>(t.ptr);
  return std::vector<int32_t>(p, p + batch.rows());
}

// Ctrl-C while the engine runs: Python's handler only sets a flag until this thread asks.
void check_signals() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// The most new tokens `zoft generate --max-new-tokens` accepts (cli/generate_cmd.cc).
constexpr int64_t kMaxNewTokens = int64_t(1) << 24;

}  // namespace

Model::Model(const std::string& path, const cli::PlacementOptions& placement) : path_(path) {
  // As `zoft generate` / `zoft eval` (cuda_ok): --device cuda where the build and the machine
  // have it, else the CLI's one-line reason.
  dtype_ = cli::apply_placement(placement, /*cuda_ok=*/true);
  // As the CLI: the tokenizer first, and its error is the one reported when neither loads. A
  // model without one (the golden fixtures) still scores ids.
  try {
    tokenizer_ = std::make_unique<text::Tokenizer>(text::Tokenizer::from_file(path));
  } catch (const Error& e) {
    tokenizer_error_ = e.what();
  }
  try {
    decoder_.emplace(Decoder::load(path, dtype_));
  } catch (const Error&) {
    if (!tokenizer_error_.empty()) throw Error(tokenizer_error_);
    throw;
  }
  offload_ = cli::attach_offload(*decoder_, path, placement);
  // The CLI's order: offload planned on the host model, then the GPU tier (a gpu= budget) or
  // the weights uploaded once.
  gpu_tier_ = cli::attach_gpu_tier(*decoder_, placement);
  const Device device = cli::placement_device(placement);
  if (device != Device::CPU && !gpu_tier_) *decoder_ = decoder_->to_device(device);
}

py::dict Model::config() const {
  const ModelConfig& c = decoder_->config();
  py::dict d;
  d["model_type"] = c.model_type;
  d["vocab_size"] = c.vocab_size;
  d["hidden_size"] = c.hidden_size;
  d["num_hidden_layers"] = c.num_layers;
  d["num_attention_heads"] = c.num_heads;
  d["num_key_value_heads"] = c.num_kv_heads;
  d["head_dim"] = c.head_dim;
  d["intermediate_size"] = c.intermediate_size;
  d["max_position_embeddings"] = c.max_positions;
  d["tie_word_embeddings"] = c.tie_embeddings;
  d["bos_token_id"] = c.bos_id;
  d["eos_token_id"] = c.eos_id;
  d["pad_token_id"] = c.pad_id;
  return d;
}

const text::Tokenizer& Model::tokenizer() const {
  if (!tokenizer_) throw Error(tokenizer_error_);
  return *tokenizer_;
}

HostArray Model::logits(const TokenBatch& batch) {
  HostArray out({batch.batch, batch.seq, decoder_->config().vocab_size});
  py::gil_scoped_release nogil;
  std::lock_guard lock(mutex_);
  decoder_->logits(batch, out.data());
  return out;
}

HostArray Model::token_losses(const TokenBatch& batch, const std::vector<int32_t>& targets) {
  const int64_t vocab = decoder_->config().vocab_size;
  for (int32_t t : targets)
    if (t >= vocab) fail("label {} is outside the vocabulary (size {})", t, vocab);
  HostArray out({batch.batch, batch.seq});
  py::gil_scoped_release nogil;
  std::lock_guard lock(mutex_);
  decoder_->token_losses(batch, targets.data(), out.data());
  return out;
}

PerplexityResult Model::perplexity(const std::vector<int32_t>& ids, int64_t window,
                                   int64_t stride) {
  py::gil_scoped_release nogil;
  std::lock_guard lock(mutex_);
  return zoft::perplexity(*decoder_, ids, window, stride,
                          [](int64_t, int64_t) { check_signals(); });
}

py::dict Model::generate(const std::vector<int32_t>& prompt, SamplingOptions sampling,
                         bool ignore_eos, const py::object& on_token) {
  if (sampling.max_new_tokens < 0 || sampling.max_new_tokens > kMaxNewTokens)
    fail("--max-new-tokens must be between 0 and {}, got {}", kMaxNewTokens,
         sampling.max_new_tokens);
  if (prompt.empty()) fail("the prompt encodes to no tokens: give some text");
  const ModelConfig& config = decoder_->config();
  for (int32_t id : {tokenizer_ ? tokenizer_->eos_id() : -1, config.eos_id})
    if (id >= 0 && !ignore_eos) sampling.stop_ids.push_back(id);
  std::vector<int32_t> produced;
  Clock::time_point start, first_token, end;
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mutex_);
    start = first_token = Clock::now();
    produced = zoft::generate(*decoder_, prompt, sampling, [&](int32_t id) {
      if (first_token == start) first_token = Clock::now();
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!on_token.is_none()) on_token(id);
    });
    end = Clock::now();
  }
  py::dict r;
  r["ids"] = produced;
  r["prompt_tokens"] = prompt.size();
  r["prefill_s"] = std::chrono::duration<double>(first_token - start).count();
  r["decode_s"] = std::chrono::duration<double>(end - first_token).count();
  return r;
}

void bind_model(py::module_& m) {
  py::class_<Model>(m, "Model")
      .def(py::init([](const std::string& path, const std::string& dtype, const std::string& device,
                       const std::string& max_memory, const std::string& offload_dir, int threads,
                       int64_t prefetch) {
             cli::PlacementOptions p;
             p.dtype = dtype;
             p.device = device;
             p.max_memory = max_memory;
             p.offload_dir = offload_dir;
             p.threads = threads;
             p.prefetch = prefetch;
             py::gil_scoped_release nogil;
             return std::make_unique<Model>(path, p);
           }),
           py::arg("path"), py::arg("dtype"), py::arg("device"), py::arg("max_memory"),
           py::arg("offload_dir"), py::arg("threads"), py::arg("prefetch"))
      .def_property_readonly("path", &Model::path)
      .def_property_readonly("dtype", &Model::dtype)
      .def_property_readonly("config", &Model::config)
      .def_property_readonly("has_tokenizer", &Model::has_tokenizer)
      .def_property_readonly("tokenizer", &Model::tokenizer,
                             py::return_value_policy::reference_internal)
      .def("logits", [](Model& self, const py::buffer& ids,
                        const py::buffer& mask) { return self.logits(batch_from(ids, mask)); })
      .def("token_losses",
           [](Model& self, const py::buffer& ids, const py::buffer& mask,
              const py::buffer& targets) {
             TokenBatch batch = batch_from(ids, mask);
             return self.token_losses(batch, vector_from(targets, batch));
           })
      .def("perplexity_of",
           [](Model& self, const std::string& text_or_path, bool is_path, int64_t window,
              int64_t stride, int64_t max_tokens, const std::string& text_field) {
             if (window < 0 || stride < 0 || max_tokens < 0)
               fail("window, stride and max_tokens must be >= 0 (0 = the default)");
             // The reading, tokenising and window of `zoft eval --data FILE` (cli/common.h).
             std::string text =
                 is_path ? cli::read_eval_text(text_or_path, text_field) : text_or_path;
             std::vector<int32_t> ids = cli::eval_tokens(
                 self.tokenizer(), text, max_tokens, is_path ? text_or_path : "perplexity(text)");
             auto [w, s] = cli::eval_window(self.decoder_config(), window, stride);
             PerplexityResult r = self.perplexity(ids, w, s);
             py::dict d;
             d["tokens"] = ids.size();
             d["window"] = w;
             d["stride"] = s;
             d["total_nll"] = r.total_nll;
             d["scored_tokens"] = r.tokens;
             d["windows"] = r.windows;
             d["mean_nll"] = r.mean_nll();
             d["perplexity"] = r.perplexity();
             return d;
           })
      .def(
          "generate",
          [](Model& self, const std::vector<int32_t>& prompt, int64_t max_new_tokens,
             float temperature, int64_t top_k, float top_p, float repetition_penalty, int64_t seed,
             bool ignore_eos, const py::object& on_token) {
            if (seed < 0) fail("--seed must be >= 0, got {}", seed);
            SamplingOptions s;
            s.max_new_tokens = max_new_tokens;
            s.temperature = temperature;
            s.top_k = top_k;
            s.top_p = top_p;
            s.repetition_penalty = repetition_penalty;
            s.seed = uint64_t(seed);
            return self.generate(prompt, s, ignore_eos, on_token);
          },
          py::arg("prompt"), py::arg("max_new_tokens"), py::arg("temperature"), py::arg("top_k"),
          py::arg("top_p"), py::arg("repetition_penalty"), py::arg("seed"), py::arg("ignore_eos"),
          py::arg("on_token"));
}

}  // namespace zoft::python
