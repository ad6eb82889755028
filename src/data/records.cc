#include "data/records.h"

#include "core/error.h"
#include "data/parsers.h"
#include "text/file_text.h"

namespace zoft::data {

const std::string* Record::find(std::string_view name) const {
  for (const auto& [key, value] : fields)
    if (key == name) return &value;
  return nullptr;
}

const std::string& Record::get(std::string_view name) const {
  const std::string* value = find(name);
  if (!value) fail("{}: no field '{}' (fields: {})", origin, name, field_names());
  return *value;
}

std::string Record::field_names() const {
  std::string names;
  for (const auto& field : fields) names += (names.empty() ? "" : ", ") + field.first;
  return names;
}

static bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The extension that says what the file holds: ".csv" of "train.csv.xz".
static std::string_view content_extension(std::string_view path) {
  if (ends_with(path, ".xz")) path.remove_suffix(3);
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) return {};
  return path.substr(dot);
}

FileFormat detect_format(const std::string& path) {
  std::string_view ext = content_extension(path);
  if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return FileFormat::kJsonl;
  if (ext == ".csv" || ext == ".tsv") return FileFormat::kCsv;
  if (ext == ".txt" || ext == ".text") return FileFormat::kTxt;
  fail(
      "{}: cannot tell the format from the extension '{}'; use .jsonl, .csv, .tsv or .txt "
      "(optionally + .xz), or name the format",
      path, ext);
}

// Spreadsheet programs start UTF-8 files with a byte-order mark; it is not part of any field.
static std::string_view drop_bom(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  return text;
}

static bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::vector<Record> read_records(const std::string& path, const ReadOptions& options) {
  FileFormat format = options.format == FileFormat::kAuto ? detect_format(path) : options.format;
  // Decompresses ".xz" on the way; errors name the path (missing, directory, corrupt xz).
  std::string bytes = text::read_text_file(path);
  std::string_view text = drop_bom(bytes);
  if (is_blank(text)) fail("{}: empty file, expected records", path);
  switch (format) {
    case FileFormat::kJsonl:
      return parse_jsonl(text, path);
    case FileFormat::kCsv: {
      char delimiter = options.delimiter;
      if (delimiter == 0) delimiter = content_extension(path) == ".tsv" ? '\t' : ',';
      return parse_csv(text, path, delimiter);
    }
    case FileFormat::kTxt:
      return parse_txt(text, path, options);
    case FileFormat::kAuto:
      break;
  }
  fail("{}: unknown file format", path);
}

}  // namespace zoft::data
