// The per-format record parsers behind read_records(), each over a file's whole decompressed
// text. `path` names the file in errors. Internal to the data layer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "data/records.h"

namespace zoft::data {

std::vector<Record> parse_jsonl(std::string_view text, const std::string& path);
std::vector<Record> parse_csv(std::string_view text, const std::string& path, char delimiter);
std::vector<Record> parse_txt(std::string_view text, const std::string& path,
                              const ReadOptions& options);

}  // namespace zoft::data
