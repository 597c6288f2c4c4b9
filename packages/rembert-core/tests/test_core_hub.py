from __future__ import annotations

from pathlib import Path

import pytest

from rembert_core import CheckpointError
from rembert_core.io.hub import resolve_checkpoint


def test_local_paths_are_returned(tmp_path: Path) -> None:
    assert resolve_checkpoint(tmp_path) == tmp_path


@pytest.mark.parametrize("name", ["./missing-dir", "/abs/missing", "a/b/c", "bad name!"])
def test_paths_that_cannot_be_hub_ids(name: str) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        resolve_checkpoint(name)


def test_hub_id_without_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError, match=r"pip install rembert-core\[hub\]"):
        resolve_checkpoint("google/rembert")


def test_tensorflow_checkpoint_prefixes_are_local(tmp_path: Path) -> None:
    (tmp_path / "model.ckpt-7.index").write_bytes(b"")
    assert resolve_checkpoint(tmp_path / "model.ckpt-7") == tmp_path / "model.ckpt-7"
