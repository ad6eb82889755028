"""Model.load's placement keywords are the CLI's flags: max_memory / offload_dir stream layers
from disk with the plan `zoft generate --max-memory` makes and the same results; device="cuda"
runs where the build and the machine have a GPU and is otherwise the CLI's one-line refusal."""

import re

import numpy as np
import pytest

import zoft
from test_cli_parity import cli_error, run_cli

PROMPT = "Hello world"


def plan_lines(stderr: str) -> list:
    """The plan's lines that say where each block lives (not the measured disk speeds)."""
    return [line.strip() for line in stderr.splitlines()
            if re.match(r"\s*(resident on|streamed from|ram slots|gpu slots)", line)]


@pytest.fixture(scope="module")
def smallest_budget(cli, tiny_model, tmp_path_factory) -> str:
    """The smallest cpu= budget for the tiny model, read from the error a too-small one gives
    (the same message from Python and from the CLI)."""
    offload_dir = str(tmp_path_factory.mktemp("offload"))
    with pytest.raises(zoft.Error) as e:
        zoft.Model.load(tiny_model, dtype="f32", max_memory="cpu=1KiB", offload_dir=offload_dir)
    assert str(e.value) == cli_error(cli, "generate", "--model", tiny_model, "--prompt", PROMPT,
                                     "--dtype", "f32", "--max-memory", "cpu=1KiB",
                                     "--offload-dir", offload_dir)
    return re.search(r"give at least (cpu=\S+)$", str(e.value)).group(1)


def test_offload_streams_layers_as_the_cli_does(cli, tiny_model, smallest_budget, tmp_path,
                                                capfd):
    resident = zoft.Model.load(tiny_model, dtype="f32")
    capfd.readouterr()
    model = zoft.Model.load(tiny_model, dtype="f32", max_memory=smallest_budget,
                            offload_dir=str(tmp_path), prefetch=1)
    ours = plan_lines(capfd.readouterr().err)
    assert any(line.startswith("streamed from disk: blocks") for line in ours), ours

    r = run_cli(cli, "generate", "--model", tiny_model, "--prompt", PROMPT, "--dtype", "f32",
                "--max-new-tokens", "16", "--max-memory", smallest_budget,
                "--offload-dir", str(tmp_path), "--prefetch", "1")
    assert plan_lines(r.stderr.decode()) == ours
    text = model.generate(PROMPT, max_new_tokens=16)
    assert r.stdout.decode("utf-8", errors="replace") == text + "\n"
    # Streaming changes where the weights live, not what is computed.
    ids = [[1, 5, 9, 13, 17, 21, 25, 29]]
    np.testing.assert_array_equal(model.logits(ids), resident.logits(ids))
    np.testing.assert_array_equal(model.token_losses(ids), resident.token_losses(ids))
    assert text == resident.generate(PROMPT, max_new_tokens=16)


def test_a_budget_that_holds_everything_streams_nothing(tiny_model, tmp_path, capfd):
    model = zoft.Model.load(tiny_model, dtype="f32", max_memory="cpu=1GiB",
                            offload_dir=str(tmp_path))
    assert "everything is resident" in capfd.readouterr().err
    assert model.generate(PROMPT, max_new_tokens=4) == zoft.Model.load(
        tiny_model, dtype="f32").generate(PROMPT, max_new_tokens=4)


@pytest.mark.parametrize("kwargs, flags", [
    ({"max_memory": "ram=2GiB"}, ["--max-memory", "ram=2GiB"]),
    ({"max_memory": "cpu=lots"}, ["--max-memory", "cpu=lots"]),
    ({"threads": -3}, ["--threads", "-3"]),
    ({"prefetch": -1}, ["--prefetch", "-1"]),
    ({"device": "cuda", "max_memory": "cpu=1GiB"}, ["--device", "cuda", "--max-memory", "cpu=1GiB"]),
])
def test_bad_placement_is_the_cli_error(cli, tiny_model, kwargs, flags):
    with pytest.raises(zoft.Error) as e:
        zoft.Model.load(tiny_model, dtype="f32", **kwargs)
    cli_message = cli_error(cli, "generate", "--model", tiny_model, "--prompt", PROMPT,
                            "--dtype", "f32", *flags)
    if kwargs.get("device") == "cuda" and str(e.value) != cli_message:
        # The package is a CPU build unless built with ZOFT_CUDA, the CLI may have the backend:
        # then each names its own reason for not running on cuda here.
        assert re.fullmatch(r"--device cuda: .*; use --device cpu", str(e.value)), str(e.value)
        assert re.fullmatch(r"--device cuda: .*", cli_message), cli_message
    else:
        assert str(e.value) == cli_message


CUDA_REFUSAL = re.compile(
    r"--device cuda: (this build has no CUDA backend \(rebuild with -DZOFT_CUDA=ON and the CUDA "
    r"toolkit\)|no CUDA device found \(cudaGetDeviceCount reports none\)); use --device cpu")


def test_device_cuda_runs_on_the_gpu_or_says_why_not(tiny_model):
    """As `zoft generate --device cuda`: the weights on the GPU and the CPU's results within
    float tolerance, or, without a CUDA build or a GPU, the CLI's reason (not a crash, and not
    the refusal of a CPU-only command)."""
    try:
        gpu = zoft.Model.load(tiny_model, dtype="f32", device="cuda")
    except zoft.Error as e:
        assert CUDA_REFUSAL.fullmatch(str(e)), str(e)
        return
    assert gpu.device == "cuda"
    cpu = zoft.Model.load(tiny_model, dtype="f32")
    ids = [[1, 5, 9, 13, 17, 21, 25, 29]]
    np.testing.assert_allclose(gpu.logits(ids), cpu.logits(ids), rtol=1e-4, atol=1e-4)
    with pytest.raises(zoft.Error) as e:
        zoft.evaluate(gpu, task="x", data="y")
    assert str(e.value) == ("--task on --device cuda runs through the GPU tier only: add "
                            "--max-memory gpu=...")


def test_task_evaluation_of_an_offloaded_model_fails_as_the_cli(cli, tiny_model, tmp_path):
    model = zoft.Model.load(tiny_model, dtype="f32", max_memory="cpu=1GiB",
                            offload_dir=str(tmp_path))
    with pytest.raises(zoft.Error) as e:
        zoft.evaluate(model, task="recipes/tasks/fine_foods.yaml", data="x.jsonl")
    assert str(e.value) == cli_error(cli, "eval", "--model", tiny_model, "--data", "x.jsonl",
                                     "--task", "recipes/tasks/fine_foods.yaml", "--dtype", "f32",
                                     "--max-memory", "cpu=1GiB")
