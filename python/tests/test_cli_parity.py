"""The API against the CLI: the same text from generate, the same perplexity as `zoft eval`,
and the same one-line error messages."""

import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import zoft
from conftest import REPO, PythonChild

PROMPT = "The capital of France is"


def run_cli(cli, *args, check=True, cwd=None):
    r = subprocess.run([cli, *args], capture_output=True, cwd=cwd)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


@pytest.mark.parametrize("settings", [
    {},
    {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "seed": 7},
    {"temperature": 1.0, "repetition_penalty": 1.3, "seed": 3},
])
def test_generate_prints_what_the_cli_prints(cli, tiny_model, settings):
    model = zoft.Model.load(tiny_model, dtype="f32")
    text = model.generate("Hello world", max_new_tokens=24, **settings)
    flags = []
    for key, value in settings.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    out = run_cli(cli, "generate", "--model", tiny_model, "--prompt", "Hello world",
                  "--max-new-tokens", "24", "--dtype", "f32", *flags).stdout
    assert out.decode("utf-8", errors="replace") == text + "\n"


def test_stream_yields_the_generated_text(tiny_model):
    model = zoft.Model.load(tiny_model, dtype="f32")
    pieces = list(model.stream("Hello world", max_new_tokens=20, temperature=0.7, seed=5))
    assert len(pieces) >= 1
    assert "".join(pieces) == model.generate("Hello world", max_new_tokens=20, temperature=0.7,
                                             seed=5)


def test_leaving_a_stream_early_stops_generation(tiny_model):
    model = zoft.Model.load(tiny_model, dtype="f32")
    stream = model.stream("Hello", max_new_tokens=50, ignore_eos=True)
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert len(first) == 3
    # The model is free again: the worker has stopped.
    assert model.generate("Hello", max_new_tokens=3, ignore_eos=True) == "".join(first)


@pytest.mark.parametrize("dtype", ["bf16", "f32"])
def test_demo_model_generates_the_cli_text(cli, demo_model, dtype):
    text = zoft.Model.load(demo_model, dtype=dtype).generate(PROMPT, max_new_tokens=8)
    out = run_cli(cli, "generate", "--model", demo_model, "--prompt", PROMPT,
                  "--max-new-tokens", "8", "--dtype", dtype).stdout.decode()
    assert out == text + "\n"
    assert text.strip()


def test_the_issue_one_liner_prints_what_zoft_generate_prints(cli, demo_model):
    """Issue 17's command as written, in the repository root (Python's default dtype is bf16),
    against `zoft generate` with the same settings."""
    code = ("import zoft; m = zoft.Model.load('models/smollm2-135m'); "
            "print(m.generate('The capital of France is', max_new_tokens=8))")
    ours = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True)
    assert ours.returncode == 0, ours.stderr.decode()
    ref = run_cli(cli, "generate", "--model", "models/smollm2-135m", "--prompt", PROMPT,
                  "--max-new-tokens", "8", "--dtype", "bf16", cwd=REPO)
    assert ours.stdout == ref.stdout and ours.stdout.strip()


def test_ctrl_c_stops_generate_and_stream(tiny_model, tmp_path):
    """SIGINT during Model.generate or a stream loop is a KeyboardInterrupt there, and the
    model is free and unchanged afterwards."""
    long = tmp_path / "long"  # the tiny model with room for 10^5 new tokens (tens of seconds)
    shutil.copytree(tiny_model, long)
    config = json.loads((long / "config.json").read_text())
    config["max_position_embeddings"] = 1 << 17
    (long / "config.json").write_text(json.dumps(config))
    script = textwrap.dedent("""
        import sys, zoft
        m = zoft.Model.load(sys.argv[1], dtype="f32")
        before = m.generate("Hello", max_new_tokens=6, ignore_eos=True)
        for mode in ("generate", "stream"):
            print("running", flush=True)
            try:
                if mode == "generate":
                    m.generate("Hello", max_new_tokens=100000, ignore_eos=True)
                else:
                    for piece in m.stream("Hello", max_new_tokens=100000, ignore_eos=True):
                        pass
                print("finished", flush=True)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
        print("same" if m.generate("Hello", max_new_tokens=6, ignore_eos=True) == before
              else "changed", flush=True)
    """)
    child = PythonChild(script, long)
    for mode in ("generate", "stream"):
        assert child.line() == "running", mode
        time.sleep(0.3)  # early or late, SIGINT is a KeyboardInterrupt in that block
        child.proc.send_signal(signal.SIGINT)
        assert child.line() == "interrupted", mode
    returncode, stdout, stderr = child.finish()
    assert returncode == 0, stderr
    assert stdout.strip() == "same"


def test_perplexity_equals_zoft_eval(cli, tiny_model, tmp_path):
    text = "The quick brown fox jumps over the lazy dog. " * 6
    path = tmp_path / "text.txt"
    path.write_text(text)
    ref = json.loads(run_cli(cli, "eval", "--model", tiny_model, "--data", str(path), "--json",
                             "--dtype", "f32", "--window", "32", "--stride", "8").stdout)
    model = zoft.Model.load(tiny_model, dtype="f32")
    ours = model.perplexity(str(path), window=32, stride=8)
    assert ours["perplexity"] == ref["perplexity"]  # the same code, bit for bit
    assert ours["scored_tokens"] == ref["scored_tokens"] and ours["windows"] == ref["windows"]
    assert model.perplexity(text, window=32, stride=8)["perplexity"] == ref["perplexity"]


def test_perplexity_of_jsonl_xz_equals_zoft_eval(cli, tiny_model, tmp_path):
    path = tmp_path / "docs.jsonl.xz"
    rows = [{"body": "First document, plain ASCII."}, {"body": "A second one, a bit longer."}]
    path.write_bytes(lzma.compress("\n".join(json.dumps(r) for r in rows).encode()))
    ref = json.loads(run_cli(cli, "eval", "--model", tiny_model, "--data", str(path), "--json",
                             "--text-field", "body").stdout)
    model = zoft.Model.load(tiny_model, dtype="f32")
    assert model.perplexity(path, text_field="body")["perplexity"] == ref["perplexity"]
    # zoft.evaluate without a task is the same perplexity.
    ours = zoft.evaluate(tiny_model, data=path, dtype="f32", text_field="body")
    assert ours["perplexity"] == ref["perplexity"]


def cli_error(cli, *args) -> str:
    r = run_cli(cli, *args, check=False)
    assert r.returncode != 0
    line = r.stderr.decode().strip().splitlines()[-1]
    assert line.startswith("zoft: error: ")
    return line[len("zoft: error: "):]


def test_errors_carry_the_cli_message(cli, tiny_model, tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(zoft.Error) as e:
        zoft.Model.load(missing, dtype="f32")
    assert str(e.value) == cli_error(cli, "generate", "--model", missing, "--prompt", "x")
    assert isinstance(e.value, RuntimeError)

    with pytest.raises(zoft.Error) as e:
        zoft.Model.load(tiny_model, dtype="f16")
    assert str(e.value) == cli_error(cli, "generate", "--model", tiny_model, "--prompt", "x",
                                     "--dtype", "f16")

    with pytest.raises(zoft.Error) as e:
        zoft.Model.load(tiny_model, device="tpu")
    assert str(e.value) == cli_error(cli, "eval", "--model", tiny_model, "--data", "x",
                                     "--device", "tpu")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (corrupt / name).write_bytes(open(os.path.join(tiny_model, name), "rb").read())
    (corrupt / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(zoft.Error) as e:
        zoft.Model.load(str(corrupt), dtype="f32")
    assert str(e.value) == cli_error(cli, "generate", "--model", str(corrupt), "--prompt", "x")
    assert "\n" not in str(e.value)

    model = zoft.Model.load(tiny_model, dtype="f32")
    with pytest.raises(zoft.Error) as e:
        model.generate("x", max_new_tokens=-1)
    assert str(e.value) == cli_error(cli, "generate", "--model", tiny_model, "--prompt", "x",
                                     "--max-new-tokens", "-1")
    with pytest.raises(zoft.Error, match="fewer than 2 tokens"):
        model.perplexity("x")
    with pytest.raises(zoft.Error) as e:
        model.perplexity("hello world", window=1000)
    assert str(e.value) == cli_error(cli, "eval", "--model", tiny_model, "--data",
                                     os.path.join(tiny_model, "config.json"), "--window", "1000")


def test_bad_ids_are_a_clear_error(tiny_model):
    model = zoft.Model.load(tiny_model, dtype="f32")
    with pytest.raises(zoft.Error, match="vocab|outside|id"):
        model.logits([[1, 2, 999]])
    with pytest.raises(zoft.Error):
        model.logits([[]])
    with pytest.raises(zoft.Error):
        model.token_losses([[1, 2, 3]], labels=[[1, 2, 500]])
