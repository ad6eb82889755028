// Training files for first-order fine-tuning (HF Trainer jobs), read, tokenized and ready to
// batch:
//  - a causal-LM corpus (TXT, JSONL with a text field, CSV with a text column; optionally .xz):
//    each document tokenized as HF's tokenizer(text) does it (BOS first where the template adds
//    one: Llama, Gemma), EOS appended, all concatenated and cut into max_seq_length blocks with
//    the remainder dropped per 1000 documents, as run_clm.py's group_texts does. A TXT file is one
//    document per line (HF's text loader), its line breaks kept. Batch with make_lm_batch: the
//    targets are the inputs shifted by one inside a block (Decoder::next_token_targets).
//  - prompt / completion records for supervised fine-tuning (TRL's prompt-completion format):
//    the tokens of prompt + completion + EOS, the loss on the completion (and EOS) only. Batch
//    with make_batch and LossMode::kAnswerOnly, Padding::kRight.
// The order of the examples: data::DataOrder (sampling.h), whose state a checkpoint saves.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/encode.h"
#include "data/records.h"
#include "text/tokenizer.h"

namespace zoft::data {

struct CorpusOptions {
  std::string field = "text";  // JSONL field or CSV column
  FileFormat format = FileFormat::kAuto;
  int64_t max_seq_length = 1024;
  bool append_eos = true;
};

// Blocks of exactly max_seq_length tokens. Throws zoft::Error, on one line, for an empty file,
// a record without the field ("<path>:<line>: no field 'text' (fields: ...)"), a CSV without the
// column ("<path>: no column 'text' (columns: ...)"), a corpus shorter than one block, a
// tokenizer without EOS.
std::vector<std::vector<int32_t>> read_lm_blocks(const std::string& path,
                                                 const text::Tokenizer& tokenizer,
                                                 const CorpusOptions& options = {});

struct SftOptions {
  std::string prompt_field = "prompt", completion_field = "completion";
  FileFormat format = FileFormat::kAuto;
  int64_t max_seq_length = 1024;
  bool append_eos = true;  // EOS after the completion, unless it already ends with one
  // true: a too-long example loses prompt tokens from the left (after BOS), keeping every
  // completion token, as MeZO's encoding does; false: it is an error naming the record.
  bool truncate = true;
};

// One example per record: context_ids = the prompt's tokens, candidate_ids[0] = the
// completion's (+ EOS), label 0; context + completion is exactly encode(prompt + completion).
// Throws for a record without either field (naming file and line), an empty completion, an
// example that cannot fit.
std::vector<EncodedExample> read_sft_examples(const std::string& path,
                                              const text::Tokenizer& tokenizer,
                                              const SftOptions& options = {});

}  // namespace zoft::data
