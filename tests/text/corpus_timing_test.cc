// Encoding speed on a real corpus: the Austen novels in datasets/austen (three of the six, 1.6 MB;
// ZOFT_AUSTEN_DIR points to a folder with more), each tokenizer encoding them in one call. Prints
// one timing line per tokenizer; timings are reported, not asserted (DESIGN.md: performance lives
// in benchmarks). Skipped when the folder holds no novel.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "text/file_text.h"
#include "text/tokenizer_fixtures.h"

namespace zoft::text {
namespace {

// Every *.txt.xz in the folder, in name order (so the timing lines compare run to run).
std::string austen_corpus() {
  const char* env = std::getenv("ZOFT_AUSTEN_DIR");
  std::filesystem::path dir = env ? env : std::string(ZOFT_SOURCE_DIR) + "/datasets/austen";
  if (!std::filesystem::is_directory(dir)) return {};
  std::vector<std::filesystem::path> novels;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 7 && name.ends_with(".txt.xz")) novels.push_back(entry.path());
  }
  std::sort(novels.begin(), novels.end());
  std::string text;
  for (const auto& novel : novels) text += read_text_file(novel.string());
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(CorpusTiming, AustenNovels) {
  std::string text = austen_corpus();
  if (text.empty())
    GTEST_SKIP() << "no Austen novel (*.txt.xz) in datasets/austen or ZOFT_AUSTEN_DIR";
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
