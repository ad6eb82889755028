// Records from JSONL, CSV and TXT files (each optionally .xz-compressed): the rows a task or a
// language-modelling corpus is made of. A record maps field names to text and remembers where it
// came from, so that every later error can name the file and line.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zoft::data {

struct Record {
  std::vector<std::pair<std::string, std::string>> fields;  // in file order
  std::string origin;                                       // "path:line" of its first line

  const std::string* find(std::string_view name) const;  // nullptr if absent
  // Throws zoft::Error "<origin>: no field 'x' (fields: a, b, c)".
  const std::string& get(std::string_view name) const;
  std::string field_names() const;  // "a, b, c"
};

enum class FileFormat { kAuto, kJsonl, kCsv, kTxt };

struct ReadOptions {
  // kAuto: from the extension after any ".xz": .jsonl/.json, .csv (','), .tsv ('\t'), .txt/.text.
  FileFormat format = FileFormat::kAuto;
  char delimiter = 0;  // CSV only; 0 = from the extension (',' unless .tsv)
  // TXT: one record per line (field txt_field), or the whole file as one record.
  bool txt_whole_file = false;
  // TXT lines keep their "\n", as HF's text loader does by default (keep_linebreaks=True), so a
  // corpus concatenated for language modelling keeps its line structure.
  bool keep_linebreaks = true;
  std::string txt_field = "text";
};

// JSONL: one JSON object per non-blank line; strings are taken as they are, numbers and bools as
// their JSON text ("3", "0.5", "true"), null as "", nested arrays/objects as compact JSON.
// CSV: RFC 4180 (quoted fields may hold delimiters, quotes as "" and line breaks), a header row
// naming the columns, blank lines skipped. A UTF-8 byte-order mark is dropped in every format.
// Throws zoft::Error naming the file (and line, and column) for a missing or empty file, bad
// JSON, a ragged CSV row, an unterminated quote, or corrupt xz data.
std::vector<Record> read_records(const std::string& path, const ReadOptions& options = {});

// The format kAuto picks for `path`; throws if the extension says nothing.
FileFormat detect_format(const std::string& path);

}  // namespace zoft::data
