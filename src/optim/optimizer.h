// First-order optimizers as PyTorch defines them: AdamW (torch.optim.AdamW) and SGD with momentum
// (torch.optim.SGD), gradient clipping by global norm (torch.nn.utils.clip_grad_norm_) and HF's
// learning-rate schedules (optim/schedule.h).
//
// Gradients are float32 buffers aligned with list_parameters(model): grads[i] holds
// params[i].tensor.numel() floats. Parameters are stored in f32 or bf16. A bf16 parameter gets an
// f32 master copy in the optimizer: the update is applied to the master, and the parameter is
// the master rounded to nearest. (Without a master, an update smaller than half a bf16 ulp --
// 2^-9 relative, far above a typical lr -- would round away every step; with one, the small
// updates accumulate in f32 and the bf16 copy is always the closest bf16 to the true weights,
// which is what stochastic rounding only achieves in expectation. MeZO rounds stochastically
// because it keeps no f32 state.)
//
// Every result is independent of the number of threads: element updates are independent, and
// the norm is summed over fixed chunks in a fixed order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "model/parameters.h"
#include "optim/schedule.h"

namespace zoft::optim {

enum class Method : uint8_t { kAdamW, kSgd };

// "adamw", "sgd"; throws naming the accepted methods otherwise.
Method parse_method(std::string_view name);
const char* method_name(Method method);

struct OptimizerOptions {
  Method method = Method::kAdamW;
  double lr = 1e-3;           // base learning rate, times schedule.factor(step)
  double weight_decay = 0.0;  // for parameters with decay set only (HF: not biases, not norms);
                              // AdamW: decoupled, p -= lr wd p; SGD: L2, g += wd p (as torch)
  // AdamW (torch defaults)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // SGD (torch defaults)
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
  Schedule schedule;
};

// torch.nn.utils.clip_grad_norm_: returns the global 2-norm of all gradients (before clipping)
// and, when max_norm > 0, scales every gradient by min(1, max_norm / (norm + 1e-6)). max_norm 0
// only measures. A non-finite norm scales nothing (the caller's NaN guard decides); negative
// max_norm is an error. Sizes must be whole floats.
double clip_grad_norm(std::vector<Buffer>& grads, double max_norm);

// Zeroed f32 gradient buffers for `params` (one per parameter, numel floats each).
std::vector<Buffer> make_gradients(const std::vector<ParameterRef>& params);
// Gradient accumulation: acc[i] += scale * micro[i] (e.g. scale = 1 / accumulation steps).
void accumulate_gradients(std::vector<Buffer>& acc, const std::vector<Buffer>& micro, float scale);
void zero_gradients(std::vector<Buffer>& grads);

class Optimizer {
 public:
  // Allocates the state (moments, masters of bf16 parameters) for this parameter list; step()
  // and load() must be given a list with the same names and shapes.
  Optimizer(const OptimizerOptions& options, const std::vector<ParameterRef>& params);

  const OptimizerOptions& options() const { return options_; }
  int64_t step_count() const { return step_; }  // steps taken; the next step is this one
  double lr_at(int64_t step) const { return options_.lr * options_.schedule.factor(step); }

  // One update of every parameter with lr_at(step_count()), then step_count() + 1. The
  // parameters' storage may have moved since the last call (offload); their values must be
  // those the optimizer wrote (or, before the first step, the initial weights).
  void step(const std::vector<ParameterRef>& params, const std::vector<Buffer>& grads);

  // `dir`/optimizer.safetensors (moments, masters) and `dir`/optimizer.json (method, step,
  // parameter names and shapes); dir must exist. load() restores a saved state bit-exactly and
  // refuses one of another method or other parameter names or shapes.
  void save(const std::string& dir) const;
  void load(const std::string& dir);

 private:
  struct Slot {
    std::string name;
    std::vector<int64_t> shape;
    DType dtype = DType::F32;  // of the parameter's storage
    int64_t numel = 0;
    bool decay = false;
    Buffer exp_avg, exp_avg_sq;  // AdamW; exp_avg is SGD's momentum buffer
    Buffer master;               // bf16 parameters only
  };
  void check_parameters(const std::vector<ParameterRef>& params) const;
  void update(const Slot& slot, float* weights, const float* grad, double lr) const;

  OptimizerOptions options_;
  int64_t step_ = 0;
  std::vector<Slot> slots_;
};

}  // namespace zoft::optim
