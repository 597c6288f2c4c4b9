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


def test_offline_errors_give_the_real_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(CheckpointError, match=r"downloading is off \(local_files_only=True\)"):
        resolve_checkpoint("google/rembert", local_files_only=True, cache_dir=tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"downloading is off \(HF_HUB_OFFLINE=1 is set\)"):
        resolve_checkpoint("google/rembert", cache_dir=tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def unreachable(**kwargs: object) -> str:  # what huggingface_hub raises without network and without a copy
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("google/rembert", cache_dir=tmp_path)
    assert "could not be reached (no network?)" in str(info.value) and "HF_HUB_OFFLINE" not in str(info.value)

    def missing(**kwargs: object) -> str:
        raise RepositoryNotFoundError("404", response=None)  # type: ignore[arg-type]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(CheckpointError, match="no such repository on the Hugging Face Hub"):
        resolve_checkpoint("someone/not-a-model", cache_dir=tmp_path)
