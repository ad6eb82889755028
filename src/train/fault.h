// Fault injection for the crash-and-resume tests: with ZOFT_FAULT=<point>:<step> in the
// environment the process kills itself (SIGKILL, as a crash or an OOM kill would) when it
// reaches that point of that step. Points: "step" (when a training method's step has run, before
// the trainer logs, evaluates or saves it) and "save" (midway through writing a checkpoint).
#pragma once

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace zoft {

inline void fault_point(const char* point, int64_t step) {
  static const char* spec = std::getenv("ZOFT_FAULT");
  if (!spec) return;
  if (std::string(spec) == std::string(point) + ":" + std::to_string(step)) ::kill(::getpid(), SIGKILL);
}

}  // namespace zoft
