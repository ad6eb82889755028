#!/usr/bin/env python3
"""Builds the prompt-task data sets datasets/austen_novels/ and datasets/fortunes/ from real
public text, deterministically (same inputs -> byte-identical files; no third-party packages).

austen_novels: which novel a passage comes from, Persuasion or Northanger Abbey (the novels in
  datasets/austen/, from Debian r-cran-janeaustenr). Each novel's text from "Chapter 1" on,
  without chapter headings, is cut into consecutive passages of 75 words (~100 tokens: every
  passage is truncated at max_seq_length 64 or 96). The last 500 passages of each novel are the
  test set, the passages before them the training set (balanced to the shorter novel's count), so
  no test passage borders a training passage.

fortunes: is a fortune cookie from the `science` or the `politics` file of Debian's `fortunes`
  package (apt-get install fortunes; /usr/share/games/fortunes). Texts in both files are dropped;
  each file's fortunes are shuffled with a fixed seed; 250 of each are the test set, the rest the
  training set (balanced to the smaller file's count). Most fortunes are short; those above ~50
  words are truncated at max_seq_length 64.

    python3 tools/make_task_data.py [--fortunes-dir /usr/share/games/fortunes] [--out datasets]
"""

import argparse
import json
import lzma
import os
import random
import re
import sys

AUSTEN_NOVELS = {"persuasion": "persuasion.txt.xz", "northanger_abbey": "northanger_abbey.txt.xz"}
PASSAGE_WORDS = 75
AUSTEN_TEST_PER_NOVEL = 500
FORTUNE_FILES = ["science", "politics"]
FORTUNES_TEST_PER_LABEL = 250
SEED = 20261205


def novel_words(path):
    """The novel's words from the first chapter heading on, without chapter headings."""
    with lzma.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    heading = re.compile(r"^\s*chapter\s+(\d+|[ivxlc]+)\.?\s*$", re.IGNORECASE)
    start = next(i for i, line in enumerate(lines) if heading.match(line))
    words = []
    for line in lines[start:]:
        if heading.match(line):
            continue
        if line.strip().lower() in ("the end", "finis"):
            break
        words.extend(line.split())
    return words


def austen_novels(austen_dir):
    passages = {}
    for label, name in AUSTEN_NOVELS.items():
        words = novel_words(os.path.join(austen_dir, name))
        passages[label] = [
            " ".join(words[i:i + PASSAGE_WORDS])
            for i in range(0, len(words) - PASSAGE_WORDS + 1, PASSAGE_WORDS)
        ]
    train_per_novel = min(len(p) - AUSTEN_TEST_PER_NOVEL for p in passages.values())
    train, test = [], []
    for label, p in passages.items():
        split = len(p) - AUSTEN_TEST_PER_NOVEL
        train += [{"text": t, "label": label} for t in p[split - train_per_novel:split]]
        test += [{"text": t, "label": label} for t in p[split:]]
    return train, test


def fortunes_of(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r".\x08", "", text)  # overstriking (x BACKSPACE y prints y)
    out = []
    for item in re.split(r"^%$", text, flags=re.MULTILINE):
        item = " ".join(item.split())  # one line, tabs and runs of spaces as one space
        if item:
            out.append(item)
    return out


def fortunes(fortunes_dir):
    by_label = {name: fortunes_of(os.path.join(fortunes_dir, name)) for name in FORTUNE_FILES}
    counts = {}
    for items in by_label.values():
        for t in set(items):
            counts[t] = counts.get(t, 0) + 1
    rng = random.Random(SEED)
    for name in FORTUNE_FILES:
        unique = sorted({t for t in by_label[name] if counts[t] == 1})
        rng.shuffle(unique)
        by_label[name] = unique
    train_per_label = min(len(v) - FORTUNES_TEST_PER_LABEL for v in by_label.values())
    train, test = [], []
    for name in FORTUNE_FILES:
        items = by_label[name]
        test += [{"text": t, "label": name} for t in items[:FORTUNES_TEST_PER_LABEL]]
        train += [{"text": t, "label": name}
                  for t in items[FORTUNES_TEST_PER_LABEL:FORTUNES_TEST_PER_LABEL + train_per_label]]
    return train, test


def interleave(rows, seed):
    """A fixed shuffle, so that a file read in order is not one label after the other."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def write_xz(path, rows):
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    # preset 9, no timestamp in the .xz format: the same rows give the same bytes.
    with lzma.open(path, "wb", preset=9, check=lzma.CHECK_CRC64) as f:
        f.write(data.encode("utf-8"))
    labels = {}
    for r in rows:
        labels[r["label"]] = labels.get(r["label"], 0) + 1
    print(f"wrote {path}: {len(rows)} examples {dict(sorted(labels.items()))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fortunes-dir", default="/usr/share/games/fortunes")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "datasets"))
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.fortunes_dir, "science")):
        sys.exit(f"{args.fortunes_dir}/science not found: apt-get install fortunes "
                 "(or pass --fortunes-dir)")
    austen_train, austen_test = austen_novels(os.path.join(args.out, "austen"))
    fortune_train, fortune_test = fortunes(args.fortunes_dir)
    for name, train, test in (("austen_novels", austen_train, austen_test),
                              ("fortunes", fortune_train, fortune_test)):
        os.makedirs(os.path.join(args.out, name), exist_ok=True)
        write_xz(os.path.join(args.out, name, "train.jsonl.xz"), interleave(train, SEED))
        write_xz(os.path.join(args.out, name, "test.jsonl.xz"), interleave(test, SEED + 1))


if __name__ == "__main__":
    main()
