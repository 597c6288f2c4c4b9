"""rembert_torch.distributed in one process: training-state round trip, atomicity, errors.

The multi-process behaviour (DDP, FSDP2, resuming under torchrun) is tested by
``tests/distributed`` (``nox -s tests-distributed``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rembert_core import CheckpointError, ConfigError, RemBertConfig
from rembert_core.serialization import open_checkpoint
from rembert_torch import RemBertForMaskedLM, RemBertForSequenceClassification
from rembert_torch.distributed import (
    LATEST_NAME,
    TRAINING_STATE_NAME,
    all_reduce_mean,
    apply_ddp,
    apply_fsdp,
    gather_full_state_dict,
    init_distributed,
    latest_training_state,
    load_training_state,
    save_distributed,
    save_training_state,
    unwrap_model,
)

CONFIG = dict(
    vocab_size=64,
    hidden_size=16,
    num_attention_heads=2,
    num_hidden_layers=2,
    input_embedding_size=8,
    output_embedding_size=12,
    intermediate_size=24,
    max_position_embeddings=16,
)


def _model(seed: int = 0) -> RemBertForMaskedLM:
    torch.manual_seed(seed)
    return RemBertForMaskedLM(RemBertConfig(**CONFIG)).train()


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (2, 7), generator=g)
    loss = model(input_ids=ids, labels=ids).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def test_single_process_context(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed, ctx.device.type) == (0, 1, True, False, "cpu")
    value = torch.tensor([1.5, 2.0])
    assert torch.equal(all_reduce_mean(value), value)


def test_resume_matches_uninterrupted_training(tmp_path: Path) -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in (1, 2):
        _step(model, optimizer, step)
    path = save_training_state(tmp_path, model, optimizer, 2, extra={"note": "after two steps"})
    assert path == tmp_path / "step-00000002"
    expected = [_step(model, optimizer, step) for step in (3, 4)]

    resumed = _model(seed=7)  # other weights, fresh optimizer: everything must come from the checkpoint
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=1e-2)
    state = load_training_state(tmp_path, resumed, resumed_optimizer)
    assert (state.step, state.directory, state.extra) == (2, path, {"note": "after two steps"})
    assert [_step(resumed, resumed_optimizer, step) for step in (3, 4)] == expected
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_rng_state_is_restored(tmp_path: Path) -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(5)
    random.seed(5)
    save_training_state(tmp_path, model, optimizer, 0)
    expected = (torch.rand(4), random.random())
    torch.manual_seed(6)
    random.seed(6)
    load_training_state(tmp_path, model, optimizer)
    got = (torch.rand(4), random.random())
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1]


def test_checkpoint_model_is_canonical_and_latest_is_updated(tmp_path: Path) -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters())
    for step in (1, 2, 3):
        _step(model, optimizer, step)
        save_training_state(tmp_path, model, optimizer, step, keep_last=2)
    assert (tmp_path / LATEST_NAME).read_text().strip() == "step-00000003"
    assert latest_training_state(tmp_path) == tmp_path / "step-00000003"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST_NAME, "step-00000002", "step-00000003"]
    loaded = RemBertForMaskedLM.from_pretrained(tmp_path / "step-00000003")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    config = json.loads((tmp_path / "step-00000003" / "config.json").read_text())
    assert config["architectures"] == ["RemBertForMaskedLM"]


def test_crashed_save_leaves_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters())
    save_training_state(tmp_path, model, optimizer, 1)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_training_state(tmp_path, model, optimizer, 2)
    monkeypatch.undo()
    assert latest_training_state(tmp_path) == tmp_path / "step-00000001"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST_NAME, "step-00000001"]  # no half-written step 2
    # A temporary directory left by a writer that was killed is cleaned up by the next save.
    (tmp_path / ".step-00000002.abc.tmp").mkdir()
    save_training_state(tmp_path, model, optimizer, 2)
    assert not list(tmp_path.glob(".*"))


def test_load_errors(tmp_path: Path) -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match="no training state"):
        load_training_state(tmp_path, model, optimizer)
    assert latest_training_state(tmp_path) is None
    (tmp_path / LATEST_NAME).write_text("../../etc\n")
    with pytest.raises(CheckpointError, match="not a step-NNNNNNNN"):
        latest_training_state(tmp_path)
    (tmp_path / LATEST_NAME).write_text("step-00000009\n")
    with pytest.raises(CheckpointError, match="does not exist"):
        latest_training_state(tmp_path)

    path = save_training_state(tmp_path / "ok", model, optimizer, 1)
    other = RemBertForSequenceClassification(RemBertConfig(**CONFIG))
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_training_state(path, other)


def test_training_state_never_unpickles_objects(tmp_path: Path) -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters())
    path = save_training_state(tmp_path, model, optimizer, 1)

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("code ran",))

    torch.save({"step": 1, "optimizer": {}, "rng": [], "evil": Payload()}, path / TRAINING_STATE_NAME)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_training_state(path, model, optimizer)


def test_bad_arguments(tmp_path: Path) -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(ConfigError, match="step must be"):
        save_training_state(tmp_path, model, optimizer, -1)
    with pytest.raises(ConfigError, match="keep_last"):
        save_training_state(tmp_path, model, optimizer, 1, keep_last=0)
    with pytest.raises(ConfigError, match="JSON-compatible"):
        save_training_state(tmp_path, model, optimizer, 1, extra={"x": object()})
    with pytest.raises(ConfigError, match="RemBertPreTrainedModel"):
        save_training_state(tmp_path, torch.nn.Linear(2, 2), optimizer, 1)
    with pytest.raises(ConfigError, match="process group"):
        apply_fsdp(model)
    with pytest.raises(ConfigError, match="cpu_offload needs the model on an accelerator"):
        apply_fsdp(model, cpu_offload=True)
    with pytest.raises(ConfigError, match="process group"):
        apply_ddp(model)
    assert not list(tmp_path.iterdir())


def test_save_distributed_in_one_process_equals_save_pretrained(tmp_path: Path) -> None:
    model = _model()
    save_distributed(model, tmp_path / "a")
    model.save_pretrained(tmp_path / "b")
    assert (tmp_path / "a" / "config.json").read_text() == (tmp_path / "b" / "config.json").read_text()
    with open_checkpoint(tmp_path / "a") as a, open_checkpoint(tmp_path / "b") as b:
        assert sorted(a.infos()) == sorted(b.infos())
        for name in a.infos():
            np.testing.assert_array_equal(a[name], b[name])
    full = gather_full_state_dict(model)
    assert sorted(full) == sorted(model.state_dict())
    assert unwrap_model(model) is model


def test_architecture_name_looks_through_torch_generated_classes(tmp_path: Path) -> None:
    # FSDP2's fully_shard swaps the model's class for a generated subclass named FSDP<name>,
    # defined in a torch module; the saved architecture must stay the RemBERT class.
    model = _model()
    generated = type("FSDPRemBertForMaskedLM", (RemBertForMaskedLM,), {"__module__": "torch.distributed.fsdp.x"})
    model.__class__ = generated
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["RemBertForMaskedLM"]
