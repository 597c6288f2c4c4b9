"""Shared fixtures of the rembert-torch tests: small configs, reference (transformers) checkpoints, batches.

The reference is used only as a test oracle: a model is built with
``transformers`` from a seed, saved with its ``save_pretrained``, and loaded here
with ``from_pretrained``, so both implementations hold the same weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("USE_TF", "0")  # keep transformers (the oracle) from importing TensorFlow
os.environ.setdefault("USE_FLAX", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import torch

from rembert_core import ARCHITECTURES, RemBertConfig
from rembert_core.testing import TEST_CONFIGS
from rembert_core.tolerances import assert_close

torch.set_num_threads(2)

#: The small configs of this suite (values written once, in rembert_core.testing.TEST_CONFIGS).
CONFIGS: dict[str, dict[str, Any]] = {name: TEST_CONFIGS[name] for name in ("odd", "wide", "relu")}


@pytest.fixture(scope="session")
def configs() -> dict[str, dict[str, Any]]:
    """The small test configs by name (see :data:`CONFIGS`)."""
    return CONFIGS


@pytest.fixture(scope="session")
def transformers_mod() -> Any:
    """The reference implementation (test-only oracle)."""
    return pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def checkpoint_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[Any, ...], Path]:
    return {}


@pytest.fixture(scope="session")
def reference_checkpoint(
    transformers_mod: Any, tmp_path_factory: pytest.TempPathFactory, checkpoint_cache: dict[tuple[Any, ...], Path]
) -> Callable[..., Path]:
    """``reference_checkpoint(task, config_name, seed=0, **overrides)``: a directory saved by transformers.

    Cached per session; the weights come from ``torch.manual_seed(seed)`` and the reference init.
    Biases and LayerNorm parameters are perturbed so that a wrong mapping cannot hide behind zeros/ones.
    """

    def make(task: str, config_name: str = "odd", seed: int = 0, safe: bool = True, **overrides: Any) -> Path:
        key = (task, config_name, seed, safe, tuple(sorted(overrides.items())))
        if key not in checkpoint_cache:
            kwargs = {**CONFIGS[config_name], **overrides}
            config = transformers_mod.RemBertConfig(**kwargs)
            cls = getattr(transformers_mod, ARCHITECTURES[task])
            torch.manual_seed(seed)
            model = cls(config)
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if name.endswith("bias") or "LayerNorm" in name:
                        param.add_(torch.randn_like(param) * 0.05)
            path = tmp_path_factory.mktemp(f"ref-{task}-{config_name}")
            model.save_pretrained(path, safe_serialization=safe)
            checkpoint_cache[key] = path
        return checkpoint_cache[key]

    return make


def make_batch(
    config: dict[str, Any] | RemBertConfig,
    batch: int = 3,
    seq: int = 7,
    seed: int = 0,
    *,
    fully_padded_row: bool = True,
) -> dict[str, torch.Tensor]:
    """input_ids (no pad ids where attended), attention_mask with padding (one row fully padded), token_type_ids."""
    cfg = config if isinstance(config, dict) else config.to_dict()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    if batch > 1:
        mask[1, seq - 2 :] = 0
    if batch > 2 and fully_padded_row:
        mask[2, :] = 0
    ids = ids.masked_fill(mask == 0, cfg["pad_token_id"])
    token_types = torch.randint(0, cfg["type_vocab_size"], (batch, seq), generator=gen)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": token_types}


@pytest.fixture
def batch_factory() -> Callable[..., dict[str, torch.Tensor]]:
    """``batch_factory(config, batch, seq, seed)``: see :func:`make_batch`."""
    return make_batch


def _np(value: torch.Tensor) -> np.ndarray:
    return value.detach().float().cpu().numpy()


def compare(actual: Any, expected: Any, *, dtype: str = "float32", quantity: str = "activations", name: str) -> None:
    """assert_close (same-framework tolerance of the core table) on tensors or nested tuples of tensors."""
    if isinstance(expected, tuple | list):
        assert isinstance(actual, tuple | list), f"{name}: expected a sequence, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{name}: {len(actual)} entries, expected {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            compare(a, e, dtype=dtype, quantity=quantity, name=f"{name}[{i}]")
        return
    assert isinstance(actual, torch.Tensor), f"{name}: expected a tensor, got {type(actual).__name__}"
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert_close(_np(actual), _np(expected), dtype=dtype, quantity=quantity, cross_framework=False, name=name)


@pytest.fixture
def close() -> Callable[..., None]:
    """``close(actual, expected, name=..., quantity=..., dtype=...)`` against the core tolerance table."""
    return compare
