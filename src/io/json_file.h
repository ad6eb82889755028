// JSON files (config.json, tokenizer.json, index files) with errors that name the file and the
// position. nlohmann/json is included here, and kept out of the other io headers.
#pragma once

#include <exception>
#include <nlohmann/json.hpp>
#include <string>

namespace zoft {

// Reads and parses a whole file; throws Error "<path>: invalid JSON: parse error at line L,
// column C: ..." or "<path>: cannot open: ...".
nlohmann::json read_json_file(const std::string& path);

// Writes `value` atomically (write_file_atomic), indented by 2, ending in a newline.
void write_json_file(const std::string& path, const nlohmann::json& value);

// The message of a nlohmann exception without its "[json.exception.parse_error.101] " prefix,
// on one line, for embedding in an Error.
std::string json_error_text(const std::exception& e);

}  // namespace zoft
