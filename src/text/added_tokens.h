// Finding added tokens (<|im_start|>, <start_of_turn>, ...) in text before anything else runs,
// as tokenizers' AddedVocabulary does: leftmost-longest matches, then the lstrip / rstrip /
// single_word rules. Internal to the text layer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"

namespace zoft::text {

// A piece of text: an added token (id >= 0) or plain text between them (id == -1).
struct Segment {
  size_t begin, end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  // `pattern` is what to look for: the token's content, or its normalized form.
  void add(std::string_view pattern, const AddedToken& token);
  bool empty() const { return tokens_.empty(); }
  // Non-empty segments covering text, in order.
  std::vector<Segment> split(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                 // index in tokens_ ending here
  };
  int32_t child(int32_t node, uint8_t byte) const;
  size_t longest_match(std::string_view text, size_t pos, int32_t* token) const;
  std::vector<Node> nodes_{Node{}};
  std::vector<AddedToken> tokens_;
  bool first_byte_[256] = {};
};

}  // namespace zoft::text
