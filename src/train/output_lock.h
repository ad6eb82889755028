// One training run per output directory: an exclusive flock on OUTPUT/.lock, held for the
// lifetime of the object. The kernel drops a flock when its holder exits, however it exits
// (kill -9, OOM kill), so a crashed run never leaves a stale lock behind; the file itself stays
// and names the last holder (pid, host, start time) for the message a second run prints.
#pragma once

#include <string>

namespace zoft {

class OutputLock {
 public:
  // Creates output_dir if needed and takes the lock, or throws Error naming the holder.
  explicit OutputLock(const std::string& output_dir);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace zoft
