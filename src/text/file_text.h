// Whole-file reads for tokenizer files, decompressing ".xz" files on the way, so that
// tokenizer.json.xz can be used as it is shipped. Internal to the text layer.
#pragma once

#include <string>

namespace zoft::text {

// Throws zoft::Error naming the path if it cannot be read or is not valid xz data.
std::string read_text_file(const std::string& path);
bool is_regular_file(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace zoft::text
