#!/usr/bin/env python3
"""Make zoft's golden fixtures: tiny random-weight HF decoder models plus reference logits/losses.

Writes tests/fixtures/golden/<name>/ for every architecture in MODELS (see tools/README.md).
Deterministic: fixed seeds, single-threaded torch; re-running rewrites identical files.

Usage: python3 tools/make_golden.py [--out DIR] [--only NAME ...]
"""

import argparse
import copy
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    Qwen2Config,
    Qwen3Config,
)
from transformers.pytorch_utils import Conv1D

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures" / "golden"

VOCAB = 128
BATCH = 3
SEQ = 12
LENGTHS = (12, 7, 3)  # per-row valid lengths of the padded cases
TOKEN_SEED = 1234
# Relative tolerance (max |diff| / max |ref|) for "padded valid logits == unpadded logits".
PAD_CHECK_RTOL = 2e-5

COMMON = dict(vocab_size=VOCAB, max_position_embeddings=64)

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # 32 (not 16): with head_dim 16 and theta 1e4 the wavelengths are 6.3, 19.9, 62.8, ...
    # so high_freq_wavelen = 8 and low_freq_wavelen = 32 put one frequency in each of the
    # three llama3 branches (kept / smoothed / divided by factor).
    "original_max_position_embeddings": 32,
}

MODELS = {
    "opt": (
        OPTConfig,
        dict(
            hidden_size=64,
            num_attention_heads=4,
            ffn_dim=96,
            num_hidden_layers=2,
            activation_function="relu",
            do_layer_norm_before=True,
            word_embed_proj_dim=64,
            pad_token_id=1,
            bos_token_id=2,
            eos_token_id=2,
        ),
    ),
    "gpt2": (
        GPT2Config,
        dict(
            n_embd=64,
            n_head=4,
            n_layer=2,
            n_positions=64,
            n_inner=96,
            activation_function="gelu_new",
            bos_token_id=0,
            eos_token_id=0,
        ),
    ),
    "llama": (
        LlamaConfig,
        dict(
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=96,
            num_hidden_layers=2,
            tie_word_embeddings=False,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            rope_scaling=LLAMA3_ROPE,
        ),
    ),
    "mistral": (
        MistralConfig,
        dict(
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=96,
            num_hidden_layers=2,
            sliding_window=None,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
        ),
    ),
    "qwen2": (
        Qwen2Config,
        dict(
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=96,
            num_hidden_layers=2,
            tie_word_embeddings=True,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
        ),
    ),
    "qwen3": (
        Qwen3Config,
        dict(
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            intermediate_size=96,
            num_hidden_layers=2,
            tie_word_embeddings=True,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
        ),
    ),
    "gemma3": (
        Gemma3TextConfig,
        dict(
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=32,
            intermediate_size=96,
            num_hidden_layers=4,
            query_pre_attn_scalar=24,
            sliding_window=4,
            layer_types=["sliding_attention"] * 3 + ["full_attention"],
            rope_theta=1000000.0,
            rope_local_base_freq=10000.0,
            rope_scaling={"rope_type": "linear", "factor": 8.0},
            final_logit_softcapping=30.0,
            # HF's Gemma3Attention never passes attn_logit_softcapping to the attention function
            # (unlike Gemma2), so a value here would be silently ignored; real Gemma 3 configs
            # have null. Keep null so the fixture does not encode that quirk.
            attn_logit_softcapping=None,
            hidden_activation="gelu_pytorch_tanh",
            tie_word_embeddings=True,
            rms_norm_eps=1e-6,
        ),
    ),
}
# Gemma3: larger logits so final_logit_softcapping (30) bends them noticeably.
EMBED_STD = {"gemma3": 0.35}
MODEL_SEEDS = {"opt": 11, "gpt2": 12, "llama": 13, "mistral": 14, "qwen2": 15, "qwen3": 16, "gemma3": 17}


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- weights


@torch.no_grad()
def randomize(model, seed, gemma_norm, embed_std):
    """Overwrite every parameter (tied ones once) with seeded random values.

    Projections: N(0, 1/fan_in). Token embeddings: N(0, embed_std^2) (it sets the logit scale
    of tied models). Learned positions: N(0, 0.5^2).
    Biases: N(0, 0.1^2). Norm weights: 1 + N(0, 0.3^2), or N(0, 0.3^2) for Gemma's (1 + w) RMSNorm.
    """
    g = torch.Generator().manual_seed(seed)
    fan_in = {}
    for mname, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            fan_in[mname + ".weight"] = m.weight.shape[1]
        elif isinstance(m, Conv1D):  # GPT-2: weight is [in, out]
            fan_in[mname + ".weight"] = m.weight.shape[0]
    for name, p in model.named_parameters():  # tied parameters are yielded once
        def rnd(std):
            return torch.randn(p.shape, generator=g, dtype=torch.float32) * std

        if p.ndim >= 2:
            if name in fan_in:
                p.copy_(rnd(1.0 / math.sqrt(fan_in[name])))
            elif "embed_positions" in name or name.endswith("wpe.weight"):
                p.copy_(rnd(0.5))
            elif "embed_tokens" in name or name.endswith("wte.weight"):
                p.copy_(rnd(embed_std))
            else:
                raise RuntimeError(f"no init rule for {name} {tuple(p.shape)}")
        elif name.endswith("bias"):
            p.copy_(rnd(0.1))
        elif name.endswith("weight"):
            p.copy_(rnd(0.3) if gemma_norm else 1.0 + rnd(0.3))
        else:
            raise RuntimeError(f"no init rule for {name} {tuple(p.shape)}")


def build(name):
    cls, kw = MODELS[name]
    torch.manual_seed(MODEL_SEEDS[name])
    cfg = cls(**COMMON, **kw)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    randomize(model, MODEL_SEEDS[name], gemma_norm=name.startswith("gemma"),
              embed_std=EMBED_STD.get(name, 0.25))
    model.eval()
    return model


def clean_dir(d):
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)


def save_model(model, d, **kw):
    model.save_pretrained(d, safe_serialization=True, **kw)
    gc = d / "generation_config.json"
    if gc.exists():  # only echoes bos/eos/pad ids already in config.json
        gc.unlink()


# ----------------------------------------------------------------------------- batches


def make_cases(pad_id):
    rng = np.random.default_rng(TOKEN_SEED)
    nopad_ids = rng.integers(2, VOCAB, size=(BATCH, SEQ), dtype=np.int64)
    base = rng.integers(2, VOCAB, size=(BATCH, SEQ), dtype=np.int64)
    right_ids = np.full((BATCH, SEQ), pad_id, dtype=np.int64)
    left_ids = np.full((BATCH, SEQ), pad_id, dtype=np.int64)
    right_m = np.zeros((BATCH, SEQ), dtype=np.int64)
    left_m = np.zeros((BATCH, SEQ), dtype=np.int64)
    for b, n in enumerate(LENGTHS):
        right_ids[b, :n] = base[b, :n]
        right_m[b, :n] = 1
        left_ids[b, SEQ - n:] = base[b, :n]
        left_m[b, SEQ - n:] = 1
    cases = {
        "nopad": (nopad_ids, np.ones((BATCH, SEQ), dtype=np.int64)),
        "right": (right_ids, right_m),
        "left": (left_ids, left_m),
    }
    out = {}
    for k, (ids, m) in cases.items():
        ids = torch.from_numpy(ids)
        m = torch.from_numpy(m)
        pos = torch.clamp(torch.cumsum(m, dim=1) - 1, min=0)
        # Labels: a token is a target only if it and its predecessor are real tokens, so the
        # first real token of a left-padded row is not "predicted" from a pad position (HF's
        # plain labels=where(mask, ids, -100) would do that, making the left loss depend on
        # pad-position logits).
        prev = torch.cat([torch.zeros_like(m[:, :1]), m[:, :-1]], dim=1)
        labels = torch.where((m == 1) & (prev == 1), ids, torch.full_like(ids, -100))
        out[k] = dict(input_ids=ids, attention_mask=m, position_ids=pos, labels=labels)
    return out


@torch.no_grad()
def forward(model, name, ids, mask, pos, labels=None):
    kw = dict(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
    if name != "opt":  # OPT derives positions from the mask itself
        kw["position_ids"] = pos
    return model(**kw)


def rel_diff(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@torch.no_grad()
def run_cases(model, name, cases):
    res = {}
    for k, c in cases.items():
        out = forward(model, name, c["input_ids"], c["attention_mask"], c["position_ids"], c["labels"])
        logits = out.logits.float()
        tl = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, VOCAB), c["labels"][:, 1:].reshape(-1),
            ignore_index=-100, reduction="none").reshape(BATCH, SEQ - 1)
        n = int((c["labels"][:, 1:] != -100).sum())
        mine = float(tl.sum() / n)
        hf = float(out.loss)
        assert abs(mine - hf) <= 1e-5 * max(1.0, abs(hf)), (name, k, mine, hf)
        assert torch.isfinite(logits[c["attention_mask"] == 1]).all(), (name, k)
        logits = logits * c["attention_mask"][..., None].float()  # pad positions written as 0
        res[k] = dict(logits=logits.contiguous(), token_loss=tl.contiguous(), loss=hf)
    return res


@torch.no_grad()
def check_padding(model, name, cases, res):
    """Valid logits of right/left padded rows must equal the unpadded sequence's logits."""
    worst = 0.0
    for b, n in enumerate(LENGTHS):
        ids = cases["right"]["input_ids"][b:b + 1, :n]
        m = torch.ones_like(ids)
        pos = torch.arange(n)[None]
        ref = forward(model, name, ids, m, pos).logits[0].float()
        for k, sl in (("right", slice(0, n)), ("left", slice(SEQ - n, SEQ))):
            d = rel_diff(res[k]["logits"][b, sl], ref)
            worst = max(worst, d)
            assert d < PAD_CHECK_RTOL, f"{name}: {k}-padded row {b} differs from unpadded (rel {d:.3g})"
    # Same targets in both padded layouts -> same mean loss.
    assert abs(res["left"]["loss"] - res["right"]["loss"]) < 1e-5 * max(1.0, res["right"]["loss"]), name
    return worst


# ----------------------------------------------------------------------------- writing


def dumps(obj):
    """JSON with one line per innermost int list (one token row per line)."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def write_golden(d, name, cases, res, extra=None):
    js = {"cases": {}}
    for k, c in cases.items():
        js["cases"][k] = {
            "input_ids": c["input_ids"].tolist(),
            "attention_mask": c["attention_mask"].tolist(),
            "position_ids": c["position_ids"].tolist(),
            "labels": c["labels"].tolist(),
            "loss": res[k]["loss"],
        }
    js["transformers_version"] = transformers.__version__
    js["torch_version"] = torch.__version__.split("+")[0]
    if extra:
        js.update(extra)
    (d / "golden.json").write_text(dumps(js))
    tensors = {}
    for k in cases:
        tensors[f"logits.{k}"] = res[k]["logits"]
        tensors[f"token_loss.{k}"] = res[k]["token_loss"]
    save_file(tensors, str(d / "golden.safetensors"), metadata={"model": name})


# ----------------------------------------------------------------------------- sensitivity


@torch.no_grad()
def sensitivity(model, name, cases, res, mutate):
    """Max |diff| of nopad logits when one config feature is switched off (same weights)."""
    cfg = copy.deepcopy(model.config)
    mutate(cfg)
    m2 = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32).eval()
    m2.load_state_dict(model.state_dict())
    c = cases["nopad"]
    lg = forward(m2, name, c["input_ids"], c["attention_mask"], c["position_ids"]).logits.float()
    return float((lg - res["nopad"]["logits"]).abs().max())


def _attn_cap_50(c):
    c.attn_logit_softcapping = 50.0


def _no_final_cap(c):
    c.final_logit_softcapping = None


def _all_full(c):
    c.layer_types = ["full_attention"] * c.num_hidden_layers


def _gemma_global_default_rope(c):
    c.rope_parameters["full_attention"] = {"rope_type": "default", "rope_theta": 1000000.0}


def _gemma_local_theta_1e6(c):
    c.rope_parameters["sliding_attention"] = {"rope_type": "default", "rope_theta": 1000000.0}


def _llama_default_rope(c):
    c.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}


SENSITIVITY = {
    "gemma3": {
        "attn_logit_softcapping=50 (HF ignores it)": _attn_cap_50,
        "final_logit_softcapping=None": _no_final_cap,
        "all layers full attention": _all_full,
        "global rope without linear scaling": _gemma_global_default_rope,
        "local rope theta 1e6": _gemma_local_theta_1e6,
    },
    "llama": {"rope without llama3 scaling": _llama_default_rope},
}


# ----------------------------------------------------------------------------- main


def legacy_llama_config(cfg_path):
    """Rewrite config.json in the pre-v5 layout used by most Hub checkpoints:
    top-level rope_theta + rope_scaling instead of rope_parameters."""
    cfg = json.loads(cfg_path.read_text())
    rp = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = rp
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()

    names = list(MODELS)
    if args.only:
        names = [n for n in names if n in args.only]
    for name in names:
        d = args.out / name
        clean_dir(d)
        model = build(name)
        save_model(model, d)
        pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        cases = make_cases(pad_id)
        res = run_cases(model, name, cases)
        worst = check_padding(model, name, cases, res)

        # The saved checkpoint must reload to the same logits.
        re = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
        res2 = run_cases(re, name, cases)
        for k in cases:
            assert torch.equal(res2[k]["logits"], res[k]["logits"]), (name, k)

        write_golden(d, name, cases, res)
        lg = res["nopad"]["logits"]
        log(f"[{name}] pad check ok (max rel diff {worst:.2e}); loss nopad/right/left = "
            f"{res['nopad']['loss']:.6f}/{res['right']['loss']:.6f}/{res['left']['loss']:.6f}; "
            f"logits std {float(lg.std()):.3f} max|.| {float(lg.abs().max()):.3f}")
        for what, fn in SENSITIVITY.get(name, {}).items():
            log(f"    sensitivity: {what}: max |dlogits| = {sensitivity(model, name, cases, res, fn):.4g}")

        if name == "llama":
            ref_logits = {k: res[k]["logits"] for k in cases}
            # llama-sharded: same weights, several shards + index, legacy (v4-style) rope keys.
            ds = args.out / "llama-sharded"
            clean_dir(ds)
            save_model(model, ds, max_shard_size="100KB")
            legacy_llama_config(ds / "config.json")
            assert (ds / "model.safetensors.index.json").exists()
            assert len(list(ds.glob("model-*.safetensors"))) >= 2
            rs = AutoModelForCausalLM.from_pretrained(ds, attn_implementation="eager", dtype=torch.float32).eval()
            assert rs.config.rope_parameters == model.config.rope_parameters, rs.config.rope_parameters
            for k, v in run_cases(rs, name, cases).items():
                assert torch.equal(v["logits"], ref_logits[k]), ("llama-sharded", k)
            (ds / "golden.json").write_text(dumps({"golden_from": "llama"}))
            log("[llama-sharded] reload ok, logits identical to llama")

            # llama-bf16: weights stored as BF16; golden stays the f32 model's.
            db = args.out / "llama-bf16"
            clean_dir(db)
            mb = copy.deepcopy(model).to(torch.bfloat16)
            save_model(mb, db)
            rb = AutoModelForCausalLM.from_pretrained(db, attn_implementation="eager", dtype=torch.float32).eval()
            upc = {k: v["logits"] for k, v in run_cases(rb, name, cases).items()}  # bf16 weights, f32 math
            rbb = AutoModelForCausalLM.from_pretrained(db, attn_implementation="eager", dtype=torch.bfloat16).eval()
            bfm = {k: v["logits"] for k, v in run_cases(rbb, name, cases).items()}  # bf16 weights, bf16 math
            d_upc = max(float((upc[k] - ref_logits[k]).abs().max()) for k in cases)
            d_bfm = max(float((bfm[k] - ref_logits[k]).abs().max()) for k in cases)
            scale = max(float(ref_logits[k].abs().max()) for k in cases)
            (db / "golden.json").write_text(dumps({
                "golden_from": "llama",
                "note": "weights are BF16; golden logits are the f32 model's",
                "max_abs_diff_bf16_weights_f32_compute": d_upc,
                "max_abs_diff_bf16_weights_bf16_compute": d_bfm,
                "max_abs_ref_logit": scale,
            }))
            log(f"[llama-bf16] max |dlogits| vs f32 golden: bf16 weights+f32 math {d_upc:.4g}, "
                f"bf16 math {d_bfm:.4g} (max |logit| {scale:.3g})")

    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    log(f"total size of {args.out}: {total / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
