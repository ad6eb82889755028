"""Shared fixtures of the Python package's tests (run by scripts/test.sh, or `pytest python/tests`).

The CLI to compare with is $ZOFT_CLI, else build/release/zoft; tests that need it, or the demo
model (models/smollm2-135m, installed by scripts/run.sh), skip themselves and say so.
"""

import json
import os
import queue
import shutil
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(REPO, "tests", "fixtures", "golden")
DEMO_MODEL = os.path.join(REPO, "models", "smollm2-135m")


def golden_dir(name: str) -> str:
    return os.path.join(GOLDEN, name)


def read_safetensors(path: str) -> dict:
    """The F32 tensors of a .safetensors file (8-byte header size, JSON header, raw data)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        begin, end = t["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(t["shape"])
    return out


def golden_case(name: str, case: str):
    """HF transformers' inputs, logits [B, T, V], token losses [B, T-1] and mean loss."""
    with open(os.path.join(golden_dir(name), "golden.json")) as f:
        j = json.load(f)
    source = j.get("golden_from", name)
    if source != name:
        with open(os.path.join(golden_dir(source), "golden.json")) as f:
            j = json.load(f)
    c = j["cases"][case]
    tensors = read_safetensors(os.path.join(golden_dir(source), "golden.safetensors"))
    return (np.array(c["input_ids"]), np.array(c["attention_mask"]), np.array(c["labels"]),
            tensors["logits." + case], tensors["token_loss." + case], c["loss"])


class PythonChild:
    """`python3 -c SCRIPT ARGS...` whose stdout lines are read with a timeout, so that a child
    that never answers fails the test instead of hanging it. The child takes SIGINT as an
    interactive Python does even when the tests themselves run as a background job: a shell
    starts those with SIGINT ignored, and a Python started with SIGINT ignored installs no
    KeyboardInterrupt handler."""

    PREAMBLE = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

    def __init__(self, script: str, *args):
        self.proc = subprocess.Popen([sys.executable, "-c", self.PREAMBLE + script,
                                      *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue = queue.Queue()  # stdout lines, then None at its end
        self._stderr: list = []
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_stderr(self):
        self._stderr.extend(self.proc.stderr)

    def line(self, timeout: float = 120):
        """The next line of stdout, None at its end; kills the child after `timeout` seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"the child printed nothing for {timeout} s") from None

    def finish(self, timeout: float = 120):
        """(returncode, the rest of stdout, all of stderr) once the child exits."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
        for reader in self._readers:
            reader.join(timeout=10)
        rest = []
        while (line := self.line(timeout=10)) is not None:
            rest.append(line)
        return self.proc.returncode, "\n".join(rest), "".join(self._stderr)


def byte_tokenizer_json() -> dict:
    """A byte-level BPE tokenizer whose ids are the bytes 0..127 (GPT-2's byte-to-character map,
    no merges): ASCII text encodes to ids the golden fixtures' 128-token models know."""
    printable = [b for b in range(128) if 33 <= b <= 126]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable or 161 <= b <= 172 or 174 <= b <= 255:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    vocab = {chars[b]: b for b in range(128)}
    return {
        "version": "1.0",
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []},
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """The golden llama fixture (random weights, 128 tokens) with the byte tokenizer: a model
    that loads, generates, evaluates and trains in well under a second."""
    out = tmp_path_factory.mktemp("tiny") / "llama"
    out.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(golden_dir("llama"), name), out / name)
    with open(out / "tokenizer.json", "w") as f:
        json.dump(byte_tokenizer_json(), f)
    return str(out)


@pytest.fixture(scope="session")
def cli() -> str:
    path = os.environ.get("ZOFT_CLI", os.path.join(REPO, "build", "release", "zoft"))
    if not os.path.exists(path):
        pytest.skip(f"no zoft CLI at {path} to compare with (build it, or set ZOFT_CLI)")
    return path


@pytest.fixture(scope="session")
def demo_model() -> str:
    if not os.path.exists(os.path.join(DEMO_MODEL, "model.safetensors")):
        pytest.skip(f"the demo model is not installed at {DEMO_MODEL} (scripts/install_model.sh)")
    return DEMO_MODEL
