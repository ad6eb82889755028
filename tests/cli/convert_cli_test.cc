// `zoft convert` end to end, when the zoft binary has been built (skipped otherwise): the HF
// directory it writes loads to the same model and tokenizer as its source.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "io/gguf.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "text/gguf_tokenizer.h"

namespace zoft {
namespace {

namespace fs = std::filesystem;

std::string source_path(const std::string& rel) {
  return std::string(ZOFT_SOURCE_DIR) + "/" + rel;
}

// Exit status of `zoft <args>` (output dropped).
int zoft(const std::string& args) {
  std::string command = fmt::format("'{}' {} >/dev/null 2>&1", ZOFT_BINARY, args);
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<float> logits(const std::string& path) {
  Decoder model = Decoder::load(path, DType::F32);
  TokenBatch batch = TokenBatch::from_sequences({{5, 17, 99, 3, 64, 2, 120}, {7, 8, 9}}, 0, false);
  std::vector<float> out(size_t(batch.rows() * model.config().vocab_size));
  model.logits(batch, out.data());
  return out;
}

class ConvertCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ZOFT_BINARY)) GTEST_SKIP() << "zoft is not built";
    dir_ = fs::temp_directory_path() / ("zoft_convert_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string out(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(ConvertCli, GgufToHfDirectory) {
  std::string gguf = source_path("tests/fixtures/gguf/llama-tiny.gguf");
  ASSERT_EQ(zoft("convert '" + gguf + "' '" + out("llama") + "'"), 0);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json",
                        "tokenizer_config.json", "generation_config.json"})
    EXPECT_TRUE(fs::exists(dir_ / "llama" / f)) << f;
  EXPECT_EQ(logits(out("llama")), logits(gguf));  // f32 written as it was imported

  auto file = GgufFile::open(gguf);
  text::Tokenizer from_gguf(text::tokenizer_spec_from_gguf(*file));
  text::Tokenizer from_dir = text::Tokenizer::from_file(out("llama"));
  for (const char* s : {"The cat sat on the mat.", " 12 <s>x</s>\n\n it's"})
    EXPECT_EQ(from_dir.encode(s), from_gguf.encode(s)) << s;
  EXPECT_EQ(from_dir.bos_id(), 1);
  EXPECT_EQ(from_dir.eos_id(), 2);

  // Converting again replaces the files.
  EXPECT_EQ(zoft("convert '" + gguf + "' '" + out("llama") + "' --dtype bf16"), 0);
  EXPECT_EQ(Checkpoint::open(out("llama")).view("model.embed_tokens.weight").dtype, DType::BF16);
  EXPECT_EQ(read_json_file(out("llama") + "/config.json")["torch_dtype"], "bfloat16");
}

TEST_F(ConvertCli, HfDirectoryToOneFile) {
  std::string sharded = source_path("tests/fixtures/golden/llama-sharded");
  ASSERT_EQ(zoft("convert '" + sharded + "' '" + out("merged") + "'"), 0);
  EXPECT_TRUE(fs::exists(dir_ / "merged" / "model.safetensors"));
  EXPECT_EQ(logits(out("merged")), logits(source_path("tests/fixtures/golden/llama")));
}

TEST_F(ConvertCli, Refusals) {
  std::string llama = source_path("tests/fixtures/golden/llama");
  EXPECT_EQ(zoft("convert '" + llama + "' '" + llama + "'"), 1);  // into its own source
  EXPECT_EQ(
      zoft("convert '" + source_path("tests/fixtures/gguf/meta.gguf") + "' '" + out("x") + "'"),
      1);                                // unknown architecture
  EXPECT_FALSE(fs::exists(dir_ / "x"));  // nothing written on failure
  EXPECT_EQ(zoft("convert /no/such/file.gguf '" + out("y") + "'"), 1);
  EXPECT_EQ(zoft("convert '" + llama + "' '" + out("z") + "' --dtype f64"), 1);
}

// A source directory with a missing, a transposed or an empty tensor is refused as loading
// would refuse it, and nothing is written (it used to be converted into a broken model).
TEST_F(ConvertCli, BrokenSourceDirectoriesAreRefused) {
  std::string llama = source_path("tests/fixtures/golden/llama");
  SafetensorsFile original = SafetensorsFile::open(llama + "/model.safetensors");
  std::vector<float> up_t(96 * 64), none;
  auto broken = [&](const std::string& name, const std::string& tensor, const Tensor* replace) {
    fs::path dir = dir_ / name;
    fs::create_directories(dir);
    fs::copy_file(llama + "/config.json", dir / "config.json");
    std::vector<NamedTensor> tensors;
    for (const auto& info : original.tensors()) {
      if (info.name != tensor)
        tensors.push_back({info.name, original.view(info)});
      else if (replace)
        tensors.push_back({info.name, *replace});
    }
    write_safetensors((dir / "model.safetensors").string(), tensors);
    return dir.string();
  };
  Tensor transposed(up_t.data(), DType::F32, {64, 96});  // up_proj is [96, 64]
  Tensor empty(none.data(), DType::F32, {0, 64});
  const std::string cases[][2] = {
      {broken("missing", "model.layers.1.mlp.down_proj.weight", nullptr), "missing"},
      {broken("transposed", "model.layers.0.mlp.up_proj.weight", &transposed), "transposed"},
      {broken("empty", "model.embed_tokens.weight", &empty), "empty"}};
  for (const auto& [src, what] : cases) {
    EXPECT_EQ(zoft("convert '" + src + "' '" + out("out_" + what) + "'"), 1) << what;
    EXPECT_FALSE(fs::exists(dir_ / ("out_" + what))) << what << ": written on failure";
  }
}

}  // namespace
}  // namespace zoft
