// libFuzzer target for the tokenizers' text paths: real tokenizers (GPT-2 byte-level BPE from
// vocab files, Llama-2 SentencePiece BPE with byte fallback, Qwen3 byte-level BPE with NFC and
// the Qwen2 regex), loaded once, encode the input as text and decode the ids; the input's bytes
// are also decoded as a list of int32 ids. GPT-2's tokens must join to exactly the bytes it was
// given, and decode them to those bytes with ill-formed UTF-8 replaced by U+FFFD (as `tokenizers`
// decodes bytes, lossily).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace {

struct Tokenizers {
  zoft::text::Tokenizer gpt2, llama2, qwen3;
};

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    using zoft::text::Tokenizer;
    using zoft_fuzz::source_path;
    try {
      return Tokenizers{Tokenizer::from_file(source_path("tests/fixtures/tokenizers/gpt2")),
                        Tokenizer::from_file(source_path("tests/fixtures/tokenizers/llama2")),
                        Tokenizer::from_file(source_path("tests/fixtures/tokenizers/qwen3"))};
    } catch (const zoft::Error& e) {
      std::fprintf(stderr, "fuzz_tokenize_text: %s\n", e.what());
      std::exit(2);  // a setup problem, not a finding
    }
  }();
  return t;
}

void check_ids(const zoft::text::Tokenizer& tok, const std::vector<int32_t>& ids) {
  const int64_t vocab = int64_t(tok.vocab_size());
  for (int32_t id : ids)
    if (id < 0 || id >= vocab) zoft_fuzz::bug("encode() returned an id outside the vocabulary");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizers();  // load before the first input, so that -timeout does not count it
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizers& t = tokenizers();
  std::string_view text(reinterpret_cast<const char*>(data), size);

  std::vector<int32_t> ids = t.gpt2.encode(text, false);
  check_ids(t.gpt2, ids);
  if (t.gpt2.decode(ids) != zoft::text::to_valid_utf8(text))
    zoft_fuzz::bug("GPT-2: decode(encode(bytes)) != the bytes made valid UTF-8");
  std::string joined;
  for (int32_t id : ids) joined += t.gpt2.token_bytes(id);
  if (joined != text) zoft_fuzz::bug("GPT-2: token_bytes of the ids do not join to the bytes");

  for (const zoft::text::Tokenizer* tok : {&t.llama2, &t.qwen3}) {
    for (bool special : {true, false}) {
      ids = tok->encode(text, special);
      check_ids(*tok, ids);
      (void)tok->decode(ids, false);
      (void)tok->decode(ids, true);
    }
  }

  // The same bytes as ids, as they are and folded into [-4, vocab_size + 4): unknown ids are
  // skipped, known ones decoded.
  std::vector<int32_t> raw(size / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  for (const zoft::text::Tokenizer* tok : {&t.gpt2, &t.llama2, &t.qwen3}) {
    (void)tok->decode(raw, false);
    std::vector<int32_t> folded(raw.size());
    for (size_t i = 0; i < raw.size(); ++i)
      folded[i] = int32_t(uint32_t(raw[i]) % uint32_t(tok->vocab_size() + 8)) - 4;
    (void)tok->decode(folded, false);
    (void)tok->decode(folded, true);
    for (int32_t id : folded) (void)tok->token_bytes(id);
  }
  return 0;
}
