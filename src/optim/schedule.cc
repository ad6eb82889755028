#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace zoft::optim {

double Schedule::factor(int64_t step) const {
  ZOFT_CHECK(step >= 0, "learning-rate schedule: negative step {}", step);
  // HF divides by max(1, n) everywhere so that 0 warm-up or 0 decay steps never divide by 0.
  if (step < warmup_steps) return double(step) / double(std::max<int64_t>(1, warmup_steps));
  if (kind == ScheduleKind::Constant) return 1.0;
  ZOFT_CHECK(total_steps > 0, "learning-rate schedule {}: total_steps must be set (got {})",
             schedule_kind_name(kind), total_steps);
  double decay_steps = double(std::max<int64_t>(1, total_steps - warmup_steps));
  if (kind == ScheduleKind::Linear) return std::max(0.0, double(total_steps - step) / decay_steps);
  double progress = double(step - warmup_steps) / decay_steps;
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * num_cycles * 2.0 * progress)));
}

ScheduleKind parse_schedule_kind(std::string_view name) {
  if (name == "constant" || name == "constant_with_warmup") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  fail("unknown learning-rate schedule '{}': use constant, linear or cosine", name);
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Linear:
      return "linear";
    case ScheduleKind::Cosine:
      return "cosine";
  }
  return "?";
}

}  // namespace zoft::optim
