// LoRA adapters against HF PEFT (tools/make_lora_golden.py): logits of PEFT's adapter on the
// golden base models, gradients of the adapters by PyTorch autograd, the merged checkpoint,
// PEFT round trips, dropout, and bad adapters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/golden_util.h"
#include "model/lora_io.h"

namespace zoft::test::lora {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kArchs = {"llama", "qwen3", "gemma3", "opt", "gpt2"};

std::string lora_dir(const std::string& name) {
  return std::string(ZOFT_SOURCE_DIR) + "/tests/fixtures/lora/" + name;
}

std::string adapter_dir(const std::string& name) {
  return lora_dir(name) + "/adapter";
}

// A fresh directory under the build's temp dir, removed by the destructor.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() /
           ("zoft_lora_" + tag + "_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

double max_masked_abs_diff(const std::vector<float>& ours, const float* ref,
                           const std::vector<uint8_t>& mask, int64_t width) {
  double worst = 0;
  for (size_t r = 0; r < mask.size(); ++r) {
    if (!mask[r]) continue;
    for (int64_t j = 0; j < width; ++j) {
      size_t i = r * size_t(width) + size_t(j);
      worst = std::max(worst, std::fabs(double(ours[i]) - double(ref[i])));
    }
  }
  return worst;
}

// PEFT's logits of the `right` case (padded) from the fixture.
std::vector<float> peft_logits(const std::string& name) {
  SafetensorsFile file = SafetensorsFile::open(lora_dir(name) + "/lora_golden.safetensors");
  Tensor t = file.view("logits");
  return std::vector<float>(t.f32(), t.f32() + t.numel());
}

std::vector<float> logits_of(Decoder& model, const TokenBatch& batch) {
  std::vector<float> out(size_t(batch.rows() * model.config().vocab_size));
  model.logits(batch, out.data());
  return out;
}

class LoraGolden : public testing::TestWithParam<std::string> {};

TEST_P(LoraGolden, LogitsEqualPeft) {
  const std::string name = GetParam();
  Decoder model = Decoder::load(golden_dir(name));
  auto adapters = attach_peft_adapter(model, adapter_dir(name));
  GoldenCase g = load_golden(name, "right");
  std::vector<float> ref = peft_logits(name);
  double diff = max_masked_abs_diff(logits_of(model, g.batch), ref.data(), g.batch.mask,
                                    model.config().vocab_size);
  std::cout << "[" << name << "] max |logit - PEFT| = " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
  // The adapter changes the logits (a no-op adapter would pass the check above trivially).
  detach_lora(model);
  double base_diff = max_masked_abs_diff(logits_of(model, g.batch), ref.data(), g.batch.mask,
                                         model.config().vocab_size);
  EXPECT_GT(base_diff, 1e-2);
}

// Gradients of the mean next-token loss with respect to every lora_A / lora_B.
TEST_P(LoraGolden, GradientsEqualAutograd) {
  const std::string name = GetParam();
  Decoder model = Decoder::load(golden_dir(name));
  auto adapters = attach_peft_adapter(model, adapter_dir(name));
  GoldenCase g = load_golden(name, "right");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  int64_t count = std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
  nlohmann::json js = read_json_file(lora_dir(name) + "/lora_golden.json");
  ASSERT_EQ(count, js.at("targets").get<int64_t>());
  for (bool checkpoint : {false, true}) {
    BackwardOptions options;
    options.lora = adapters.get();
    options.checkpoint_blocks = checkpoint;
    std::vector<Buffer> grads;
    double loss = model.loss_and_grad(g.batch, targets.data(), 1.0f / float(count), grads, options);
    EXPECT_NEAR(loss / double(count), js.at("loss").get<double>(), 1e-5);
    SafetensorsFile file = SafetensorsFile::open(lora_dir(name) + "/lora_golden.safetensors");
    std::vector<ParameterRef> params = lora_parameters(*adapters);
    ASSERT_EQ(grads.size(), params.size());
    double worst = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor ref = file.view("grad." + params[i].name);
      ASSERT_EQ(ref.numel(), params[i].tensor.numel()) << params[i].name;
      double diff = 0, scale = 0;
      for (int64_t j = 0; j < ref.numel(); ++j) {
        diff = std::max(diff, std::fabs(double(grads[i].as<float>()[j]) - ref.f32()[j]));
        scale = std::max(scale, std::fabs(double(ref.f32()[j])));
      }
      ASSERT_GT(scale, 0) << params[i].name;
      worst = std::max(worst, diff / scale);
    }
    std::cout << "[" << name << (checkpoint ? ", checkpointed" : "")
              << "] worst LoRA gradient error (max abs / max |ref|) = " << worst << "\n";
    EXPECT_LE(worst, 1e-4);
  }
}

// zoft merge's checkpoint loads as a plain model with the logits of base + adapter.
TEST_P(LoraGolden, MergedCheckpointEqualsBasePlusAdapter) {
  const std::string name = GetParam();
  TempDir out("merge_" + name);
  size_t merged = write_merged_checkpoint(golden_dir(name), adapter_dir(name), out / "m");
  Decoder base = Decoder::load(golden_dir(name));
  auto adapters = attach_peft_adapter(base, adapter_dir(name));
  EXPECT_EQ(merged, adapters->modules().size());
  Decoder model = Decoder::load(out / "m");
  GoldenCase g = load_golden(name, "right");
  std::vector<float> ref = peft_logits(name);
  double diff = max_masked_abs_diff(logits_of(model, g.batch), ref.data(), g.batch.mask,
                                    model.config().vocab_size);
  std::cout << "[" << name << "] merged: max |logit - PEFT| = " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
}

// write_peft_adapter then read_peft_adapter gives back the same settings and tensors.
TEST_P(LoraGolden, PeftWriteReadRoundTrip) {
  const std::string name = GetParam();
  Decoder model = Decoder::load(golden_dir(name));
  LoraAdapters a = read_peft_adapter(adapter_dir(name), model.arch(), model.config());
  TempDir out("roundtrip_" + name);
  write_peft_adapter(out / "a", a, model.arch(), golden_dir(name));
  LoraAdapters b = read_peft_adapter(out / "a", model.arch(), model.config());
  EXPECT_EQ(a.settings().r, b.settings().r);
  EXPECT_EQ(a.settings().alpha, b.settings().alpha);
  EXPECT_EQ(a.settings().rslora, b.settings().rslora);
  EXPECT_EQ(a.settings().target_modules, b.settings().target_modules);
  ASSERT_EQ(a.modules().size(), b.modules().size());
  for (size_t i = 0; i < a.modules().size(); ++i) {
    EXPECT_EQ(a.modules()[i].name, b.modules()[i].name);
    EXPECT_EQ(a.modules()[i].scaling, b.modules()[i].scaling);
    EXPECT_EQ(0, std::memcmp(a.modules()[i].a.view.data, b.modules()[i].a.view.data,
                             a.modules()[i].a.view.nbytes()));
    EXPECT_EQ(0, std::memcmp(a.modules()[i].b.view.data, b.modules()[i].b.view.data,
                             a.modules()[i].b.view.nbytes()));
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, LoraGolden, testing::ValuesIn(kArchs));

// Dropout: the backward regenerates the forward's mask, so the gradient is that of the loss the
// forward computed (checked by central differences on a few elements of A and B).
TEST(Lora, DropoutGradientMatchesFiniteDifferences) {
  Decoder model = Decoder::load(golden_dir("llama"));
  auto adapters = attach_peft_adapter(model, adapter_dir("llama"));
  // A deterministic mask per (module, element): p = 0.5, kept values doubled.
  adapters->set_dropout([](uint32_t module, float* v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      uint64_t h =
          (uint64_t(module) * 0x9E3779B97F4A7C15ull) ^ (uint64_t(i) * 0xBF58476D1CE4E5B9ull);
      h ^= h >> 31;
      v[i] = (h * 0x94D049BB133111EBull) >> 63 ? v[i] * 2.0f : 0.0f;
    }
  });
  GoldenCase g = load_golden("llama", "right");
  std::vector<int32_t> targets = Decoder::next_token_targets(g.batch);
  auto summed_loss = [&] {
    std::vector<float> loss(size_t(g.batch.rows()));
    model.token_losses(g.batch, targets.data(), loss.data());
    double s = 0;
    for (float l : loss) s += l;
    return s;
  };
  BackwardOptions options;
  options.lora = adapters.get();
  std::vector<Buffer> grads;
  model.loss_and_grad(g.batch, targets.data(), 1.0f, grads, options);
  std::vector<ParameterRef> params = lora_parameters(*adapters);
  const float h = 1e-2f;
  for (size_t p : {size_t(0), size_t(1), params.size() - 2, params.size() - 1}) {
    float* w = params[p].tensor.f32();
    for (int64_t j : {int64_t(0), params[p].tensor.numel() / 2}) {
      float keep = w[j];
      w[j] = keep + h;
      double up = summed_loss();
      w[j] = keep - h;
      double down = summed_loss();
      w[j] = keep;
      double numeric = (up - down) / (2 * h);
      double analytic = grads[p].as<float>()[j];
      EXPECT_NEAR(analytic, numeric, 2e-3 + 2e-2 * std::fabs(numeric))
          << params[p].name << "[" << j << "]";
    }
  }
  // The mask matters: without dropout the loss differs.
  double with_dropout = summed_loss();
  adapters->set_dropout(nullptr);
  EXPECT_GT(std::fabs(summed_loss() - with_dropout), 1e-4);
}

TEST(Lora, RsLoraScaling) {
  LoraSettings s;
  s.r = 16;
  s.alpha = 8;
  EXPECT_FLOAT_EQ(s.scaling(), 0.5f);
  s.rslora = true;
  EXPECT_FLOAT_EQ(s.scaling(), 2.0f);
}

// --- bad input: one clear line each ---

// A copy of the llama adapter whose adapter_config.json is edited by `edit`.
std::string edited_adapter(const TempDir& dir, const std::function<void(nlohmann::json&)>& edit) {
  fs::create_directories(dir.path / "a");
  fs::copy_file(adapter_dir("llama") + "/adapter_model.safetensors",
                dir / "a/adapter_model.safetensors");
  nlohmann::json j = read_json_file(adapter_dir("llama") + "/adapter_config.json");
  edit(j);
  write_json_file(dir / "a/adapter_config.json", j);
  return dir / "a";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LoraErrors, OneClearLineEach) {
  Decoder llama = Decoder::load(golden_dir("llama"));
  Decoder gpt2 = Decoder::load(golden_dir("gpt2"));
  auto read_into = [&](Decoder& m, const std::string& dir) {
    return [&m, dir] { attach_peft_adapter(m, dir); };
  };
  struct Case {
    std::string expect;
    std::function<void(nlohmann::json&)> edit;
  };
  const Case cases[] = {
      {"LoRA target module 'foo_proj' matches no linear layer of this llama model",
       [](nlohmann::json& j) {
         j["target_modules"] = {"q_proj", "foo_proj"};
       }},
      {"LoRA rank r must be positive, got 0", [](nlohmann::json& j) { j["r"] = 0; }},
      {"LoRA rank r must be positive, got -4", [](nlohmann::json& j) { j["r"] = -4; }},
      {"PEFT type 'IA3' is not supported", [](nlohmann::json& j) { j["peft_type"] = "IA3"; }},
      {"use_dora = true is not supported", [](nlohmann::json& j) { j["use_dora"] = true; }},
      {"modules_to_save is not supported",
       [](nlohmann::json& j) { j["modules_to_save"] = {"lm_head"}; }},
      {"rank_pattern (per-module ranks / alphas) is not supported",
       [](nlohmann::json& j) {
         j["rank_pattern"] = {{"q_proj", 8}};
       }},
      {"LoRA bias 'all' is not supported", [](nlohmann::json& j) { j["bias"] = "all"; }},
      // r = 2 in the config while the tensors have rank 4: a shape mismatch.
      {"has shape [4, 96] but this llama model needs [2, 96]: the adapter was made for another "
       "base model",
       [](nlohmann::json& j) { j["r"] = 2; }},
      {"which target_modules does not select",
       [](nlohmann::json& j) { j["target_modules"] = {"q_proj"}; }},
  };
  for (const Case& c : cases) {
    TempDir dir("bad");
    std::string msg = error_of(read_into(llama, edited_adapter(dir, c.edit)));
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // Another architecture's adapter: GPT-2's modules are not llama's, and the reverse.
  std::string msg = error_of(read_into(llama, adapter_dir("gpt2")));
  EXPECT_NE(msg.find("'c_attn' matches no linear layer of this llama model"), std::string::npos)
      << msg;
  msg = error_of(read_into(gpt2, adapter_dir("opt")));
  EXPECT_NE(msg.find("matches no linear layer of this gpt2 model"), std::string::npos) << msg;
  // Same module names, other shapes: OPT's adapter on the llama base (both have q_proj...).
  {
    TempDir dir("shape");
    std::string a = edited_adapter(dir, [](nlohmann::json& j) {
      j["target_modules"] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                             "gate_proj", "up_proj", "down_proj"};
    });
    // Tensor names of another model: OPT's model.decoder.layers.* on llama.
    fs::copy_file(adapter_dir("opt") + "/adapter_model.safetensors",
                  a + "/adapter_model.safetensors", fs::copy_options::overwrite_existing);
    msg = error_of(read_into(llama, a));
    EXPECT_NE(msg.find("names no linear layer of this llama model: the adapter was made for "
                       "another base model"),
              std::string::npos)
        << msg;
  }
  msg = error_of(read_into(llama, lora_dir("llama")));
  EXPECT_NE(msg.find("not a PEFT adapter directory"), std::string::npos) << msg;
  msg = error_of(
      [&] { write_merged_checkpoint(golden_dir("llama"), adapter_dir("gpt2"), "/nonexistent/x"); });
  EXPECT_NE(msg.find("matches no linear layer of this llama model"), std::string::npos) << msg;
  LoraSettings s;
  s.target_modules = {"lm_head"};
  msg = error_of([&] { LoraAdapters::create(llama.arch(), llama.config(), s, "recipe"); });
  EXPECT_NE(msg.find("'lm_head' matches no linear layer"), std::string::npos) << msg;
}

}  // namespace
}  // namespace zoft::test::lora
