#include "model/lora.h"

#include <cmath>
#include <cstring>
#include <regex>

#include "backend/ops_backward.h"
#include "core/error.h"
#include "model/decoder.h"

namespace zoft {

namespace {

// The last component of a module name ("model.layers.0.self_attn.q_proj" -> "q_proj").
std::string short_name(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// PEFT's check_target_module_exists for a list of names.
bool name_matches(const std::string& name, const std::string& target) {
  if (target == "all-linear" || name == target) return true;
  return name.size() > target.size() + 1 &&
         name.compare(name.size() - target.size(), target.size(), target) == 0 &&
         name[name.size() - target.size() - 1] == '.';
}

std::string slot_names(const std::vector<LinearSlot>& slots) {
  std::string out;
  for (const LinearSlot& s : slots) {
    std::string n = short_name(s.name);
    if (out.find(n) == std::string::npos) out += (out.empty() ? "" : ", ") + n;
  }
  return out;
}

LinearWeights& linear_of(LayerWeights& w, LinearRole role) {
  switch (role) {
    case LinearRole::Q:
      return w.q;
    case LinearRole::K:
      return w.k;
    case LinearRole::V:
      return w.v;
    case LinearRole::QKV:
      return w.qkv;
    case LinearRole::O:
      return w.o;
    case LinearRole::Gate:
      return w.gate;
    case LinearRole::Up:
      return w.up;
    case LinearRole::Down:
      return w.down;
  }
  fail("unknown linear role");
}

bool has_dropout(const LoraModule& m) {
  return m.dropout && *m.dropout;
}

// The adapter's input: x itself, or a copy with the module's dropout mask applied.
const float* adapter_input(const LoraModule& m, const float* x, int64_t rows, Buffer& copy) {
  if (!has_dropout(m)) return x;
  copy = Buffer(size_t(rows * m.in) * sizeof(float));
  std::memcpy(copy.data(), x, copy.size());
  (*m.dropout)(m.id, copy.as<float>(), rows * m.in);
  return copy.as<float>();
}

void scale_in_place(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace

float LoraSettings::scaling() const {
  return float(rslora ? alpha / std::sqrt(double(r)) : alpha / double(r));
}

void LoraSettings::validate(const std::string& origin) const {
  if (r <= 0) fail("{}: LoRA rank r must be positive, got {}", origin, r);
  if (r > 65536) fail("{}: LoRA rank r = {} is larger than any layer", origin, r);
  if (!std::isfinite(alpha) || alpha <= 0)
    fail("{}: LoRA alpha must be a positive number, got {}", origin, alpha);
  if (!(dropout >= 0 && dropout < 1))
    fail("{}: LoRA dropout must be in [0, 1), got {}", origin, dropout);
  if (target_modules.empty() && target_regex.empty())
    fail(
        "{}: LoRA target_modules is empty: name the linear modules to adapt (e.g. q_proj, "
        "v_proj)",
        origin);
  if (bias != "none")
    fail("{}: LoRA bias '{}' is not supported: only 'none' (the biases stay frozen)", origin, bias);
}

std::vector<LinearSlot> linear_slots(const ArchTable& arch, const ModelConfig& c) {
  const ArchTensorNames& n = arch.tensors;
  const int64_t H = c.hidden_size, qd = c.q_dim(), kd = c.kv_dim(), I = c.intermediate_size;
  struct Role {
    const char* pattern;
    LinearRole role;
    int64_t in, out;
  };
  const Role roles[] = {
      {n.q_proj, LinearRole::Q, H, qd},
      {n.k_proj, LinearRole::K, H, kd},
      {n.v_proj, LinearRole::V, H, kd},
      {n.q_proj ? nullptr : n.qkv_proj, LinearRole::QKV, H, qd + 2 * kd},
      {n.o_proj, LinearRole::O, qd, H},
      {c.gated_mlp ? n.gate_proj : nullptr, LinearRole::Gate, H, I},
      {n.up_proj, LinearRole::Up, H, I},
      {n.down_proj, LinearRole::Down, I, H},
  };
  std::vector<LinearSlot> slots;
  for (int64_t layer = 0; layer < c.num_layers; ++layer)
    for (const Role& r : roles)
      if (r.pattern)
        slots.push_back({layer_tensor_name(r.pattern, layer), layer, r.role, r.in, r.out});
  return slots;
}

LoraAdapters LoraAdapters::create(const ArchTable& arch, const ModelConfig& config,
                                  const LoraSettings& settings, const std::string& origin) {
  settings.validate(origin);
  std::vector<LinearSlot> slots = linear_slots(arch, config);
  std::regex pattern;
  if (!settings.target_regex.empty()) {
    try {
      pattern = std::regex(settings.target_regex);
    } catch (const std::regex_error& e) {
      fail("{}: target_modules '{}' is not a valid regular expression: {}", origin,
           settings.target_regex, e.what());
    }
  }
  LoraAdapters out;
  out.settings_ = settings;
  std::vector<bool> used(settings.target_modules.size(), false);
  for (const LinearSlot& s : slots) {
    bool match = false;
    if (!settings.target_regex.empty()) match = std::regex_match(s.name, pattern);
    for (size_t t = 0; t < settings.target_modules.size(); ++t)
      if (name_matches(s.name, settings.target_modules[t])) match = used[t] = true;
    if (!match) continue;
    LoraModule m;
    m.name = s.name;
    m.layer = s.layer;
    m.role = s.role;
    m.in = s.in;
    m.out = s.out;
    m.r = settings.r;
    m.scaling = settings.scaling();
    m.id = uint32_t(out.modules_.size());
    m.a = OwnedTensor::zeros(DType::F32, {m.r, m.in});
    m.b = OwnedTensor::zeros(DType::F32, {m.out, m.r});
    m.dropout = out.dropout_;
    out.modules_.push_back(std::move(m));
  }
  for (size_t t = 0; t < used.size(); ++t)
    if (!used[t])
      fail(
          "{}: LoRA target module '{}' matches no linear layer of this {} model (its linear "
          "layers: {})",
          origin, settings.target_modules[t], arch.name, slot_names(slots));
  if (out.modules_.empty())
    fail(
        "{}: LoRA target_modules '{}' matches no linear layer of this {} model (its linear "
        "layers: {})",
        origin, settings.target_regex, arch.name, slot_names(slots));
  return out;
}

LoraModule* LoraAdapters::find(const std::string& name) {
  for (LoraModule& m : modules_)
    if (m.name == name) return &m;
  return nullptr;
}

int64_t LoraAdapters::parameter_count() const {
  int64_t n = 0;
  for (const LoraModule& m : modules_) n += m.a.view.numel() + m.b.view.numel();
  return n;
}

std::string peft_tensor_name(const LoraModule& m, bool b) {
  return "base_model.model." + m.name + (b ? ".lora_B.weight" : ".lora_A.weight");
}

std::vector<ParameterRef> lora_parameters(const LoraAdapters& adapters) {
  std::vector<ParameterRef> out;
  for (const LoraModule& m : adapters.modules())
    for (bool b : {false, true}) {
      ParameterRef p;
      p.name = peft_tensor_name(m, b);
      p.id = uint32_t(out.size());
      p.block = m.layer + 1;
      p.tensor = b ? m.b.view : m.a.view;
      p.decay = true;  // matrices, as HF Trainer decays them
      out.push_back(std::move(p));
    }
  return out;
}

void attach_lora(Decoder& model, const LoraAdapters& adapters) {
  ModelWeights& w = model.mutable_weights();
  for (const LoraModule& m : adapters.modules()) {
    ZOFT_CHECK(m.layer >= 0 && m.layer < int64_t(w.layers.size()),
               "LoRA module {} is for layer {} of a {}-layer model", m.name, m.layer,
               w.layers.size());
    LinearWeights& lw = linear_of(w.layers[size_t(m.layer)], m.role);
    if (lw.in_features != m.in || lw.out_features != m.out)
      fail("LoRA module {} maps {} -> {} features but the model's layer maps {} -> {}", m.name,
           m.in, m.out, lw.in_features, lw.out_features);
    lw.lora = &m;
  }
}

void detach_lora(Decoder& model) {
  for (LayerWeights& lw : model.mutable_weights().layers)
    for (LinearWeights* l : {&lw.q, &lw.k, &lw.v, &lw.qkv, &lw.o, &lw.gate, &lw.up, &lw.down})
      l->lora = nullptr;
}

void lora_forward(const LoraModule& m, const float* x, int64_t rows, float* y) {
  Buffer dropped;
  const float* input = adapter_input(m, x, rows, dropped);
  Buffer u(size_t(rows * m.r) * sizeof(float)), t(size_t(rows * m.out) * sizeof(float));
  cpu::linear(input, rows, m.in, m.a.view, false, nullptr, u.as<float>());
  scale_in_place(u.as<float>(), rows * m.r, m.scaling);
  cpu::linear(u.as<float>(), rows, m.r, m.b.view, false, nullptr, t.as<float>());
  cpu::add_inplace(y, t.as<float>(), rows * m.out);
}

void lora_backward(const LoraModule& m, const float* x, const float* dy, int64_t rows, float* dx,
                   float* dA, float* dB) {
  Buffer dropped;
  const float* input = adapter_input(m, x, rows, dropped);  // the mask regenerated
  Buffer u(size_t(rows * m.r) * sizeof(float)), du(size_t(rows * m.r) * sizeof(float));
  Buffer t(size_t(rows * m.in) * sizeof(float));
  // u = s * (x A^T): B's input in the forward.
  cpu::linear(input, rows, m.in, m.a.view, false, nullptr, u.as<float>());
  scale_in_place(u.as<float>(), rows * m.r, m.scaling);
  if (dB) cpu::linear_backward_weight(dy, u.as<float>(), rows, m.out, m.r, false, dB, nullptr);
  // du = s * (dy B): the gradient at x A^T.
  cpu::linear_backward_input(dy, rows, m.out, m.b.view, false, du.as<float>());
  scale_in_place(du.as<float>(), rows * m.r, m.scaling);
  if (dA) cpu::linear_backward_weight(du.as<float>(), input, rows, m.r, m.in, false, dA, nullptr);
  cpu::linear_backward_input(du.as<float>(), rows, m.r, m.a.view, false, t.as<float>());
  if (has_dropout(m)) (*m.dropout)(m.id, t.as<float>(), rows * m.in);
  cpu::add_inplace(dx, t.as<float>(), rows * m.in);
}

void lora_merge_into(const LoraModule& m, float* weight, bool weight_is_kn) {
  // delta [out, in] = (s B) A: B's rows through A read as an [in = r, out = in] (kn) weight.
  Buffer scaled_b(size_t(m.out * m.r) * sizeof(float)), delta(size_t(m.out * m.in) * sizeof(float));
  std::memcpy(scaled_b.data(), m.b.view.data, scaled_b.size());
  scale_in_place(scaled_b.as<float>(), m.out * m.r, m.scaling);
  cpu::linear(scaled_b.as<float>(), m.out, m.r, m.a.view, true, nullptr, delta.as<float>());
  const float* d = delta.as<float>();
  if (!weight_is_kn) {
    cpu::add_inplace(weight, d, m.out * m.in);
    return;
  }
  for (int64_t o = 0; o < m.out; ++o)
    for (int64_t i = 0; i < m.in; ++i) weight[i * m.out + o] += d[o * m.in + i];
}

}  // namespace zoft
