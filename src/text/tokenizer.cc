// The Tokenizer: the pipeline of TokenizerSpec run in the order tokenizers runs it.
#include "text/tokenizer.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/pipeline.h"
#include "text/unicode.h"

namespace zoft::text {

struct Tokenizer::Impl {
  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::vector<DecoderStep> decoder;
  std::vector<int32_t> prefix_ids, suffix_ids;
  std::unique_ptr<BpeModel> model;

  std::unordered_map<int32_t, AddedToken> added;        // by id
  std::unordered_map<int32_t, std::string> added_text;  // by id: what decode() sees
  TokenIds added_ids;                                   // by content
  std::unordered_set<std::string, StringHash, std::equal_to<>> special_contents;
  AddedTokenMatcher raw_matcher;         // tokens matched before normalization
  AddedTokenMatcher normalized_matcher;  // tokens matched in normalized text

  bool byte_level = false;  // takes any bytes, gives them back
  int32_t bos = -1, eos = -1, pad = -1;
  size_t vocab_size = 0;

  std::optional<int32_t> find(std::string_view token) const {
    auto it = added_ids.find(token);
    if (it != added_ids.end()) return it->second;
    return model->find(token);
  }
  // The string decode() starts from: an added token's (normalized) text, or the model's token.
  const std::string* token_text(int32_t id) const {
    auto it = added_text.find(id);
    if (it != added_text.end()) return &it->second;
    if (id >= 0 && size_t(id) < model->size() && !model->token(id).empty())
      return &model->token(id);
    return nullptr;
  }
};

// ---------------------------------------------------------------------------------------------
// Construction

static bool uses_byte_level(const TokenizerSpec& spec) {
  auto pre = [](const PreTokenizerStep& s) { return s.kind == PreTokenizerStep::Kind::kByteLevel; };
  auto dec = [](const DecoderStep& s) { return s.kind == DecoderStep::Kind::kByteLevel; };
  return std::any_of(spec.pre_tokenizer.begin(), spec.pre_tokenizer.end(), pre) ||
         std::any_of(spec.decoder.begin(), spec.decoder.end(), dec);
}

// Added tokens: by id and by content for lookups; split out of raw text, or of normalized
// text when `normalized` (then matched, and decoded, as the normalizer rewrites them).
static void add_added_tokens(Tokenizer::Impl& impl, const std::vector<AddedToken>& tokens) {
  for (const AddedToken& t : tokens) {
    ZOFT_CHECK(t.id >= 0, "added token '{}' has a negative id {}", t.content, t.id);
    if (t.content.empty()) continue;
    impl.added[t.id] = t;
    impl.added_ids[t.content] = t.id;
    if (t.special) impl.special_contents.insert(t.content);
    std::string text = t.normalized ? normalize(t.content, impl.normalizer) : t.content;
    impl.added_text[t.id] = text;
    (t.normalized ? impl.normalized_matcher : impl.raw_matcher).add(text, t);
  }
}

static int32_t named_id(const Tokenizer::Impl& impl, const std::string& name) {
  if (name.empty()) return -1;
  return impl.find(name).value_or(-1);
}

Tokenizer::Tokenizer(TokenizerSpec spec) : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  impl.byte_level = uses_byte_level(spec);
  impl.model = std::make_unique<BpeModel>(spec);  // takes spec.vocab
  spec.merges = {};
  impl.normalizer = std::move(spec.normalizer);
  impl.pre_tokenizer = std::move(spec.pre_tokenizer);
  impl.decoder = std::move(spec.decoder);
  add_added_tokens(impl, spec.added_tokens);

  impl.vocab_size = impl.model->size();
  for (const auto& [id, token] : impl.added)
    impl.vocab_size = std::max(impl.vocab_size, size_t(id) + 1);
  for (const auto* ids : {&spec.prefix_ids, &spec.suffix_ids})
    for (int32_t id : *ids)
      ZOFT_CHECK(id >= 0 && size_t(id) < impl.vocab_size,
                 "the post-processor adds token id {}, outside the vocabulary (size {})", id,
                 impl.vocab_size);
  impl.prefix_ids = std::move(spec.prefix_ids);
  impl.suffix_ids = std::move(spec.suffix_ids);
  impl.bos = named_id(impl, spec.bos_token);
  impl.eos = named_id(impl, spec.eos_token);
  impl.pad = named_id(impl, spec.pad_token);
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

// ---------------------------------------------------------------------------------------------
// Encoding

// Plain text between added tokens: normalized, searched for normalized added tokens, then
// pre-tokenized into words for the model.
static void encode_plain(const Tokenizer::Impl& impl, std::string_view text, bool at_start,
                         std::vector<int32_t>& ids) {
  std::string normalized = normalize(text, impl.normalizer);
  thread_local std::vector<Piece> words;
  for (const Segment& seg : impl.normalized_matcher.split(normalized)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    words.clear();
    std::string_view piece = std::string_view(normalized).substr(seg.begin, seg.end - seg.begin);
    pre_tokenize(piece, at_start && seg.begin == 0, impl.pre_tokenizer, words);
    for (const Piece& w : words) impl.model->encode_word(w.text, ids);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& impl = *impl_;
  std::string repaired;
  if (!impl.byte_level && !is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special_tokens) ids = impl.prefix_ids;
  for (const Segment& seg : impl.raw_matcher.split(text)) {
    if (seg.id >= 0)
      ids.push_back(seg.id);
    else
      encode_plain(impl, text.substr(seg.begin, seg.end - seg.begin), seg.begin == 0, ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), impl.suffix_ids.begin(), impl.suffix_ids.end());
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Decoding

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* text = impl.token_text(id);
    if (!text) continue;
    if (skip_special_tokens && impl.special_contents.count(*text)) continue;
    tokens.push_back(*text);
  }
  return run_decoder(std::move(tokens), impl.decoder);
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& impl = *impl_;
  const std::string* text = impl.token_text(id);
  if (!text) return {};
  if (impl.byte_level) {
    std::string bytes;
    for (size_t i = 0; i < text->size();) {
      Utf8Char c = decode_utf8(*text, i);
      int b = byte_from_char(c.cp);
      if (b < 0) return *text;  // not byte-mapped (an added token): its own bytes
      bytes += char(b);
      i += c.len;
    }
    return bytes;
  }
  if (int b = byte_fallback_value(*text); b >= 0) return std::string(1, char(b));
  // The decoder, minus what only makes sense at the start of the whole text.
  std::vector<DecoderStep> steps;
  for (DecoderStep step : impl.decoder) {
    if (step.kind == DecoderStep::Kind::kStrip) continue;
    if (step.kind == DecoderStep::Kind::kMetaspace) step.prepend = false;
    steps.push_back(step);
  }
  return run_decoder({*text}, steps);
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

int32_t Tokenizer::bos_id() const {
  return impl_->bos;
}
int32_t Tokenizer::eos_id() const {
  return impl_->eos;
}
int32_t Tokenizer::pad_id() const {
  return impl_->pad;
}
size_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->find(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  auto it = impl_->added.find(id);
  if (it != impl_->added.end()) return it->second.content;
  if (id >= 0 && size_t(id) < impl_->model->size()) return impl_->model->token(id);
  return {};
}

bool Tokenizer::is_special(int32_t id) const {
  auto it = impl_->added.find(id);
  return it != impl_->added.end() && it->second.special;
}

// ---------------------------------------------------------------------------------------------
// Ready-made specs

TokenizerSpec TokenizerSpec::byte_level_bpe(
    std::vector<std::string> vocab, std::vector<std::pair<std::string, std::string>> merges) {
  TokenizerSpec spec;
  spec.vocab = std::move(vocab);
  spec.merges = std::move(merges);
  PreTokenizerStep pre;
  pre.kind = PreTokenizerStep::Kind::kByteLevel;
  pre.add_prefix_space = false;
  pre.use_regex = true;
  spec.pre_tokenizer = {pre};
  DecoderStep dec;
  dec.kind = DecoderStep::Kind::kByteLevel;
  spec.decoder = {dec};
  return spec;
}

TokenizerSpec TokenizerSpec::sentencepiece_bpe(
    std::vector<std::string> vocab, std::vector<std::pair<std::string, std::string>> merges) {
  const std::string kSpace = "\xE2\x96\x81";  // '▁'
  TokenizerSpec spec;
  spec.vocab = std::move(vocab);
  spec.merges = std::move(merges);
  spec.byte_fallback = true;
  spec.fuse_unk = true;
  if (std::find(spec.vocab.begin(), spec.vocab.end(), "<unk>") != spec.vocab.end())
    spec.unk_token = "<unk>";
  spec.normalizer = {{NormalizerStep::Kind::kPrepend, kSpace, ""},
                     {NormalizerStep::Kind::kReplace, " ", kSpace}};
  DecoderStep replace, fallback, fuse, strip;
  replace.kind = DecoderStep::Kind::kReplace, replace.text = kSpace, replace.replacement = " ";
  fallback.kind = DecoderStep::Kind::kByteFallback;
  fuse.kind = DecoderStep::Kind::kFuse;
  strip.kind = DecoderStep::Kind::kStrip, strip.text = " ", strip.start = 1;
  spec.decoder = {replace, fallback, fuse, strip};
  return spec;
}

}  // namespace zoft::text
