"""Shared builders of the robustness suite: a tiny config and small valid checkpoints in every format."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from rembert_core import RemBertConfig, build_schema, save_safetensors
from rembert_core.testing import TEST_CONFIGS

ROOT = Path(__file__).resolve().parents[2]
SP_MODEL = ROOT / "tests" / "fixtures" / "sentencepiece" / "test_model.model"
SP_MODEL_JA = ROOT / "tests" / "fixtures" / "sentencepiece" / "test_ja_model.model"

TINY = TEST_CONFIGS["micro"]  # the values live once, in rembert_core.testing

# Hypothesis settings shared by the fuzzers: reproducible in CI (derandomized), no example database.
FUZZ = {"deadline": None, "derandomize": True, "database": None, "print_blob": True}


def fuzz_settings(examples: int) -> Any:
    """Hypothesis settings of one fuzzer: ``examples`` examples, reproducible, no database."""
    from hypothesis import HealthCheck, settings

    return settings(
        **FUZZ,  # type: ignore[arg-type]
        max_examples=examples,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def tiny_config(**changes: Any) -> RemBertConfig:
    return RemBertConfig(**{**TINY, **changes})


def random_tensors(config: RemBertConfig, task: str = "base", seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(0, 0.02, spec.shape).astype(np.float32) for name, spec in build_schema(config, task).items()
    }


def make_safetensors(directory: Path, *, sharded: bool = False, seed: int = 0) -> Path:
    config = tiny_config()
    config.save_pretrained(directory)
    save_safetensors(random_tensors(config, seed=seed), directory, max_shard_size=2000 if sharded else None)
    return directory


def make_torch_bin(directory: Path, seed: int = 0) -> Path:
    import torch

    config = tiny_config()
    config.save_pretrained(directory)
    torch.save(
        {k: torch.from_numpy(v) for k, v in random_tensors(config, seed=seed).items()}, directory / "pytorch_model.bin"
    )
    return directory


def make_h5(directory: Path, seed: int = 0) -> Path:
    import h5py

    config = tiny_config()
    config.save_pretrained(directory)
    tensors = random_tensors(config, seed=seed)
    with h5py.File(directory / "tf_model.h5", "w") as f:
        for name, array in list(tensors.items())[:6]:
            parts = name.split(".")
            leaf = {"weight": "kernel:0" if array.ndim == 2 else "gamma:0", "bias": "bias:0"}[parts[-1]]
            body = "/".join(p if not p.isdigit() else f"layer_._{p}" for p in parts[:-1] if p != "layer")
            f.create_dataset(
                f"rembert/tf_rem_bert_model/rembert/{body}/{leaf}", data=array.T if array.ndim == 2 else array
            )
        f.attrs["backend"] = "tensorflow"
    return directory


def safetensors_sections(data: bytes) -> list[int]:
    """Byte offsets where a safetensors file changes section: length prefix, header, each tensor's data."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    points = {0, 1, 4, 7, 8, 9, 8 + size // 2, 8 + size - 1, 8 + size, len(data) - 1, len(data)}
    for key, value in header.items():
        if key == "__metadata__":
            continue
        start, end = value["data_offsets"]
        points |= {8 + size + start, 8 + size + start + 1, 8 + size + end - 1, 8 + size + end}
    return sorted(p for p in points if 0 <= p <= len(data))


def safetensors_header(data: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def with_header(header: dict[str, Any], body: bytes, claimed_size: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw) if claimed_size is None else claimed_size) + raw + body
