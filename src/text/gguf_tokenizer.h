// Tokenizers stored in GGUF metadata (tokenizer.ggml.*), as TokenizerSpec, and a tokenizer.json
// writer, so that `zoft convert` can give a GGUF model the tokenizer.json Hugging Face expects.
#pragma once

#include <string>

#include "text/tokenizer.h"

namespace zoft {
class GgufFile;
}

namespace zoft::text {

// tokenizer.ggml.model "gpt2" (byte-level BPE, merges in the file; the pre-tokenizer chosen by
// tokenizer.ggml.pre as llama.cpp does) or "llama" (SentencePiece BPE with byte fallback;
// merges from the file, else from the scores). Control and user-defined tokens become added
// tokens (control ones special); BOS / EOS / PAD / UNK and add_bos / add_eos come from the
// metadata with llama.cpp's defaults. Throws Error naming the file for anything else.
TokenizerSpec tokenizer_spec_from_gguf(const GgufFile& gguf);

// A tokenizer.json that both Tokenizer::from_json and HF `tokenizers` load and that encodes
// as `spec` does. Throws Error if the spec cannot be written (a token repeated in the
// vocabulary, a token that is not UTF-8).
std::string tokenizer_json_from_spec(const TokenizerSpec& spec);

// The name of a token id (added tokens first, then the vocabulary); "" if there is none.
std::string token_text(const TokenizerSpec& spec, int32_t id);

}  // namespace zoft::text
