from __future__ import annotations

import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from rembert_core import CheckpointError, open_checkpoint, save_safetensors
from rembert_core.loading import find_weights, open_weights
from rembert_core.serialization import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, parse_size


def tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"t{i}": rng.normal(size=(16, 8)).astype(np.float32) for i in range(6)}


def test_single_file_round_trip(tmp_path: Path) -> None:
    data = tensors()
    files = save_safetensors(data, tmp_path)
    assert files == [tmp_path / SAFE_WEIGHTS_NAME]
    with open_checkpoint(tmp_path) as ckpt:
        assert set(ckpt) == set(data)
        assert ckpt.metadata["format"] == "pt"
        for name, array in data.items():
            np.testing.assert_array_equal(ckpt[name], array)
            assert ckpt.info(name).shape == (16, 8) and ckpt.info(name).dtype == "F32"


def test_sharded_round_trip(tmp_path: Path) -> None:
    data = tensors()
    files = save_safetensors(data, tmp_path, max_shard_size=1200)  # 512 bytes per tensor -> 2 per shard
    assert [f.name for f in files] == [
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
        SAFE_WEIGHTS_INDEX_NAME,
    ]
    index = json.loads((tmp_path / SAFE_WEIGHTS_INDEX_NAME).read_text())
    assert index["metadata"]["total_size"] == 6 * 512
    with open_checkpoint(tmp_path) as ckpt:
        assert len(ckpt.files) == 3
        for name, array in data.items():
            np.testing.assert_array_equal(ckpt[name], array)


def test_bfloat16_is_preserved(tmp_path: Path) -> None:
    data = {"w": np.arange(12, dtype=np.float32).reshape(3, 4).astype(ml_dtypes.bfloat16)}
    save_safetensors(data, tmp_path)
    with open_checkpoint(tmp_path) as ckpt:
        assert ckpt.info("w").dtype == "BF16"
        out = ckpt["w"]
        assert out.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(out.astype(np.float32), np.arange(12, dtype=np.float32).reshape(3, 4))


def test_resharding_never_overwrites_live_shards(tmp_path: Path) -> None:
    save_safetensors(tensors(0), tmp_path, max_shard_size=1200)
    second = tensors(1)
    files = save_safetensors(second, tmp_path, max_shard_size=1200)
    # The standard names were live, so the new shards got a unique infix and the old ones are gone.
    assert all(f.name.startswith("model-") and "-of-00003" in f.name for f in files[:-1])
    assert files[0].name != "model-00001-of-00003.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)
    with open_checkpoint(tmp_path) as ckpt:
        np.testing.assert_array_equal(ckpt["t3"], second["t3"])
    # Switching back to one file removes the shards and the index.
    save_safetensors(tensors(2), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [SAFE_WEIGHTS_NAME]


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tensors(0)
    save_safetensors(first, tmp_path, max_shard_size=1200)
    calls = {"n": 0}
    import rembert_core.io.tensors as ser

    real = ser.save_file

    def dying_save(arrays: dict[str, np.ndarray], path: str, metadata: dict[str, str]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            Path(path).write_bytes(b"half")  # the process dies while writing shard 2
            raise KeyboardInterrupt
        real(arrays, path, metadata=metadata)

    monkeypatch.setattr(ser, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_safetensors(tensors(1), tmp_path, max_shard_size=1200)
    monkeypatch.undo()
    with open_checkpoint(tmp_path) as ckpt:  # still the first checkpoint, complete
        for name, array in first.items():
            np.testing.assert_array_equal(ckpt[name], array)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_single_to_sharded_switch_is_safe(tmp_path: Path) -> None:
    save_safetensors(tensors(0), tmp_path)
    save_safetensors(tensors(1), tmp_path, max_shard_size=1200)
    assert not (tmp_path / SAFE_WEIGHTS_NAME).exists()
    with open_checkpoint(tmp_path) as ckpt:
        np.testing.assert_array_equal(ckpt["t0"], tensors(1)["t0"])


def read_all(path: Path) -> None:
    with open_checkpoint(path) as ckpt:
        for name in ckpt:
            ckpt[name]


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    save_safetensors(tensors(), tmp_path)
    path = tmp_path / SAFE_WEIGHTS_NAME
    raw = path.read_bytes()
    for cut in (0, 4, 8, 20, len(raw) // 2, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match=str(path)):
            read_all(tmp_path)


def test_header_claiming_a_huge_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SAFE_WEIGHTS_NAME
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**12, 10**6], "data_offsets": [0, 4 * 10**18]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        open_checkpoint(tmp_path)


def test_index_problems_are_named(tmp_path: Path) -> None:
    save_safetensors(tensors(), tmp_path, max_shard_size=1200)
    index_path = tmp_path / SAFE_WEIGHTS_INDEX_NAME
    index = json.loads(index_path.read_text())
    for shard, message in (
        ("../outside.safetensors", "escapes the checkpoint directory"),
        ("/etc/passwd", "invalid shard path"),
        ("missing.safetensors", "does not exist"),
    ):
        bad = {**index, "weight_map": {**index["weight_map"], "t0": shard}}
        index_path.write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=message):
            open_checkpoint(tmp_path)
    bad = {**index, "weight_map": {**index["weight_map"], "ghost": "model-00001-of-00003.safetensors"}}
    index_path.write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="does not contain: ghost"):
        open_checkpoint(tmp_path)
    text = json.dumps(index).replace('"weight_map": {', '"weight_map": {"t0": "model-00001-of-00003.safetensors", ', 1)
    index_path.write_text(text)
    with pytest.raises(CheckpointError, match="listed twice"):
        open_checkpoint(tmp_path)
    index_path.write_text("{}")
    with pytest.raises(CheckpointError, match="no 'weight_map'"):
        open_checkpoint(tmp_path)


def test_missing_and_foreign_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        open_checkpoint(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="no weights file in .*notes.txt"):
        find_weights(tmp_path)
    with pytest.raises(CheckpointError, match="no weights file in .* that a registered format reads"):
        open_weights(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pk")
    with pytest.raises(CheckpointError, match="is a pytorch checkpoint; reading it needs rembert-torch"):
        open_weights(tmp_path)


def test_precedence_single_over_index(tmp_path: Path) -> None:
    save_safetensors(tensors(0), tmp_path, max_shard_size=1200)
    save_safetensors({"only": np.zeros(2, np.float32)}, tmp_path / "x")
    os.replace(tmp_path / "x" / SAFE_WEIGHTS_NAME, tmp_path / SAFE_WEIGHTS_NAME)
    assert find_weights(tmp_path).name == SAFE_WEIGHTS_NAME
    with open_checkpoint(tmp_path) as ckpt:
        assert list(ckpt) == ["only"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5GB", 5 * 10**9), ("500MiB", 500 * 2**20), ("1.5kb", 1500), (1024, 1024), ("77", 77)],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "-1GB", "1 XB", 0, True])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)  # type: ignore[arg-type]


def test_read_rows_reads_only_a_block(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = {
        "a": rng.normal(size=(10, 3)).astype(np.float32),
        "b": rng.normal(size=(7, 4)).astype(ml_dtypes.bfloat16),
        "c": np.arange(5, dtype=np.int64),
    }
    save_safetensors(data, tmp_path, max_shard_size=100)
    with open_checkpoint(tmp_path) as ckpt:
        for name, value in data.items():
            for start, stop in ((0, 1), (2, 5), (3, 100)):
                np.testing.assert_array_equal(ckpt.read_rows(name, start, stop), value[start:stop])
        assert ckpt.read_rows("a", 4, 4).shape == (0, 3)
    shard = next(p for p in tmp_path.iterdir() if p.suffix == ".safetensors" and "00001" in p.name)
    raw = shard.read_bytes()
    with open_checkpoint(tmp_path) as ckpt:
        shard.write_bytes(raw[:-8])
        with pytest.raises(CheckpointError, match="is truncated"):
            ckpt.read_rows("a", 0, 10)


def test_dtype_code() -> None:
    from rembert_core.serialization import dtype_code

    assert dtype_code(np.float32) == "F32"
    assert dtype_code(ml_dtypes.bfloat16) == "BF16"
    assert dtype_code(np.complex64, strict=False) == "complex64"
    with pytest.raises(CheckpointError, match="complex64 has no safetensors equivalent"):
        dtype_code(np.complex64)


# -- several files as one unit (found by the robustness suite's SIGKILL trials on tokenizer saves) -----


def _crash_after_renames(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make os.replace in serialization fail after ``n`` renames, as a crash between renames would."""
    import rembert_core.io.atomic as serialization

    real = os.replace
    calls = {"n": 0}

    def replace(src: object, dst: object) -> None:
        if calls["n"] >= n:
            raise KeyboardInterrupt("simulated crash")
        calls["n"] += 1
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(serialization.os, "replace", replace)


def test_atomic_write_files_interrupted_between_renames_is_finished_by_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rembert_core.serialization import SAVE_JOURNAL, atomic_write_files, recover_interrupted_save

    atomic_write_files({tmp_path / "a": b"old a", tmp_path / "b": b"old b", tmp_path / "stale": b"x"})
    # renames: the journal itself (1), then "a" (2); the crash hits before "b"
    _crash_after_renames(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_files({tmp_path / "a": b"new a", tmp_path / "b": b"new b"}, remove=(tmp_path / "stale",))
    monkeypatch.undo()
    assert (tmp_path / "a").read_bytes() == b"new a" and (tmp_path / "b").read_bytes() == b"old b"  # the mix...
    recover_interrupted_save(tmp_path)  # ...that every loader finishes first
    assert (tmp_path / "a").read_bytes() == b"new a" and (tmp_path / "b").read_bytes() == b"new b"
    assert not (tmp_path / "stale").exists() and not (tmp_path / SAVE_JOURNAL).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_atomic_write_files_interrupted_before_the_journal_keeps_the_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rembert_core.serialization import atomic_write_files, recover_interrupted_save

    atomic_write_files({tmp_path / "a": b"old a", tmp_path / "b": b"old b"})
    _crash_after_renames(monkeypatch, 0)  # the journal's own rename fails: no commit
    with pytest.raises(KeyboardInterrupt):
        atomic_write_files({tmp_path / "a": b"new a", tmp_path / "b": b"new b"})
    monkeypatch.undo()
    recover_interrupted_save(tmp_path)
    assert (tmp_path / "a").read_bytes() == b"old a" and (tmp_path / "b").read_bytes() == b"old b"


@pytest.mark.parametrize(
    "journal",
    [
        {"replace": {"../x": ".x.1.tmp"}, "remove": []},
        {"replace": {"a": "../.a.1.tmp"}, "remove": []},
        {"replace": {"a": ".b.1.tmp"}, "remove": []},
        {"replace": {}, "remove": ["/etc/passwd"]},
        {"replace": {}, "remove": ["sub/../../x"]},
        "not a journal",
    ],
)
def test_a_hostile_journal_is_refused(tmp_path: Path, journal: object) -> None:
    from rembert_core.serialization import SAVE_JOURNAL, recover_interrupted_save

    (tmp_path / SAVE_JOURNAL).write_text(json.dumps(journal))
    with pytest.raises(CheckpointError, match="journal of an interrupted save"):
        recover_interrupted_save(tmp_path)


# -- several files as one unit: config.json and the weights ---------------------------------------


def _save_unit(directory: Path, tag: int, shard: str | None) -> None:
    from rembert_core.serialization import save_transaction

    tensors = {f"t{i}": np.full((4, 3), tag * 10 + i, np.float32) for i in range(3)}
    with save_transaction(directory) as save:
        save.write_bytes("config.json", json.dumps({"tag": tag}).encode())
        save_safetensors(tensors, directory, max_shard_size=shard, transaction=save)


def _load_unit(directory: Path) -> tuple[int, set[float]]:
    from rembert_core.loading import detect_format

    detected = detect_format(directory)  # finishes a save interrupted after its commit point, as loaders do
    tag = json.loads((directory / "config.json").read_text())["tag"]
    with detected.format.open(detected.path) as weights:
        values = {float(weights[name][0, 0]) // 10 for name in weights}
    return tag, values


@pytest.mark.parametrize("layouts", [(None, None), (None, "60B"), ("60B", None), ("60B", "60B")])
def test_a_save_interrupted_before_its_commit_point_leaves_the_previous_unit(tmp_path, monkeypatch, layouts):
    import rembert_core.io.atomic as serialization

    first, second = layouts
    _save_unit(tmp_path, 1, first)
    real = serialization.atomic_write_bytes

    def killed_at_commit(target, data):
        if Path(target).name == serialization.SAVE_JOURNAL:
            raise KeyboardInterrupt  # as if the process died just before the commit point
        return real(target, data)

    monkeypatch.setattr(serialization, "atomic_write_bytes", killed_at_commit)
    with pytest.raises(KeyboardInterrupt):
        _save_unit(tmp_path, 2, second)
    monkeypatch.undo()
    assert _load_unit(tmp_path) == (1, {1.0})  # the previous config with the previous weights
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # staged files cleaned up


@pytest.mark.parametrize("layouts", [(None, None), (None, "60B"), ("60B", None), ("60B", "60B")])
def test_a_save_interrupted_after_its_commit_point_is_finished_by_the_next_load(tmp_path, monkeypatch, layouts):
    import rembert_core.io.atomic as serialization

    first, second = layouts
    _save_unit(tmp_path, 1, first)
    monkeypatch.setattr(serialization, "recover_interrupted_save", lambda directory: None)  # dies after the journal
    _save_unit(tmp_path, 2, second)
    monkeypatch.undo()
    assert (tmp_path / serialization.SAVE_JOURNAL).is_file()
    assert json.loads((tmp_path / "config.json").read_text())["tag"] == 1  # nothing renamed yet
    assert _load_unit(tmp_path) == (2, {2.0})  # the load finishes the save: the new config with the new weights
    assert not (tmp_path / serialization.SAVE_JOURNAL).exists()
    leftovers = {p.name for p in tmp_path.iterdir()} - {"config.json", SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME}
    assert all(name.startswith("model-") for name in leftovers), leftovers  # only the new shards remain


def test_save_transaction_refuses_files_outside_its_directory(tmp_path):
    from rembert_core.serialization import save_transaction

    with pytest.raises(CheckpointError, match="not a file of it"), save_transaction(tmp_path) as save:
        save.write_bytes("../escape.json", b"{}")
    assert not (tmp_path.parent / "escape.json").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_mode_a_plain_open_gives(tmp_path: Path, umask: int) -> None:
    """Temporary files are 0600; what a save publishes must be readable as the user's umask allows."""
    import stat

    from rembert_core import RemBertConfig
    from rembert_core.serialization import atomic_write_bytes, atomic_write_files

    old = os.umask(umask)
    try:
        RemBertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2).save_pretrained(tmp_path / "single")
        save_safetensors(tensors(0), tmp_path / "single")
        save_safetensors(tensors(0), tmp_path / "sharded", max_shard_size=1200)
        atomic_write_bytes(tmp_path / "plain" / "notes.txt", b"x")
        atomic_write_files({tmp_path / "plain" / "a.json": b"{}", tmp_path / "plain" / "b.json": b"{}"})
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 8
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
