// Pre-tokenizers: cutting normalized text into words before BPE. The regexes of the GPT-2 and
// Llama-3 / Qwen families are matched by hand, alternative by alternative, reproducing what the
// backtracking regex engine inside `tokenizers` (Oniguruma) finds; each function below names
// the alternatives it covers.
#include <algorithm>
#include <array>
#include <cstdint>

#include "text/pipeline.h"
#include "text/unicode.h"

namespace zoft::text {

// ---------------------------------------------------------------------------------------------
// Character tests on UTF-8 text

// [^\s\p{L}\p{N}]: punctuation, symbols, marks, controls, and ill-formed bytes.
static bool is_other(uint32_t cp) {
  CharClass k = char_class(cp);
  return k != CharClass::kLetter && k != CharClass::kNumber && k != CharClass::kSpace;
}

// End of the run of characters satisfying `pred` that starts at pos, at most max_count long.
template <class Pred>
static size_t run_end(std::string_view s, size_t pos, Pred pred, size_t max_count = SIZE_MAX) {
  size_t count = 0;
  while (pos < s.size() && count < max_count) {
    Utf8Char c = decode_utf8(s, pos);
    if (!pred(c.cp)) break;
    pos += c.len;
    ++count;
  }
  return pos;
}

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive as (?i:...) is in Oniguruma, where 'ſ'
// (U+017F LONG S) case-folds to 's'. Returns the match length, 0 for none.
static size_t contraction_len(std::string_view s, size_t pos, bool fold_case) {
  if (s[pos] != '\'') return 0;
  size_t i = pos + 1;
  auto letter = [&](size_t k) -> char {
    if (k >= s.size()) return 0;
    char c = s[k];
    return fold_case && c >= 'A' && c <= 'Z' ? char(c + 32) : c;
  };
  if (fold_case && s.substr(i, 2) == "\xC5\xBF") return 3;
  char a = letter(i), b = letter(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// \s+(?!\S)|\s+ at a whitespace character. The greedy run backs off one character when a
// non-space follows, so that the space stays with the next word; a lone space cannot back off.
static size_t whitespace_len(std::string_view s, size_t pos) {
  size_t end = pos, last = pos;
  while (end < s.size()) {
    Utf8Char c = decode_utf8(s, end);
    if (!is_space(c.cp)) break;
    last = end;
    end += c.len;
  }
  if (end == s.size() || last == pos) return end - pos;
  return last - pos;
}

// The position after an optional single ' ' (the " ?" prefix of several alternatives), and the
// character found there.
static size_t skip_one_space(std::string_view s, size_t pos, Utf8Char* c) {
  Utf8Char c0 = decode_utf8(s, pos);
  if (c0.cp == ' ' && pos + 1 < s.size()) {
    *c = decode_utf8(s, pos + 1);
    return pos + 1;
  }
  *c = c0;
  return pos;
}

size_t match_gpt2(std::string_view s, size_t pos) {
  if (size_t n = contraction_len(s, pos, false)) return n;
  // " ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+": the class after the optional space decides.
  Utf8Char c;
  size_t p = skip_one_space(s, pos, &c);
  if (is_letter(c.cp)) return run_end(s, p, is_letter) - pos;
  if (is_number(c.cp)) return run_end(s, p, is_number) - pos;
  if (is_other(c.cp)) return run_end(s, p, is_other) - pos;
  return whitespace_len(s, pos);
}

size_t match_llama3(std::string_view s, size_t pos, size_t max_digits) {
  if (size_t n = contraction_len(s, pos, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+ : a letter run, with at most one non-newline non-alphanumeric
  // character (a space, a tab, punctuation) glued in front.
  Utf8Char c0 = decode_utf8(s, pos);
  if (is_letter(c0.cp)) return run_end(s, pos, is_letter) - pos;
  if (c0.cp != '\r' && c0.cp != '\n' && !is_number(c0.cp) && pos + c0.len < s.size() &&
      is_letter(decode_utf8(s, pos + c0.len).cp))
    return run_end(s, pos + c0.len, is_letter) - pos;
  // \p{N}{1,3}
  if (is_number(c0.cp)) return run_end(s, pos, is_number, max_digits) - pos;
  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
  Utf8Char c;
  size_t p = skip_one_space(s, pos, &c);
  if (is_other(c.cp)) {
    size_t end = run_end(s, p, is_other);
    while (end < s.size() && (s[end] == '\r' || s[end] == '\n')) ++end;
    return end - pos;
  }
  // c0 is whitespace from here on. "\s*[\r\n]+": up to the last newline of the run.
  size_t end = run_end(s, pos, is_space), after_newline = 0;
  for (size_t i = pos; i < end; ++i)
    if (s[i] == '\r' || s[i] == '\n') after_newline = i + 1;
  if (after_newline) return after_newline - pos;
  return whitespace_len(s, pos);
}

// ---------------------------------------------------------------------------------------------
// Splitting

// Matched and unmatched spans covering s, in order.
static std::vector<Span> find_spans(std::string_view s, SplitPattern pattern,
                                    std::string_view literal) {
  std::vector<Span> spans;
  if (pattern == SplitPattern::kLiteral) {
    size_t pos = 0;
    while (!literal.empty()) {
      size_t hit = s.find(literal, pos);
      if (hit == std::string_view::npos) break;
      if (hit > pos) spans.push_back({pos, hit, false});
      spans.push_back({hit, hit + literal.size(), true});
      pos = hit + literal.size();
    }
    if (pos < s.size()) spans.push_back({pos, s.size(), false});
    return spans;
  }
  if (pattern == SplitPattern::kNumberChar) {
    size_t gap = 0;
    for (size_t pos = 0; pos < s.size();) {
      Utf8Char c = decode_utf8(s, pos);
      if (is_number(c.cp)) {
        if (gap < pos) spans.push_back({gap, pos, false});
        spans.push_back({pos, pos + c.len, true});
        gap = pos + c.len;
      }
      pos += c.len;
    }
    if (gap < s.size()) spans.push_back({gap, s.size(), false});
    return spans;
  }
  // The regexes match at every position, so their matches tile the text.
  for (size_t pos = 0; pos < s.size();) {
    size_t len = pattern == SplitPattern::kGpt2Regex     ? match_gpt2(s, pos)
                 : pattern == SplitPattern::kLlama3Regex ? match_llama3(s, pos, 3)
                                                         : match_llama3(s, pos, 1);
    spans.push_back({pos, pos + len, true});
    pos += len;
  }
  return spans;
}

// Groups spans as tokenizers' SplitDelimiterBehavior does (the same folds, the same quirks).
static std::vector<Span> group_spans(const std::vector<Span>& spans, SplitBehavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& sp : spans) out.push_back({sp.begin, sp.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Span& sp : spans)
        if (!sp.match) out.push_back(sp);
      break;
    case SplitBehavior::kContiguous:
      for (const Span& sp : spans) {
        if (sp.match == previous_match && !out.empty())
          out.back().end = sp.end;
        else
          out.push_back({sp.begin, sp.end, false});
        previous_match = sp.match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& sp : spans) {
        if (sp.match && !previous_match && !out.empty())
          out.back().end = sp.end;
        else
          out.push_back({sp.begin, sp.end, false});
        previous_match = sp.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous_match && !out.empty())
          out.back().begin = it->begin;
        else
          out.push_back({it->begin, it->end, false});
        previous_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

std::vector<Span> split_spans(std::string_view s, SplitPattern pattern, std::string_view literal,
                              SplitBehavior behavior) {
  return group_spans(find_spans(s, pattern, literal), behavior);
}

// ---------------------------------------------------------------------------------------------
// Byte-level mapping

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 onwards in byte order, so that every byte is a visible character in vocab.json.
static const std::array<uint32_t, 256>& byte_chars() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

uint32_t byte_to_char(uint8_t b) {
  return byte_chars()[b];
}

int byte_from_char(uint32_t cp) {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_chars()[b]] = int16_t(b);
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

void append_byte_level(std::string& out, std::string_view bytes) {
  for (char b : bytes) append_utf8(out, byte_to_char(uint8_t(b)));
}

// ---------------------------------------------------------------------------------------------
// Steps

static bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

static void split_piece(const Piece& piece, SplitPattern pattern, std::string_view literal,
                        SplitBehavior behavior, std::vector<Piece>& out) {
  for (const Span& sp : split_spans(piece.text, pattern, literal, behavior))
    if (sp.end > sp.begin)
      out.push_back({piece.text.substr(sp.begin, sp.end - sp.begin), piece.at_start && !sp.begin});
}

static void byte_level_piece(const PreTokenizerStep& step, const Piece& piece,
                             std::vector<Piece>& out) {
  // Built by appending: gcc 12 warns (-Wrestrict, a false positive) on insert(0, " ").
  std::string text;
  if (step.add_prefix_space && !starts_with(piece.text, " ")) text = " ";
  text += piece.text;
  std::vector<Span> spans =
      step.use_regex ? split_spans(text, SplitPattern::kGpt2Regex, {}, SplitBehavior::kIsolated)
                     : std::vector<Span>{{0, text.size(), false}};
  for (const Span& sp : spans) {
    if (sp.end == sp.begin) continue;
    Piece mapped{{}, piece.at_start && !sp.begin};
    mapped.text.reserve(2 * (sp.end - sp.begin));
    append_byte_level(mapped.text, std::string_view(text).substr(sp.begin, sp.end - sp.begin));
    out.push_back(std::move(mapped));
  }
}

static void metaspace_piece(const PreTokenizerStep& step, const Piece& piece,
                            std::vector<Piece>& out) {
  Piece p{replace_all(piece.text, " ", step.replacement), piece.at_start};
  bool prepend = step.prepend == PreTokenizerStep::Prepend::kAlways ||
                 (step.prepend == PreTokenizerStep::Prepend::kFirst && piece.at_start);
  if (prepend && !starts_with(p.text, step.replacement)) p.text.insert(0, step.replacement);
  if (step.split)
    split_piece(p, SplitPattern::kLiteral, step.replacement, SplitBehavior::kMergedWithNext, out);
  else
    out.push_back(std::move(p));
}

void pre_tokenize(std::string_view segment, bool at_start,
                  const std::vector<PreTokenizerStep>& steps, std::vector<Piece>& words) {
  if (segment.empty()) return;  // tokenizers drops empty splits before pre-tokenizing
  std::vector<Piece> pieces{{std::string(segment), at_start}}, next;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (const Piece& piece : pieces) {
      switch (step.kind) {
        case PreTokenizerStep::Kind::kSplit:
          split_piece(piece, step.pattern, step.literal, step.behavior, next);
          break;
        case PreTokenizerStep::Kind::kByteLevel:
          byte_level_piece(step, piece, next);
          break;
        case PreTokenizerStep::Kind::kMetaspace:
          metaspace_piece(step, piece, next);
          break;
      }
    }
    pieces.swap(next);
  }
  for (Piece& p : pieces)
    if (!p.text.empty()) words.push_back(std::move(p));
}

}  // namespace zoft::text
