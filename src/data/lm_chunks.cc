#include "data/lm_chunks.h"

#include <algorithm>

#include "core/error.h"
#include "data/parallel.h"

namespace zoft::data {

// Cuts one group's concatenated tokens into whole blocks.
static void append_blocks(const std::vector<std::vector<int32_t>>& tokenized, size_t begin,
                          size_t end, int64_t block, std::vector<std::vector<int32_t>>& out) {
  std::vector<int32_t> joined;
  for (size_t i = begin; i < end; ++i)
    joined.insert(joined.end(), tokenized[i].begin(), tokenized[i].end());
  size_t whole = joined.size() / size_t(block) * size_t(block);
  for (size_t at = 0; at < whole; at += size_t(block))
    out.emplace_back(joined.begin() + int64_t(at), joined.begin() + int64_t(at) + block);
}

// The file the records came from: their origin without ":line".
static std::string source_file(const std::vector<Record>& records) {
  const std::string& origin = records.front().origin;
  return origin.substr(0, origin.rfind(':'));
}

std::vector<std::vector<int32_t>> lm_chunks(const std::vector<Record>& records,
                                            const text::Tokenizer& tokenizer,
                                            const LmChunkOptions& options) {
  ZOFT_CHECK(options.max_seq_length > 0, "max_seq_length must be positive, got {}",
             options.max_seq_length);
  ZOFT_CHECK(!records.empty(), "no records to make language-modelling data from");
  int32_t eos = tokenizer.eos_id();
  ZOFT_CHECK(!options.append_eos || eos >= 0,
             "{}: the tokenizer has no EOS token to end each document with", source_file(records));
  std::vector<std::vector<int32_t>> tokenized(records.size());
  parallel_items(int64_t(records.size()), [&](int64_t i) {
    const std::string& text = records[size_t(i)].get(options.field);
    std::vector<int32_t> ids = tokenizer.encode(text, options.add_special_tokens);
    if (options.append_eos && (ids.empty() || ids.back() != eos)) ids.push_back(eos);
    tokenized[size_t(i)] = std::move(ids);
  });
  size_t group = options.records_per_group ? options.records_per_group : records.size();
  std::vector<std::vector<int32_t>> chunks;
  for (size_t begin = 0; begin < records.size(); begin += group)
    append_blocks(tokenized, begin, std::min(records.size(), begin + group), options.max_seq_length,
                  chunks);
  if (chunks.empty()) {
    size_t total = 0;
    for (const auto& ids : tokenized) total += ids.size();
    fail("{}: {} tokens in all, fewer than one block of max_seq_length {}", source_file(records),
         total, options.max_seq_length);
  }
  return chunks;
}

}  // namespace zoft::data
