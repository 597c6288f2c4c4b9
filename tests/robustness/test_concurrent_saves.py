"""Concurrent saves and converts: a load sees one committed save whole, no save is lost or mixed.

Writers and converters run in separate processes (spawned, core only); each save writes a config.json
carrying a marker and tensors filled with the same marker, alternating single-file and sharded
layouts, so a load that mixed two saves shows two markers.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _savers import config_for, convert_once, load_markers, save, saver_loop, writer_forever

from rembert_core import CheckpointError
from rembert_core.convert import convert_checkpoint
from rembert_core.serialization import SAVE_JOURNAL, orphan_temp_files

CATEGORY = "concurrent saves"

CTX = multiprocessing.get_context("spawn")


def _consistent(directory: Path, *, quiet: bool = True) -> int:
    """Load and check one save's marker everywhere; ``quiet``: no writer runs, so check the files too."""
    marker, values = load_markers(str(directory))
    assert values == [float(marker)], f"config marker {marker} with tensor values {values}: two saves mixed"
    if not quiet:
        return int(marker)
    names = {p.name for p in directory.iterdir()}
    assert ("model.safetensors" in names) != ("model.safetensors.index.json" in names), names
    return int(marker)


def test_loads_against_a_writer_see_one_save(tmp_path: Path, cases: Any) -> None:
    directory = tmp_path / "ckpt"
    save(str(directory), 0, sharded=False)
    stop, count = CTX.Event(), CTX.Value("i", 0)
    writer = CTX.Process(target=writer_forever, args=(str(directory), stop, count))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while count.value < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        loads, markers = 0, set()
        while loads < 300 and time.monotonic() < deadline:
            markers.add(_consistent(directory, quiet=False))
            loads += 1
            cases.add(kind="load against a writer")
        assert loads >= 50, f"only {loads} loads in the time limit"
        assert len(markers) > 1, "the writer made no progress while loads ran"
    finally:
        stop.set()
        writer.join(60)
    cases.note(f"saves committed meanwhile {count.value}, loads", loads)


def test_two_writers_take_turns(tmp_path: Path, cases: Any) -> None:
    directory = tmp_path / "ckpt"
    save(str(directory), 0, sharded=False)
    rounds = 50
    start, result = CTX.Barrier(3), CTX.Queue()
    writers = [CTX.Process(target=saver_loop, args=(str(directory), start, rounds, b, result)) for b in (1000, 2000)]
    for w in writers:
        w.start()
    try:
        for _ in range(rounds):
            start.wait(timeout=120)  # both save at once
            start.wait(timeout=120)  # both done: the directory must hold one of the two saves, whole
            marker = _consistent(directory)
            assert marker >= 1000
            assert not orphan_temp_files(directory), orphan_temp_files(directory)
            assert not (directory / SAVE_JOURNAL).exists()
            cases.add(kind="two writers, one directory")
    finally:
        for w in writers:
            w.join(60)
    messages = [result.get(timeout=10) for _ in range(2)]
    assert all(kind == "done" and errors == 0 for kind, errors in messages), messages


def test_two_converts_to_one_destination(tmp_path: Path, cases: Any) -> None:
    src = tmp_path / "src"
    save(str(src), 7, sharded=True)
    for trial in range(50):
        dst = tmp_path / f"dst-{trial}"
        start, result = CTX.Barrier(2), CTX.Queue()
        procs = [CTX.Process(target=convert_once, args=(str(src), str(dst), start, result)) for _ in range(2)]
        for p in procs:
            p.start()
        outcomes = sorted(result.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(60)
        assert outcomes[0] == "ok" and outcomes[1].startswith("refused:") and "not empty" in outcomes[1], outcomes
        _consistent(dst)
        assert not [p for p in tmp_path.iterdir() if ".rembert-convert-" in p.name]
        cases.add(kind="two converts, one destination")


def test_convert_refuses_a_destination_holding_its_source(tmp_path: Path, cases: Any) -> None:
    models = tmp_path / "models"
    src = models / "x"
    save(str(src), 3, sharded=False)
    (src / "tokenizer_config.json").write_text("{}")
    (models / "other").mkdir()
    (models / "unrelated.txt").write_text("keep me")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    for dst in (models, src, tmp_path):
        with pytest.raises(CheckpointError, match="would delete the source"):
            convert_checkpoint(src, dst, overwrite=True)
        cases.add(kind="destination holding its source")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    # a destination inside the source is fine, and carries the source's other files
    result = convert_checkpoint(src, src / "converted", overwrite=True)
    assert (result.destination / "tokenizer_config.json").read_text() == "{}"
    cases.add(kind="destination holding its source")


_CONVERT_SCRIPT = """
import sys
from rembert_core.convert import convert_checkpoint
convert_checkpoint(sys.argv[1], sys.argv[2], max_shard_size=2000)
"""


def test_killed_converts_leave_no_orphans_for_long(tmp_path: Path, cases: Any) -> None:
    from rembert_core.cli import _inspect_payload
    from rembert_core.convert import orphan_staging

    src = tmp_path / "src"
    save(str(src), 5, sharded=False)
    dst = tmp_path / "out"
    left = 0
    for trial in range(10):
        proc = subprocess.Popen([sys.executable, "-c", _CONVERT_SCRIPT, str(src), str(dst)])
        deadline = time.monotonic() + 30
        staging = f".{dst.name}.rembert-convert-*"
        while not list(tmp_path.glob(staging)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.01 * (trial % 4))  # kill at different points of the write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cases.add(kind="SIGKILL during convert")
        if orphan_staging(dst):
            left += 1
            if trial == 0 and dst.exists():
                assert _inspect_payload(dst, None)["leftovers"]  # inspect reports them
        if dst.exists():
            import shutil

            shutil.rmtree(dst)
    convert_checkpoint(src, dst)  # the next convert into dst removes what the killed ones left
    assert not orphan_staging(dst)
    _consistent(dst)
    cases.note("SIGKILL trials that left a staging directory", left)


def test_a_shipped_journal_is_not_replayed(tmp_path: Path, cases: Any) -> None:
    import json

    from rembert_core.cli import _inspect_payload

    for journal in (
        {"replace": {}, "remove": ["model.safetensors"]},
        {"replace": {"config.json": ".config.json.abcdefgh.tmp"}, "remove": ["model.safetensors"]},
        {
            "replace": {"config.json": ".config.json.abcdefgh.tmp"},
            "remove": ["model.safetensors"],
            "sizes": {"config.json": 1},
        },
    ):
        directory = tmp_path / f"shipped-{len(os.listdir(tmp_path))}"
        save(str(directory), 9, sharded=False)
        (directory / SAVE_JOURNAL).write_text(json.dumps(journal))
        payload = _inspect_payload(directory, None)  # read-only: reports, does not replay
        assert payload["interrupted_save"] and (directory / "model.safetensors").is_file()
        with pytest.raises(CheckpointError, match="journal"):
            load_markers(str(directory))
        assert (directory / "model.safetensors").is_file()
        cases.add(kind="journal shipped in a download")
    # a genuine interrupted save is still finished by the next load
    directory = tmp_path / "genuine"
    save(str(directory), 1, sharded=False)
    staged = directory / ".config.json.abcdefgh.tmp"
    staged.write_text(config_for(2).to_json_string())
    journal = {"replace": {"config.json": staged.name}, "remove": [], "sizes": {"config.json": staged.stat().st_size}}
    (directory / SAVE_JOURNAL).write_text(json.dumps(journal))
    assert load_markers(str(directory))[0] == 2
    cases.add(kind="journal of a real interrupted save")
