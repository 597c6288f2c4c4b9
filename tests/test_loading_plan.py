"""Both frameworks load through core's one plan: each step once, the same loading_info, the same options."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rembert_core.io.atomic as atomic
import rembert_core.io.tensors as tensors
import rembert_core.loading as core_loading
from rembert_core import build_schema, save_safetensors
from rembert_core.serialization import SAVE_JOURNAL
from rembert_core.testing import tiny_config

pytest.importorskip("torch")
pytest.importorskip("tensorflow")


def _tensors(task: str, seed: int = 0, **changes: Any) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    schema = build_schema(tiny_config(**changes), task)
    return {name: rng.normal(0, 0.05, spec.shape).astype(np.float32) for name, spec in schema.items()}


def _checkpoint(directory: Path, task: str, *, max_shard_size: int | None = None, **changes: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tiny_config(**changes).save_pretrained(directory)
    save_safetensors(_tensors(task, **changes), directory, max_shard_size=max_shard_size)
    return directory


def _torch_load(path: Path, **kwargs: Any) -> Any:
    from rembert_torch import RemBertForSequenceClassification

    return RemBertForSequenceClassification.from_pretrained(path, **kwargs)


def _tf_load(path: Path, **kwargs: Any) -> Any:
    from rembert_tf import TFRemBertForSequenceClassification

    return TFRemBertForSequenceClassification.from_pretrained(path, **kwargs)


LOADERS = {"torch": _torch_load, "tf": _tf_load}


class _Spy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, list[Any]] = {"header": [], "detect": [], "recover": []}
        for module, attr, key in (
            (tensors, "read_safetensors_header", "header"),
            (core_loading, "detect_format", "detect"),
            (core_loading, "recover_interrupted_save", "recover"),
            (atomic, "recover_interrupted_save", "recover"),
        ):
            monkeypatch.setattr(module, attr, self._wrap(getattr(module, attr), key))
        import safetensors

        def forbidden(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("safetensors.safe_open parsed a header a second time")

        monkeypatch.setattr(safetensors, "safe_open", forbidden)

    def _wrap(self, function: Callable[..., Any], key: str) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls[key].append(args[1] if key == "header" else args[0])
            return function(*args, **kwargs)

        return spy


@pytest.mark.parametrize("framework", sorted(LOADERS))
@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
def test_each_step_of_a_load_runs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, framework: str, sharded: bool
) -> None:
    directory = _checkpoint(tmp_path / "ckpt", "sequence_classification", max_shard_size=20_000 if sharded else None)
    files = sorted(directory.glob("*.safetensors"))
    assert (len(files) > 1) == sharded
    # an interrupted save whose commit point was reached: the journal renames a staged config.json
    staged = directory / ".config.json.abc.tmp"
    staged.write_text((directory / "config.json").read_text())
    (directory / SAVE_JOURNAL).write_text(json.dumps({"replace": {"config.json": staged.name}, "remove": []}))
    spy = _Spy(monkeypatch)
    model = LOADERS[framework](directory)
    assert not (directory / SAVE_JOURNAL).exists() and not staged.exists()  # the save was finished
    assert spy.calls["recover"] == [directory]
    assert spy.calls["detect"] == [directory]
    assert sorted(spy.calls["header"]) == files  # each file's header parsed once
    # and the tensors are the checkpoint's
    expected = _tensors("sequence_classification")["classifier.weight"]
    if framework == "torch":
        actual = model.classifier.weight.detach().numpy()
    else:
        actual = model.export_tensors()["classifier.weight"]
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("framework", sorted(LOADERS))
def test_loading_info_has_the_same_keys_and_meanings(
    tmp_path: Path, framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a masked-LM checkpoint loaded as a classifier: the pooler and classifier are missing, the LM head unused
    directory = _checkpoint(tmp_path / "mlm", "masked_lm")
    with caplog.at_level(logging.WARNING):
        _, info = LOADERS[framework](directory, output_loading_info=True)
    assert set(info) == {
        "missing_keys",
        "unexpected_keys",
        "mismatched_keys",
        "error_msgs",
        "newly_initialized",
        "unused",
        "report",
    }
    fresh = ["rembert.pooler.dense.weight", "rembert.pooler.dense.bias", "classifier.weight", "classifier.bias"]
    assert info["missing_keys"] == info["newly_initialized"] == fresh
    assert "cls.predictions.decoder.weight" in info["unexpected_keys"]
    assert info["unexpected_keys"] == info["unused"]
    assert info["mismatched_keys"] == [] and info["error_msgs"] == []
    assert "newly initialized" in caplog.text and "were not used" in caplog.text


@pytest.mark.parametrize("framework", sorted(LOADERS))
def test_ignore_mismatched_sizes_reinitialises_in_both_frameworks(tmp_path: Path, framework: str) -> None:
    from rembert_core import CheckpointError

    directory = _checkpoint(tmp_path / "clf", "sequence_classification")  # num_labels=3
    with pytest.raises(CheckpointError, match=r"classifier.weight has shape \(3, 48\), expected \(5, 48\)"):
        LOADERS[framework](directory, num_labels=5)
    model, info = LOADERS[framework](directory, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True)
    assert info["mismatched_keys"] == [("classifier.weight", (3, 48), (5, 48)), ("classifier.bias", (3,), (5,))]
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert model.config.num_labels == 5
    if framework == "torch":
        weight = model.classifier.weight.detach().numpy()
    else:
        weight = model.export_tensors()["classifier.weight"]
    assert weight.shape == (5, 48) and np.all(np.isfinite(weight)) and np.std(weight) > 0  # initialised, not zeros
