#include "text/unicode.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

namespace zoft::text {

// ---------------------------------------------------------------------------------------------
// UTF-8

Utf8Char decode_utf8(std::string_view s, size_t pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + pos;
  size_t avail = s.size() - pos;
  uint8_t b0 = p[0];
  if (b0 < 0x80) return {b0, 1};
  // Length and the allowed range of the second byte (Unicode table 3-7): the narrow ranges
  // after E0, ED, F0 and F4 rule out overlong forms, surrogates and code points past U+10FFFF.
  uint32_t len = 0, cp = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kInvalidCodePoint, 1};
  }
  for (uint32_t i = 1; i < len; ++i) {
    if (i >= avail) return {kInvalidCodePoint, i};  // truncated: the prefix is one subpart
    uint8_t b = p[i];
    uint8_t min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) return {kInvalidCodePoint, i};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, len};
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalidCodePoint) return false;
    i += c.len;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalidCodePoint)
      out += "\xEF\xBF\xBD";  // U+FFFD
    else
      out.append(s.substr(i, c.len));
    i += c.len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Character classes

// Finds the range holding cp in a sorted range table; `fallback` when none does.
static uint8_t range_lookup(const UnicodeRange* ranges, size_t count, uint32_t cp,
                            uint8_t fallback) {
  const UnicodeRange* end = ranges + count;
  const UnicodeRange* it =
      std::upper_bound(ranges, end, cp, [](uint32_t v, const UnicodeRange& r) { return v < r.lo; });
  if (it == ranges) return fallback;
  --it;
  return cp <= it->hi ? it->value : fallback;
}

// ASCII is most of most texts: one table read instead of a binary search.
static const uint8_t* ascii_classes() {
  static const auto table = [] {
    std::vector<uint8_t> t(128);
    for (uint32_t c = 0; c < 128; ++c)
      t[c] = range_lookup(tables::kClassRanges, tables::kClassRangeCount, c, 0);
    return t;
  }();
  return table.data();
}

CharClass char_class(uint32_t cp) {
  if (cp < 128) return CharClass(ascii_classes()[cp]);
  return CharClass(range_lookup(tables::kClassRanges, tables::kClassRangeCount, cp, 0));
}

bool is_word_char(uint32_t cp) {
  CharClass c = char_class(cp);
  return c == CharClass::kLetter || c == CharClass::kNumber || c == CharClass::kMark ||
         c == CharClass::kConnector;
}

uint8_t combining_class(uint32_t cp) {
  if (cp < 0x300) return 0;
  return range_lookup(tables::kCombiningRanges, tables::kCombiningRangeCount, cp, 0);
}

// ---------------------------------------------------------------------------------------------
// NFC

// Hangul syllables decompose and compose by arithmetic (Unicode 3.12), not through the tables.
namespace hangul {
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr uint32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;
}  // namespace hangul

struct NfcMaps {
  std::unordered_map<uint32_t, const Decomposition*> decompose;
  std::unordered_map<uint64_t, uint32_t> compose;
};

static const NfcMaps& nfc_maps() {
  static const NfcMaps maps = [] {
    NfcMaps m;
    m.decompose.reserve(tables::kDecompositionCount);
    for (size_t i = 0; i < tables::kDecompositionCount; ++i) {
      const Decomposition& d = tables::kDecompositions[i];
      m.decompose[d.cp] = &d;
      if (d.composes) m.compose[uint64_t(d.first) << 32 | d.second] = d.cp;
    }
    return m;
  }();
  return maps;
}

static void decompose_into(uint32_t cp, const NfcMaps& maps, std::vector<uint32_t>& out) {
  using namespace hangul;
  if (cp >= kSBase && cp < kSBase + kSCount) {
    uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  auto it = maps.decompose.find(cp);
  if (it == maps.decompose.end()) {
    out.push_back(cp);
    return;
  }
  // Table entries decompose one level; the parts may decompose further.
  decompose_into(it->second->first, maps, out);
  if (it->second->second) decompose_into(it->second->second, maps, out);
}

// Canonical ordering: within each run of non-starters, a stable sort by combining class.
static void canonical_order(std::vector<uint32_t>& cps) {
  for (size_t i = 1; i < cps.size(); ++i) {
    uint8_t c = combining_class(cps[i]);
    if (c == 0) continue;
    for (size_t j = i; j > 0; --j) {
      uint8_t prev = combining_class(cps[j - 1]);
      if (prev == 0 || prev <= c) break;
      std::swap(cps[j - 1], cps[j]);
    }
  }
}

static bool compose_pair(uint32_t a, uint32_t b, const NfcMaps& maps, uint32_t* out) {
  using namespace hangul;
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    *out = kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
    return true;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    *out = a + (b - kTBase);
    return true;
  }
  auto it = maps.compose.find(uint64_t(a) << 32 | b);
  if (it == maps.compose.end()) return false;
  *out = it->second;
  return true;
}

// Canonical composition: each character joins the last starter unless a character between
// them is "blocking" (a starter, or a mark of the same or higher combining class).
static void compose(std::vector<uint32_t>& cps, const NfcMaps& maps) {
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  ptrdiff_t starter = -1;
  uint8_t last_class = 0;
  for (uint32_t cp : cps) {
    uint8_t c = combining_class(cp);
    if (starter >= 0) {
      bool adjacent = out.size() == size_t(starter) + 1;
      uint32_t composite;
      if ((adjacent || (last_class != 0 && last_class < c)) &&
          compose_pair(out[starter], cp, maps, &composite)) {
        out[starter] = composite;
        continue;
      }
    }
    if (c == 0) starter = ptrdiff_t(out.size());
    last_class = c;
    out.push_back(cp);
  }
  cps.swap(out);
}

std::string nfc(std::string_view s) {
  // Below U+0300 nothing decomposes and nothing combines; such text (bytes < 0xCC) is NFC.
  bool simple = std::all_of(s.begin(), s.end(), [](char ch) { return uint8_t(ch) < 0xCC; });
  if (simple) return std::string(s);
  const NfcMaps& maps = nfc_maps();
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalidCodePoint) {
      // Each ill-formed byte rides along as its own "character" above U+10FFFF.
      for (uint32_t k = 0; k < c.len; ++k) cps.push_back(kInvalidCodePoint + uint8_t(s[i + k]));
    } else {
      decompose_into(c.cp, maps, cps);
    }
    i += c.len;
  }
  canonical_order(cps);
  compose(cps, maps);
  std::string out;
  out.reserve(s.size());
  for (uint32_t cp : cps) {
    if (cp >= kInvalidCodePoint)
      out += char(cp - kInvalidCodePoint);
    else
      append_utf8(out, cp);
  }
  return out;
}

}  // namespace zoft::text
