// The stages around the BPE model: normalizers, pre-tokenizers and decoders, each a list of
// steps as TokenizerSpec describes them. Internal to the text layer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"

namespace zoft::text {

// ---- normalize.cc
std::string normalize(std::string_view text, const std::vector<NormalizerStep>& steps);
// Replaces every non-overlapping occurrence of `from` (left to right) by `to`.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// ---- pretokenize.cc
// A span of a string, and whether a split pattern matched it.
struct Span {
  size_t begin, end;
  bool match;
};

// Length of the GPT-2 regex match at s[pos] (there is always one: the pattern covers every
// character), and of the Llama-3 family's regex, whose digit runs are at most max_digits long.
size_t match_gpt2(std::string_view s, size_t pos);
size_t match_llama3(std::string_view s, size_t pos, size_t max_digits);
// Cuts s into matched and unmatched spans covering all of it, then groups them as `behavior`
// says; the result lists the pieces to keep (spans with match = false).
std::vector<Span> split_spans(std::string_view s, SplitPattern pattern, std::string_view literal,
                              SplitBehavior behavior);

// GPT-2's reversible byte -> character mapping, so that any bytes are printable vocab entries.
uint32_t byte_to_char(uint8_t b);
int byte_from_char(uint32_t cp);  // -1 if cp is not one of the 256 mapped characters
void append_byte_level(std::string& out, std::string_view bytes);

// A word-to-be and whether it starts the original text (Metaspace's "first" scheme asks).
struct Piece {
  std::string text;
  bool at_start;
};
// Runs the pre-tokenizer steps on one normalized segment; appends the non-empty words.
void pre_tokenize(std::string_view segment, bool at_start,
                  const std::vector<PreTokenizerStep>& steps, std::vector<Piece>& words);

// ---- decode.cc
// Runs the decoder steps over token strings and joins the result (no decoder: joined by " ",
// as `tokenizers` does).
std::string run_decoder(std::vector<std::string> tokens, const std::vector<DecoderStep>& steps);
// The byte of a "<0xXX>" byte-fallback token, or -1 if the token is not one.
int byte_fallback_value(std::string_view token);

}  // namespace zoft::text
