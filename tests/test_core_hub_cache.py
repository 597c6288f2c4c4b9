"""Hub resolution with huggingface_hub installed (it comes with the reference in this session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rembert_core import CheckpointError
from rembert_core.io.hub import resolve_checkpoint

pytest.importorskip("huggingface_hub")


def test_offline_cache_miss_says_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="huggingface-cli download google/rembert"):
        resolve_checkpoint("google/rembert", local_files_only=True, cache_dir=tmp_path)


def test_resolves_from_the_hub_cache_offline(tmp_path: Path) -> None:
    # The cache layout huggingface_hub writes: refs/main -> snapshots/<commit>/files.
    repo = tmp_path / "models--google--rembert"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "rembert"}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    resolved = resolve_checkpoint("google/rembert", local_files_only=True, cache_dir=tmp_path)
    assert resolved == snapshot
