"""Processes of the concurrent-save tests: savers, converters and readers of one directory (core only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rembert_core import RemBertConfig, build_schema, save_safetensors
from rembert_core.serialization import save_transaction
from rembert_core.testing import TEST_CONFIGS


def config_for(marker: int) -> RemBertConfig:
    """The micro config, carrying ``marker`` in its extra keys."""
    config = RemBertConfig(**TEST_CONFIGS["micro"])
    config.extra["save_marker"] = marker
    return config


def save(directory: str, marker: int, sharded: bool) -> None:
    """One save: config.json with ``marker``, every tensor filled with ``marker`` (sharded or single)."""
    config = config_for(marker)
    tensors = {
        name: np.full(spec.shape, float(marker), dtype=np.float32)
        for name, spec in build_schema(config, "base").items()
    }
    with save_transaction(directory) as transaction:
        transaction.write_bytes("config.json", config.to_json_string().encode("utf-8"))
        save_safetensors(tensors, directory, max_shard_size=4000 if sharded else None, transaction=transaction)


def load_markers(directory: str) -> tuple[Any, list[float]]:
    """Load through the core plan: (config marker, the distinct values of every tensor)."""
    from rembert_core.loading import plan_load

    with plan_load(directory) as plan:
        plan.match(build_schema(plan.config, "base"))
        values = sorted({float(plan.weights[key].flat[0]) for _, key in plan.matched()})
        return plan.config.extra.get("save_marker"), values


def saver_loop(directory: str, start: Any, rounds: int, base: int, result: Any) -> None:
    """Save ``rounds`` times, alternating layouts, each round after ``start`` (a barrier) lets everyone go."""
    errors = 0
    for i in range(rounds):
        start.wait()
        try:
            save(directory, base + i, sharded=(i + base) % 2 == 0)
        except Exception as exc:  # reported to the parent, which fails the test
            errors += 1
            result.put(("error", f"{type(exc).__name__}: {exc}"))
        start.wait()  # the parent checks the directory between rounds
    result.put(("done", errors))


def writer_forever(directory: str, stop: Any, count: Any) -> None:
    """Save alternating markers and layouts until ``stop`` is set; ``count`` counts the saves."""
    i = 0
    while not stop.is_set():
        save(directory, i % 1000, sharded=i % 3 == 0)
        i += 1
        with count.get_lock():
            count.value = i


def convert_once(src: str, dst: str, start: Any, result: Any) -> None:
    from rembert_core.convert import convert_checkpoint
    from rembert_core.errors import CheckpointError

    start.wait()
    try:
        convert_checkpoint(src, dst)
        result.put("ok")
    except CheckpointError as exc:
        result.put(f"refused: {exc}")
    except Exception as exc:
        result.put(f"bare: {type(exc).__name__}: {exc}")


def dump_marker(directory: str) -> str:
    return json.dumps(load_markers(directory))


def files_of(directory: str) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir())
