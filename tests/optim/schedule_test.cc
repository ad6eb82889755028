#include "optim/schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace zoft::optim {
namespace {

// Values worked out by hand from transformers.optimization's lr_lambda functions.
TEST(Schedule, ConstantWithWarmup) {
  Schedule s{ScheduleKind::Constant, 4, 0};
  EXPECT_DOUBLE_EQ(s.factor(0), 0.0);  // HF: the first step of a warm-up has lr 0
  EXPECT_DOUBLE_EQ(s.factor(1), 0.25);
  EXPECT_DOUBLE_EQ(s.factor(3), 0.75);
  EXPECT_DOUBLE_EQ(s.factor(4), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(1000000), 1.0);
  EXPECT_DOUBLE_EQ(Schedule{}.factor(0), 1.0);  // HF "constant"
}

TEST(Schedule, LinearWithWarmup) {
  Schedule s{ScheduleKind::Linear, 10, 110};
  EXPECT_DOUBLE_EQ(s.factor(0), 0.0);
  EXPECT_DOUBLE_EQ(s.factor(5), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(10), 1.0);   // (110 - 10) / 100
  EXPECT_DOUBLE_EQ(s.factor(35), 0.75);  // (110 - 35) / 100
  EXPECT_DOUBLE_EQ(s.factor(109), 0.01);
  EXPECT_DOUBLE_EQ(s.factor(110), 0.0);
  EXPECT_DOUBLE_EQ(s.factor(200), 0.0);  // clamped, never negative
  Schedule no_warmup{ScheduleKind::Linear, 0, 4};
  EXPECT_DOUBLE_EQ(no_warmup.factor(0), 1.0);
  EXPECT_DOUBLE_EQ(no_warmup.factor(1), 0.75);
}

TEST(Schedule, CosineWithWarmup) {
  Schedule s{ScheduleKind::Cosine, 2, 12};
  EXPECT_DOUBLE_EQ(s.factor(1), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(2), 1.0);
  // progress = (t - 2) / 10; 0.5 (1 + cos(pi progress)).
  EXPECT_NEAR(s.factor(7), 0.5, 1e-15);
  EXPECT_NEAR(s.factor(4), 0.5 * (1 + std::cos(M_PI * 0.2)), 1e-15);  // 0.9045084971874737
  EXPECT_NEAR(s.factor(4), 0.9045084971874737, 1e-15);
  EXPECT_NEAR(s.factor(12), 0.0, 1e-15);
  Schedule cycles{ScheduleKind::Cosine, 0, 10, 1.0};  // a full wave: back to 1 at the end
  EXPECT_NEAR(cycles.factor(5), 0.0, 1e-15);
  EXPECT_NEAR(cycles.factor(10), 1.0, 1e-15);
}

TEST(Schedule, NamesAndErrors) {
  EXPECT_EQ(parse_schedule_kind("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(parse_schedule_kind("constant_with_warmup"), ScheduleKind::Constant);
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::Linear), "linear");
  EXPECT_THROW(parse_schedule_kind("polynomial"), Error);
  EXPECT_THROW((Schedule{ScheduleKind::Linear, 0, 0}.factor(3)), Error);  // total_steps unset
  EXPECT_THROW(Schedule{}.factor(-1), Error);
}

}  // namespace
}  // namespace zoft::optim
