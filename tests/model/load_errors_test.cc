// Bad model directories give one clear Error naming the file, the tensor and what was expected.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/generate.h"
#include "model/golden_util.h"
#include "model/inspect.h"

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

// A hostile layer count used to size the per-layer tables before any check: -1 ended in
// std::length_error, 2^31 allocated 16 GiB first. Both are now refused from config.json alone.
TEST_F(BrokenModel, LayerCountIsCheckedBeforeAllocating) {
  for (int64_t layers : {int64_t(-1), int64_t(1) << 31}) {
    auto j = config();
    j["num_hidden_layers"] = layers;
    write_config(j);
    std::string e = load_error();
    EXPECT_NE(e.find(fmt::format("num_hidden_layers) must be between 1 and 10000, got {}", layers)),
              std::string::npos)
        << e;
  }
}

TEST_F(BrokenModel, EverySizeIsBounded) {
  const std::pair<const char*, int64_t> cases[] = {{"intermediate_size", -1},
                                                   {"head_dim", 0},
                                                   {"vocab_size", int64_t(1) << 40},
                                                   {"max_position_embeddings", int64_t(1) << 40},
                                                   {"num_attention_heads", -4}};
  const nlohmann::json original = config();
  for (auto [key, value] : cases) {
    auto j = original;
    j[key] = value;
    write_config(j);
    std::string e = load_error();
    EXPECT_NE(e.find(fmt::format("got {}", value)), std::string::npos) << key << ": " << e;
    EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  }
}

// 5000 layers pass the caps, but the checkpoint holds two: refused before layer 2 is looked
// for, with the sizes that disagree.
TEST_F(BrokenModel, ConfigLargerThanTheCheckpoint) {
  auto j = config();
  j["num_hidden_layers"] = 5000;
  write_config(j);
  std::string e = load_error();
  EXPECT_NE(e.find("config.json implies at least"), std::string::npos) << e;
  EXPECT_NE(e.find("(5000 layers, hidden 64)"), std::string::npos) << e;
}

// inspect checks the checkpoint against the config as loading does: a config that says
// hidden_size 7 over 64-wide tensors is an error, not a summary.
TEST_F(BrokenModel, InspectChecksTheCheckpointAgainstTheConfig) {
  EXPECT_EQ(summarize_model(dir_.string()).config.hidden_size, 64);
  const nlohmann::json original = config();
  auto j = original;
  j["hidden_size"] = 7;
  write_config(j);
  try {
    summarize_model(dir_.string());
    ADD_FAILURE() << "inspect accepted hidden_size 7";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("but config.json implies [128, 7]"), std::string::npos)
        << e.what();
  }
  write_config(original);
  rewrite_weights([](std::vector<NamedTensor>& t) {
    t.erase(std::find_if(t.begin(), t.end(), [](const NamedTensor& n) {
      return n.name == "model.layers.1.mlp.down_proj.weight";
    }));
  });
  try {
    summarize_model(dir_.string());
    ADD_FAILURE() << "inspect accepted a missing tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'model.layers.1.mlp.down_proj.weight' not found"),
              std::string::npos)
        << e.what();
  }
}

// RoPE models have no position table to run out of, but past max_position_embeddings they
// compute what the model never saw: refused like learned positions.
TEST(Positions, RopeModelRefusesMoreThanMaxPositions) {
  Decoder model = Decoder::load(golden_dir("llama"));  // max_position_embeddings 64
  ASSERT_EQ(model.config().positions, PositionKind::Rope);
  std::vector<int32_t> ids(64, 5);
  TokenBatch fits = TokenBatch::from_sequences({ids}, 0, false);
  std::vector<float> logits(size_t(65 * model.config().vocab_size));
  model.logits(fits, logits.data());
  ids.push_back(5);
  TokenBatch over = TokenBatch::from_sequences({ids}, 0, false);
  try {
    model.logits(over, logits.data());
    ADD_FAILURE() << "65 tokens ran on a 64-position model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("65 tokens exceed the model's max_position_embeddings 64"),
              std::string::npos)
        << e.what();
  }
}

TEST(Positions, GenerationIsBoundedByMaxPositions) {
  Decoder model = Decoder::load(golden_dir("llama"));
  SamplingOptions options;
  options.max_new_tokens = 60;
  EXPECT_EQ(generation_capacity(model.config(), {1, 2, 3, 4}, options), 64);
  for (int64_t n : {int64_t(61), std::numeric_limits<int64_t>::max()}) {
    options.max_new_tokens = n;
    try {
      generation_capacity(model.config(), {1, 2, 3, 4}, options);
      ADD_FAILURE() << n << " new tokens accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("exceed the model's max_position_embeddings 64"),
                std::string::npos)
          << e.what();
    }
  }
}

// A NaN weight makes every logit NaN; greedy sampling then picked token 0 forever.
TEST(Generate, NonFiniteLogitsStopGeneration) {
  Decoder model = Decoder::load(golden_dir("llama"));
  SamplingOptions options;
  options.max_new_tokens = 5;
  int calls = 0;
  CachedStepFn nan_after_two = [&](const TokenBatch&, float* logits) {
    float value = ++calls > 2 ? std::nanf("") : 0.0f;
    for (int64_t v = 0; v < model.config().vocab_size; ++v) logits[v] = value + float(v % 7);
  };
  try {
    generate(model.config(), nan_after_two, {1, 2, 3}, options);
    ADD_FAILURE() << "generation went on through NaN logits";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite logit (nan for token 0) after 2 new tokens"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(BrokenModel, NanWeightStopsGeneration) {
  std::vector<float> nan_norm(64, std::nanf(""));
  rewrite_weights([&](std::vector<NamedTensor>& t) {
    for (NamedTensor& n : t)
      if (n.name == "model.norm.weight") n.tensor = Tensor(nan_norm.data(), DType::F32, {64});
  });
  Decoder model = Decoder::load(dir_.string());
  SamplingOptions options;
  options.max_new_tokens = 8;
  try {
    generate(model, {1, 2, 3}, options);
    ADD_FAILURE() << "generation went on through a NaN weight";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite logit"), std::string::npos) << e.what();
  }
}

TEST(TokenIds, OutOfVocabularyIsAnError) {
  Decoder model = Decoder::load(golden_dir("llama"));
  TokenBatch batch = TokenBatch::from_sequences({{1, 2, 500}}, 0, false);
  std::vector<float> logits(size_t(3 * model.config().vocab_size));
  EXPECT_THROW(model.logits(batch, logits.data()), Error);
}

}  // namespace
}  // namespace zoft::test
