#!/usr/bin/env python3
"""Load an adapter directory with peft.PeftModel.from_pretrained and print its logits.

Checks that the adapter zoft wrote is one PEFT reads as it is: PeftModel.from_pretrained on the
base (transformers, f32, eager attention) must load every adapter tensor (no missing LoRA keys,
no unexpected keys), then the logits of one sequence are written as JSON for the caller to
compare with zoft's (tests/train/lora_train_test.cc), together with how far they are from the
base model's (the adapter must change them).

Usage: python3 tools/check_peft_adapter.py BASE ADAPTER --ids 1,2,3 --out logits.json
"""

import argparse
import json
import sys

import torch
import transformers
from peft import PeftModel, set_peft_model_state_dict
from peft.utils import load_peft_weights
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()

    ids = torch.tensor([[int(t) for t in args.ids.split(",")]])
    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32,
                                                attn_implementation="eager")
    base.eval()
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits.float()
    model = PeftModel.from_pretrained(base, args.adapter)
    model.eval()
    # from_pretrained only warns about keys it could not place: check that none was left out.
    weights = load_peft_weights(args.adapter)
    result = set_peft_model_state_dict(model, weights)
    missing = [k for k in result.missing_keys if "lora_" in k]
    assert not missing, f"adapter tensors PEFT expected but did not find: {missing[:5]}"
    assert not result.unexpected_keys, f"tensors PEFT did not expect: {result.unexpected_keys[:5]}"
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    effect = float((logits - base_logits).abs().max())
    with open(args.out, "w") as f:
        json.dump({"logits": logits.reshape(-1).tolist(), "adapter_effect": effect}, f)
    print(f"PEFT loaded {len(weights)} adapter tensors; max |logit change| {effect:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
