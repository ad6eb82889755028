#!/usr/bin/env python3
"""Make the AdamW training-run fixtures: 10 steps of torch.optim.AdamW on golden models.

The issue's acceptance check for first-order training (as llm.c checks itself): zoft's
Decoder::loss_and_grad + optim::Optimizer, run for 10 steps on the same model and batches,
must give PyTorch's losses and final weights (tests/train/adamw_run_test.cc).

For each model in MODELS (tests/fixtures/golden/<name>/, made by make_golden.py), loads the
committed f32 checkpoint (eager attention, eval mode: no dropout) and trains it for STEPS steps:
step t uses the golden case CASES[t % 3] (unpadded, right-padded, left-padded), the loss is the
mean cross-entropy over the next-token targets (labels[b, t+1] != -100: zoft's
Decoder::next_token_targets, as in make_grad_golden.py), then clip_grad_norm_(MAX_GRAD_NORM),
AdamW.step() and the HF linear warm-up schedule's step. Weight decay applies to the parameters
HF's Trainer decays (Trainer.get_decay_parameter_names: not biases, not norms), which the script
checks are exactly the >= 2-D ones (zoft's ParameterRef::decay: matrices and embeddings).

Writes <golden>/<name>/adamw_run.safetensors (the final weights under their HF names, a tied
table once) and adamw_run.json (settings, the case of each step, the 10 losses before each
update and the gradient norms clip_grad_norm_ returned).

Deterministic (single-threaded torch, deterministic algorithms); the checkpoints are only read.
Usage: python3 tools/make_adamw_run_fixture.py [--dir DIR] [--only NAME ...]
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, Trainer, get_linear_schedule_with_warmup

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / "tests" / "fixtures" / "golden"
MODELS = ("opt", "gpt2", "llama", "gemma3")
CASES = ("nopad", "right", "left")
STEPS = 10
SETTINGS = dict(lr=1e-3, weight_decay=0.1, beta1=0.9, beta2=0.999, eps=1e-8, schedule="linear",
                warmup_steps=3, total_steps=STEPS, max_grad_norm=1.0)


def log(*a):
    print(*a, flush=True)


def load_case(case):
    return {k: torch.tensor(case[k], dtype=torch.int64)
            for k in ("input_ids", "attention_mask", "position_ids", "labels")}


def mean_loss(model, name, c):
    """Mean next-token cross-entropy over labels != -100 (make_grad_golden.py's loss)."""
    kw = dict(input_ids=c["input_ids"], attention_mask=c["attention_mask"], use_cache=False)
    if name != "opt":  # OPT derives positions from the mask itself
        kw["position_ids"] = c["position_ids"]
    logits = model(**kw).logits.float()
    targets = c["labels"][:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets,
                                             ignore_index=-100, reduction="mean")


def parameter_groups(model, name):
    """HF Trainer's two groups; checks that its decay set is zoft's (the >= 2-D parameters)."""
    hf_decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())  # a tied table once
    ndim_decay = {n for n, p in named if p.ndim >= 2}
    assert hf_decay & {n for n, _ in named} == ndim_decay, (name, hf_decay ^ ndim_decay)
    s = SETTINGS
    return [{"params": [p for n, p in named if n in ndim_decay], "weight_decay": s["weight_decay"]},
            {"params": [p for n, p in named if n not in ndim_decay], "weight_decay": 0.0}]


def train(d, name):
    golden = json.loads((d / "golden.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager",
                                                 dtype=torch.float32)
    model.eval()  # no dropout
    s = SETTINGS
    opt = torch.optim.AdamW(parameter_groups(model, name), lr=s["lr"],
                            betas=(s["beta1"], s["beta2"]), eps=s["eps"], foreach=False)
    sched = get_linear_schedule_with_warmup(opt, s["warmup_steps"], s["total_steps"])
    cases = {k: load_case(golden["cases"][k]) for k in CASES}
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses, norms, step_cases = [], [], []
    for t in range(STEPS):
        case = CASES[t % len(CASES)]
        opt.zero_grad(set_to_none=True)
        loss = mean_loss(model, name, cases[case])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s["max_grad_norm"])
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        norms.append(float(norm))
        step_cases.append(case)
    final = {n: p.detach().float().contiguous() for n, p in model.named_parameters()}
    # Every tensor must move (relative to its scale) by a few times the test's 1e-4 tolerance,
    # or the test could not tell a run from no run.
    moved = min(float((final[n] - initial[n]).abs().max()) / float(initial[n].abs().max())
                for n in final)
    assert moved > 3e-4, (name, moved)
    return final, losses, norms, step_cases, moved


def make(d, name):
    final, losses, norms, step_cases, moved = train(d, name)
    save_file(final, str(d / "adamw_run.safetensors"), metadata={"model": name})
    js = {"settings": SETTINGS, "cases": step_cases, "losses": losses, "grad_norms": norms,
          "transformers_version": transformers.__version__,
          "torch_version": torch.__version__.split("+")[0],
          "note": "adamw_run.safetensors: the weights after the 10 steps (make_adamw_run_fixture.py)"}
    (d / "adamw_run.json").write_text(json.dumps(js, indent=1) + "\n")
    log(f"[{name}] {len(final)} parameters; losses {losses[0]:.5f} -> {losses[-1]:.5f}; "
        f"grad norms {min(norms):.3f}..{max(norms):.3f}; least moved tensor {moved:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()

    torch.manual_seed(0)
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
