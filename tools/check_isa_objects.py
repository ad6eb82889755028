#!/usr/bin/env python3
"""Fails when an object file compiled for a wider instruction set (the per-ISA GEMM kernels,
CMakeLists.txt) defines a weak function that uses AVX or AVX-512 registers.

Weak (COMDAT) functions -- inline functions and template instances such as std::vector's -- are
merged by the linker across objects, which keeps whichever copy it meets first. If that copy came
from an AVX-512 object, code meant to run on any x86-64 CPU would run AVX-512 instructions.
  python3 tools/check_isa_objects.py OBJ...
"""
import re
import subprocess
import sys

WIDE_REGISTER = re.compile(r"%(ymm|zmm)\d+|%k[0-7]\b")


def weak_functions(obj):
    out = subprocess.run(["nm", "--defined-only", obj], check=True, capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("W", "u"):
            yield parts[2]


def wide_instructions(obj, symbol):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={symbol}", obj],
                         check=True, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if WIDE_REGISTER.search(line)]


def main(objs):
    bad = 0
    checked = 0
    for obj in objs:
        for symbol in weak_functions(obj):
            checked += 1
            wide = wide_instructions(obj, symbol)
            if wide:
                bad += 1
                print(f"{obj}: weak function {symbol} uses wide registers: {wide[0]}")
    if bad:
        return 1
    print(f"isa objects ok ({len(objs)} objects, {checked} weak functions, none with AVX registers)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
