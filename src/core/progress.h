// Progress of long work on stderr: a redrawn bar with rate and ETA on a terminal, plain log
// lines (at most one every few seconds) otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace zoft {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  void update(int64_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_, unit_;
  int64_t total_;
  bool terminal_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace zoft
