// Bad model directories give one clear Error naming the file, the tensor and what was expected.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/golden_util.h"

namespace zoft::test {
namespace {

namespace fs = std::filesystem;

// A scratch copy of a fixture model that a test may break.
class BrokenModel : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("zoft_broken_" + std::to_string(::getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const char* f : {"config.json", "model.safetensors"})
      fs::copy_file(golden_dir("llama") + "/" + f, dir_ / f);
  }
  void TearDown() override { fs::remove_all(dir_); }

  nlohmann::json config() const { return read_json_file((dir_ / "config.json").string()); }
  void write_config(const nlohmann::json& j) const {
    std::ofstream(dir_ / "config.json") << j.dump(1);
  }
  // Rewrites model.safetensors through `edit`, which may drop or replace tensors.
  template <class Edit>
  void rewrite_weights(Edit edit) const {
    SafetensorsFile original = SafetensorsFile::open(golden_dir("llama") + "/model.safetensors");
    std::vector<NamedTensor> tensors;
    for (const auto& info : original.tensors()) tensors.push_back({info.name, original.view(info)});
    edit(tensors);
    write_safetensors((dir_ / "model.safetensors").string(), tensors);
  }
  std::string load_error() const {
    try {
      Decoder::load(dir_.string());
    } catch (const Error& e) {
      std::string message = e.what();
      EXPECT_EQ(message.find('\n'), std::string::npos) << "error must be one line: " << message;
      return message;
    }
    ADD_FAILURE() << "loading did not fail";
    return "";
  }

  fs::path dir_;
};

TEST_F(BrokenModel, UnknownModelType) {
  auto j = config();
  j["model_type"] = "mamba9";
  write_config(j);
  std::string e = load_error();
  EXPECT_NE(e.find("unknown model_type 'mamba9'"), std::string::npos) << e;
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
}

TEST_F(BrokenModel, MissingTensor) {
  rewrite_weights([](std::vector<NamedTensor>& t) {
    std::erase_if(
        t, [](const NamedTensor& n) { return n.name == "model.layers.1.mlp.up_proj.weight"; });
  });
  std::string e = load_error();
  EXPECT_NE(e.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
}

TEST_F(BrokenModel, ShapeDisagreesWithConfig) {
  auto j = config();
  j["intermediate_size"] = 100;
  write_config(j);
  std::string e = load_error();
  EXPECT_NE(e.find("gate_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[100, 64]"), std::string::npos) << e;
}

TEST_F(BrokenModel, MissingConfigKey) {
  auto j = config();
  j.erase("hidden_size");
  write_config(j);
  EXPECT_NE(load_error().find("'hidden_size' is missing"), std::string::npos);
}

TEST_F(BrokenModel, WrongTypeInConfig) {
  auto j = config();
  j["num_attention_heads"] = "four";
  write_config(j);
  EXPECT_NE(load_error().find("num_attention_heads"), std::string::npos);
}

TEST_F(BrokenModel, HeadsDoNotDivide) {
  auto j = config();
  j["num_key_value_heads"] = 3;
  write_config(j);
  EXPECT_NE(load_error().find("not a multiple"), std::string::npos);
}

TEST_F(BrokenModel, ConfigIsNotJson) {
  std::ofstream(dir_ / "config.json") << "{\"model_type\": \"llama\",";
  EXPECT_NE(load_error().find("config.json"), std::string::npos);
}

TEST_F(BrokenModel, TruncatedWeights) {
  auto size = fs::file_size(dir_ / "model.safetensors");
  fs::resize_file(dir_ / "model.safetensors", size / 2);
  EXPECT_NE(load_error().find("model.safetensors"), std::string::npos);
}

TEST_F(BrokenModel, NoWeightsAtAll) {
  fs::remove(dir_ / "model.safetensors");
  EXPECT_FALSE(load_error().empty());
}

TEST_F(BrokenModel, RewrittenWeightsStillLoad) {
  rewrite_weights([](std::vector<NamedTensor>&) {});  // sanity: a rewrite alone still loads
  EXPECT_NO_THROW(Decoder::load(dir_.string()));
}

TEST(TokenIds, OutOfVocabularyIsAnError) {
  Decoder model = Decoder::load(golden_dir("llama"));
  TokenBatch batch = TokenBatch::from_sequences({{1, 2, 500}}, 0, false);
  std::vector<float> logits(size_t(3 * model.config().vocab_size));
  EXPECT_THROW(model.logits(batch, logits.data()), Error);
}

}  // namespace
}  // namespace zoft::test
