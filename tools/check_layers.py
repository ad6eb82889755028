#!/usr/bin/env python3
"""Fails when a layer includes a header of a layer above it (DESIGN.md: lower never includes higher)."""
import pathlib
import re
import sys

ORDER = ["core", "io", "text", "backend", "model", "runtime", "optim", "zo", "data", "dist", "train", "cli"]
ALLOWED = {
    "core": set(),
    "io": {"core"},
    "text": {"core", "io"},
    "backend": {"core"},
    "model": {"core", "io", "backend"},
    "runtime": {"core", "io", "backend", "model"},
    "optim": {"core", "io", "backend", "model"},
    "zo": {"core", "backend", "model", "runtime", "optim"},
    "data": {"core", "io", "text"},
    "dist": {"core"},
    "train": {"core", "io", "text", "backend", "model", "runtime", "optim", "zo", "data", "dist"},
    "cli": set(ORDER),
}

root = pathlib.Path(__file__).resolve().parent.parent / "src"
bad = []
for path in sorted(root.rglob("*")):
    if path.suffix not in {".h", ".cc", ".cu", ".cuh"}:
        continue
    layer = path.relative_to(root).parts[0]
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r'\s*#\s*include\s+"([a-z_]+)/', line)
        if m and m.group(1) != layer and m.group(1) not in ALLOWED.get(layer, set()):
            bad.append(f"{path.relative_to(root.parent)}:{n}: {layer} must not include {m.group(1)}/")
for b in bad:
    print(b)
if bad:
    sys.exit(1)
print(f"layers ok ({sum(1 for _ in root.rglob('*.*'))} files)")
