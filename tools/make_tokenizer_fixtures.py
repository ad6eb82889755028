#!/usr/bin/env python3
"""Builds the tokenizer fixtures in tests/fixtures/tokenizers/.

1. Copies the real tokenizer files from ../shared/data/tokenizers (see its README) into
   <name>/ directories, xz-compressed, as zoft loads them: qwen3/, gemma3/, llama2/ hold
   tokenizer.json.xz + tokenizer_config.json[.xz]; gpt2/ holds encoder.json.xz + vocab.bpe.xz.
2. Runs the `tokenizers` package (the implementation behind transformers) on every text of
   texts.json and writes expected_<name>.json: ids with and without special tokens, and what
   decode() gives back (with and without skip_special_tokens).
3. Writes expected_stages.json: the words each supported pre-tokenizer cuts every text into,
   and its NFC normalization, to test those stages on their own.

Run from the repository root:  python3 tools/make_tokenizer_fixtures.py [--data DIR]
Deterministic: re-running with the same tokenizers version rewrites identical files.
"""
import argparse
import json
import lzma
import os
import shutil
import tempfile

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

FIXTURES = "tests/fixtures/tokenizers"
NAMES = ["qwen3", "gemma3", "llama2", "gpt2"]


def write_xz(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    with lzma.open(dst, "wb", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(data)


def copy_real_files(data):
    """Puts the shared files into per-tokenizer directories (once: existing files are kept)."""
    src = os.path.join(data, "tokenizers")
    for name in ["qwen3", "gemma3", "llama2"]:
        out = os.path.join(FIXTURES, name)
        os.makedirs(out, exist_ok=True)
        target = os.path.join(out, "tokenizer.json.xz")
        if not os.path.exists(target):
            shutil.copyfile(os.path.join(src, f"{name}.tokenizer.json.xz"), target)
        config = os.path.join(src, f"{name}.tokenizer_config.json")
        # Gemma's config lists its 6k added tokens (1.1 MB): compressed like the json.
        if os.path.getsize(config) > 100_000:
            target = os.path.join(out, "tokenizer_config.json.xz")
            if not os.path.exists(target):
                write_xz(config, target)
        elif not os.path.exists(os.path.join(out, "tokenizer_config.json")):
            shutil.copyfile(config, os.path.join(out, "tokenizer_config.json"))
    out = os.path.join(FIXTURES, "gpt2")
    os.makedirs(out, exist_ok=True)
    for file in ["encoder.json", "vocab.bpe"]:
        target = os.path.join(out, file + ".xz")
        if not os.path.exists(target):
            write_xz(os.path.join(src, "gpt2", file), target)
    shutil.copyfile(os.path.join(src, "gpt2", "LICENSE"), os.path.join(out, "LICENSE"))


def unxz(path, tmp):
    """A decompressed copy of a fixture file, for the Python side."""
    out = os.path.join(tmp, os.path.basename(path).removesuffix(".xz"))
    with lzma.open(path) as f, open(out, "wb") as g:
        g.write(f.read())
    return out


def load(name, tmp):
    d = os.path.join(FIXTURES, name)
    if name != "gpt2":
        return Tokenizer.from_file(unxz(os.path.join(d, "tokenizer.json.xz"), tmp))
    # GPT-2 from its vocab + merges, set up as transformers' GPT2TokenizerFast is.
    vocab = unxz(os.path.join(d, "encoder.json.xz"), tmp)
    merges = unxz(os.path.join(d, "vocab.bpe.xz"), tmp)
    tok = Tokenizer(models.BPE.from_file(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def expected(tok, texts):
    cases = []
    for case in texts:
        text = case["text"]
        ids = tok.encode(text, add_special_tokens=True).ids
        plain = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "name": case["name"],
            "ids": ids,
            "ids_no_special": plain,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    return cases


def dump_one_case_per_line(out):
    """JSON with one line per case, so that diffs of regenerated fixtures stay readable."""
    compact = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    head = {k: v for k, v in out.items() if k != "cases"}
    lines = [compact(head)[:-1] + ',"cases":[']
    lines += [compact(c) + ("," if i + 1 < len(out["cases"]) else "") for i, c in
              enumerate(out["cases"])]
    return "\n".join(lines) + "\n]}\n"


GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")


def pre_tokenizer_table():
    """The pre-tokenizers zoft implements, by the names tests/text use for them."""
    split = lambda behavior: pre_tokenizers.Split(" ", behavior)
    return {
        "gpt2_regex": pre_tokenizers.Split(Regex(GPT2_REGEX), "isolated"),
        "llama3_regex": pre_tokenizers.Split(Regex(LLAMA3_REGEX), "isolated"),
        "qwen2_regex": pre_tokenizers.Split(Regex(QWEN2_REGEX), "isolated"),
        "byte_level_prefix_space": pre_tokenizers.ByteLevel(add_prefix_space=True),
        "digits": pre_tokenizers.Digits(individual_digits=False),
        "digits_individual": pre_tokenizers.Digits(individual_digits=True),
        "metaspace": pre_tokenizers.Metaspace(prepend_scheme="always", split=True),
        "metaspace_first_nosplit": pre_tokenizers.Metaspace(prepend_scheme="first", split=False),
        "space_removed": split("removed"),
        "space_isolated": split("isolated"),
        "space_merged_with_previous": split("merged_with_previous"),
        "space_merged_with_next": split("merged_with_next"),
        "space_contiguous": split("contiguous"),
    }


def stages(texts):
    out = {"pre_tokenizers": {}, "nfc": []}
    for name, pre in pre_tokenizer_table().items():
        out["pre_tokenizers"][name] = [[w for w, _ in pre.pre_tokenize_str(t["text"])]
                                       for t in texts]
    nfc = normalizers.NFC()
    out["nfc"] = [nfc.normalize_str(t["text"]) for t in texts]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    args = parser.parse_args()
    copy_real_files(args.data)
    with open(os.path.join(FIXTURES, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in NAMES:
            tok = load(name, tmp)
            out = {
                "tokenizer": name,
                "tokenizers_version": tokenizers.__version__,
                "vocab_size": tok.get_vocab_size(with_added_tokens=True),
                "cases": expected(tok, texts),
            }
            path = os.path.join(FIXTURES, f"expected_{name}.json")
            with open(path, "w", encoding="utf-8") as f:
                f.write(dump_one_case_per_line(out))
            print(f"{path}: {len(texts)} texts")
    path = os.path.join(FIXTURES, "expected_stages.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stages(texts), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: pre-tokenizers and NFC of {len(texts)} texts")


if __name__ == "__main__":
    main()
