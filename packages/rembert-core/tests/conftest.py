"""Fixtures for rembert-core tests: small configs and random canonical checkpoints built with NumPy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rembert_core import RemBertConfig, build_schema, save_safetensors
from rembert_core.plugins import reset_plugins
from rembert_core.testing import tiny_config as make_tiny_config


@pytest.fixture
def tiny_config() -> RemBertConfig:
    """Odd sizes on purpose: hidden 48 with 6 heads, decoupled 20/36 embeddings, vocab 301."""
    return make_tiny_config(pad_token_id=0, num_labels=2)


def random_tensors(config: RemBertConfig, task: str, seed: int = 0, dtype: type = np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.02, spec.shape).astype(dtype) for name, spec in build_schema(config, task).items()}


@pytest.fixture
def make_checkpoint(tmp_path: Path, tiny_config: RemBertConfig) -> Callable[..., Path]:
    """make_checkpoint(task="base", config=None, **save_kwargs) -> directory with config.json + safetensors."""

    def make(task: str = "base", config: RemBertConfig | None = None, name: str = "ckpt", **kwargs: object) -> Path:
        cfg = config or tiny_config
        directory = tmp_path / name
        cfg.save_pretrained(directory)
        save_safetensors(random_tensors(cfg, task), directory, **kwargs)  # type: ignore[arg-type]
        return directory

    return make


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> object:
    """Each test starts with no plugins loaded, and with entry-point autoloading off.

    Core tests are hermetic: installed plugins (rembert-torch, ...) do not take part unless a
    test turns autoloading back on (the entry-point tests do).
    """
    for var in ("REMBERT_STRICT_PLUGINS", "REMBERT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugins()
    yield
    reset_plugins()
