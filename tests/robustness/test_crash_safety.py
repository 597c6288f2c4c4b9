"""SIGKILL at random points during saves leaves the previous complete files or the new complete ones.

See ``_crash.py`` for the protocol. Trials run in the worker processes, which fork one child per
trial (so each trial costs a save, not an interpreter start); the counts are bounded so the whole
category takes well under a minute.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _worker import Worker

CATEGORY = "data safety: SIGKILL mid-write"
TRIALS = {"torch": 40, "tf": 30, "convert": 25, "tokenizer_slow": 30, "tokenizer_fast": 30}


@pytest.mark.parametrize("kind", sorted(TRIALS))
def test_sigkill_during_save(kind: str, tmp_path: Path, request: pytest.FixtureRequest, cases: Any) -> None:
    worker: Worker = request.getfixturevalue("tf_worker" if kind == "tf" else "worker")
    reply = worker.call("kill_trials", timeout=300, kind=kind, root=str(tmp_path), trials=TRIALS[kind], seed=11)
    assert reply["status"] == "ok", json.dumps(reply, indent=1)[:3000]
    result = reply["value"]
    assert "failure" not in result, json.dumps(result, indent=1)
    cases.add(TRIALS[kind], kind=f"SIGKILL trials ({kind})")
    for outcome, n in result["outcomes"].items():
        cases.note(f"{kind}: {outcome}", n)
    # Both outcomes must occur, or the kills did not land inside the saves.
    assert all(result["outcomes"].values()), result
