#include "io/json_file.h"

#include "core/error.h"
#include "io/mapped_file.h"

namespace zoft {

std::string json_error_text(const std::exception& e) {
  std::string text = e.what();
  if (text.rfind("[json.exception.", 0) == 0) {
    size_t close = text.find("] ");
    if (close != std::string::npos) text = text.substr(close + 2);
  }
  // Errors are printed on one line by the CLI.
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

nlohmann::json read_json_file(const std::string& path) {
  // Mapped rather than streamed: the file is parsed in one pass from memory, and a directory or
  // a missing file gets MappedFile's clear error.
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  const char* begin = reinterpret_cast<const char*>(file->data());
  if (file->size() == 0) fail("{}: invalid JSON: the file is empty", path);
  try {
    return nlohmann::json::parse(begin, begin + file->size());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", path, json_error_text(e));
  }
}

void write_json_file(const std::string& path, const nlohmann::json& value) {
  std::string text;
  try {
    text = value.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {  // invalid UTF-8 in a string
    fail("{}: cannot write JSON: {}", path, json_error_text(e));
  }
  write_file_atomic(path, text);
}

}  // namespace zoft
