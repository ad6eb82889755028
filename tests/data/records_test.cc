// JSONL / CSV / TXT readers, plain and .xz, on well-formed and hostile inputs.
#include "data/records.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "data/data_test_util.h"
#include "data/parsers.h"

namespace zoft::data {
namespace {

using namespace testing;

std::vector<Record> read_text(const TempDir& dir, const std::string& name, const std::string& bytes,
                              const ReadOptions& options = {}) {
  write_bytes(dir.file(name), bytes);
  return read_records(dir.file(name), options);
}

TEST(Jsonl, FieldsAsTextWithLineOrigins) {
  TempDir dir;
  auto records = read_text(dir, "a.jsonl",
                           "{\"text\": \"hi\", \"n\": 3, \"x\": 0.5, \"ok\": true, \"none\": null, "
                           "\"list\": [1, \"a\"], \"obj\": {\"k\": 1}}\n"
                           "\n"
                           "  \r\n"
                           "{\"text\": \"caf\\u00e9\\n\", \"label\": false}\r\n");
  ASSERT_EQ(records.size(), 2u);
  const Record& a = records[0];
  EXPECT_EQ(a.origin, dir.file("a.jsonl") + ":1");
  EXPECT_EQ(a.get("text"), "hi");
  EXPECT_EQ(a.get("n"), "3");
  EXPECT_EQ(a.get("x"), "0.5");
  EXPECT_EQ(a.get("ok"), "true");
  EXPECT_EQ(a.get("none"), "");
  EXPECT_EQ(a.get("list"), "[1,\"a\"]");
  EXPECT_EQ(a.get("obj"), "{\"k\":1}");
  EXPECT_EQ(a.field_names(), "text, n, x, ok, none, list, obj");
  EXPECT_EQ(records[1].origin, dir.file("a.jsonl") + ":4");
  EXPECT_EQ(records[1].get("text"), "caf\xC3\xA9\n");
  EXPECT_EQ(records[1].get("label"), "false");
}

TEST(Jsonl, MissingFieldNamesTheAvailableOnes) {
  TempDir dir;
  auto records = read_text(dir, "a.jsonl", "{\"text\": \"a\", \"label\": \"great\"}\n");
  expect_error([&] { records[0].get("txt"); },
               {dir.file("a.jsonl") + ":1: no field 'txt' (fields: text, label)"});
  EXPECT_EQ(records[0].find("txt"), nullptr);
}

TEST(Jsonl, BadLinesAreNamed) {
  TempDir dir;
  expect_error([&] { read_text(dir, "a.jsonl", "{\"a\": 1}\n{\"a\": 2,}\n"); },
               {"a.jsonl:2: invalid JSON"});
  expect_error([&] { read_text(dir, "b.jsonl", "{\"a\": 1}\n\n\"just a string\"\n"); },
               {"b.jsonl:3: expected a JSON object, got a string"});
  expect_error([&] { read_text(dir, "c.json", "[{\"a\": 1},\n{\"a\": 2}]\n"); },
               {"c.json:1: invalid JSON"});
  expect_error([&] { read_text(dir, "d.json", "[{\"a\": 1}, {\"a\": 2}]\n"); },
               {"d.json:1: a JSON array; expected JSON Lines"});
  expect_error([&] { read_text(dir, "e.jsonl", "{\"a\": \"unterminated}\n"); },
               {"e.jsonl:1: invalid JSON"});
  expect_error([&] { read_text(dir, "f.jsonl", "{\"a\": \"\xff\xfe\"}\n"); },
               {"f.jsonl:1: invalid JSON"});
}

TEST(Jsonl, DeepNestingIsRefused) {
  TempDir dir;
  std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}\n";
  expect_error([&] { read_text(dir, "a.jsonl", deep); }, {"a.jsonl:1: JSON nested deeper than"});
}

TEST(Readers, EmptyMissingAndDirectory) {
  TempDir dir;
  expect_error([&] { read_text(dir, "a.jsonl", ""); }, {"a.jsonl: empty file"});
  expect_error([&] { read_text(dir, "b.jsonl", "\n \n\t\n"); }, {"b.jsonl: empty file"});
  expect_error([&] { read_text(dir, "c.csv", "\xEF\xBB\xBF"); }, {"c.csv: empty file"});
  expect_error([&] { read_text(dir, "d.txt", ""); }, {"d.txt: empty file"});
  expect_error([&] { read_records(dir.file("missing.jsonl")); }, {"missing.jsonl: cannot open"});
  std::filesystem::create_directory(dir.file("sub.csv"));
  expect_error([&] { read_records(dir.file("sub.csv")); }, {"sub.csv: is a directory"});
  expect_error([&] { read_text(dir, "data.parquet", "PAR1"); },
               {"data.parquet: cannot tell the format", "'.parquet'"});
}

TEST(Readers, FormatFromExtension) {
  EXPECT_EQ(detect_format("a/b.jsonl"), FileFormat::kJsonl);
  EXPECT_EQ(detect_format("b.json.xz"), FileFormat::kJsonl);
  EXPECT_EQ(detect_format("b.tsv"), FileFormat::kCsv);
  EXPECT_EQ(detect_format("x.y/b.csv.xz"), FileFormat::kCsv);
  EXPECT_EQ(detect_format("b.txt"), FileFormat::kTxt);
  expect_error([] { detect_format("x.d/README"); }, {"cannot tell the format"});
  // An explicit format overrides the extension.
  TempDir dir;
  ReadOptions options;
  options.format = FileFormat::kCsv;
  auto records = read_text(dir, "data.dat", "a,b\n1,2\n", options);
  EXPECT_EQ(records[0].get("b"), "2");
}

TEST(Readers, XzCompressedFilesOfEachFormat) {
  TempDir dir;
  write_bytes(dir.file("a.jsonl.xz"), xz_compress("{\"t\": \"x\"}\n{\"t\": \"y\"}\n"));
  write_bytes(dir.file("a.csv.xz"), xz_compress("t,u\nx,1\n"));
  write_bytes(dir.file("a.txt.xz"), xz_compress("x\ny\n"));
  EXPECT_EQ(read_records(dir.file("a.jsonl.xz"))[1].get("t"), "y");
  EXPECT_EQ(read_records(dir.file("a.jsonl.xz"))[1].origin, dir.file("a.jsonl.xz") + ":2");
  EXPECT_EQ(read_records(dir.file("a.csv.xz"))[0].get("u"), "1");
  EXPECT_EQ(read_records(dir.file("a.txt.xz")).size(), 2u);
  auto test = read_records(fixture("fine_foods_test.jsonl.xz"));
  EXPECT_EQ(test.size(), 50u);
  EXPECT_EQ(test[0].field_names(), "text, label, product");
}

TEST(Readers, CorruptAndTruncatedXz) {
  TempDir dir;
  std::string packed = xz_compress(std::string(5000, 'a'));
  write_bytes(dir.file("t.jsonl.xz"), packed.substr(0, packed.size() / 2));
  expect_error([&] { read_records(dir.file("t.jsonl.xz")); }, {"t.jsonl.xz:"});
  write_bytes(dir.file("n.jsonl.xz"), "{\"not\": \"xz\"}\n");
  expect_error([&] { read_records(dir.file("n.jsonl.xz")); }, {"n.jsonl.xz: not xz data"});
  std::string flipped = packed;
  flipped[flipped.size() / 2] ^= 0x55;
  write_bytes(dir.file("c.jsonl.xz"), flipped);
  expect_error([&] { read_records(dir.file("c.jsonl.xz")); }, {"c.jsonl.xz:"});
}

TEST(Csv, Rfc4180Quoting) {
  TempDir dir;
  auto records = read_text(dir, "a.csv",
                           "\xEF\xBB\xBFtext,label\r\n"
                           "\"a, b\",great\r\n"
                           "\"she said \"\"hi\"\"\",other\r\n"
                           "\"two\nlines\",great\r\n"
                           "\r\n"
                           "plain \"quote\" inside,other\r\n"
                           ",\r\n"
                           "\"\",\"x\"");
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[0].get("text"), "a, b");
  EXPECT_EQ(records[0].origin, dir.file("a.csv") + ":2");
  EXPECT_EQ(records[1].get("text"), "she said \"hi\"");
  EXPECT_EQ(records[2].get("text"), "two\nlines");
  EXPECT_EQ(records[3].get("text"), "plain \"quote\" inside");
  EXPECT_EQ(records[3].origin, dir.file("a.csv") + ":7");  // after a 2-line field and a blank line
  EXPECT_EQ(records[4].get("text"), "");
  EXPECT_EQ(records[4].get("label"), "");
  EXPECT_EQ(records[5].get("label"), "x");
}

TEST(Csv, DelimitersAndHeaderNames) {
  TempDir dir;
  auto tsv = read_text(dir, "a.tsv", "a\tb\n1,5\t2\n");
  EXPECT_EQ(tsv[0].get("a"), "1,5");
  ReadOptions semicolon;
  semicolon.delimiter = ';';
  auto semi = read_text(dir, "b.csv", "a;b\n\"x;y\";2\n", semicolon);
  EXPECT_EQ(semi[0].get("a"), "x;y");
  auto pandas = read_text(dir, "c.csv", ",text\n0,hello\n");  // pandas' unnamed index column
  EXPECT_EQ(pandas[0].field_names(), "column_1, text");
  expect_error([&] { read_text(dir, "d.csv", "a,b,a\n1,2,3\n"); },
               {"d.csv:1: the header names column 'a' twice"});
}

TEST(Csv, HostileRows) {
  TempDir dir;
  expect_error([&] { read_text(dir, "a.csv", "text,label\nx,great\ny\n"); },
               {"a.csv:3: row has 1 fields, the header has 2 (text, label)"});
  expect_error([&] { read_text(dir, "b.csv", "text,label\nx,great,extra\n"); },
               {"b.csv:2: row has 3 fields, the header has 2 (text, label)"});
  expect_error([&] { read_text(dir, "c.csv", "text,label\nx,great\n\"never closed,other\n"); },
               {"c.csv:3: column 'text': unterminated quoted field"});
  expect_error([&] { read_text(dir, "d.csv", "text,label\n\"x\"y,great\n"); },
               {"d.csv:2: column 'text': unexpected 'y' after a closing quote"});
  expect_error([&] { read_text(dir, "e.csv", "text,label\n"); },
               {"e.csv: no records, only a header row"});
  EXPECT_NO_THROW(read_text(dir, "f.csv", "text,label\nx,great\n"));
}

TEST(Txt, LinesAndWholeFile) {
  TempDir dir;
  auto kept = read_text(dir, "a.txt", "first\n\nthird\r\nlast");
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept[0].get("text"), "first\n");
  EXPECT_EQ(kept[1].get("text"), "\n");
  EXPECT_EQ(kept[2].get("text"), "third\r\n");
  EXPECT_EQ(kept[3].get("text"), "last");
  EXPECT_EQ(kept[3].origin, dir.file("a.txt") + ":4");
  ReadOptions stripped;
  stripped.keep_linebreaks = false;
  stripped.txt_field = "line";
  auto lines = read_text(dir, "b.txt", "first\nsecond\r\n", stripped);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].get("line"), "second");
  ReadOptions whole;
  whole.txt_whole_file = true;
  auto one = read_text(dir, "c.txt", "a\nb\n", whole);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].get("text"), "a\nb\n");
}

// Random bytes and mutations of valid files: every outcome is records or a zoft::Error.
TEST(Readers, FuzzedInputsFailCleanly) {
  std::mt19937 rng(7);
  const std::string seeds[] = {"a,b\n\"x\",\"y\"\"z\"\n1,2\n",
                               "{\"a\": [1, {\"b\": null}]}\n{\"c\": 2}\n"};
  const std::string alphabet = "{}[]\",:\n\r\\ ab01\xff\x00";
  for (int round = 0; round < 2000; ++round) {
    std::string text = seeds[round % 2];
    int edits = 1 + int(rng() % 6);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % (text.size() + 1);
      char c = alphabet[rng() % alphabet.size()];
      if (rng() % 2 && at < text.size())
        text[at] = c;
      else
        text.insert(text.begin() + int64_t(at), c);
    }
    for (int format = 0; format < 3; ++format) {
      try {
        if (format == 0) parse_csv(text, "fuzz.csv", ',');
        if (format == 1) parse_jsonl(text, "fuzz.jsonl");
        if (format == 2) parse_txt(text, "fuzz.txt", {});
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace zoft::data
