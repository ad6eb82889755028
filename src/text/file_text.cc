#include "text/file_text.h"

#include <lzma.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace zoft::text {

// A decompressed tokenizer is tens of MB; far more than this means a hostile or wrong file.
static constexpr uint64_t kMaxDecompressedBytes = uint64_t(2) << 30;

static std::string read_raw(const std::string& path) {
  ZOFT_CHECK(!is_directory(path), "{}: is a directory, expected a file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  ZOFT_CHECK(!in.bad(), "{}: read error", path);
  return std::move(buffer).str();
}

static const char* lzma_error_text(lzma_ret ret) {
  switch (ret) {
    case LZMA_FORMAT_ERROR: return "not xz data";
    case LZMA_DATA_ERROR: return "corrupt xz data";
    case LZMA_BUF_ERROR: return "truncated xz data";
    case LZMA_MEM_ERROR: return "out of memory";
    case LZMA_OPTIONS_ERROR: return "unsupported xz options";
    default: return "xz decoding failed";
  }
}

static std::string decompress_xz(const std::string& path, const std::string& packed) {
  lzma_stream stream = LZMA_STREAM_INIT;
  lzma_ret ret = lzma_stream_decoder(&stream, UINT64_MAX, LZMA_CONCATENATED);
  ZOFT_CHECK(ret == LZMA_OK, "{}: cannot start the xz decoder", path);
  std::string out(std::max<size_t>(packed.size() * 8, 1 << 16), '\0');
  stream.next_in = reinterpret_cast<const uint8_t*>(packed.data());
  stream.avail_in = packed.size();
  size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      if (out.size() >= kMaxDecompressedBytes) {
        lzma_end(&stream);
        fail("{}: decompresses to more than {} bytes", path, kMaxDecompressedBytes);
      }
      out.resize(out.size() * 2);
    }
    stream.next_out = reinterpret_cast<uint8_t*>(out.data()) + produced;
    stream.avail_out = out.size() - produced;
    ret = lzma_code(&stream, LZMA_FINISH);
    produced = out.size() - stream.avail_out;
    if (ret == LZMA_STREAM_END) break;
    if (ret != LZMA_OK) {
      lzma_end(&stream);
      fail("{}: {}", path, lzma_error_text(ret));
    }
  }
  lzma_end(&stream);
  out.resize(produced);
  return out;
}

std::string read_text_file(const std::string& path) {
  std::string bytes = read_raw(path);
  bool xz = path.size() > 3 && path.compare(path.size() - 3, 3, ".xz") == 0;
  return xz ? decompress_xz(path, bytes) : bytes;
}

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

}  // namespace zoft::text
