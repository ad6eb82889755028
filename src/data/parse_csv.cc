// CSV as RFC 4180 writes it, read leniently where the RFC is silent: LF or CRLF line ends, a
// quote inside an unquoted field taken literally, blank lines skipped (as pandas does).
#include <unordered_set>

#include "core/error.h"
#include "data/parsers.h"

namespace zoft::data {

namespace {

struct Row {
  std::vector<std::string> cells;
  size_t line = 0;  // where the row starts
};

// Reads rows one at a time out of the whole text.
class CsvReader {
 public:
  CsvReader(std::string_view text, const std::string& path, char delimiter)
      : text_(text), path_(path), delimiter_(delimiter) {}

  // False at the end of the text. Blank lines are skipped.
  bool next(Row& row, const std::vector<std::string>* header);

 private:
  bool at_line_end() const {
    return pos_ >= text_.size() || text_[pos_] == '\n' || text_[pos_] == '\r';
  }
  void skip_line_end();
  std::string quoted_field(size_t column, const std::vector<std::string>* header);
  std::string plain_field();
  std::string column_name(size_t column, const std::vector<std::string>* header) const;

  std::string_view text_;
  const std::string& path_;
  char delimiter_;
  size_t pos_ = 0, line_ = 1;
};

void CsvReader::skip_line_end() {
  if (pos_ < text_.size() && text_[pos_] == '\r') ++pos_;
  if (pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
  ++line_;
}

std::string CsvReader::column_name(size_t column, const std::vector<std::string>* header) const {
  if (header && column < header->size()) return fmt::format("column '{}'", (*header)[column]);
  return fmt::format("column {}", column + 1);
}

// At an opening quote: the field up to its closing quote, "" read as one quote.
std::string CsvReader::quoted_field(size_t column, const std::vector<std::string>* header) {
  size_t open_line = line_;
  ++pos_;
  std::string field;
  while (true) {
    size_t quote = text_.find('"', pos_);
    if (quote == std::string_view::npos)
      fail("{}:{}: {}: unterminated quoted field", path_, open_line, column_name(column, header));
    std::string_view chunk = text_.substr(pos_, quote - pos_);
    for (char c : chunk) line_ += c == '\n';
    field += chunk;
    pos_ = quote + 1;
    if (pos_ < text_.size() && text_[pos_] == '"') {
      field += '"';
      ++pos_;
      continue;
    }
    break;
  }
  if (!at_line_end() && text_[pos_] != delimiter_)
    fail("{}:{}: {}: unexpected '{}' after a closing quote", path_, line_,
         column_name(column, header), text_[pos_]);
  return field;
}

std::string CsvReader::plain_field() {
  size_t begin = pos_;
  while (!at_line_end() && text_[pos_] != delimiter_) ++pos_;
  return std::string(text_.substr(begin, pos_ - begin));
}

bool CsvReader::next(Row& row, const std::vector<std::string>* header) {
  while (pos_ < text_.size() && at_line_end()) skip_line_end();  // blank lines
  if (pos_ >= text_.size()) return false;
  row.cells.clear();
  row.line = line_;
  while (true) {
    bool quoted = text_[pos_] == '"';
    row.cells.push_back(quoted ? quoted_field(row.cells.size(), header) : plain_field());
    if (at_line_end()) break;
    ++pos_;  // the delimiter; a row ending in one has a last, empty field
    if (at_line_end()) {
      row.cells.emplace_back();
      break;
    }
  }
  if (pos_ < text_.size()) skip_line_end();
  return true;
}

// Header names must be unique; unnamed columns (pandas' index column) get "column_N".
std::vector<std::string> header_names(const Row& row, const std::string& path) {
  std::vector<std::string> names = row.cells;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) names[i] = fmt::format("column_{}", i + 1);
    if (!seen.insert(names[i]).second)
      fail("{}:{}: the header names column '{}' twice", path, row.line, names[i]);
  }
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

std::vector<Record> parse_csv(std::string_view text, const std::string& path, char delimiter) {
  ZOFT_CHECK(delimiter != '"' && delimiter != '\n' && delimiter != '\r',
             "{}: the CSV delimiter cannot be a quote or a line break", path);
  CsvReader reader(text, path, delimiter);
  Row row;
  if (!reader.next(row, nullptr)) fail("{}: empty file, expected a header row", path);
  std::vector<std::string> header = header_names(row, path);
  std::vector<Record> records;
  while (reader.next(row, &header)) {
    if (row.cells.size() != header.size())
      fail("{}:{}: row has {} fields, the header has {} ({})", path, row.line, row.cells.size(),
           header.size(), joined(header));
    Record record;
    record.origin = fmt::format("{}:{}", path, row.line);
    record.fields.reserve(header.size());
    for (size_t i = 0; i < header.size(); ++i)
      record.fields.emplace_back(header[i], std::move(row.cells[i]));
    records.push_back(std::move(record));
  }
  ZOFT_CHECK(!records.empty(), "{}: no records, only a header row", path);
  return records;
}

}  // namespace zoft::data
