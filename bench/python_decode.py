#!/usr/bin/env python3
"""The Python API's overhead per decode step: `zoft generate` vs `zoft.Model.generate` and
`zoft.Model.stream`, the same model, prompt, dtype and threads, greedy, EOS ignored, so every run
makes exactly --new-tokens tokens (issue 17: Python's decode step within 5 % of the CLI's).

Two measures per side, prompt processing taken out of both:
  wall  cli: the CLI's own clock from its first new token to its last (the --json mode, which
        writes nothing per token: the CLI at its fastest), / (n - 1);
        generate: Python's clock around `m.generate(prompt, n)` minus that of
        `m.generate(prompt, 1)` (tokenising, prefill, first token), / (n - 1): everything
        Python adds per token is inside;
        stream: Python's clock at each piece the `for piece in m.stream(...)` loop receives,
        first to last, / (n - 1) (worker thread, queue, incremental UTF-8 decoding included).
  cpu   CPU seconds of all threads (the CLI: of its process, by getrusage), a call making n
        tokens minus one making 1, / (n - 1). Wall time on a machine shared with other jobs
        counts the time the threads wait for a core; CPU time does not, so it is the steadier
        figure for "how much work does Python add".
The three run alternately (the order rotates each repetition) for --repeats repetitions in one
process (the CLI as a child process); medians are compared. The greedy ids of both sides are
checked equal first.

  python3 bench/python_decode.py [--model models/smollm2-135m] [--zoft build/release/zoft]
      [--new-tokens 64] [--threads 2] [--dtype bf16] [--repeats 7] [--out FILE.json]

--model tiny: the 2-layer golden llama fixture (tests/fixtures/golden/llama, 128 byte tokens,
with the byte tokenizer of python/tests/conftest.py and room for 4096 positions), where a decode
step costs tens of microseconds: the difference of the sides is then Python's own cost per
token, in absolute terms (use --dtype f32 --new-tokens 1000).

The package must be importable (scripts/setup.sh installs it; or PYTHONPATH=DIR of a
`pip install --target DIR ./python`).
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import zoft

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = ("The history of the city goes back more than two thousand years. It was founded on "
          "the banks of the river by")


def tiny_model(out_dir):
    """The golden llama fixture with a byte-level tokenizer (ids = ASCII bytes)."""
    sys.path.insert(0, os.path.join(ROOT, "python", "tests"))
    from conftest import byte_tokenizer_json

    fixture = os.path.join(ROOT, "tests", "fixtures", "golden", "llama")
    with open(os.path.join(fixture, "config.json")) as f:
        config = json.load(f)
    config["max_position_embeddings"] = 4096
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(byte_tokenizer_json(), f)
    shutil.copy(os.path.join(fixture, "model.safetensors"), out_dir)
    return out_dir


def cli_args(args, new_tokens):
    return [args.zoft, "generate", "--model", args.model, "--prompt", PROMPT,
            "--max-new-tokens", str(new_tokens), "--ignore-eos", "--json", "--dtype", args.dtype,
            "--threads", str(args.threads)]


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cli(args, new_tokens):
    """One `zoft generate --json` process: its report and the CPU seconds it used."""
    c0 = children_cpu()
    out = subprocess.run(cli_args(args, new_tokens), check=True, capture_output=True,
                         text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["new_tokens"] == new_tokens, r
    return r, children_cpu() - c0


def per_token(run, n):
    """(wall, cpu) seconds per token of n - 1 more tokens: run(n) minus run(1), where run(k)
    returns (wall, cpu) of a whole call making k tokens (prompt processing cancels out)."""
    wall_n, cpu_n = run(n)
    wall_1, cpu_1 = run(1)
    return (wall_n - wall_1) / (n - 1), (cpu_n - cpu_1) / (n - 1)


def timed(f):
    c0, t0 = time.process_time(), time.perf_counter()
    f()
    return time.perf_counter() - t0, time.process_time() - c0


def time_cli(args):
    """Wall: the CLI's own decode clock. CPU: of the whole process, n tokens minus 1 token
    (loading and prefill cancel out)."""
    r, cpu_n = run_cli(args, args.new_tokens)
    _, cpu_1 = run_cli(args, 1)
    return 1.0 / r["decode_tokens_per_s"], (cpu_n - cpu_1) / (args.new_tokens - 1)


def time_generate(model, args):
    return per_token(lambda n: timed(lambda: model.generate(PROMPT, max_new_tokens=n,
                                                            ignore_eos=True)), args.new_tokens)


def time_stream(model, args):
    """Wall: the loop's clock from the first piece to the last. CPU: n tokens minus 1."""
    stamps = []

    def loop(n):
        stamps.clear()
        for _ in model.stream(PROMPT, max_new_tokens=n, ignore_eos=True):
            stamps.append(time.perf_counter())

    n = args.new_tokens
    _, cpu_n = timed(lambda: loop(n))
    # The stream may add one last piece (an incomplete UTF-8 tail) after the last token.
    assert len(stamps) in (n, n + 1), len(stamps)
    wall = (stamps[n - 1] - stamps[0]) / (n - 1)
    _, cpu_1 = timed(lambda: loop(1))
    return wall, (cpu_n - cpu_1) / (n - 1)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2-135m"))
    p.add_argument("--zoft", default=os.path.join(ROOT, "build", "release", "zoft"))
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default="")
    args = p.parse_args()
    args.model_name = args.model if args.model == "tiny" else os.path.relpath(args.model, ROOT)
    if args.new_tokens < 2:
        sys.exit("--new-tokens must be >= 2")
    if args.model == "tiny":
        args.model = tiny_model(tempfile.mkdtemp(prefix="zoft-tiny-"))

    model = zoft.Model.load(args.model, dtype=args.dtype, threads=args.threads)
    ref, _ = run_cli(args, args.new_tokens)
    ours = model._generate_ids(PROMPT, args.new_tokens, 0.0, 0, 1.0, 1.0, 0, True, None)
    if ours["ids"] != ref["ids"]:
        sys.exit("the greedy ids of zoft generate and Model.generate differ: not comparable")

    names = ["cli", "generate", "stream"]
    timers = {"cli": lambda: time_cli(args), "generate": lambda: time_generate(model, args),
              "stream": lambda: time_stream(model, args)}
    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    for rep in range(args.repeats):
        for name in names[rep % 3:] + names[:rep % 3]:  # a different order each repetition
            w, c = timers[name]()
            wall[name].append(w)
            cpu[name].append(c)
        print(f"rep {rep + 1}: " + ", ".join(
            f"{k} {wall[k][-1] * 1e3:.3f} ms (cpu {cpu[k][-1] * 1e3:.3f})" for k in names),
            flush=True)

    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_name(), "cores": os.cpu_count(), "load_average": os.getloadavg(),
        "model": args.model_name, "dtype": args.dtype, "threads": args.threads,
        "prompt_tokens": ref["prompt_tokens"], "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "wall_ms_per_token": {k: [round(x * 1e3, 4) for x in v] for k, v in wall.items()},
        "cpu_ms_per_token": {k: [round(x * 1e3, 4) for x in v] for k, v in cpu.items()},
        "median_wall_ms_per_token": {k: round(v * 1e3, 4) for k, v in med.items()},
        "median_cpu_ms_per_token": {k: round(v * 1e3, 4) for k, v in med_cpu.items()},
    }
    for k in ("generate", "stream"):
        result[f"{k}_over_cli_wall"] = round(med[k] / med["cli"], 4)
        result[f"{k}_over_cli_cpu"] = round(med_cpu[k] / med_cpu["cli"], 4)
        # The ratio within each repetition (its runs are minutes apart at most, under the same
        # load), then the median over repetitions: steadier than a ratio of medians.
        result[f"{k}_over_cli_wall_paired"] = round(
            statistics.median(a / b for a, b in zip(wall[k], wall["cli"])), 4)
        result[f"{k}_over_cli_cpu_paired"] = round(
            statistics.median(a / b for a, b in zip(cpu[k], cpu["cli"])), 4)
    print("median ms/token (wall | cpu): " + ", ".join(
        f"{k} {med[k] * 1e3:.3f} | {med_cpu[k] * 1e3:.3f}" for k in names))
    print("ratios to the CLI, of medians (wall | cpu): " + ", ".join(
        f"{k} {result[f'{k}_over_cli_wall']:.3f} | {result[f'{k}_over_cli_cpu']:.3f}"
        for k in ("generate", "stream")))
    print("ratios to the CLI, median of each repetition's (wall | cpu): " + ", ".join(
        f"{k} {result[f'{k}_over_cli_wall_paired']:.3f} | {result[f'{k}_over_cli_cpu_paired']:.3f}"
        for k in ("generate", "stream")))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
