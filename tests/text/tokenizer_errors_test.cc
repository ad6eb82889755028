// Broken, hostile and unsupported inputs: every one gives a zoft::Error with one clear line,
// none crashes; and any text, any bytes, any ids go through encode / decode.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "text/file_text.h"
#include "text/tokenizer_fixtures.h"
#include "text/unicode.h"

namespace zoft::text {
namespace {

namespace fs = std::filesystem;
using testing::fixture_dir;
using testing::fixture_tokenizer;

// Runs f, expecting a zoft::Error whose one-line message contains `part`.
template <class F>
void expect_error(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << part;
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(part), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

void expect_json_error(const std::string& json, const std::string& part) {
  expect_error([&] { Tokenizer::from_json(json, "t.json"); }, part);
}

std::string bpe_json(const std::string& model_fields, const std::string& rest = "") {
  return R"({"added_tokens": [], )" + rest + R"("model": {"type": "BPE", )" + model_fields + "}}";
}

TEST(TokenizerErrors, BrokenJson) {
  expect_json_error("", "the file is empty");
  expect_json_error("[1, 2]", "expected a JSON object");
  expect_json_error("{\"model\": ", "invalid JSON");
  expect_json_error("{\"model\": {}} trailing", "invalid JSON");
  std::string real = read_text_file(fixture_dir() + "/llama2/tokenizer.json.xz");
  for (double cut : {0.0001, 0.1, 0.5, 0.9, 0.99999})
    expect_json_error(real.substr(0, size_t(double(real.size()) * cut)), "t.json: invalid JSON");
}

TEST(TokenizerErrors, UnsupportedComponents) {
  expect_json_error(R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})",
                    "type 'Unigram' is not supported");
  expect_json_error(R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})", "WordPiece");
  std::string model = R"("vocab": {"a": 0}, "merges": [])";
  expect_json_error(bpe_json(model, R"("normalizer": {"type": "NFKC"}, )"), "'NFKC'");
  expect_json_error(bpe_json(model, R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex":
      "\\w+"}, "behavior": "Isolated"}, )"),
                    "split regex");
  expect_json_error(bpe_json(model, R"("decoder": {"type": "WordPiece"}, )"), "'WordPiece'");
  expect_json_error(bpe_json(R"("vocab": {"a": 0}, "merges": [], "dropout": 0.1)"), "dropout");
  // Sequences nested without end must not overflow the stack.
  std::string deep = R"({"type": "NFC"})";
  for (int i = 0; i < 2000; ++i) deep = R"({"type": "Sequence", "normalizers": [)" + deep + "]}";
  expect_json_error(bpe_json(model, "\"normalizer\": " + deep + ", "), "nested too deeply");
}

TEST(TokenizerErrors, BadModelTables) {
  expect_json_error(bpe_json(R"("merges": [])"), "model.vocab: missing");
  expect_json_error(bpe_json(R"("vocab": {"a": 0})"), "model.merges: missing");
  expect_json_error(bpe_json(R"("vocab": {"a": "zero"}, "merges": [])"), "must be integers");
  expect_json_error(bpe_json(R"("vocab": {"a": -1}, "merges": [])"), "out of range");
  expect_json_error(bpe_json(R"("vocab": {"a": 0, "b": 0}, "merges": [])"), "id 0 is given to");
  expect_json_error(bpe_json(R"("vocab": {"a": 0, "b": 1}, "merges": ["a b"])"),
                    "merge 0 ('a' 'b'): token 'ab' is not in the vocabulary");
  expect_json_error(bpe_json(R"("vocab": {"a": 0, "ab": 1}, "merges": [["a", "c"]])"),
                    "token 'c' is not in the vocabulary");
  expect_json_error(bpe_json(R"("vocab": {"a": 0}, "merges": ["a b c"])"), "one space");
  expect_json_error(bpe_json(R"("vocab": {"a": 0}, "merges": [["a"]])"), "two strings");
  expect_json_error(bpe_json(R"("vocab": {"a": 0}, "merges": [], "unk_token": "<unk>")"),
                    "unknown token '<unk>' is not in the vocabulary");
  expect_json_error(bpe_json(R"("vocab": {"a": 0}, "merges": [])",
                             R"("post_processor": {"type": "TemplateProcessing", "single": [
      {"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {"<s>": {"ids": [7]}}},)"),
                    "token id 7, outside the vocabulary");
}

// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("zoft_text_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path / name, std::ios::binary) << bytes;
    return (path / name).string();
  }
};

TEST(TokenizerErrors, BadFiles) {
  TempDir dir;
  expect_error([&] { Tokenizer::from_file((dir.path / "missing.json").string()); },
               "no such file or directory");
  expect_error([&] { Tokenizer::from_file(dir.path.string()); }, "no tokenizer.json");
  std::string not_xz = dir.write("tokenizer.json.xz", "this is not xz");
  expect_error([&] { Tokenizer::from_file(not_xz); }, "not xz data");
  std::ifstream real(fixture_dir() + "/llama2/tokenizer.json.xz", std::ios::binary);
  std::string xz((std::istreambuf_iterator<char>(real)), std::istreambuf_iterator<char>());
  std::string truncated = dir.write("cut.tokenizer.json.xz", xz.substr(0, xz.size() / 2));
  expect_error([&] { Tokenizer::from_file(truncated); }, "truncated xz data");
}

TEST(TokenizerErrors, BadVocabFiles) {
  TempDir dir;
  dir.write("vocab.json", R"({"a": 0, "b": 1, "ab": 2, "<s>": 3})");
  dir.write("merges.txt", "#version: 0.2\na b\nb a c\n");
  expect_error([&] { Tokenizer::from_file(dir.path.string()); }, "merges.txt: line 3");
  dir.write("merges.txt", "a b\n");
  dir.write("tokenizer_config.json", "{\"bos_token\": ");
  expect_error([&] { Tokenizer::from_file(dir.path.string()); },
               "tokenizer_config.json: invalid JSON");
  dir.write("tokenizer_config.json", R"({"bos_token": "<s>", "add_bos_token": true})");
  Tokenizer tok = Tokenizer::from_file(dir.path.string());
  // "<s>" is split out as a special token; ' ' (as 'Ġ') is not in this vocabulary: dropped.
  EXPECT_EQ(tok.encode("ab<s> b"), (std::vector<int32_t>{3, 2, 3, 1}));
  EXPECT_EQ(tok.bos_id(), 3);
}

// Ill-formed UTF-8: byte-level tokenizers keep every byte; the others see U+FFFD instead.
TEST(TokenizerRobustness, IllFormedUtf8) {
  std::string bytes = "ok \xFF\xFE \xC3 \xE2\x82 end\xF0";
  for (const char* name : {"qwen3", "gpt2"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    std::string back;
    for (int32_t id : tok.encode(bytes, false)) back += tok.token_bytes(id);
    EXPECT_EQ(back, bytes) << name;
  }
  std::string replaced = to_valid_utf8(bytes);
  for (const char* name : {"llama2", "gemma3"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    EXPECT_EQ(tok.encode(bytes), tok.encode(replaced)) << name;
    EXPECT_EQ(tok.decode(tok.encode(bytes), true), replaced) << name;
  }
}

TEST(TokenizerRobustness, RandomBytesAndIds) {
  std::mt19937 rng(7);
  for (const char* name : {"qwen3", "gemma3", "llama2", "gpt2"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    for (int i = 0; i < 200; ++i) {
      std::string text(rng() % 64, '\0');
      for (char& c : text) c = char(rng() % 4 ? rng() % 128 : rng() % 256);
      std::vector<int32_t> ids = tok.encode(text);
      for (int32_t id : ids) ASSERT_LT(size_t(id), tok.vocab_size()) << name;
      std::vector<int32_t> random_ids(rng() % 16);
      for (int32_t& id : random_ids) id = int32_t(rng() % (tok.vocab_size() + 10)) - 5;
      std::string text_back = tok.decode(random_ids);
      EXPECT_TRUE(is_valid_utf8(text_back)) << name;
    }
  }
}

// Mutated tokenizer.json files load or fail with zoft::Error; never anything else.
TEST(TokenizerRobustness, MutatedJson) {
  std::string base = bpe_json(
      R"("vocab": {"a": 0, "b": 1, "ab": 2, "<s>": 3}, "merges": ["a b"], "unk_token": "<s>")",
      R"("normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "_"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "_"}]},
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>",
      "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>":
      {"id": "<s>", "ids": [3], "tokens": ["<s>"]}}},
      "decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "Strip",
      "content": " ", "start": 1, "stop": 1}]}, )");
  ASSERT_EQ(Tokenizer::from_json(base).encode("ab a"), (std::vector<int32_t>{3, 3, 2, 3, 0}));
  std::mt19937 rng(11);
  int loaded = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string json = base;
    for (int k = 0, n = 1 + int(rng() % 3); k < n; ++k) {
      size_t at = rng() % json.size();
      switch (rng() % 3) {
        case 0:
          json[at] = char(rng() % 128);
          break;
        case 1:
          json.erase(at, 1 + rng() % 8);
          break;
        default:
          json.insert(at, 1, "{}[],:\"0-"[rng() % 9]);
          break;
      }
    }
    try {
      Tokenizer tok = Tokenizer::from_json(json);
      tok.decode(tok.encode("ab ba \xFF"));
      ++loaded;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace zoft::text
