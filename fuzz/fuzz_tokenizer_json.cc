// libFuzzer target for tokenizer.json parsing: any input must load or throw zoft::Error, and a
// tokenizer that loaded must encode and decode a fixed text (and arbitrary ids) without fault.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    zoft::text::Tokenizer tok = zoft::text::Tokenizer::from_json(json, "fuzz.json");
    // ASCII, a contraction, digits, accents (NFC-composable), CJK, emoji, a lone '▁', special
    // token look-alikes, control characters, and an ill-formed UTF-8 tail.
    const std::string text =
        "Hello world, it's 2024!  caf\xC3\xA9 cafe\xCC\x81 \xE4\xB8\xAD\xE6\x96\x87 "
        "\xF0\x9F\x98\x80 \xE2\x96\x81x <s></s><|endoftext|><unk>\r\n\t\x01 end \xC3\x28\xFF";
    for (bool special : {true, false}) {
      std::vector<int32_t> ids = tok.encode(text, special);
      const int64_t vocab = int64_t(tok.vocab_size());
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
    std::vector<int32_t> odd = {-1, 0, 1, 2, 3, int32_t(tok.vocab_size()), -2147483647 - 1,
                                2147483647, tok.bos_id(), tok.eos_id(), tok.pad_id()};
    (void)tok.decode(odd, false);
    (void)tok.decode(odd, true);
    for (int32_t id : odd) {
      (void)tok.token_bytes(id);
      (void)tok.id_to_token(id);
      (void)tok.is_special(id);
    }
    (void)tok.token_to_id("a");
  } catch (const zoft::Error&) {
  }
  return 0;
}
