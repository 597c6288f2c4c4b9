"""Concurrency and long runs: 8 threads give the serial results; 1,000 calls do not grow the RSS.

Each check runs in a worker process, so the resident set measured is the workload's alone (after a
warm-up that fills allocator pools and caches keyed by shape).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _worker import Worker

CATEGORY = "concurrency and leaks"
KINDS = ["slow", "fast", "slow_ja", "fast_ja", "torch", "tf"]
CALLS_PER_THREAD = {"torch": 4, "tf": 3}  # tokenizers: 8
LEAK_BOUND = 8 * 2**20  # bytes of RSS growth tolerated over 1,000 calls after the warm-up
LEAK_ITERATIONS = 1000


def _worker(kind: str, request: pytest.FixtureRequest) -> Worker:
    return request.getfixturevalue("tf_worker" if kind == "tf" else "worker")  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
def test_eight_threads_match_serial_results(kind: str, request: pytest.FixtureRequest, cases: Any) -> None:
    calls = CALLS_PER_THREAD.get(kind, 8)
    reply = _worker(kind, request).call("threads", timeout=300, kind=kind, calls=calls)
    assert reply["status"] == "ok", json.dumps(reply)[:3000]
    result = reply["value"]
    assert not result["errors"] and not result["mismatched"], result
    cases.add(result["calls"], kind=f"threaded calls ({kind})")


@pytest.mark.parametrize("kind", ["slow", "fast", "torch", "tf"])
def test_no_rss_growth_over_1000_calls(kind: str, request: pytest.FixtureRequest, cases: Any) -> None:
    warmup = 50 if kind == "tf" else 100
    reply = _worker(kind, request).call("leak", timeout=300, kind=kind, iterations=LEAK_ITERATIONS, warmup=warmup)
    assert reply["status"] == "ok", json.dumps(reply)[:3000]
    result = reply["value"]
    growth_mib = [round((s - result["before"]) / 2**20, 2) for s in result["samples"]]
    assert result["growth"] <= LEAK_BOUND, (
        f"RSS grew {result['growth'] / 2**20:.1f} MiB over {LEAK_ITERATIONS} calls: {growth_mib}"
    )
    cases.add(LEAK_ITERATIONS, kind=f"repeated calls ({kind})")
