"""Model.load, logits and token_losses against HF transformers' golden fixtures, and the
zero-copy contract of the returned arrays."""

import numpy as np
import pytest

import zoft
from conftest import golden_case, golden_dir

ARCHITECTURES = ["opt", "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3", "llama-sharded",
                 "llama-bf16"]
CASES = ["nopad", "right", "left"]


def tolerance(model: zoft.Model, name: str) -> float:
    # The C++ golden tests' tolerances (tests/model/golden_test.cc): bf16 compute or weights.
    return 2e-2 if model.dtype == "bf16" or name == "llama-bf16" else 1e-4


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_logits_and_losses_match_transformers(name, dtype):
    model = zoft.Model.load(golden_dir(name), dtype=dtype)
    tol = tolerance(model, name)
    for case in CASES:
        ids, mask, labels, ref_logits, ref_losses, _ = golden_case(name, case)
        logits = model.logits(ids, attention_mask=mask)
        assert logits.shape == ref_logits.shape and logits.dtype == np.float32
        real = mask.astype(bool)  # pad positions hold unspecified values
        error = np.linalg.norm(logits[real] - ref_logits[real]) / np.linalg.norm(ref_logits[real])
        assert error <= tol, f"{name}/{case}: logits relative error {error:.2e}"
        # HF's per-token losses where both the position and the next token are real.
        losses = model.token_losses(ids, attention_mask=mask)
        scored = real[:, :-1] & real[:, 1:]
        np.testing.assert_allclose(losses[scored], ref_losses[scored], rtol=tol, atol=tol)


def test_loss_with_hf_labels_equals_hf_mean_loss():
    ids, mask, labels, _, _, hf_loss = golden_case("qwen3", "right")
    losses = zoft.Model.load(golden_dir("qwen3"), dtype="f32").token_losses(ids, labels, mask)
    scored = labels[:, 1:] >= 0
    assert losses[~scored].max() == 0
    assert losses[scored].mean() == pytest.approx(hf_loss, rel=1e-4)


def test_one_sequence_gives_two_dimensional_results():
    model = zoft.Model.load(golden_dir("llama"), dtype="f32")
    ids, _, _, ref_logits, _, _ = golden_case("llama", "nopad")
    one = model.logits(ids[1])
    assert one.shape == ref_logits.shape[1:]
    np.testing.assert_allclose(one, model.logits(ids)[1], rtol=1e-5, atol=1e-5)
    assert model.token_losses(ids[1]).shape == (ids.shape[1] - 1,)


def engine_buffer(array: np.ndarray):
    """The engine object whose memory `array` views (through NumPy's bases)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview), f"not a view of engine memory: {type(base)}"
    assert isinstance(base.obj, zoft.HostArray)
    return base.obj


def test_logits_are_a_view_of_engine_memory():
    model = zoft.Model.load(golden_dir("llama"), dtype="f32")
    logits = model.logits([[1, 2, 3, 4]])
    owner = engine_buffer(logits)
    assert logits.__array_interface__["data"][0] == owner.data_ptr
    second = np.asarray(owner)  # another view of the same buffer: no copy was made
    assert np.shares_memory(logits, second)
    second[0, 0, 0] = 1234.5
    assert logits[0, 0, 0] == 1234.5
    assert list(owner.shape) == [1, 4, 128]


def test_token_losses_are_a_view_of_engine_memory():
    model = zoft.Model.load(golden_dir("llama"), dtype="f32")
    losses = model.token_losses([[5, 6, 7, 8, 9]])
    owner = engine_buffer(losses)
    assert losses.__array_interface__["data"][0] == owner.data_ptr
    assert np.shares_memory(losses, np.asarray(owner))


def test_engine_memory_outlives_the_model():
    logits = zoft.Model.load(golden_dir("llama"), dtype="f32").logits([[1, 2, 3]])
    del_after = logits.copy()
    import gc
    gc.collect()
    np.testing.assert_array_equal(logits, del_after)  # the array keeps its buffer alive


def test_torch_takes_logits_without_a_copy():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: DLPack not checked")
    model = zoft.Model.load(golden_dir("llama"), dtype="f32")
    logits = model.logits([[1, 2, 3, 4]])
    t = torch.from_dlpack(logits)
    assert t.data_ptr() == engine_buffer(logits).data_ptr
    assert t.shape == (1, 4, 128) and t.dtype == torch.float32
    losses = model.token_losses([[1, 2, 3, 4]])  # a strided view: DLPack carries the strides
    tl = torch.from_dlpack(losses)
    assert tl.data_ptr() == engine_buffer(losses).data_ptr
    np.testing.assert_array_equal(tl.numpy(), losses)


def test_config_and_tokenizer(tiny_model):
    model = zoft.Model.load(tiny_model)
    assert model.dtype == "bf16"  # the Python default
    c = model.config
    assert c["model_type"] == "llama" and c["vocab_size"] == 128 and c["num_hidden_layers"] == 2
    ids = model.tokenizer.encode("Hello, zoft!")
    assert ids == list(b"Hello, zoft!")
    assert model.tokenizer.decode(ids) == "Hello, zoft!"
    assert model.logits("Hello").shape == (5, 128)  # text is encoded first


def test_a_model_without_tokenizer_scores_ids_and_says_why_it_cannot_encode():
    model = zoft.Model.load(golden_dir("llama"), dtype="f32")
    with pytest.raises(zoft.Error, match="no tokenizer.json"):
        model.tokenizer.encode("x")


def test_logits_match_transformers_live(demo_model):
    """Against transformers itself on the demo model, where transformers is installed."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: live check skipped")
    transformers = pytest.importorskip("transformers",
                                       reason="transformers is not installed: live check skipped")
    hf = transformers.AutoModelForCausalLM.from_pretrained(demo_model, torch_dtype=torch.float32)
    ids = [[1, 504, 3575, 282, 4649, 314, 7042, 30]]
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    ours = zoft.Model.load(demo_model, dtype="f32").logits(ids)
    error = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    assert error <= 1e-4, f"relative error {error:.2e}"
