// The BPE model: a word's characters merged pair by pair, lowest merge rank first, as
// tokenizers' BPE does (unknown characters -> <0xXX> byte tokens or <unk>). Internal.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace zoft::text {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIds = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Open-addressing map from a pair of token ids to (rank, merged id): the merge loop's inner
// lookup, faster and four times smaller than std::unordered_map for Gemma's 515k merges.
class MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    int32_t id;
  };
  void reserve(size_t n);
  void insert(int32_t left, int32_t right, Merge merge);  // a repeated pair takes the new value
  const Merge* find(int32_t left, int32_t right) const;

 private:
  struct Slot {
    uint64_t key;  // kEmpty or (left << 32 | right)
    Merge merge;
  };
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  size_t slot_of(uint64_t key) const;
  std::vector<Slot> slots_;
  size_t count_ = 0;
  int shift_ = 64;
};

// Open-addressing map from token strings to ids, over a vocabulary vector it does not own:
// one probe of 8-byte slots per lookup, where std::unordered_map chases list nodes. Building
// Gemma's 515k merges takes three lookups each.
class TokenTable {
 public:
  void build(const std::vector<std::string>& tokens);  // tokens[id]; "" entries are skipped
  int32_t find(std::string_view token, const std::vector<std::string>& tokens) const;  // or -1

 private:
  struct Slot {
    uint32_t tag;  // low hash bits, to skip most string comparisons
    int32_t id;    // -1: empty
  };
  std::vector<Slot> slots_;
  int shift_ = 64;
};

class BpeModel {
 public:
  // Takes spec.vocab over. Throws zoft::Error when a merge names a token missing from it.
  explicit BpeModel(TokenizerSpec& spec);

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> find(std::string_view token) const;
  size_t size() const { return vocab_.size(); }
  const std::string& token(int32_t id) const { return vocab_[size_t(id)]; }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the word, -1 at the ends
    uint32_t len;        // bytes of the word covered; 0 once merged into its left neighbour
  };
  void find_barrier();
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const;
  int32_t char_id(std::string_view ch, bool first, bool last) const;
  void merge_symbols(std::vector<Symbol>& symbols) const;
  bool cache_get(std::string_view word, std::vector<int32_t>& out) const;
  void cache_put(std::string_view word, const int32_t* ids, size_t n) const;

  std::vector<std::string> vocab_;
  TokenTable ids_;
  MergeTable merges_;
  std::array<int32_t, 256> byte_ids_{};  // ids of <0x00>..<0xFF>, -1 where missing
  std::vector<int32_t> char_ids_;        // id of each single-character token below U+0800
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;

  // SentencePiece models see a whole text (or line) as one word. When no vocabulary token has
  // the barrier ('▁') after another character, except after those in barrier_glued_, no merge
  // can cross a point just before a '▁': the word is merged piece by piece between such points,
  // with the same result, in small cacheable pieces instead of one heap of millions.
  std::string barrier_;
  std::vector<uint32_t> barrier_glued_;

  // Words repeat: a cache of merged words saves most of the work on real text.
  static constexpr size_t kCacheMaxWordBytes = 256, kCacheMaxWords = 1 << 17;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace zoft::text
