// Causal-LM training data as HF's run_clm.py makes it: tokenize each record's text (with the
// special tokens the tokenizer adds, e.g. Llama's BOS), concatenate, cut into blocks of
// max_seq_length tokens and drop what is left over.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/records.h"
#include "text/tokenizer.h"

namespace zoft::data {

struct LmChunkOptions {
  std::string field = "text";
  int64_t max_seq_length = 1024;  // run_clm's block_size
  bool add_special_tokens = true;
  // run_clm groups texts inside datasets.map(batched=True), 1000 records at a time, so a
  // remainder is dropped per 1000 records, not once; 0 concatenates the whole corpus instead.
  size_t records_per_group = 1000;
};

// Throws zoft::Error naming a record without the field, or when the corpus is shorter than
// one block.
std::vector<std::vector<int32_t>> lm_chunks(const std::vector<Record>& records,
                                            const text::Tokenizer& tokenizer,
                                            const LmChunkOptions& options = {});

}  // namespace zoft::data
