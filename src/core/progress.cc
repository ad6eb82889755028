#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace zoft {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      terminal_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  finish();
}

void Progress::update(int64_t done, const std::string& extra) {
  auto now = std::chrono::steady_clock::now();
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  bool last = done >= total_;
  if (!last && since_print < (terminal_ ? 0.2 : 5.0)) return;
  last_print_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? double(done) / elapsed : 0;
  double eta = rate > 0 ? double(total_ - done) / rate : 0;
  double fraction = total_ > 0 ? double(done) / double(total_) : 1;
  if (terminal_) {
    const int width = 30;
    int filled = int(fraction * width);
    std::string bar(size_t(filled), '#');
    bar.resize(width, '-');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  ETA %.0fs %s\033[K", label_.c_str(),
                 bar.c_str(), (long long)done, (long long)total_, unit_.c_str(), rate,
                 unit_.c_str(), eta, extra.c_str());
  } else {
    std::fprintf(stderr, "%s: %lld/%lld %s (%.0f%%), %.1f %s/s, ETA %.0fs %s\n", label_.c_str(),
                 (long long)done, (long long)total_, unit_.c_str(), 100 * fraction, rate,
                 unit_.c_str(), eta, extra.c_str());
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (terminal_) std::fprintf(stderr, "\n");
}

}  // namespace zoft
