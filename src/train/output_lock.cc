#include "train/output_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>

#include "core/error.h"

namespace zoft {

namespace {

std::string holder_text() {
  char host[256] = "unknown";
  gethostname(host, sizeof(host) - 1);
  std::time_t now = std::time(nullptr);
  char since[32];
  std::strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return fmt::format("pid {} on host {} since {}", getpid(), host, since);
}

// What the holder wrote into the lock file (one line), or a placeholder if it has not yet.
std::string read_holder(int fd) {
  char buffer[512];
  ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string text(buffer, size_t(std::max<ssize_t>(n, 0)));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text.empty() ? "another process (it has not written its pid yet)" : text;
}

}  // namespace

OutputLock::OutputLock(const std::string& output_dir) {
  std::error_code ec;
  std::filesystem::create_directories(output_dir, ec);
  if (ec) fail("{}: cannot create the output directory: {}", output_dir, ec.message());
  const std::string path = output_dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    std::string holder = error == EWOULDBLOCK ? read_holder(fd_) : std::string();
    ::close(fd_);
    fd_ = -1;
    if (error != EWOULDBLOCK) fail("{}: cannot lock: {}", path, std::strerror(error));
    fail(
        "{}: another training run uses this output directory ({}); wait for it to end or "
        "choose another trainer.output_dir",
        output_dir, holder);
  }
  std::string text = holder_text() + "\n";
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size())) {
    int error = errno;
    ::close(fd_);
    fd_ = -1;
    fail("{}: cannot write: {}", path, std::strerror(error));
  }
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace zoft
