// Causal-LM training data as HF's run_clm.py makes it: tokenize each record's text (with the
// special tokens the tokenizer adds, e.g. Llama's BOS), concatenate, cut into blocks of
// max_seq_length tokens and drop what is left over. Training data also ends every document with
// EOS (append_eos, as TRL's packed datasets do), so that documents are told apart in a block.
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
  // EOS after each record's tokens, unless the tokenizer's template already put one there.
  // run_clm (and perplexity evaluation) appends none.
  bool append_eos = false;
  // run_clm groups texts inside datasets.map(batched=True), 1000 records at a time, so a
  // remainder is dropped per 1000 records, not once; 0 concatenates the whole corpus instead.
  size_t records_per_group = 1000;
};

// Throws zoft::Error naming a record without the field, when the corpus is shorter than one
// block, or when append_eos is set and the tokenizer has no EOS.
std::vector<std::vector<int32_t>> lm_chunks(const std::vector<Record>& records,
                                            const text::Tokenizer& tokenizer,
                                            const LmChunkOptions& options = {});

}  // namespace zoft::data
