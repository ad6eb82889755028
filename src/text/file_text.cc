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
  // One allocation of the final size: tokenizer files are tens of MB, and every page of a
  // growing buffer is faulted in again at each doubling.
  std::error_code ec;
  uintmax_t size = std::filesystem::file_size(path, ec);
  std::string bytes;
  if (!ec) {
    bytes.resize(size_t(size));
    in.read(bytes.data(), std::streamsize(size));
    ZOFT_CHECK(!in.bad() && size_t(in.gcount()) == bytes.size(), "{}: read error", path);
    return bytes;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  ZOFT_CHECK(!in.bad(), "{}: read error", path);
  return std::move(buffer).str();
}

// The uncompressed size an .xz file records in its index (of its last stream), or 0 when it
// cannot be read; only a hint for sizing the output buffer.
static size_t xz_size_hint(const std::string& packed) {
  if (packed.size() < 2 * LZMA_STREAM_HEADER_SIZE) return 0;
  const auto* end = reinterpret_cast<const uint8_t*>(packed.data()) + packed.size();
  lzma_stream_flags footer;
  if (lzma_stream_footer_decode(&footer, end - LZMA_STREAM_HEADER_SIZE) != LZMA_OK) return 0;
  if (footer.backward_size + LZMA_STREAM_HEADER_SIZE > packed.size()) return 0;
  const uint8_t* index_start = end - LZMA_STREAM_HEADER_SIZE - footer.backward_size;
  lzma_index* index = nullptr;
  uint64_t memlimit = 64 << 20;
  size_t pos = 0;
  if (lzma_index_buffer_decode(&index, &memlimit, nullptr, index_start, &pos,
                               footer.backward_size) != LZMA_OK)
    return 0;
  uint64_t size = lzma_index_uncompressed_size(index);
  lzma_index_end(index, nullptr);
  return size < kMaxDecompressedBytes ? size_t(size) : 0;
}

static const char* lzma_error_text(lzma_ret ret) {
  switch (ret) {
    case LZMA_FORMAT_ERROR:
      return "not xz data";
    case LZMA_DATA_ERROR:
      return "corrupt xz data";
    case LZMA_BUF_ERROR:
      return "truncated xz data";
    case LZMA_MEM_ERROR:
      return "out of memory";
    case LZMA_OPTIONS_ERROR:
      return "unsupported xz options";
    default:
      return "xz decoding failed";
  }
}

static std::string decompress_xz(const std::string& path, const std::string& packed) {
  lzma_stream stream = LZMA_STREAM_INIT;
  lzma_ret ret = lzma_stream_decoder(&stream, UINT64_MAX, LZMA_CONCATENATED);
  ZOFT_CHECK(ret == LZMA_OK, "{}: cannot start the xz decoder", path);
  size_t hint = xz_size_hint(packed);
  // The index is untrusted: a hint far beyond any real compression ratio is ignored and the
  // buffer grows by doubling instead.
  if (hint / 1024 > packed.size()) hint = 0;
  // +1: the decoder must see free space after the last byte to report the end of the stream.
  std::string out(hint ? hint + 1 : std::max<size_t>(packed.size() * 8, 1 << 16), '\0');
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
