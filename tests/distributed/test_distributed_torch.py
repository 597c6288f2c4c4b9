"""DDP and FSDP2 on 2 gloo processes (loopback) against one process; resuming after a hard kill.

Every run is ``examples/distributed/train_torch.py`` (masked-LM steps on the tiny config, the same
global batch of 8 rows per step whatever the number of processes):

* one process, DDP x2 and FSDP x2 (per-layer units, gradient checkpointing) without dropout give the
  same per-step losses and final weights within the float32 tolerance table;
* an FSDP x2 run with bfloat16 mixed precision, dropout and gradient checkpointing killed (SIGKILL of
  one rank) after step 5, with checkpoints every 2 steps, resumes from step 4 and ends bit-identical
  to an uninterrupted run: losses of every step and final weights;
* the canonical checkpoint FSDP writes loads in rembert-tf with the PyTorch model's logits.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from rembert_core.serialization import open_checkpoint
from rembert_core.tolerances import assert_close

STEPS = 6
COMMON = ["--steps", str(STEPS), "--global-batch-size", "8", "--seq-len", "24", "--seed", "3"]


def _weights(path: Path) -> dict[str, np.ndarray]:
    with open_checkpoint(path) as ckpt:
        return {name: np.array(ckpt[name]) for name in ckpt.infos()}


@pytest.fixture(scope="module")
def exact_runs(tmp_path_factory: pytest.TempPathFactory, launch: ModuleType) -> dict[str, Path]:
    """One process, DDP x2 and FSDP x2 (+ gradient checkpointing), no dropout: output directories."""
    root = tmp_path_factory.mktemp("torch-exact")
    runs = {"single": (0, ["--strategy", "none"]), "ddp": (2, ["--strategy", "ddp"])}
    runs["fsdp"] = (2, ["--strategy", "fsdp", "--gradient-checkpointing"])
    for name, (nproc, extra) in runs.items():
        out = root / name
        args = [*COMMON, "--dropout", "0", *extra, "--log-json", str(out / "losses.jsonl")]
        out.mkdir()
        launch.torchrun(nproc, [*args, "--output-dir", str(out / "final")], out / "log.txt")
    return {name: root / name for name in runs}


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(exact_runs: dict[str, Path], strategy: str, launch: ModuleType) -> None:
    single = launch.read_losses(exact_runs["single"] / "losses.jsonl")
    multi = launch.read_losses(exact_runs[strategy] / "losses.jsonl")
    assert sorted(single) == sorted(multi) == list(range(1, STEPS + 1))
    for step in single:
        assert_close(multi[step], single[step], quantity="loss", cross_framework=False, name=f"loss step {step}")
    assert single[STEPS] != single[1], "the weights did not change: the comparison would prove nothing"
    expected = _weights(exact_runs["single"] / "final")
    got = _weights(exact_runs[strategy] / "final")
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name].dtype == np.float32
        assert_close(got[name], expected[name], quantity="weights", cross_framework=False, name=name)


def test_fsdp_checkpoint_is_canonical(exact_runs: dict[str, Path]) -> None:
    import json

    config = json.loads((exact_runs["fsdp"] / "final" / "config.json").read_text())
    assert config["architectures"] == ["RemBertForMaskedLM"]  # not FSDP's generated class name
    assert config["dtype"] == "float32"
    from rembert_core import build_schema
    from rembert_core.config import RemBertConfig

    schema = build_schema(RemBertConfig.from_dict(config), "masked_lm")
    assert sorted(_weights(exact_runs["fsdp"] / "final")) == sorted(schema)


def test_fsdp_checkpoint_loads_in_tensorflow(exact_runs: dict[str, Path]) -> None:
    import torch

    from rembert_tf import TFRemBertForMaskedLM
    from rembert_torch import RemBertForMaskedLM

    path = exact_runs["fsdp"] / "final"
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 256, size=(3, 17)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 12:] = 0
    pt = RemBertForMaskedLM.from_pretrained(path)
    with torch.no_grad():
        expected = pt(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    tf_model = TFRemBertForMaskedLM.from_pretrained(path)
    got = np.asarray(tf_model(ids, attention_mask=mask, training=False).logits)
    assert_close(got[mask == 1], expected[mask == 1], quantity="activations", name="TF logits of the FSDP checkpoint")


@pytest.fixture(scope="module")
def resume_runs(tmp_path_factory: pytest.TempPathFactory, launch: ModuleType) -> dict[str, Path]:
    """FSDP x2, bfloat16, dropout 0.1, checkpointing: killed after step 5 then resumed; and uninterrupted."""
    root = tmp_path_factory.mktemp("torch-resume")
    args = [*COMMON, "--strategy", "fsdp", "--bf16", "--dropout", "0.1", "--gradient-checkpointing"]
    args += ["--save-every", "2"]
    killed = root / "killed"
    full = root / "full"
    killed.mkdir()
    full.mkdir()
    ckpt = ["--checkpoint-dir", str(killed / "ckpt"), "--log-json", str(killed / "losses.jsonl")]
    first = launch.torchrun(2, [*args, *ckpt, "--fail-at-step", "5"], killed / "log1.txt", expect_ok=False)
    assert first.returncode != 0, "the run was to be killed after step 5"
    (killed / "after_kill.txt").write_text((killed / "ckpt" / "latest").read_text())
    launch.torchrun(2, [*args, *ckpt, "--output-dir", str(killed / "final")], killed / "log2.txt")
    uninterrupted = ["--checkpoint-dir", str(full / "ckpt"), "--log-json", str(full / "losses.jsonl")]
    launch.torchrun(2, [*args, *uninterrupted, "--output-dir", str(full / "final")], full / "log.txt")
    return {"killed": killed, "full": full}


def test_killed_run_left_the_last_complete_checkpoint(resume_runs: dict[str, Path], launch: ModuleType) -> None:
    killed = resume_runs["killed"]
    assert (killed / "after_kill.txt").read_text().strip() == "step-00000004"
    assert "resumed from" in (killed / "log2.txt").read_text() and "(step 4)" in (killed / "log2.txt").read_text()
    steps = [step for step, _ in launch.read_lines(killed / "losses.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 5, 6]  # step 5 ran before the kill and again after resuming
    leftovers = [p.name for p in (killed / "ckpt").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_resumed_run_is_identical_to_uninterrupted(resume_runs: dict[str, Path], launch: ModuleType) -> None:
    lines = launch.read_lines(resume_runs["killed"] / "losses.jsonl")
    full = launch.read_losses(resume_runs["full"] / "losses.jsonl")
    assert [loss for _, loss in lines] == [full[step] for step, _ in lines]  # bit for bit, step 5 both times
    expected = _weights(resume_runs["full"] / "final")
    got = _weights(resume_runs["killed"] / "final")
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert all(np.isfinite(loss) for loss in full.values())
