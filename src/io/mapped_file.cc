#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace zoft {

static std::string errno_text() {
  return std::strerror(errno);
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, errno_text());
  struct stat st;
  if (fstat(fd, &st) != 0) {
    std::string why = errno_text();
    ::close(fd);
    fail("{}: cannot stat: {}", path, why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  // make_shared cannot reach the private constructor.
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = size_t(st.st_size);
  if (file->size_ > 0) {  // mmap rejects a zero length; an empty file maps to nothing
    void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string why = errno_text();
      ::close(fd);
      file->size_ = 0;
      fail("{}: cannot mmap {} bytes: {}", path, size_t(st.st_size), why);
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return file;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

// ---------------------------------------------------------------------------------------------

static std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), tmp_path_(path + ".tmp." + std::to_string(getpid())) {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create temporary file {}: {}", path_, tmp_path_, errno_text());
}

AtomicFileWriter::~AtomicFileWriter() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_path_.c_str());
}

void AtomicFileWriter::write(const void* bytes, size_t n) {
  ZOFT_CHECK(fd_ >= 0 && !committed_, "{}: write after commit", path_);
  const char* p = static_cast<const char*>(bytes);
  while (n > 0) {
    // Linux writes at most ~2 GiB per call; loop over partial writes and interrupts.
    size_t chunk = n < (size_t(1) << 30) ? n : (size_t(1) << 30);
    ssize_t w = ::write(fd_, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("{}: write failed: {}", path_, w < 0 ? errno_text() : "no progress");
    p += w;
    n -= size_t(w);
  }
}

void AtomicFileWriter::commit() {
  ZOFT_CHECK(fd_ >= 0 && !committed_, "{}: commit called twice", path_);
  if (fsync(fd_) != 0) fail("{}: fsync failed: {}", path_, errno_text());
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("{}: close failed: {}", path_, errno_text());
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    fail("{}: cannot rename {} over it: {}", path_, tmp_path_, errno_text());
  committed_ = true;
  // Without this the rename may be lost on power failure even though the data is on disk.
  std::string dir = parent_dir(path_);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail("{}: cannot open directory {} to fsync it: {}", path_, dir, errno_text());
  int rc = fsync(dfd);
  std::string why = rc != 0 ? errno_text() : "";
  ::close(dfd);
  if (rc != 0) fail("{}: fsync of directory {} failed: {}", path_, dir, why);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFileWriter out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace zoft
