"""Shared fixtures of the rembert-numpy tests: configs, seeded inputs, and the reference model (oracle tests only)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from rembert_core import ARCHITECTURES, RemBertConfig
from rembert_numpy import NumpyBackend, NumpyModel, random_tensors

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TASKS = (
    "base",
    "masked_lm",
    "causal_lm",
    "sequence_classification",
    "multiple_choice",
    "token_classification",
    "question_answering",
)
NUM_CHOICES = 2


def _configs() -> dict[str, RemBertConfig]:
    return {
        # Odd sizes that catch transposes and head-splitting bugs.
        "odd": RemBertConfig(
            vocab_size=301,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=6,
            input_embedding_size=20,
            output_embedding_size=36,
            intermediate_size=64,
            max_position_embeddings=40,
            type_vocab_size=3,
            num_labels=3,
        ),
        # Another shape, three layers, the tanh GELU and a larger LayerNorm epsilon.
        "tanh3": RemBertConfig(
            vocab_size=97,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            input_embedding_size=16,
            output_embedding_size=24,
            intermediate_size=40,
            max_position_embeddings=24,
            type_vocab_size=2,
            hidden_act="gelu_new",
            layer_norm_eps=1e-5,
            num_labels=2,
        ),
        # One head, one layer, ReLU, pad id not 0.
        "relu1": RemBertConfig(
            vocab_size=53,
            hidden_size=12,
            num_hidden_layers=1,
            num_attention_heads=1,
            input_embedding_size=7,
            output_embedding_size=9,
            intermediate_size=20,
            max_position_embeddings=16,
            type_vocab_size=1,
            hidden_act="relu",
            pad_token_id=3,
            num_labels=2,
        ),
    }


CONFIG_NAMES = tuple(_configs())


def task_config(config: RemBertConfig, task: str, *, cross: bool = True) -> RemBertConfig:
    """The config a task is tested with: the causal LM as a decoder (with cross-attention unless ``cross=False``)."""
    if task == "causal_lm":
        return config.copy(is_decoder=True, add_cross_attention=cross)
    if task == "question_answering":
        return config.copy(num_labels=2)
    return config


def make_inputs(config: RemBertConfig, task: str, *, seed: int = 0, batch: int = 3, seq: int = 7) -> dict[str, Any]:
    """A padded batch: row 0 full, row 1 padded over its tail, row 2 (if any) fully padded; token types; labels."""
    rng = np.random.default_rng(seed)
    shape: tuple[int, ...] = (batch, NUM_CHOICES, seq) if task == "multiple_choice" else (batch, seq)
    pad = config.pad_token_id or 0
    mask = np.ones(shape, dtype=np.int64)
    if batch > 1:
        mask[1, ..., seq // 2 + 1 :] = 0
    if batch > 2:
        mask[2] = 0
    ids = np.where(mask == 1, rng.integers(0, config.vocab_size, size=shape), pad)
    inputs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": rng.integers(0, config.type_vocab_size, size=shape),
    }
    if task in ("masked_lm", "causal_lm"):
        chosen = rng.random(shape) < 0.7
        chosen[0, 0] = True
        inputs["labels"] = np.where(chosen, rng.integers(0, config.vocab_size, size=shape), -100)
    elif task == "token_classification":
        inputs["labels"] = np.where(mask == 1, rng.integers(0, config.num_labels, size=shape), -100)
    elif task == "sequence_classification":
        inputs["labels"] = rng.integers(0, config.num_labels, size=(batch,))
    elif task == "multiple_choice":
        inputs["labels"] = rng.integers(0, NUM_CHOICES, size=(batch,))
    elif task == "question_answering":
        # In range, beyond the sequence (clamped to seq and ignored), and negative (clamped to 0).
        inputs["start_positions"] = np.array([1, seq + 5, 2, 0][:batch])
        inputs["end_positions"] = np.array([seq - 1, 3, -4, 1][:batch])
    if task == "causal_lm" and config.add_cross_attention:
        enc_len = 5
        inputs["encoder_hidden_states"] = rng.standard_normal((batch, enc_len, config.hidden_size))
        enc_mask = np.ones((batch, enc_len), dtype=np.int64)
        enc_mask[1:, 3:] = 0
        inputs["encoder_attention_mask"] = enc_mask
    return inputs


@pytest.fixture(scope="session")
def configs() -> dict[str, RemBertConfig]:
    """The test configs by name (see :data:`CONFIG_NAMES`)."""
    return _configs()


@pytest.fixture(scope="session")
def backend() -> NumpyBackend:
    """The backend under test."""
    return NumpyBackend()


@pytest.fixture(scope="session")
def build() -> Callable[..., tuple[NumpyModel, dict[str, np.ndarray]]]:
    """``build(config, task, dtype, seed=0, scale=20.0)`` -> a loaded model and its float64 canonical tensors.

    ``scale`` widens the reference initialiser's spread so that attention is far
    from uniform and every path carries signal.
    """

    def _build(
        config: RemBertConfig, task: str, dtype: str = "float64", *, seed: int = 0, scale: float = 20.0
    ) -> tuple[NumpyModel, dict[str, np.ndarray]]:
        tensors = random_tensors(config, task, seed=seed, scale=scale)
        backend = NumpyBackend()
        model = backend.build_model(config, task, dtype=dtype)
        backend.load_tensors(model, tensors)
        return model, tensors

    return _build


@pytest.fixture(scope="session")
def make_batch() -> Callable[..., dict[str, Any]]:
    """:func:`make_inputs` as a fixture."""
    return make_inputs


@pytest.fixture(scope="session")
def make_config() -> Callable[..., RemBertConfig]:
    """:func:`task_config` as a fixture."""
    return task_config


@pytest.fixture(scope="session")
def reference() -> Callable[..., Any]:
    """``reference(config, task, tensors, dtype)`` -> the transformers 4.57 model in eval mode (oracle tests only)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    def _reference(config: RemBertConfig, task: str, tensors: Mapping[str, np.ndarray], dtype: str = "float64") -> Any:
        torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
        ref_config = transformers.RemBertConfig.from_dict(config.to_dict())
        model = getattr(transformers, ARCHITECTURES[task])(ref_config).to(torch_dtype).eval()
        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)).to(torch_dtype) for k, v in tensors.items()}
        model.load_state_dict(state, strict=True)
        return model

    return _reference
