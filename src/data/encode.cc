#include "data/encode.h"

#include <algorithm>

#include "core/error.h"
#include "data/parallel.h"

namespace zoft::data {

int64_t EncodedExample::max_length() const {
  size_t longest = 0;
  for (const auto& ids : candidate_ids) longest = std::max(longest, ids.size());
  return int64_t(context_ids.size() + longest);
}

size_t leading_special_tokens(const text::Tokenizer& tokenizer) {
  std::vector<int32_t> with = tokenizer.encode("a", true), without = tokenizer.encode("a", false);
  auto at = std::search(with.begin(), with.end(), without.begin(), without.end());
  return at == with.end() ? 0 : size_t(at - with.begin());
}

static size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// Drops context tokens after the first `keep` (the BOS) until the example fits, as MeZO's
// encoding[0:1] + encoding[1:][-(max_length - 1):] does.
static void fit_length(EncodedExample& encoded, const TaskExample& example, size_t keep,
                       const EncodeOptions& options) {
  int64_t length = encoded.max_length();
  if (length <= options.max_length) return;
  size_t context = encoded.context_ids.size();
  if (!options.truncate)
    fail(
        "{}: {} tokens (context {} + longest candidate {}), more than max_length {}; allow "
        "truncation or raise max_length",
        example.origin, length, context, length - int64_t(context), options.max_length);
  keep = std::min(keep, context);
  size_t drop = size_t(length - options.max_length);
  if (drop > context - keep)
    fail("{}: a candidate of {} tokens does not fit in max_length {}", example.origin,
         length - int64_t(context), options.max_length);
  auto begin = encoded.context_ids.begin() + int64_t(keep);
  encoded.context_ids.erase(begin, begin + int64_t(drop));
}

static EncodedExample encode_one(const TaskExample& example, const text::Tokenizer& tokenizer,
                                 const EncodeOptions& options, size_t leading) {
  ZOFT_CHECK(!example.candidates.empty(), "{}: an example without candidates", example.origin);
  ZOFT_CHECK(example.label >= 0 && size_t(example.label) < example.candidates.size(),
             "{}: label {} is not a candidate index (0..{})", example.origin, example.label,
             example.candidates.size() - 1);
  std::vector<int32_t> context = tokenizer.encode(example.context, true);
  std::vector<std::vector<int32_t>> full;
  size_t shared = context.size();
  for (const auto& candidate : example.candidates) {
    full.push_back(tokenizer.encode(example.context + candidate, true));
    shared = std::min(shared, common_prefix(full.back(), context));
  }
  EncodedExample encoded;
  encoded.label = example.label;
  encoded.context_ids.assign(context.begin(), context.begin() + int64_t(shared));
  for (size_t c = 0; c < full.size(); ++c) {
    if (full[c].size() <= shared)
      fail("{}: candidate {} ('{}') encodes to no tokens of its own", example.origin, c,
           example.candidates[c]);
    encoded.candidate_ids.emplace_back(full[c].begin() + int64_t(shared), full[c].end());
  }
  fit_length(encoded, example, leading, options);
  return encoded;
}

EncodedExample encode_example(const TaskExample& example, const text::Tokenizer& tokenizer,
                              const EncodeOptions& options) {
  return encode_one(example, tokenizer, options, leading_special_tokens(tokenizer));
}

std::vector<EncodedExample> encode_examples(const std::vector<TaskExample>& examples,
                                            const text::Tokenizer& tokenizer,
                                            const EncodeOptions& options) {
  ZOFT_CHECK(options.max_length > 0, "max_length must be positive, got {}", options.max_length);
  size_t leading = leading_special_tokens(tokenizer);
  std::vector<EncodedExample> encoded(examples.size());
  parallel_items(int64_t(examples.size()), [&](int64_t i) {
    encoded[size_t(i)] = encode_one(examples[size_t(i)], tokenizer, options, leading);
  });
  return encoded;
}

}  // namespace zoft::data
