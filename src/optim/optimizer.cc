#include "optim/optimizer.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "backend/cpu/parallel.h"
#include "core/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace zoft::optim {

Method parse_method(std::string_view name) {
  if (name == "adamw") return Method::kAdamW;
  if (name == "sgd") return Method::kSgd;
  fail("unknown optimizer '{}': use adamw or sgd", name);
}

const char* method_name(Method method) {
  return method == Method::kAdamW ? "adamw" : "sgd";
}

// --- gradients --------------------------------------------------------------------------------

static int64_t float_count(const Buffer& grad, size_t index) {
  ZOFT_CHECK(grad.size() % sizeof(float) == 0,
             "gradient {}: {} bytes is not a whole number of floats", index, grad.size());
  return int64_t(grad.size() / sizeof(float));
}

// The norm is summed per chunk of this many elements, then over the chunks in order: the same
// sum whatever the thread count.
constexpr int64_t kNormChunk = 16 * 1024;

static double sum_of_squares(const float* x, int64_t n) {
  double lane[8] = {};  // eight independent sums: vectorisable, and fixed order
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += double(x[i + k]) * double(x[i + k]);
  for (; i < n; ++i) lane[0] += double(x[i]) * double(x[i]);
  double s = 0;
  for (double v : lane) s += v;
  return s;
}

static double global_norm(const std::vector<Buffer>& grads) {
  struct Chunk {
    const float* data;
    int64_t n;
  };
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < grads.size(); ++i) {
    int64_t n = float_count(grads[i], i);
    for (int64_t at = 0; at < n; at += kNormChunk)
      chunks.push_back({grads[i].as<float>() + at, std::min(kNormChunk, n - at)});
  }
  std::vector<double> partial(chunks.size());
  cpu::parallel_items(int64_t(chunks.size()), kNormChunk, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) partial[c] = sum_of_squares(chunks[c].data, chunks[c].n);
  });
  double total = 0;
  for (double p : partial) total += p;
  return std::sqrt(total);
}

static void scale(float* x, int64_t n, float factor) {
  cpu::parallel_items(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= factor;
  });
}

double clip_grad_norm(std::vector<Buffer>& grads, double max_norm) {
  ZOFT_CHECK(std::isfinite(max_norm) && max_norm >= 0,
             "max_grad_norm must be >= 0 (0 = no clipping), got {}", max_norm);
  double norm = global_norm(grads);
  if (max_norm == 0 || !std::isfinite(norm)) return norm;
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (auto& g : grads) scale(g.as<float>(), int64_t(g.size() / sizeof(float)), float(coef));
  return norm;
}

std::vector<Buffer> make_gradients(const std::vector<ParameterRef>& params) {
  std::vector<Buffer> grads;
  grads.reserve(params.size());
  for (const auto& p : params) {
    grads.emplace_back(size_t(p.tensor.numel()) * sizeof(float));
    std::memset(grads.back().data(), 0, grads.back().size());
  }
  return grads;
}

void accumulate_gradients(std::vector<Buffer>& acc, const std::vector<Buffer>& micro, float scale) {
  ZOFT_CHECK(acc.size() == micro.size(), "accumulate_gradients: {} gradients, {} to add",
             acc.size(), micro.size());
  for (size_t i = 0; i < acc.size(); ++i) {
    ZOFT_CHECK(acc[i].size() == micro[i].size(),
               "accumulate_gradients: gradient {}: {} bytes, {} to add", i, acc[i].size(),
               micro[i].size());
    float* a = acc[i].as<float>();
    const float* m = micro[i].as<float>();
    cpu::parallel_items(float_count(acc[i], i), 2, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) a[k] += scale * m[k];
    });
  }
}

void zero_gradients(std::vector<Buffer>& grads) {
  for (auto& g : grads) std::memset(g.data(), 0, g.size());
}

// --- the optimizer ----------------------------------------------------------------------------

static Buffer zeros(int64_t n) {
  Buffer b(size_t(n) * sizeof(float));
  std::memset(b.data(), 0, b.size());
  return b;
}

static std::vector<int64_t> shape_of(const Tensor& t) {
  return std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.ndim);
}

static void check_options(const OptimizerOptions& o) {
  auto finite_at_least_0 = [](double v) { return std::isfinite(v) && v >= 0; };
  ZOFT_CHECK(finite_at_least_0(o.lr), "optimizer: lr must be >= 0, got {}", o.lr);
  ZOFT_CHECK(finite_at_least_0(o.weight_decay), "optimizer: weight_decay must be >= 0, got {}",
             o.weight_decay);
  ZOFT_CHECK(o.beta1 >= 0 && o.beta1 < 1, "adamw: beta1 must be in [0, 1), got {}", o.beta1);
  ZOFT_CHECK(o.beta2 >= 0 && o.beta2 < 1, "adamw: beta2 must be in [0, 1), got {}", o.beta2);
  ZOFT_CHECK(std::isfinite(o.eps) && o.eps > 0, "adamw: eps must be > 0, got {}", o.eps);
  ZOFT_CHECK(finite_at_least_0(o.momentum), "sgd: momentum must be >= 0, got {}", o.momentum);
  ZOFT_CHECK(o.dampening >= 0 && o.dampening <= 1, "sgd: dampening must be in [0, 1], got {}",
             o.dampening);
  ZOFT_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
             "sgd: nesterov needs momentum > 0 and dampening 0 (as torch.optim.SGD)");
}

Optimizer::Optimizer(const OptimizerOptions& options, const std::vector<ParameterRef>& params)
    : options_(options) {
  check_options(options_);
  bool adam = options_.method == Method::kAdamW;
  bool momentum = options_.method == Method::kSgd && options_.momentum != 0;
  for (const auto& p : params) {
    ZOFT_CHECK(p.tensor.dtype == DType::F32 || p.tensor.dtype == DType::BF16,
               "optimizer: parameter '{}' is stored in {}; only f32 and bf16 are trainable", p.name,
               dtype_name(p.tensor.dtype));
    ZOFT_CHECK(p.tensor.is_contiguous(), "optimizer: parameter '{}' is not contiguous", p.name);
    Slot s;
    s.name = p.name;
    s.shape = shape_of(p.tensor);
    s.dtype = p.tensor.dtype;
    s.numel = p.tensor.numel();
    s.decay = p.decay;
    if (adam || momentum) s.exp_avg = zeros(s.numel);
    if (adam) s.exp_avg_sq = zeros(s.numel);
    if (s.dtype == DType::BF16) {
      s.master = Buffer(size_t(s.numel) * sizeof(float));
      convert_to_f32(p.tensor.data, DType::BF16, s.master.as<float>(), size_t(s.numel));
    }
    slots_.push_back(std::move(s));
  }
}

void Optimizer::check_parameters(const std::vector<ParameterRef>& params) const {
  ZOFT_CHECK(params.size() == slots_.size(),
             "optimizer: {} parameters, but the optimizer was made for {}", params.size(),
             slots_.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Slot& s = slots_[i];
    const Tensor& t = params[i].tensor;
    ZOFT_CHECK(params[i].name == s.name && shape_of(t) == s.shape && t.dtype == s.dtype,
               "optimizer: parameter {} is '{}' {} {}, but the optimizer was made for '{}' {} [{}]",
               i, params[i].name, dtype_name(t.dtype), t.shape_string(), s.name,
               dtype_name(s.dtype), fmt::join(s.shape, ", "));
  }
}

// The scalars of one AdamW step, rounded once from double to float (as torch passes Python
// floats to its float kernels).
struct AdamWScalars {
  float keep;  // 1 - lr wd (decoupled weight decay), 1 without decay
  float one_minus_b1, b2, one_minus_b2, step_size, bc2_sqrt, eps;
};

// Elements [begin, end): torch's _single_tensor_adam with decoupled decay, in its order:
// p *= 1 - lr wd; m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2;
// p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
static void adamw_range(const AdamWScalars& s, float* __restrict w, float* __restrict m,
                        float* __restrict v, const float* __restrict g, int64_t begin,
                        int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    float mi = m[i] + s.one_minus_b1 * (g[i] - m[i]);
    float vi = v[i] * s.b2 + s.one_minus_b2 * g[i] * g[i];
    float denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    w[i] = w[i] * s.keep - s.step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
  }
}

// torch.optim.SGD: d = g + wd p; with momentum, buf = d on the first step, else
// mu buf + (1 - dampening) d, and d = buf (or d + mu buf, Nesterov); p -= lr d.
struct SgdScalars {
  float wd, lr, mu, damp;
  bool first, nesterov;
};

static void sgd_range(const SgdScalars& s, float* __restrict w, float* __restrict buf,
                      const float* __restrict g, int64_t begin, int64_t end) {
  if (!buf) {
    for (int64_t i = begin; i < end; ++i) w[i] -= s.lr * (g[i] + s.wd * w[i]);
    return;
  }
  for (int64_t i = begin; i < end; ++i) {
    float d = g[i] + s.wd * w[i];
    float b = s.first ? d : s.mu * buf[i] + s.damp * d;
    buf[i] = b;
    w[i] -= s.lr * (s.nesterov ? d + s.mu * b : b);
  }
}

void Optimizer::update(const Slot& slot, float* w, const float* g, double lr) const {
  const OptimizerOptions& o = options_;
  bool decay = slot.decay && o.weight_decay != 0;
  float* m = slot.exp_avg.as<float>();
  if (o.method == Method::kAdamW) {
    double t = double(step_ + 1);
    AdamWScalars s{decay ? float(1.0 - lr * o.weight_decay) : 1.0f,
                   float(1.0 - o.beta1),
                   float(o.beta2),
                   float(1.0 - o.beta2),
                   float(lr / (1.0 - std::pow(o.beta1, t))),
                   float(std::sqrt(1.0 - std::pow(o.beta2, t))),
                   float(o.eps)};
    float* v = slot.exp_avg_sq.as<float>();
    cpu::parallel_items(slot.numel, 16, [&](int64_t begin, int64_t end) {
      adamw_range(s, w, m, v, g, begin, end);
    });
    return;
  }
  SgdScalars s{decay ? float(o.weight_decay) : 0.0f,
               float(lr),
               float(o.momentum),
               float(1.0 - o.dampening),
               step_ == 0,
               o.nesterov};
  cpu::parallel_items(slot.numel, 8,
                      [&](int64_t begin, int64_t end) { sgd_range(s, w, m, g, begin, end); });
}

void Optimizer::step(const std::vector<ParameterRef>& params, const std::vector<Buffer>& grads) {
  check_parameters(params);
  ZOFT_CHECK(grads.size() == params.size(), "optimizer: {} gradients for {} parameters",
             grads.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i)
    ZOFT_CHECK(float_count(grads[i], i) == slots_[i].numel,
               "optimizer: gradient of '{}' has {} floats, the parameter {}", params[i].name,
               grads[i].size() / sizeof(float), slots_[i].numel);
  double lr = lr_at(step_);
  for (size_t i = 0; i < params.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.dtype == DType::F32) {
      update(s, params[i].tensor.f32(), grads[i].as<float>(), lr);
      continue;
    }
    float* master = s.master.as<float>();
    update(s, master, grads[i].as<float>(), lr);
    uint16_t* out = params[i].tensor.ptr<uint16_t>();
    cpu::parallel_items(s.numel, 2, [&](int64_t begin, int64_t end) {
      convert_from_f32(master + begin, out + begin, DType::BF16, size_t(end - begin));
    });
  }
  ++step_;
}

// --- state ------------------------------------------------------------------------------------

namespace {

const char* kStateTensors = "optimizer.safetensors";
const char* kStateJson = "optimizer.json";

// The state tensors of a slot: (file name suffix, buffer), in a fixed order.
template <class SlotT>
auto state_buffers(SlotT& s, Method method) {
  std::vector<std::pair<std::string, decltype(&s.exp_avg)>> out;
  if (s.exp_avg.data())
    out.emplace_back(method == Method::kAdamW ? "exp_avg" : "momentum_buffer", &s.exp_avg);
  if (s.exp_avg_sq.data()) out.emplace_back("exp_avg_sq", &s.exp_avg_sq);
  if (s.master.data()) out.emplace_back("master", &s.master);
  return out;
}

}  // namespace

// How a parameter is recorded in optimizer.json, and compared on load.
static nlohmann::json describe(const std::string& name, const std::vector<int64_t>& shape,
                               DType dtype) {
  return {{"name", name}, {"shape", shape}, {"dtype", dtype_name(dtype)}};
}

void Optimizer::save(const std::string& dir) const {
  std::vector<NamedTensor> tensors;
  nlohmann::json parameters = nlohmann::json::array();
  for (const Slot& s : slots_) {
    parameters.push_back(describe(s.name, s.shape, s.dtype));
    for (auto [suffix, buffer] : state_buffers(s, options_.method))
      tensors.push_back(
          {s.name + "." + suffix,
           Tensor::with_shape(buffer->data(), DType::F32, s.shape.data(), int(s.shape.size()))});
  }
  namespace fs = std::filesystem;
  write_safetensors((fs::path(dir) / kStateTensors).string(), tensors,
                    {{"format", "zoft-optimizer"}});
  const OptimizerOptions& o = options_;
  nlohmann::json state = {
      {"method", method_name(o.method)},
      {"step", step_},
      {"parameters", parameters},
      // For the reader; load() restores the state, the options come from the recipe.
      {"options",
       {{"lr", o.lr},
        {"weight_decay", o.weight_decay},
        {"beta1", o.beta1},
        {"beta2", o.beta2},
        {"eps", o.eps},
        {"momentum", o.momentum},
        {"dampening", o.dampening},
        {"nesterov", o.nesterov},
        {"schedule", schedule_kind_name(o.schedule.kind)},
        {"warmup_steps", o.schedule.warmup_steps},
        {"total_steps", o.schedule.total_steps}}},
  };
  write_json_file((fs::path(dir) / kStateJson).string(), state);
}

void Optimizer::load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::string json_path = (fs::path(dir) / kStateJson).string();
  nlohmann::json state = read_json_file(json_path);
  std::string method;
  int64_t step = 0;
  nlohmann::json saved;
  try {
    method = state.at("method").get<std::string>();
    step = state.at("step").get<int64_t>();
    saved = state.at("parameters");
  } catch (const std::exception& e) {
    fail("{}: not an optimizer state: {}", json_path, json_error_text(e));
  }
  ZOFT_CHECK(method == method_name(options_.method),
             "{}: the state is of optimizer '{}', this run uses '{}'", json_path, method,
             method_name(options_.method));
  ZOFT_CHECK(step >= 0, "{}: negative step {}", json_path, step);
  ZOFT_CHECK(saved.is_array() && saved.size() == slots_.size(),
             "{}: the state has {} parameters, the model {}", json_path,
             saved.is_array() ? saved.size() : 0, slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) {
    nlohmann::json expected = describe(slots_[i].name, slots_[i].shape, slots_[i].dtype);
    ZOFT_CHECK(saved[i] == expected, "{}: parameter {} of the state is {}, the model's is {}",
               json_path, i, saved[i].dump(), expected.dump());
  }
  SafetensorsFile file = SafetensorsFile::open((fs::path(dir) / kStateTensors).string());
  size_t expected_tensors = 0;
  for (Slot& s : slots_) {
    for (auto [suffix, buffer] : state_buffers(s, options_.method)) {
      ++expected_tensors;
      std::string name = s.name + "." + suffix;
      const SafetensorsInfo* info = file.find(name);
      ZOFT_CHECK(info, "{}: tensor '{}' missing", file.path(), name);
      ZOFT_CHECK(info->has_dtype && info->dtype == DType::F32 && info->shape == s.shape,
                 "{}: tensor '{}' is {} [{}], expected F32 [{}]", file.path(), name,
                 info->dtype_name, fmt::join(info->shape, ", "), fmt::join(s.shape, ", "));
      std::memcpy(buffer->data(), file.view(*info).data, buffer->size());
    }
  }
  ZOFT_CHECK(file.tensors().size() == expected_tensors, "{}: {} tensors, expected {}", file.path(),
             file.tensors().size(), expected_tensors);
  step_ = step;
}

}  // namespace zoft::optim
