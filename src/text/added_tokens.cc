#include "text/added_tokens.h"

#include <algorithm>

#include "text/unicode.h"

namespace zoft::text {

void AddedTokenMatcher::add(std::string_view pattern, const AddedToken& token) {
  if (pattern.empty()) return;  // tokenizers ignores empty added tokens
  int32_t node = 0;
  for (char ch : pattern) {
    uint8_t b = uint8_t(ch);
    int32_t next = child(node, b);
    if (next < 0) {
      next = int32_t(nodes_.size());
      nodes_.emplace_back();
      auto& kids = nodes_[size_t(node)].children;
      kids.insert(std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, int32_t(0))),
                  {b, next});
    }
    node = next;
  }
  first_byte_[uint8_t(pattern[0])] = true;
  // A content listed twice keeps its last entry, as a map from content would.
  if (nodes_[size_t(node)].token < 0) {
    nodes_[size_t(node)].token = int32_t(tokens_.size());
    tokens_.push_back(token);
  } else {
    tokens_[size_t(nodes_[size_t(node)].token)] = token;
  }
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t byte) const {
  const auto& kids = nodes_[size_t(node)].children;
  auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(byte, int32_t(0)));
  return it != kids.end() && it->first == byte ? it->second : -1;
}

// Length of the longest token starting at text[pos] (0 if none), and which one.
size_t AddedTokenMatcher::longest_match(std::string_view text, size_t pos, int32_t* token) const {
  size_t best = 0;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = child(node, uint8_t(text[i]));
    if (node < 0) break;
    if (nodes_[size_t(node)].token >= 0) best = i + 1 - pos, *token = nodes_[size_t(node)].token;
  }
  return best;
}

// Where the character that ends at `pos` (pos > 0) starts; pos - 1 for an ill-formed byte.
static size_t prev_char_start(std::string_view s, size_t pos) {
  size_t start = pos - 1;
  while (start > 0 && pos - start < 4 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
  return start + decode_utf8(s, start).len == pos ? start : pos - 1;
}

static uint32_t char_before(std::string_view s, size_t pos) {
  size_t start = prev_char_start(s, pos);
  Utf8Char c = decode_utf8(s, start);
  return start + c.len == pos ? c.cp : kInvalidCodePoint;
}

// single_word: no word character may touch the match on either side.
static bool is_single_word(std::string_view s, size_t begin, size_t end) {
  if (begin > 0 && is_word_char(char_before(s, begin))) return false;
  if (end < s.size() && is_word_char(decode_utf8(s, end).cp)) return false;
  return true;
}

std::vector<Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> out;
  size_t done = 0;  // text before this is already in `out`
  for (size_t pos = 0; pos < text.size();) {
    int32_t index = -1;
    size_t len = first_byte_[uint8_t(text[pos])] ? longest_match(text, pos, &index) : 0;
    if (!len) {
      ++pos;
      continue;
    }
    // A match rejected by single_word still consumes its text: the matches are found first,
    // non-overlapping, and filtered afterwards.
    size_t begin = pos, end = pos + len;
    pos = end;
    const AddedToken& token = tokens_[size_t(index)];
    if (token.single_word && !is_single_word(text, begin, end)) continue;
    if (begin < done) continue;  // inside whitespace an earlier rstrip took
    if (token.lstrip) {
      while (begin > done && is_space(char_before(text, begin)))
        begin = prev_char_start(text, begin);
    }
    if (token.rstrip) {
      while (end < text.size()) {
        Utf8Char c = decode_utf8(text, end);
        if (!is_space(c.cp)) break;
        end += c.len;
      }
      pos = end;
    }
    if (done < begin) out.push_back({done, begin, -1});
    out.push_back({begin, end, token.id});
    done = end;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
  return out;
}

}  // namespace zoft::text
