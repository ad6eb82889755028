#!/usr/bin/env python3
"""Make the LoRA fixtures: PEFT adapters on the golden models, with PEFT's logits and gradients.

For each architecture in CASES, loads the golden base model (tests/fixtures/golden/<name>, made by
make_golden.py), wraps it with peft.get_peft_model(LoraConfig(...)) and gives every lora_A /
lora_B a nonzero random value (PEFT initialises B to zero, which would make the adapter a no-op
and its A gradients zero). Writes tests/fixtures/lora/<name>/:

- adapter/: the adapter as peft's save_pretrained writes it (adapter_config.json +
  adapter_model.safetensors, PEFT's tensor names);
- lora_golden.safetensors: F32 `logits` [3,12,128] of the `right` (padded) golden case through
  PeftModel (0 where mask == 0), and `grad.<PEFT tensor name>` = d(mean next-token CE)/d(lora
  tensor) by autograd, the base frozen;
- lora_golden.json: the loss, the number of targets, the merged model's max |logit - PEFT logit|
  (merge_and_unload: the reference for `zoft merge`), versions.

Deterministic (fixed seeds, single-threaded torch). Usage:
    python3 tools/make_lora_golden.py [--only NAME ...]
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "fixtures" / "golden"
OUT = REPO / "tests" / "fixtures" / "lora"
SEED = 4321
LORA_STD = 0.05  # the adapters' random values: a delta comparable to the 0.02-scale base weights

# Each architecture's targets by the module names its HF model (and zoft's table) uses; the
# settings vary (rank, rsLoRA, a subset of modules, GPT-2's fan_in_fan_out Conv1D layers).
CASES = {
    "llama": dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                     "gate_proj", "up_proj", "down_proj"]),
    "qwen3": dict(r=4, lora_alpha=8, use_rslora=True, lora_dropout=0.1,
                  target_modules=["q_proj", "v_proj", "down_proj"]),
    "gemma3": dict(r=2, lora_alpha=6, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"]),
    "opt": dict(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "out_proj",
                                                    "fc1", "fc2"]),
    "gpt2": dict(r=3, lora_alpha=5, fan_in_fan_out=True,
                 target_modules=["c_attn", "c_proj", "c_fc"]),
}


def log(*a):
    print(*a, flush=True)


def golden_case(name):
    golden = json.loads((GOLDEN / name / "golden.json").read_text())
    c = golden["cases"]["right"]
    return {k: torch.tensor(c[k], dtype=torch.int64)
            for k in ("input_ids", "attention_mask", "position_ids", "labels")}


def forward_logits(model, name, c):
    kw = dict(input_ids=c["input_ids"], attention_mask=c["attention_mask"], use_cache=False)
    if name != "opt":  # OPT derives positions from the mask itself
        kw["position_ids"] = c["position_ids"]
    return model(**kw).logits.float()


def mean_loss(logits, c):
    vocab = logits.shape[-1]
    targets = c["labels"][:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab), targets,
                                             ignore_index=-100, reduction="mean")
    return loss, int((targets != -100).sum())


def make(name):
    base = AutoModelForCausalLM.from_pretrained(GOLDEN / name, attn_implementation="eager",
                                                dtype=torch.float32)
    config = LoraConfig(task_type="CAUSAL_LM", **CASES[name])
    model = get_peft_model(base, config)
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * LORA_STD)
    model.eval()  # no dropout: autograd still runs
    c = golden_case(name)
    logits = forward_logits(model, name, c)
    loss, targets = mean_loss(logits, c)
    loss.backward()

    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    model.save_pretrained(d / "adapter")
    # The model card is not needed; the base path is made relative to the repository and the
    # targets sorted so that the fixture does not depend on where or how it was generated.
    (d / "adapter" / "README.md").unlink(missing_ok=True)
    config_path = d / "adapter" / "adapter_config.json"
    saved = json.loads(config_path.read_text())
    saved["base_model_name_or_path"] = f"tests/fixtures/golden/{name}"
    saved["target_modules"] = sorted(saved["target_modules"])  # PEFT saves a set's order
    config_path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")

    tensors = {"logits": (logits.detach() * c["attention_mask"][..., None]).contiguous()}
    for pname, p in model.named_parameters():
        if "lora_" not in pname:
            continue
        assert p.grad is not None, pname
        key = pname.replace(".default", "")  # PEFT's saved name drops the adapter name
        tensors["grad." + key] = (p.grad.detach().float() + 0.0).contiguous()
    save_file(tensors, str(d / "lora_golden.safetensors"), metadata={"model": name})

    merged = model.merge_and_unload()
    with torch.no_grad():
        merged_logits = forward_logits(merged, name, c)
    mask = c["attention_mask"][..., None].bool()
    merge_diff = float(((merged_logits - logits.detach()).abs() * mask).max())
    js = {"base": f"golden/{name}", "case": "right", "loss": float(loss.detach()),
          "targets": targets, "merged_max_abs_logit_diff": merge_diff,
          "peft_version": peft.__version__, "transformers_version": transformers.__version__,
          "torch_version": torch.__version__.split("+")[0]}
    (d / "lora_golden.json").write_text(json.dumps(js, indent=1) + "\n")
    n = sum(1 for k in tensors if k.startswith("grad."))
    log(f"[{name}] {n} LoRA tensors, loss {js['loss']:.6f}, merged vs PEFT {merge_diff:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    for name in CASES:
        if args.only and name not in args.only:
            continue
        make(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
