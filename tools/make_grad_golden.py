#!/usr/bin/env python3
"""Make the gradient fixtures: PyTorch autograd gradients of the golden models' LM loss.

For every golden model (tests/fixtures/golden/<name>/, made by make_golden.py) and the `nopad`
and `right` cases of its golden.json, loads the committed checkpoint (f32, eager attention) and
writes grads_<case>.safetensors: d(loss)/d(parameter) for every parameter under its HF name,
where loss = mean cross-entropy over the next-token targets (labels[b, t+1] != -100, i.e. both
t and t+1 are real tokens: zoft's Decoder::next_token_targets). grads.json records each case's
loss and target count. The `left` case is checked to have the same gradients as `right` (same
sequences, other padding side) and is not written: tests compare it against grads_right.

Deterministic (single-threaded torch, deterministic algorithms); existing files are only read.

Usage: python3 tools/make_grad_golden.py [--dir DIR] [--only NAME ...]
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / "tests" / "fixtures" / "golden"
MODELS = ("opt", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3")
WRITTEN_CASES = ("nopad", "right")
# max |grad_left - grad_right| / max |grad_right| per tensor: the same math up to rounding.
LEFT_RIGHT_RTOL = 1e-5
# A gradient that is zero in exact arithmetic is rounding noise (e.g. a key bias without rope:
# softmax is invariant to it), so each tensor's scale is at least this fraction of the largest
# gradient of the model (tests/model/gradient_test.cc uses the same floor).
SCALE_FLOOR = 1e-3


def log(*a):
    print(*a, flush=True)


def load_case(case):
    t = {k: torch.tensor(case[k], dtype=torch.int64)
         for k in ("input_ids", "attention_mask", "position_ids", "labels")}
    return t


def loss_and_grads(model, name, c):
    """Mean next-token cross-entropy over labels != -100 and its gradient per parameter."""
    model.zero_grad(set_to_none=True)
    kw = dict(input_ids=c["input_ids"], attention_mask=c["attention_mask"], use_cache=False)
    if name != "opt":  # OPT derives positions from the mask itself
        kw["position_ids"] = c["position_ids"]
    logits = model(**kw).logits.float()
    vocab = logits.shape[-1]
    targets = c["labels"][:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab), targets,
                                             ignore_index=-100, reduction="mean")
    loss.backward()
    grads = {}
    for pname, p in model.named_parameters():  # a tied table is yielded once, summed over uses
        assert p.grad is not None, (name, pname)
        # + 0.0 turns -0.0 into +0.0: the sign of an exactly-zero gradient varies between runs.
        grads[pname] = (p.grad.detach().float() + 0.0).contiguous()
    return float(loss.detach()), int((targets != -100).sum()), grads


def max_rel(a, b, floor):
    return float((a - b).abs().max()) / max(float(b.abs().max()), floor)


def make(d, name):
    golden = json.loads((d / "golden.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager",
                                                 dtype=torch.float32)
    model.eval()  # no dropout; autograd works in eval mode
    results = {}
    for case_name in ("nopad", "right", "left"):
        c = load_case(golden["cases"][case_name])
        results[case_name] = loss_and_grads(model, name, c)
        loss = results[case_name][0]
        ref = golden["cases"][case_name]["loss"]
        assert abs(loss - ref) <= 1e-5 * max(1.0, abs(ref)), (name, case_name, loss, ref)

    right = results["right"][2]
    floor = SCALE_FLOOR * max(float(g.abs().max()) for g in right.values())
    worst = max(max_rel(results["left"][2][k], g, floor) for k, g in right.items())
    assert worst < LEFT_RIGHT_RTOL, f"{name}: left-padded gradients differ from right ({worst:.3g})"

    js = {"cases": {}, "transformers_version": transformers.__version__,
          "torch_version": torch.__version__.split("+")[0],
          "note": "grads_<case>.safetensors: d(mean next-token CE)/d(param); left uses grads_right"}
    for case_name in ("nopad", "right", "left"):
        loss, count, _ = results[case_name]
        js["cases"][case_name] = {"loss": loss, "targets": count}
    for case_name in WRITTEN_CASES:
        # One metadata key: safetensors writes the metadata map in a random order.
        save_file(results[case_name][2], str(d / f"grads_{case_name}.safetensors"),
                  metadata={"model": name})
    (d / "grads.json").write_text(json.dumps(js, indent=1) + "\n")
    norms = ", ".join(f"{k} {results[k][0]:.6f}" for k in results)
    log(f"[{name}] {len(results['nopad'][2])} parameters; loss {norms}; "
        f"left vs right grads max rel {worst:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    for name in MODELS:
        if args.only and name not in args.only:
            continue
        make(args.dir / name, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
