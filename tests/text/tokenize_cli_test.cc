// `zoft tokenize` end to end, when the zoft binary has been built (skipped otherwise).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "text/tokenizer_fixtures.h"

namespace zoft::text {
namespace {

struct Run {
  int status;
  std::string out;
};

// Runs `zoft <args>` through the shell, stdin from `input`, stderr dropped.
Run zoft(const std::string& args, const std::string& input = "") {
  std::string command =
      "printf '%s' '" + input + "' | '" + std::string(ZOFT_BINARY) + "' " + args + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  Run run{-1, ""};
  if (!pipe) return run;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
  int status = pclose(pipe);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class TokenizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(ZOFT_BINARY)) GTEST_SKIP() << "zoft is not built";
  }
  std::string tokenizer(const std::string& name) {
    return "--tokenizer '" + testing::fixture_dir() + "/" + name + "'";
  }
};

TEST_F(TokenizeCli, EncodesTextArgumentAndStdin) {
  EXPECT_EQ(zoft("tokenize " + tokenizer("llama2") + " 'Hello there'").out, "[1,22557,736]\n");
  EXPECT_EQ(zoft("tokenize " + tokenizer("llama2") + " --no-special 'Hello there'").out,
            "[22557,736]\n");
  EXPECT_EQ(zoft("tokenize " + tokenizer("qwen3"), "Hello world").out, "[9707,1879]\n");
  EXPECT_EQ(zoft("tokenize " + tokenizer("gpt2") + " ''").out, "[]\n");
}

TEST_F(TokenizeCli, Decodes) {
  EXPECT_EQ(zoft("tokenize " + tokenizer("llama2") + " --decode '[1, 22557, 736]'").out,
            "<s> Hello there");
  EXPECT_EQ(zoft("tokenize " + tokenizer("llama2") + " --decode --no-special", "[1,22557,736]").out,
            "Hello there");
}

TEST_F(TokenizeCli, ErrorsExitNonZero) {
  EXPECT_EQ(zoft("tokenize --tokenizer /no/such/dir x").status, 1);
  EXPECT_EQ(zoft("tokenize " + tokenizer("llama2") + " --decode '[1, 2'").status, 1);
  EXPECT_EQ(zoft("tokenize " + tokenizer("llama2") + " --decode '[\"a\"]'").status, 1);
  EXPECT_NE(zoft("tokenize x").status, 0);  // --tokenizer is required
}

}  // namespace
}  // namespace zoft::text
