// Learning-rate schedules with linear warm-up, as HF Trainer's lr_lambda functions
// (transformers.optimization): the multiplier of the base learning rate at optimizer step t,
// t = 0 for the first step (so with warm-up the first step has lr 0, as in HF).
#pragma once

#include <cstdint>
#include <string_view>

namespace zoft::optim {

enum class ScheduleKind : uint8_t {
  Constant,  // HF get_constant_schedule_with_warmup ("constant" when warmup_steps = 0)
  Linear,    // HF get_linear_schedule_with_warmup
  Cosine,    // HF get_cosine_schedule_with_warmup
};

struct Schedule {
  ScheduleKind kind = ScheduleKind::Constant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // HF num_training_steps; Linear and Cosine need it > 0
  double num_cycles = 0.5;  // Cosine: 0.5 = one half-wave from 1 down to 0

  // The multiplier of the base learning rate at step t (>= 0).
  double factor(int64_t step) const;
};

// "constant", "constant_with_warmup", "linear", "cosine" (HF lr_scheduler_type names).
ScheduleKind parse_schedule_kind(std::string_view name);
const char* schedule_kind_name(ScheduleKind kind);

}  // namespace zoft::optim
