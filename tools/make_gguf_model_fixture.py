#!/usr/bin/env python3
"""Writes the tiny GGUF models of tests/model/gguf_import_test.cc, laid out as llama.cpp's
converter lays them out, plus transformers' logits for them.

  llama-tiny.gguf   the weights of tests/fixtures/golden/llama (Llama 3 rope scaling, untied
                    head) as arch `llama`: q/k rows permuted per head, the llama3 rope as a
                    rope_freqs.weight tensor, a byte-level BPE tokenizer (pre "smollm").
  gemma3-tiny.gguf  a 6-layer Gemma 3 (random weights, seeded, initialised as make_golden.py
                    does) as arch `gemma3`: norms stored as 1 + w, linear rope scaling on the
                    global layer, final soft-capping, a SentencePiece tokenizer with scores only.
                    Not the golden gemma3: llama.cpp's Gemma 3 hard-codes what that one varies
                    (every 6th layer global, query_pre_attn_scalar = head_dim), so its 4-layer
                    layout and query scale 24 cannot be written as GGUF.
  gguf_models.safetensors  F32 logits [3, 12, 128] of the golden "nopad" input ids:
    <model>.logits             transformers on the weights as stored (quantised ones dequantised
                               by gguf-py): what zoft must reproduce to float rounding;
    gemma3.logits_unquantised  transformers on the weights before quantisation (for llama
                               that is golden/llama's own golden.safetensors).

Tensors are stored in a mix of F32, F16, Q8_0, Q5_0, Q4_1 and Q4_0, as real files mix them.
Deterministic; rerun after changing it and commit the outputs (about 250 KB):
  python3 tools/make_gguf_model_fixture.py [--out tests/fixtures/gguf]
"""
import argparse
import json
import math
import os
import sys

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as T
from safetensors.numpy import save_file
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_golden import randomize  # noqa: E402  (same initialisation as the golden models)

GOLDEN = os.path.join(ROOT, "tests", "fixtures", "golden")
USER_DEFINED, CONTROL, BYTE, NORMAL = 4, 3, 6, 1


# ----------------------------------------------------------------------------- tensors

def store(w, name, data, qtype):
    """Adds `name` as `qtype`; returns the values a reader gets back (f32)."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    if qtype == T.F32:
        w.add_tensor(name, data)
        return data
    if qtype == T.F16:
        w.add_tensor(name, data.astype(np.float16))
        return data.astype(np.float16).astype(np.float32)
    q = gguf.quants.quantize(data, qtype)
    w.add_tensor(name, q, raw_dtype=qtype)
    return gguf.quants.dequantize(q, qtype).reshape(data.shape).astype(np.float32)


def permute(w, heads):
    """llama.cpp's permute(): HF row i + j*half of each head becomes row 2i + j."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, heads):
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(cfg):
    """rope_freqs.weight as llama.cpp's converter computes it from rope_parameters."""
    rp = cfg["rope_parameters"]
    base, dim = rp["rope_theta"], cfg["head_dim"]
    factor, low, high = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# ----------------------------------------------------------------------------- tokenizers

def byte_level_vocab():
    """128 tokens: 3 control, Ġ (space) and Ċ (newline), printable ASCII, 29 merged tokens."""
    tokens = ["<|endoftext|>", "<s>", "</s>", "\u0120", "\u010a"] + [chr(c) for c in range(33, 127)]
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("\u0120", "a"),
              ("e", "r"), ("o", "n"), ("r", "e"), ("a", "t"), ("e", "n"), ("n", "d"),
              ("\u0120", "o"), ("\u0120", "s"), ("o", "r"), ("e", "s"), ("i", "s"), ("i", "t"),
              ("a", "r"), ("\u0120", "w"), ("a", "n"), ("\u0120", "c"), ("\u0120", "b"),
              ("in", "g"), ("\u0120", "in"), ("e", "d"), ("o", "u"), ("\u0120", "f"),
              ("\u0120o", "f"), ("\u0120a", "nd")]
    tokens += [a + b for a, b in merges]
    assert len(tokens) == len(set(tokens)) == 128
    types = [CONTROL] * 3 + [NORMAL] * 125
    return tokens, types, [f"{a} {b}" for a, b in merges]


def sentencepiece_vocab():
    """128 tokens with SentencePiece scores: specials, user-defined "\\n" and "▁▁" (stored with
    spaces, as llama.cpp stores them), byte-fallback tokens for é, single characters, and BPE
    pieces ranked by score (higher merges first)."""
    special = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    user = ["\n", "\u2581\u2581"]
    byte = ["<0x21>", "<0xC3>", "<0xA9>"]
    chars = ["\u2581"] + list("abcdefghijklmnopqrstuvwxyz") + list("TSHIAW0123456789.,'")
    pieces = ["\u2581t", "he", "\u2581the", "in", "\u2581a", "er", "on", "re", "at", "en", "nd",
              "\u2581o", "\u2581s", "or", "es", "is", "it", "ar", "\u2581w", "an", "\u2581c",
              "\u2581b", "ing", "\u2581in", "ed", "ou", "\u2581f", "\u2581of", "\u2581and", "ll",
              "\u2581h", "\u2581m", "\u2581p", "\u2581d", "\u2581T", "\u2581The", "\u2581I",
              "le", "st", "ve", "\u2581to", "al", "om", "\u2581\u2581\u2581", "as", "ion", "ic",
              "ly", "\u2581wa", "\u2581was", "\u2581her", "\u2581his", "ent", "\u2581re", "her",
              "\u2581n", "\u2581e", "\u2581y", "\u2581you", "\u2581l", "\u2581S", "\u2581A",
              "ch", "ut", "ay", "ow", "\u2581be", "\u2581he", "\u2581it", "\u2581H", "\u2581W"]
    tokens = special + user + byte + chars + pieces
    assert len(tokens) == len(set(tokens)) == 128, len(tokens)
    types = ([CONTROL] * len(special) + [USER_DEFINED] * len(user) + [BYTE] * len(byte) +
             [NORMAL] * (len(chars) + len(pieces)))
    # llama.cpp's scores: -1000 for control and user-defined pieces, 0 for bytes.
    scores = ([-1000.0] * (len(special) + len(user)) + [0.0] * len(byte) +
              [-200.0] * len(chars) + [-float(i) for i in range(len(pieces))])
    return tokens, types, scores


def add_tokenizer_gpt2(w, bos, eos):
    tokens, types, merges = byte_level_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_unk_token_id(0)
    w.add_pad_token_id(eos)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(False)


def add_tokenizer_spm(w):
    tokens, types, scores = sentencepiece_vocab()
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list([t.replace("\u2581", " ") if ty == USER_DEFINED else t
                      for t, ty in zip(tokens, types)])
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)


# ----------------------------------------------------------------------------- models

def hf_logits(cfg_cls, cfg, state, ids):
    model = AutoModelForCausalLM.from_config(cfg_cls(**cfg), attn_implementation="eager",
                                             dtype=torch.float32)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()},
                                                strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.float().numpy()


LLAMA_TYPES = {  # (layer, role) -> storage type
    "token_embd": T.F32, "output": T.F16,
    (0, "attn_q"): T.F32, (0, "attn_k"): T.F32, (0, "attn_v"): T.F16, (0, "attn_output"): T.Q8_0,
    (0, "ffn_gate"): T.Q8_0, (0, "ffn_up"): T.Q8_0, (0, "ffn_down"): T.Q8_0,
    (1, "attn_q"): T.Q8_0, (1, "attn_k"): T.Q8_0, (1, "attn_v"): T.Q5_0, (1, "attn_output"): T.Q4_1,
    (1, "ffn_gate"): T.Q4_0, (1, "ffn_up"): T.Q8_0, (1, "ffn_down"): T.Q8_0,
}
LLAMA_ROLES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
               "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def write_llama(path, ids):
    cfg = json.load(open(os.path.join(GOLDEN, "llama", "config.json")))
    hf = {k: v.numpy() for k, v in load_file(os.path.join(GOLDEN, "llama", "model.safetensors")).items()}
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_name("zoft tiny llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_vocab_size(cfg["vocab_size"])
    add_tokenizer_gpt2(w, cfg["bos_token_id"], cfg["eos_token_id"])

    back = {}  # HF name -> what a reader gets back, in HF layout
    w.add_tensor("rope_freqs.weight", llama3_rope_factors(cfg))
    back["model.embed_tokens.weight"] = store(w, "token_embd.weight", hf["model.embed_tokens.weight"], T.F32)
    back["lm_head.weight"] = store(w, "output.weight", hf["lm_head.weight"], T.F16)
    back["model.norm.weight"] = store(w, "output_norm.weight", hf["model.norm.weight"], T.F32)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        back[p + "input_layernorm.weight"] = store(w, f"blk.{i}.attn_norm.weight", hf[p + "input_layernorm.weight"], T.F32)
        back[p + "post_attention_layernorm.weight"] = store(w, f"blk.{i}.ffn_norm.weight", hf[p + "post_attention_layernorm.weight"], T.F32)
        for role, hf_role in LLAMA_ROLES.items():
            x = hf[p + hf_role + ".weight"]
            n = {"attn_q": heads, "attn_k": kv_heads}.get(role)
            got = store(w, f"blk.{i}.{role}.weight", permute(x, n) if n else x, LLAMA_TYPES[(i, role)])
            back[p + hf_role + ".weight"] = unpermute(got, n) if n else got
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    cfg = {k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version", "dtype")}
    return hf_logits(LlamaConfig, cfg, back, ids)


GEMMA_CFG = dict(vocab_size=128, hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                 head_dim=32, intermediate_size=64, num_hidden_layers=6, max_position_embeddings=64,
                 query_pre_attn_scalar=32, sliding_window=4,
                 layer_types=["sliding_attention"] * 5 + ["full_attention"],
                 rope_theta=1000000.0, rope_local_base_freq=10000.0,
                 rope_scaling={"rope_type": "linear", "factor": 8.0},
                 final_logit_softcapping=30.0, attn_logit_softcapping=None,
                 hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, rms_norm_eps=1e-6,
                 bos_token_id=2, eos_token_id=1, pad_token_id=0)
GEMMA_NAMES = {  # HF suffix -> (GGUF role, storage type for even / odd layers)
    "input_layernorm": ("attn_norm", T.F32, T.F32),
    "self_attn.q_proj": ("attn_q", T.Q8_0, T.F16),
    "self_attn.k_proj": ("attn_k", T.Q8_0, T.F32),
    "self_attn.v_proj": ("attn_v", T.Q5_0, T.Q8_0),
    "self_attn.o_proj": ("attn_output", T.Q4_0, T.Q8_0),
    "self_attn.q_norm": ("attn_q_norm", T.F32, T.F32),
    "self_attn.k_norm": ("attn_k_norm", T.F32, T.F32),
    "post_attention_layernorm": ("post_attention_norm", T.F32, T.F32),
    "pre_feedforward_layernorm": ("ffn_norm", T.F32, T.F32),
    "mlp.gate_proj": ("ffn_gate", T.Q8_0, T.Q4_1),
    "mlp.up_proj": ("ffn_up", T.Q8_0, T.Q8_0),
    "mlp.down_proj": ("ffn_down", T.Q4_1, T.Q8_0),
    "post_feedforward_layernorm": ("post_ffw_norm", T.F32, T.F32),
}


def write_gemma3(path, ids):
    torch.manual_seed(18)
    model = AutoModelForCausalLM.from_config(Gemma3TextConfig(**GEMMA_CFG), dtype=torch.float32)
    randomize(model, 18, gemma_norm=True, embed_std=0.35)
    hf = {k: v.numpy() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    c = GEMMA_CFG
    w = gguf.GGUFWriter(path, arch="gemma3")
    w.add_name("zoft tiny gemma3")
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_rope_freq_base(c["rope_theta"])
    w.add_sliding_window(c["sliding_window"])
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(c["rope_scaling"]["factor"])
    w.add_final_logit_softcapping(c["final_logit_softcapping"])
    add_tokenizer_spm(w)

    back = {"model.embed_tokens.weight": store(w, "token_embd.weight", hf["model.embed_tokens.weight"], T.F16)}
    back["model.norm.weight"] = store(w, "output_norm.weight", hf["model.norm.weight"] + 1, T.F32) - 1
    for i in range(c["num_hidden_layers"]):
        for suffix, (role, even, odd) in GEMMA_NAMES.items():
            name = f"model.layers.{i}.{suffix}.weight"
            plus_one = role.endswith("norm")  # llama.cpp: every *norm.weight stored as 1 + w
            got = store(w, f"blk.{i}.{role}.weight", hf[name] + (1 if plus_one else 0), odd if i % 2 else even)
            back[name] = got - 1 if plus_one else got
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf_logits(Gemma3TextConfig, GEMMA_CFG, back, ids), hf_logits(Gemma3TextConfig, GEMMA_CFG, hf, ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "gguf"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    ids = json.load(open(os.path.join(GOLDEN, "llama", "golden.json")))["cases"]["nopad"]["input_ids"]
    llama = write_llama(os.path.join(args.out, "llama-tiny.gguf"), ids)
    gemma, gemma_f32 = write_gemma3(os.path.join(args.out, "gemma3-tiny.gguf"), ids)
    golden = load_file(os.path.join(GOLDEN, "llama", "golden.safetensors"))["logits.nopad"].numpy()
    print("llama: max |logit - golden| from quantisation", float(np.abs(llama - golden).max()))
    print("gemma3: max |logit - unquantised|", float(np.abs(gemma - gemma_f32).max()),
          "logit std", float(gemma_f32.std()))
    save_file({"llama.logits": llama, "gemma3.logits": gemma, "gemma3.logits_unquantised": gemma_f32},
              os.path.join(args.out, "gguf_models.safetensors"))
    total = 0
    for name in ("llama-tiny.gguf", "gemma3-tiny.gguf", "gguf_models.safetensors"):
        size = os.path.getsize(os.path.join(args.out, name))
        total += size
        print(name, size, "bytes")
    print("total", total, "bytes")


if __name__ == "__main__":
    main()
