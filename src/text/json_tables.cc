#include "text/json_tables.h"

#include "core/error.h"
#include "io/json_file.h"

namespace zoft::text {

using json = nlohmann::json;

namespace {

// Builds the JSON tree as nlohmann's own DOM parser would, except inside model.vocab (an object
// of token -> id) and model.merges (an array of "a b" strings or of ["a", "b"] pairs), whose
// entries are appended to the flat vectors instead.
class TablesSax : public nlohmann::json_sax<json> {
 public:
  TablesSax(TokenizerJsonTables& out, const std::string& origin) : out_(out), origin_(origin) {}

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return integer(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return integer(v > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool binary(binary_t&) override { return value(json()); }
  bool string(string_t& s) override;
  bool start_object(std::size_t) override;
  bool key(string_t& k) override;
  bool end_object() override;
  bool start_array(std::size_t) override;
  bool end_array() override;
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    fail("{}: invalid JSON: {}", origin_, json_error_text(e));
  }

 private:
  enum class Table { kNone, kVocab, kMerges };
  bool value(json&& v);
  bool integer(int64_t v);
  Table table_starting(bool object) const;
  void open_container(json&& empty);
  void add_merge(const std::string& text);
  [[noreturn]] void bad_entry(const char* what) const {
    fail("{}: model.{}: {} (entry {})", origin_, table_ == Table::kVocab ? "vocab" : "merges", what,
         table_ == Table::kVocab ? out_.vocab.size() : out_.merges.size());
  }

  TokenizerJsonTables& out_;
  const std::string& origin_;
  std::vector<json*> stack_;       // open containers of the tree
  std::vector<std::string> keys_;  // the key each open container sits under ("" in arrays)
  std::string key_;                // the last key read in the innermost object
  Table table_ = Table::kNone;
  int table_depth_ = 0;  // 1 inside the table, 2 inside a merge pair
  std::string pending_;  // vocab: the token whose id comes next
  std::vector<std::string> pair_;
};

// Places a finished value in the tree: as the root, appended to an array, or under key_.
bool TablesSax::value(json&& v) {
  if (table_ != Table::kNone) bad_entry("unexpected value");
  if (stack_.empty()) {
    out_.root = std::move(v);
  } else if (stack_.back()->is_array()) {
    stack_.back()->push_back(std::move(v));
  } else {
    (*stack_.back())[key_] = std::move(v);
  }
  return true;
}

bool TablesSax::integer(int64_t v) {
  if (table_ != Table::kVocab) return value(json(v));
  if (v < 0 || v >= (int64_t(1) << 31)) bad_entry("token id out of range");
  out_.vocab.emplace_back(std::move(pending_), v);
  return true;
}

bool TablesSax::string(string_t& s) {
  if (table_ == Table::kNone) return value(json(std::move(s)));
  if (table_ == Table::kVocab) bad_entry("token ids must be integers");
  if (table_depth_ == 1) {
    add_merge(s);
  } else {
    pair_.push_back(std::move(s));
  }
  return true;
}

// Legacy merges are "left right": exactly one space, as tokenizers requires.
void TablesSax::add_merge(const std::string& text) {
  size_t space = text.find(' ');
  if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
    bad_entry("expected two tokens separated by one space");
  out_.merges.emplace_back(text.substr(0, space), text.substr(space + 1));
}

// Whether the container opening now is model.vocab (an object) or model.merges (an array).
TablesSax::Table TablesSax::table_starting(bool object) const {
  if (stack_.size() != 2 || keys_[1] != "model" || !stack_.back()->is_object()) return Table::kNone;
  if (object && key_ == "vocab") return Table::kVocab;
  if (!object && key_ == "merges") return Table::kMerges;
  return Table::kNone;
}

// Places an empty object or array and makes it the innermost open container.
void TablesSax::open_container(json&& empty) {
  std::string under = !stack_.empty() && stack_.back()->is_object() ? key_ : "";
  value(std::move(empty));
  json* opened = stack_.empty()              ? &out_.root
                 : stack_.back()->is_array() ? &stack_.back()->back()
                                             : &(*stack_.back())[key_];
  stack_.push_back(opened);
  keys_.push_back(std::move(under));
}

bool TablesSax::start_object(std::size_t) {
  if (table_ != Table::kNone) bad_entry("unexpected object");
  if (table_starting(true) == Table::kVocab) {
    table_ = Table::kVocab, table_depth_ = 1, out_.has_vocab = true;
    return true;
  }
  open_container(json::object());
  return true;
}

bool TablesSax::key(string_t& k) {
  if (table_ == Table::kVocab)
    pending_ = std::move(k);
  else
    key_ = std::move(k);
  return true;
}

bool TablesSax::end_object() {
  if (table_ == Table::kVocab) {
    table_ = Table::kNone;
    return true;
  }
  stack_.pop_back();
  keys_.pop_back();
  return true;
}

bool TablesSax::start_array(std::size_t) {
  if (table_ == Table::kMerges) {
    if (table_depth_ != 1) bad_entry("unexpected nested array");
    table_depth_ = 2;
    pair_.clear();
    return true;
  }
  if (table_ != Table::kNone) bad_entry("unexpected array");
  if (table_starting(false) == Table::kMerges) {
    table_ = Table::kMerges, table_depth_ = 1, out_.has_merges = true;
    return true;
  }
  open_container(json::array());
  return true;
}

bool TablesSax::end_array() {
  if (table_ == Table::kMerges) {
    if (table_depth_ == 2) {
      if (pair_.size() != 2) bad_entry("a merge pair must hold two strings");
      out_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      table_depth_ = 1;
    } else {
      table_ = Table::kNone;
    }
    return true;
  }
  stack_.pop_back();
  keys_.pop_back();
  return true;
}

}  // namespace

TokenizerJsonTables parse_tokenizer_json_tables(std::string_view text, const std::string& origin) {
  TokenizerJsonTables out;
  ZOFT_CHECK(!text.empty(), "{}: invalid JSON: the file is empty", origin);
  TablesSax sax(out, origin);
  try {
    json::sax_parse(text.begin(), text.end(), &sax);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", origin, json_error_text(e));
  }
  return out;
}

}  // namespace zoft::text
