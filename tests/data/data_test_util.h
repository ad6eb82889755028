// Shared by the data tests: fixture paths, the real tokenizers, xz compression of test inputs.
#pragma once

#include <lzma.h>

#include <map>
#include <stdexcept>
#include <string>

#include "io/io_test_util.h"
#include "text/tokenizer.h"

namespace zoft::data::testing {

using zoft::testing::expect_error;
using zoft::testing::read_bytes;
using zoft::testing::TempDir;
using zoft::testing::write_bytes;

inline std::string source_path(const std::string& relative) {
  return std::string(ZOFT_SOURCE_DIR) + "/" + relative;
}
inline std::string fixture(const std::string& name) {
  return source_path("tests/fixtures/data/" + name);
}

// gpt2, qwen3, llama2, gemma3 from tests/fixtures/tokenizers, loaded once.
inline const text::Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, text::Tokenizer> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end())
    it = loaded
             .emplace(name,
                      text::Tokenizer::from_file(source_path("tests/fixtures/tokenizers/" + name)))
             .first;
  return it->second;
}

inline std::string xz_compress(const std::string& bytes) {
  std::string out(lzma_stream_buffer_bound(bytes.size()), '\0');
  size_t written = 0;
  lzma_ret ret = lzma_easy_buffer_encode(
      6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
      reinterpret_cast<uint8_t*>(out.data()), &written, out.size());
  if (ret != LZMA_OK) throw std::runtime_error("xz compression failed");
  out.resize(written);
  return out;
}

}  // namespace zoft::data::testing
