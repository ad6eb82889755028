// read_json_file / write_json_file: content, and errors that name the file and the position.
#include "io/json_file.h"

#include <gtest/gtest.h>

#include "io/io_test_util.h"

namespace zoft {
namespace {

using testing::expect_error;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

TEST(JsonFile, ReadsObject) {
  TempDir dir;
  std::string path = dir.file("config.json");
  write_bytes(path, R"({"hidden_size": 64, "name": "tiny", "eps": 1e-6, "layers": [1, 2]})");
  nlohmann::json j = read_json_file(path);
  EXPECT_EQ(j["hidden_size"].get<int>(), 64);
  EXPECT_EQ(j["name"].get<std::string>(), "tiny");
  EXPECT_DOUBLE_EQ(j["eps"].get<double>(), 1e-6);
  EXPECT_EQ(j["layers"].size(), 2u);
}

TEST(JsonFile, ParseErrorNamesFileAndPosition) {
  TempDir dir;
  std::string path = dir.file("bad.json");
  write_bytes(path, "{\n  \"a\": 1,\n  \"b\": ,\n}");
  expect_error([&] { read_json_file(path); }, {path, "invalid JSON", "line 3", "column"});
  write_bytes(path, "{\"a\": 1} trailing");
  expect_error([&] { read_json_file(path); }, {path, "invalid JSON"});
  write_bytes(path, "\"unterminated\n");
  expect_error([&] { read_json_file(path); }, {path, "invalid JSON"});
}

TEST(JsonFile, MissingEmptyOrDirectory) {
  TempDir dir;
  expect_error([&] { read_json_file(dir.file("none.json")); },
               {dir.file("none.json"), "cannot open"});
  write_bytes(dir.file("empty.json"), "");
  expect_error([&] { read_json_file(dir.file("empty.json")); }, {dir.file("empty.json"), "empty"});
  expect_error([&] { read_json_file(dir.path()); }, {dir.path(), "not a regular file"});
}

TEST(JsonFile, WriteRoundTrip) {
  TempDir dir;
  std::string path = dir.file("out.json");
  nlohmann::json j = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", 151936}, {"x", 0.5}};
  write_json_file(path, j);
  std::string text = read_bytes(path);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(read_json_file(path), j);
  expect_error([&] { write_json_file(path, nlohmann::json("\xff")); }, {path});
  EXPECT_EQ(read_json_file(path), j);  // the failed write left the old file alone
}

TEST(JsonFile, ErrorTextHasNoPrefix) {
  try {
    nlohmann::json j = nlohmann::json::parse("{");
    FAIL() << j.dump();
  } catch (const nlohmann::json::exception& e) {
    std::string text = json_error_text(e);
    EXPECT_EQ(text.find("[json.exception"), std::string::npos) << text;
    EXPECT_NE(text.find("line 1"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace zoft
