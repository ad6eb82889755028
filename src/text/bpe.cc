#include "text/bpe.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <numeric>

#include "core/error.h"
#include "text/pipeline.h"
#include "text/unicode.h"

namespace zoft::text {

// ---------------------------------------------------------------------------------------------
// MergeTable

void MergeTable::reserve(size_t n) {
  size_t capacity = 16;
  shift_ = 60;
  while (capacity < 2 * n) capacity *= 2, --shift_;  // load factor <= 1/2
  slots_.assign(capacity, Slot{kEmpty, {0, 0}});
  count_ = 0;
}

// Fibonacci hashing: the top bits of key * 2^64/phi spread sequential ids well.
size_t MergeTable::slot_of(uint64_t key) const {
  return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_);
}

void MergeTable::insert(int32_t left, int32_t right, Merge merge) {
  if (2 * (count_ + 1) > slots_.size()) {
    std::vector<Slot> old = std::move(slots_);
    reserve(std::max<size_t>(16, old.size()));
    for (const Slot& s : old)
      if (s.key != kEmpty) insert(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.merge);
  }
  uint64_t key = uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(key);; i = (i + 1) & mask) {
    if (slots_[i].key == kEmpty) {
      slots_[i] = {key, merge};
      ++count_;
      return;
    }
    if (slots_[i].key == key) {
      slots_[i].merge = merge;
      return;
    }
  }
}

const MergeTable::Merge* MergeTable::find(int32_t left, int32_t right) const {
  if (slots_.empty()) return nullptr;
  uint64_t key = uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(key);; i = (i + 1) & mask) {
    if (slots_[i].key == key) return &slots_[i].merge;
    if (slots_[i].key == kEmpty) return nullptr;
  }
}

// ---------------------------------------------------------------------------------------------
// TokenTable

void TokenTable::build(const std::vector<std::string>& tokens) {
  size_t capacity = 16;
  shift_ = 60;
  while (capacity < 2 * tokens.size()) capacity *= 2, --shift_;  // load factor <= 1/2
  slots_.assign(capacity, Slot{0, -1});
  size_t mask = capacity - 1;
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (tokens[id].empty()) continue;
    uint64_t h = std::hash<std::string_view>{}(tokens[id]);
    size_t i = size_t((h * 0x9E3779B97F4A7C15ull) >> shift_);
    while (slots_[i].id >= 0) i = (i + 1) & mask;  // ids are unique: no duplicate check
    slots_[i] = {uint32_t(h), int32_t(id)};
  }
}

int32_t TokenTable::find(std::string_view token, const std::vector<std::string>& tokens) const {
  if (slots_.empty()) return -1;
  uint64_t h = std::hash<std::string_view>{}(token);
  size_t mask = slots_.size() - 1;
  for (size_t i = size_t((h * 0x9E3779B97F4A7C15ull) >> shift_);; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.id < 0) return -1;
    if (slot.tag == uint32_t(h) && tokens[size_t(slot.id)] == token) return slot.id;
  }
}

// ---------------------------------------------------------------------------------------------
// Construction

BpeModel::BpeModel(TokenizerSpec& spec)
    : vocab_(std::move(spec.vocab)),
      byte_fallback_(spec.byte_fallback),
      fuse_unk_(spec.fuse_unk),
      ignore_merges_(spec.ignore_merges),
      prefix_(spec.continuing_subword_prefix),
      suffix_(spec.end_of_word_suffix) {
  ids_.build(vocab_);

  if (!spec.unk_token.empty()) {
    std::optional<int32_t> unk = find(spec.unk_token);
    ZOFT_CHECK(unk.has_value(), "the unknown token '{}' is not in the vocabulary", spec.unk_token);
    unk_id_ = *unk;
  }
  for (int b = 0; b < 256; ++b) byte_ids_[b] = find(fmt::format("<0x{:02X}>", b)).value_or(-1);

  // Single characters are looked up for every character of every new word: a direct table
  // for the common ones (all of byte-level BPE's 256) skips hashing.
  char_ids_.assign(0x800, -1);
  for (uint32_t cp = 0; cp < 0x800; ++cp) {
    std::string ch;
    append_utf8(ch, cp);
    char_ids_[cp] = find(ch).value_or(-1);
  }

  find_barrier();
  merges_.reserve(spec.merges.size());
  std::string merged;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    std::optional<int32_t> a = find(left), b = find(right);
    // With a continuing-subword prefix ("##"), "a" + "##b" merges into "ab".
    std::string_view tail = right;
    if (!prefix_.empty() && tail.substr(0, prefix_.size()) == prefix_)
      tail.remove_prefix(prefix_.size());
    merged.assign(left).append(tail);
    std::optional<int32_t> ab = find(merged);
    ZOFT_CHECK(a && b && ab, "merge {} ('{}' '{}'): token '{}' is not in the vocabulary", rank,
               left, right,
               !a   ? left
               : !b ? right
                    : merged);
    merges_.insert(*a, *b, {uint32_t(rank), *ab});
  }
}

// Looks for a barrier character (see bpe.h) and the characters some token glues to its left.
void BpeModel::find_barrier() {
  if (!prefix_.empty() || !suffix_.empty()) return;
  for (std::string candidate : {"\xE2\x96\x81", " "}) {
    if (!find(candidate)) continue;
    std::vector<uint32_t> glued;
    for (const std::string& token : vocab_) {
      for (size_t at = token.find(candidate, 1); at != std::string::npos;
           at = token.find(candidate, at + 1)) {
        size_t before = at - 1;
        while (before > 0 && (uint8_t(token[before]) & 0xC0) == 0x80) --before;
        if (token.compare(before, at - before, candidate) == 0) continue;  // a run of barriers
        uint32_t cp = decode_utf8(token, before).cp;
        if (std::find(glued.begin(), glued.end(), cp) == glued.end()) glued.push_back(cp);
      }
    }
    barrier_ = candidate;
    barrier_glued_ = std::move(glued);
    return;
  }
}

std::optional<int32_t> BpeModel::find(std::string_view token) const {
  int32_t id = ids_.find(token, vocab_);
  if (id < 0) return std::nullopt;
  return id;
}

// ---------------------------------------------------------------------------------------------
// Encoding one word

int32_t BpeModel::char_id(std::string_view ch, bool first, bool last) const {
  bool affixed = (!first && !prefix_.empty()) || (last && !suffix_.empty());
  if (!affixed) {
    Utf8Char c = decode_utf8(ch, 0);
    if (c.cp < char_ids_.size()) return char_ids_[c.cp];
    return find(ch).value_or(-1);
  }
  std::string s = (first ? "" : prefix_) + std::string(ch) + (last ? suffix_ : "");
  return find(s).value_or(-1);
}

// One symbol per character; a character missing from the vocabulary becomes its bytes'
// <0xXX> tokens (byte fallback), else <unk> (runs of them fused into one if asked), else
// nothing at all, exactly as tokenizers' BPE does.
void BpeModel::initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const {
  symbols.clear();
  auto add = [&](int32_t id, uint32_t len) {
    int32_t index = int32_t(symbols.size());
    if (index > 0) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, len});
  };
  uint32_t pending_unk = 0;  // bytes covered by a <unk> not yet added
  for (size_t i = 0; i < word.size();) {
    uint32_t len = decode_utf8(word, i).len;
    std::string_view ch = word.substr(i, len);
    bool last = i + len == word.size();
    int32_t id = char_id(ch, i == 0, last);
    i += len;
    if (id >= 0) {
      if (pending_unk) add(unk_id_, pending_unk), pending_unk = 0;
      add(id, len);
      continue;
    }
    if (byte_fallback_ &&
        std::all_of(ch.begin(), ch.end(), [&](char b) { return byte_ids_[uint8_t(b)] >= 0; })) {
      // Like tokenizers, a pending <unk> stays pending across byte-fallback tokens.
      for (char b : ch) add(byte_ids_[uint8_t(b)], 1);
      continue;
    }
    if (unk_id_ < 0) continue;
    if (pending_unk && !fuse_unk_) add(unk_id_, pending_unk), pending_unk = 0;
    pending_unk += len;
  }
  if (pending_unk) add(unk_id_, pending_unk);
}

// Applies merges lowest rank first (leftmost among equal ranks) with a min-heap of candidate
// pairs; entries made stale by an earlier merge are recognised and skipped when popped. An entry
// is one integer, rank << 32 | position, so that the heap compares and moves 8-byte words: a
// SentencePiece "word" is a whole document, millions of symbols.
void BpeModel::merge_symbols(std::vector<Symbol>& symbols) const {
  thread_local std::vector<uint64_t> heap;
  heap.clear();
  auto entry = [&](int32_t pos) -> uint64_t {  // 0 when the pair at pos does not merge
    int32_t next = symbols[size_t(pos)].next;
    if (next < 0) return 0;
    const MergeTable::Merge* m = merges_.find(symbols[size_t(pos)].id, symbols[size_t(next)].id);
    return m ? (uint64_t(m->rank) + 1) << 32 | uint32_t(pos) : 0;
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i)
    if (uint64_t e = entry(i)) heap.push_back(e);
  std::greater<uint64_t> later;
  std::make_heap(heap.begin(), heap.end(), later);
  auto push = [&](uint64_t e) {
    if (!e) return;
    heap.push_back(e);
    std::push_heap(heap.begin(), heap.end(), later);
  };

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    uint64_t top = heap.back();
    heap.pop_back();
    int32_t pos = int32_t(uint32_t(top));
    Symbol& left = symbols[size_t(pos)];
    if (left.len == 0 || left.next < 0) continue;
    Symbol& right = symbols[size_t(left.next)];
    const MergeTable::Merge* m = merges_.find(left.id, right.id);
    if (!m || uint64_t(m->rank) + 1 != top >> 32) continue;  // the pair changed since
    left.id = m->id;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[size_t(left.next)].prev = pos;
    if (left.prev >= 0) push(entry(left.prev));
    push(entry(pos));
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (std::optional<int32_t> id = find(word)) {
      out.push_back(*id);
      return;
    }
  }
  if (barrier_.empty()) {
    encode_piece(word, out);
    return;
  }
  // Cut before each barrier that follows a known character no token glues to it.
  size_t start = 0;
  for (size_t at = word.find(barrier_, 1); at != std::string_view::npos;
       at = word.find(barrier_, at + 1)) {
    size_t before = at - 1;
    while (before > start && (uint8_t(word[before]) & 0xC0) == 0x80) --before;
    std::string_view prev = word.substr(before, at - before);
    if (prev == barrier_ || char_id(prev, false, false) < 0) continue;
    uint32_t cp = decode_utf8(prev, 0).cp;
    if (std::find(barrier_glued_.begin(), barrier_glued_.end(), cp) != barrier_glued_.end())
      continue;
    encode_piece(word.substr(start, at - start), out);
    start = at;
  }
  encode_piece(word.substr(start), out);
}

// Merges one piece of a word, through the cache when it is short.
void BpeModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  bool cacheable = piece.size() <= kCacheMaxWordBytes;
  if (cacheable && cache_get(piece, out)) return;
  thread_local std::vector<Symbol> symbols;
  initial_symbols(piece, symbols);
  merge_symbols(symbols);
  size_t first = out.size();
  for (const Symbol& s : symbols)
    if (s.len) out.push_back(s.id);
  if (cacheable) cache_put(piece, out.data() + first, out.size() - first);
}

bool BpeModel::cache_get(std::string_view word, std::vector<int32_t>& out) const {
  std::shared_lock lock(cache_mutex_);
  auto it = cache_.find(word);
  if (it == cache_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void BpeModel::cache_put(std::string_view word, const int32_t* ids, size_t n) const {
  std::unique_lock lock(cache_mutex_);
  if (cache_.size() >= kCacheMaxWords) return;  // full: new words are no longer remembered
  cache_.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
}

// ---------------------------------------------------------------------------------------------
// Merges from SentencePiece scores

std::vector<std::pair<std::string, std::string>> merges_from_scores(
    const std::vector<std::string>& vocab, const std::vector<float>& scores) {
  ZOFT_CHECK(scores.size() == vocab.size(), "{} scores for {} tokens", scores.size(), vocab.size());
  TokenIds ids;
  for (size_t i = 0; i < vocab.size(); ++i) ids.emplace(vocab[i], int32_t(i));
  // Highest score first; the stable sort keeps the vocabulary order among equal scores.
  std::vector<int32_t> order(vocab.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  std::vector<std::pair<std::string, std::string>> merges;
  for (int32_t id : order) {
    const std::string& token = vocab[size_t(id)];
    if (token.empty()) continue;
    // Every split into two known tokens, at character boundaries, left part shortest first.
    for (size_t cut = decode_utf8(token, 0).len; cut < token.size();
         cut += decode_utf8(token, cut).len) {
      std::string_view left = std::string_view(token).substr(0, cut);
      std::string_view right = std::string_view(token).substr(cut);
      if (ids.find(left) != ids.end() && ids.find(right) != ids.end())
        merges.emplace_back(std::string(left), std::string(right));
    }
  }
  return merges;
}

}  // namespace zoft::text
