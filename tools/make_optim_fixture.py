#!/usr/bin/env python3
"""Writes tests/fixtures/optim/adamw.safetensors: 10 steps of torch.optim.AdamW / SGD with HF's
learning-rate schedules and torch.nn.utils.clip_grad_norm_, for tests/optim/torch_fixture_test.cc.

Tensors:
  init.<p>            the parameters before step 0 (p = w, b, norm)
  grad.<t>.<p>        the gradient given at step t (before clipping), t = 0..9
  <run>.<t>.<p>       the parameters after step t of run <run>
  <run>.grad_norm     [10] what clip_grad_norm_ returned at each step
Metadata "runs": JSON list of the runs' settings (the C++ test reads them from here).
w is a matrix (weight decay applies, as HF's Trainer decays it); b and norm are a bias and a norm
weight (no decay). Usage: python3 tools/make_optim_fixture.py [OUT]
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

STEPS = 10
RUNS = [
    dict(name="adamw_linear", method="adamw", lr=1e-2, weight_decay=0.1, schedule="linear",
         warmup_steps=3, total_steps=STEPS, max_grad_norm=1.0),
    dict(name="adamw_cosine", method="adamw", lr=3e-3, weight_decay=0.05, beta1=0.8, beta2=0.95,
         eps=1e-6, schedule="cosine", warmup_steps=2, total_steps=STEPS, max_grad_norm=2.0),
    dict(name="sgd_momentum", method="sgd", lr=5e-2, weight_decay=0.01, momentum=0.9,
         dampening=0.1, schedule="constant", warmup_steps=2, total_steps=STEPS, max_grad_norm=1.0),
    dict(name="sgd_nesterov", method="sgd", lr=2e-2, weight_decay=0.0, momentum=0.5,
         nesterov=True, schedule="linear", warmup_steps=0, total_steps=STEPS, max_grad_norm=0.0),
]
SCHEDULES = {
    "linear": lambda opt, r: get_linear_schedule_with_warmup(opt, r["warmup_steps"], r["total_steps"]),
    "cosine": lambda opt, r: get_cosine_schedule_with_warmup(opt, r["warmup_steps"], r["total_steps"]),
    "constant": lambda opt, r: get_constant_schedule_with_warmup(opt, r["warmup_steps"]),
}


def make_inputs():
    g = torch.Generator().manual_seed(1234)
    init = {"w": torch.randn(16, 40, generator=g) * 0.5, "b": torch.randn(40, generator=g) * 0.1,
            "norm": 1.0 + 0.1 * torch.randn(16, generator=g)}
    # Gradient scales that put the global norm on both sides of max_grad_norm.
    scales = [0.01, 0.05, 0.2, 0.02, 0.15, 0.01, 0.3, 0.03, 0.08, 0.004]
    grads = [{k: torch.randn(v.shape, generator=g) * s for k, v in init.items()} for s in scales]
    return init, grads


def run(r, init, grads):
    params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    groups = [{"params": [params["w"]], "weight_decay": r["weight_decay"]},
              {"params": [params["b"], params["norm"]], "weight_decay": 0.0}]
    if r["method"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=r["lr"], betas=(r.get("beta1", 0.9), r.get("beta2", 0.999)),
                                eps=r.get("eps", 1e-8), foreach=False)
    else:
        opt = torch.optim.SGD(groups, lr=r["lr"], momentum=r["momentum"],
                              dampening=r.get("dampening", 0.0), nesterov=r.get("nesterov", False),
                              foreach=False)
    sched = SCHEDULES[r["schedule"]](opt, r)
    out, norms = {}, []
    for t, step_grads in enumerate(grads):
        for k, p in params.items():
            p.grad = step_grads[k].clone()
        max_norm = r["max_grad_norm"]
        # max_grad_norm 0 = no clipping (the C++ API still measures the norm); inf never clips.
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm if max_norm > 0 else float("inf"))
        norms.append(float(norm))
        opt.step()
        sched.step()
        for k, p in params.items():
            out[f"{r['name']}.{t}.{k}"] = p.detach().clone()
    out[f"{r['name']}.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    return out


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "tests/fixtures/optim/adamw.safetensors"
    init, grads = make_inputs()
    tensors = {f"init.{k}": v for k, v in init.items()}
    for t, step_grads in enumerate(grads):
        tensors.update({f"grad.{t}.{k}": v for k, v in step_grads.items()})
    for r in RUNS:
        tensors.update(run(r, init, grads))
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"runs": json.dumps(RUNS), "steps": str(STEPS),
            "torch": torch.__version__, "transformers": __import__("transformers").__version__}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    print(f"wrote {path} ({len(tensors)} tensors)")


if __name__ == "__main__":
    main()
