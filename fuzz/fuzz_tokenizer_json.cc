// libFuzzer target for the files a tokenizer is read from: the input is parsed as tokenizer.json,
// as GPT-2's vocab.json (with a fixed merges.txt) and merges.txt (with a fixed vocab.json), and as
// tokenizer_config.json applied to a small tokenizer. Each must load or throw zoft::Error, and a
// tokenizer that loaded must encode and decode a fixed text (and odd ids) without fault, giving
// only ids inside its vocabulary.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json.h"

namespace {

using zoft::text::Tokenizer;
using zoft::text::TokenizerSpec;

void exercise(const Tokenizer& tok) {
  // ASCII, a contraction, digits, accents (NFC-composable), CJK, emoji, a lone '▁', special
  // token look-alikes, control characters, and an ill-formed UTF-8 tail.
  const std::string text =
      "Hello world, it's 2024!  caf\xC3\xA9 cafe\xCC\x81 \xE4\xB8\xAD\xE6\x96\x87 "
      "\xF0\x9F\x98\x80 \xE2\x96\x81x <s></s><|endoftext|><unk>\r\n\t\x01 end \xC3\x28\xFF";
  const int64_t vocab = int64_t(tok.vocab_size());
  for (bool special : {true, false}) {
    std::vector<int32_t> ids = tok.encode(text, special);
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab) zoft_fuzz::bug("encode() returned an id outside the vocabulary");
      (void)tok.token_bytes(id);
      (void)tok.id_to_token(id);
      (void)tok.is_special(id);
    }
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
  }
  (void)tok.encode("", true);
  (void)tok.decode({});
  std::vector<int32_t> odd = {-1, 0, 1, 2, 3, int32_t(vocab), -2147483647 - 1, 2147483647,
                              tok.bos_id(), tok.eos_id(), tok.pad_id()};
  (void)tok.decode(odd, false);
  (void)tok.decode(odd, true);
  for (int32_t id : odd) {
    (void)tok.token_bytes(id);
    (void)tok.id_to_token(id);
    (void)tok.is_special(id);
  }
  (void)tok.token_to_id("a");
}

const char kVocabJson[] = R"({"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120a": 4, "<|endoftext|>": 5})";
const char kMergesTxt[] = "#version: 0.2\n";  // no merges: any vocab.json goes with it

template <class F>
void try_tokenizer(F&& make) {
  try {
    exercise(make());
  } catch (const zoft::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try_tokenizer([&] { return Tokenizer::from_json(input, "tokenizer.json"); });
  try_tokenizer([&] {
    return Tokenizer(zoft::text::parse_vocab_and_merges(input, "vocab.json", kMergesTxt, "merges.txt"));
  });
  try_tokenizer([&] {
    return Tokenizer(zoft::text::parse_vocab_and_merges(kVocabJson, "vocab.json", input, "merges.txt"));
  });
  for (bool from_vocab_files : {true, false}) {
    try_tokenizer([&] {
      TokenizerSpec spec =
          zoft::text::parse_vocab_and_merges(kVocabJson, "vocab.json", kMergesTxt, "merges.txt");
      zoft::text::apply_tokenizer_config(spec, input, "tokenizer_config.json", from_vocab_files);
      return Tokenizer(std::move(spec));
    });
  }
  return 0;
}
