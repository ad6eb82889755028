"""zoft.train against `zoft train`: the same run, on_log, a dict recipe, and Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import zoft
from conftest import REPO, PythonChild


def recipe(model: str, output_dir: str, steps: int = 4) -> dict:
    """MeZO on the tiny model with the fine-food task: a few steps of well under a second."""
    return {
        "model": {"path": model, "dtype": "f32"},
        "data": {"train": os.path.join(REPO, "tests/fixtures/data/fine_foods_train.jsonl"),
                 "eval": os.path.join(REPO, "tests/fixtures/data/fine_foods_train.jsonl"),
                 "train_samples": 32, "eval_samples": 8, "max_seq_length": 32},
        "task": {"file": os.path.join(REPO, "recipes/tasks/fine_foods.yaml")},
        "optim": {"method": "mezo-sgd", "lr": 1e-3, "eps": 1e-3},
        "trainer": {"steps": steps, "batch_size": 4, "save_interval": 2, "seed": 1,
                    "output_dir": output_dir, "eval_before": True},
        "logging": {"log_interval": 1, "tensorboard": False},
    }


def test_train_equals_the_cli_run(cli, tiny_model, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(recipe(tiny_model, str(tmp_path / "cli"))))
    r = subprocess.run([cli, "train", str(path), "--json", "--optim.lr", "2e-3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = json.loads(r.stdout.strip().splitlines()[-1])

    logged = []
    result = zoft.train(str(path), on_log=lambda step, m: logged.append((step, m)),
                        trainer__output_dir=str(tmp_path / "py"), overrides={"optim.lr": 2e-3})
    assert result.steps == ref["steps"] == 4 and not result.stopped
    assert result.final_train_loss == ref["final_train_loss"]  # the same engine, bit for bit
    assert result.eval_after == ref["eval_after"] and result.eval_before == ref["eval_before"]
    assert result.checkpoint == str(tmp_path / "py" / "checkpoint-4")
    assert os.path.isfile(os.path.join(result.checkpoint, "model.safetensors"))
    # on_log saw every row of metrics.jsonl.
    with open(tmp_path / "py" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert [s for s, _ in logged] == [row["step"] for row in rows]
    assert logged == result.history
    assert any("train/loss" in m for _, m in logged)


def test_a_dict_recipe_and_its_errors(tiny_model, tmp_path):
    result = zoft.train(recipe(tiny_model, str(tmp_path / "run"), steps=2))
    assert result.steps == 2 and result.resumed_from == -1
    again = zoft.train(recipe(tiny_model, str(tmp_path / "run"), steps=3))
    assert again.resumed_from == 2 and again.steps == 3  # resumes as `zoft train` does
    with pytest.raises(zoft.Error, match="optim.lr"):
        zoft.train(recipe(tiny_model, str(tmp_path / "bad")), optim__lr="fast")
    with pytest.raises(zoft.Error, match="no_such_key|not a key|unknown"):
        zoft.train(recipe(tiny_model, str(tmp_path / "bad")), overrides={"trainer.no_such_key": 1})


def test_an_exception_in_on_log_stops_the_run(tiny_model, tmp_path):
    def on_log(step, metrics):
        raise ValueError("from the callback")

    with pytest.raises(ValueError, match="from the callback"):
        zoft.train(recipe(tiny_model, str(tmp_path / "run")), on_log=on_log)


def test_ctrl_c_stops_cleanly_with_a_checkpoint(tiny_model, tmp_path):
    out = tmp_path / "run"
    r = recipe(tiny_model, str(out), steps=100000)
    r["trainer"]["save_interval"] = 0  # the only checkpoint is the one Ctrl-C leaves
    r["trainer"]["eval_before"] = False
    script = textwrap.dedent(f"""
        import json, sys, zoft
        def on_log(step, metrics):
            if step == 3:
                print("running", flush=True)
        result = zoft.train(json.loads({json.dumps(json.dumps(r))}), on_log=on_log)
        print(json.dumps({{"stopped": result.stopped, "steps": result.steps,
                          "checkpoint": result.checkpoint}}), flush=True)
    """)
    child = PythonChild(script)
    assert child.line() == "running"
    time.sleep(0.2)
    child.proc.send_signal(signal.SIGINT)
    returncode, stdout, stderr = child.finish()
    assert returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["stopped"] and 3 <= summary["steps"] < 100000
    step = summary["steps"]
    assert summary["checkpoint"] == str(out / f"checkpoint-{step}")
    assert f"stopped after step {step}" in stderr
    with open(out / f"checkpoint-{step}" / "trainer_state.json") as f:
        assert json.load(f)["step"] == step
    # The checkpoint is complete: the run resumes from it.
    r["trainer"]["steps"] = step + 1
    resumed = zoft.train(r)
    assert resumed.resumed_from == step and resumed.steps == step + 1
