// Decoders: token strings back to text, step by step as tokenizers' decode_chain does.
#include "text/pipeline.h"
#include "text/unicode.h"

namespace zoft::text {

int byte_fallback_value(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Undoes the byte-level mapping of all tokens at once (a character may span tokens); a token
// holding a character outside the mapping (an added token like "<|im_start|>" is fine, a CJK
// one is not) contributes its UTF-8 bytes unchanged.
static std::vector<std::string> byte_level_decode(const std::vector<std::string>& tokens) {
  std::string bytes;
  for (const std::string& token : tokens) {
    size_t mark = bytes.size();
    bool mapped = true;
    for (size_t i = 0; i < token.size() && mapped;) {
      Utf8Char c = decode_utf8(token, i);
      int b = byte_from_char(c.cp);
      if (b < 0)
        mapped = false;
      else
        bytes += char(b);
      i += c.len;
    }
    if (!mapped) {
      bytes.resize(mark);
      bytes += token;
    }
  }
  return {to_valid_utf8(bytes)};
}

// Runs of <0xXX> tokens become the text they spell, or one U+FFFD per byte when that is not
// valid UTF-8.
static std::vector<std::string> byte_fallback_decode(const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string run;
  auto flush = [&] {
    if (run.empty()) return;
    if (is_valid_utf8(run)) {
      out.push_back(run);
    } else {
      for (size_t i = 0; i < run.size(); ++i) out.push_back("\xEF\xBF\xBD");
    }
    run.clear();
  };
  for (const std::string& token : tokens) {
    int b = byte_fallback_value(token);
    if (b >= 0) {
      run += char(b);
      continue;
    }
    flush();
    out.push_back(token);
  }
  flush();
  return out;
}

static std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < s.size();) {
    Utf8Char c = decode_utf8(s, i);
    cps.push_back(c.cp == kInvalidCodePoint ? 0xFFFD : c.cp);
    i += c.len;
  }
  return cps;
}

// Drops up to `start` leading and `stop` trailing copies of one character from each token.
static void strip_decode(std::vector<std::string>& tokens, const DecoderStep& step) {
  std::vector<uint32_t> content = code_points(step.text);
  if (content.size() != 1) return;
  for (std::string& token : tokens) {
    std::vector<uint32_t> cps = code_points(token);
    size_t begin = 0, end = cps.size();
    while (begin < end && begin < size_t(step.start) && cps[begin] == content[0]) ++begin;
    while (end > begin && cps.size() - end < size_t(step.stop) && cps[end - 1] == content[0]) --end;
    std::string kept;
    for (size_t i = begin; i < end; ++i) append_utf8(kept, cps[i]);
    token = std::move(kept);
  }
}

// '▁' -> ' ', except in the first token when a '▁' was prepended at encoding.
static void metaspace_decode(std::vector<std::string>& tokens, const DecoderStep& step) {
  for (size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = replace_all(tokens[i], step.text, i == 0 && step.prepend ? "" : " ");
}

std::string run_decoder(std::vector<std::string> tokens, const std::vector<DecoderStep>& steps) {
  if (steps.empty()) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderStep::Kind::kByteLevel:
        tokens = byte_level_decode(tokens);
        break;
      case DecoderStep::Kind::kReplace:
        for (std::string& t : tokens) t = replace_all(t, step.text, step.replacement);
        break;
      case DecoderStep::Kind::kByteFallback:
        tokens = byte_fallback_decode(tokens);
        break;
      case DecoderStep::Kind::kFuse: {
        std::string joined;
        for (const std::string& t : tokens) joined += t;
        tokens = {std::move(joined)};
        break;
      }
      case DecoderStep::Kind::kStrip:
        strip_decode(tokens, step);
        break;
      case DecoderStep::Kind::kMetaspace:
        metaspace_decode(tokens, step);
        break;
    }
  }
  std::string text;
  for (const std::string& t : tokens) text += t;
  return text;
}

}  // namespace zoft::text
