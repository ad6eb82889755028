// Running the zoft binary from the CLI tests (ZOFT_BINARY is set by CMakeLists.txt).
#pragma once

#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace zoft {

struct ZoftRun {
  int status = -1;
  std::string output;  // stdout and stderr
};

inline ZoftRun run_zoft(const std::string& args) {
  std::string command = fmt::format("'{}' {} 2>&1", ZOFT_BINARY, args);
  ZoftRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return run;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) run.output.append(chunk, n);
  int status = pclose(pipe);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace zoft
