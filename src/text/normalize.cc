// Normalizers: what tokenizer.json files of the supported families use (NFC, Prepend, Replace).
#include "text/pipeline.h"
#include "text/unicode.h"

namespace zoft::text {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  size_t pos = 0;
  while (true) {
    size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::string normalize(std::string_view text, const std::vector<NormalizerStep>& steps) {
  std::string s(text);
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::kNfc:
        s = nfc(s);
        break;
      case NormalizerStep::Kind::kPrepend:
        // tokenizers prepends only to non-empty text: an empty piece stays empty.
        if (!s.empty()) s.insert(0, step.text);
        break;
      case NormalizerStep::Kind::kReplace:
        s = replace_all(s, step.text, step.replacement);
        break;
    }
  }
  return s;
}

}  // namespace zoft::text
