// Encoding speed on a real corpus: the six Austen novels (4 MB) from ../shared/data, each
// tokenizer encoding them in one call. Prints one timing line per tokenizer; timings are
// reported, not asserted (DESIGN.md: performance lives in benchmarks). Skipped when the corpus is
// absent; ZOFT_AUSTEN_DIR points elsewhere.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "text/file_text.h"
#include "text/tokenizer_fixtures.h"

namespace zoft::text {
namespace {

std::string austen_corpus() {
  const char* env = std::getenv("ZOFT_AUSTEN_DIR");
  std::filesystem::path dir = env ? env : std::string(ZOFT_SOURCE_DIR) + "/../shared/data/austen";
  std::string text;
  for (const char* novel : {"emma", "mansfield_park", "northanger_abbey", "persuasion",
                            "pride_and_prejudice", "sense_and_sensibility"}) {
    std::filesystem::path file = dir / (std::string(novel) + ".txt.xz");
    if (!std::filesystem::exists(file)) return {};
    text += read_text_file(file.string());
  }
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(CorpusTiming, AustenNovels) {
  std::string text = austen_corpus();
  if (text.empty()) GTEST_SKIP() << "Austen corpus not found (set ZOFT_AUSTEN_DIR)";
  for (const char* name : {"qwen3", "gemma3", "llama2", "gpt2"}) {
    auto start = std::chrono::steady_clock::now();
    Tokenizer tok = Tokenizer::from_file(testing::fixture_dir() + "/" + name);
    double load = seconds_since(start);
    start = std::chrono::steady_clock::now();
    std::vector<int32_t> ids = tok.encode(text, false);
    double encode = seconds_since(start);
    start = std::chrono::steady_clock::now();
    std::string back = tok.decode(ids);
    double decode = seconds_since(start);
    std::printf(
        "corpus timing: %-6s load %.2f s (xz), encode %.2f MB -> %zu ids in %.2f s "
        "(%.1f MB/s), decode %.2f s\n",
        name, load, double(text.size()) / 1e6, ids.size(), encode,
        double(text.size()) / 1e6 / encode, decode);
    EXPECT_EQ(back, text) << name;  // the corpus is plain ASCII prose: lossless everywhere
  }
}

}  // namespace
}  // namespace zoft::text
