#include "data/causal_lm.h"

#include "core/error.h"
#include "data/lm_chunks.h"
#include "data/task.h"

namespace zoft::data {

// A CSV names its columns once: a missing one is an error about the file, not about line 2.
static void check_columns(const std::string& path, FileFormat format,
                          const std::vector<Record>& records,
                          const std::vector<std::string>& columns) {
  if (format == FileFormat::kAuto) format = detect_format(path);
  if (format != FileFormat::kCsv || records.empty()) return;
  for (const auto& column : columns)
    ZOFT_CHECK(records.front().find(column), "{}: no column '{}' (columns: {})", path, column,
               records.front().field_names());
}

std::vector<std::vector<int32_t>> read_lm_blocks(const std::string& path,
                                                 const text::Tokenizer& tokenizer,
                                                 const CorpusOptions& options) {
  ReadOptions read;
  read.format = options.format;
  read.txt_field = options.field;
  std::vector<Record> records = read_records(path, read);
  check_columns(path, options.format, records, {options.field});
  LmChunkOptions chunking;
  chunking.field = options.field;
  chunking.max_seq_length = options.max_seq_length;
  chunking.append_eos = options.append_eos;
  return lm_chunks(records, tokenizer, chunking);
}

std::vector<EncodedExample> read_sft_examples(const std::string& path,
                                              const text::Tokenizer& tokenizer,
                                              const SftOptions& options) {
  ZOFT_CHECK(options.max_seq_length > 1, "max_seq_length must be at least 2, got {}",
             options.max_seq_length);
  int32_t eos = tokenizer.eos_id();
  ZOFT_CHECK(!options.append_eos || eos >= 0,
             "{}: the tokenizer has no EOS token to end each completion with", path);
  ReadOptions read;
  read.format = options.format;
  std::vector<Record> records = read_records(path, read);
  check_columns(path, options.format, records, {options.prompt_field, options.completion_field});
  std::vector<TaskExample> examples;
  examples.reserve(records.size());
  for (const Record& record : records)
    examples.push_back({record.get(options.prompt_field),
                        {record.get(options.completion_field)},
                        0,
                        record.origin});
  EncodeOptions encode;
  // The EOS is appended after encoding: leave it its place.
  encode.max_length = options.max_seq_length - (options.append_eos ? 1 : 0);
  encode.truncate = options.truncate;
  std::vector<EncodedExample> encoded = encode_examples(examples, tokenizer, encode);
  if (options.append_eos)
    for (auto& example : encoded)
      if (example.candidate_ids[0].back() != eos) example.candidate_ids[0].push_back(eos);
  return encoded;
}

}  // namespace zoft::data
