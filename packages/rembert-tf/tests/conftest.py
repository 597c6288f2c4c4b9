"""Fixtures of the rembert-tf tests: small configs and a float64 NumPy re-implementation of RemBERT.

These tests run without torch and without transformers (the nox tests-tf session
has neither); the NumPy forward below, written from the reference PyTorch
semantics, is the independent oracle here. The comparisons with transformers
itself live in ``tests/test_tf_reference.py`` at the repository root.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up logs drown the test output

import numpy as np
import pytest

from rembert_core import RemBertConfig
from rembert_core.testing import TEST_CONFIGS

_ERF = np.vectorize(math.erf, otypes=[np.float64])

#: Small configs ("odd": head_dim 8 over 6 heads, widths 20/36, vocab 301, 3 types, 3 layers); the
#: values are written once, in rembert_core.testing.TEST_CONFIGS.
CONFIGS: dict[str, dict[str, Any]] = {"tiny": TEST_CONFIGS["small"], "odd": TEST_CONFIGS["deep"]}

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0)


def make_config(name: str = "tiny", **changes: Any) -> RemBertConfig:
    """A small config from :data:`CONFIGS` (no dropout unless changed)."""
    return RemBertConfig(**{**CONFIGS[name], **NO_DROPOUT, **changes})


@pytest.fixture
def config_factory() -> Callable[..., RemBertConfig]:
    """``config_factory(name="tiny", **changes)``."""
    return make_config


def make_batch(config: RemBertConfig, batch: int = 3, seq: int = 9, seed: int = 0, pad: bool = True) -> dict[str, Any]:
    """Random ids (no pad id), a right-padded attention mask and token types."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, config.vocab_size, size=(batch, seq)).astype(np.int32)
    mask = np.ones_like(ids)
    if pad and batch > 1:
        mask[1, seq - 3 :] = 0
    if pad and batch > 2:
        mask[2, 2:] = 0
    types = rng.integers(0, config.type_vocab_size, size=(batch, seq)).astype(np.int32)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.fixture
def batch_factory() -> Callable[..., dict[str, Any]]:
    """``batch_factory(config, batch=3, seq=9, seed=0, pad=True)``."""
    return make_batch


# -- float64 NumPy reference ---------------------------------------------------------------------


def _act(name: str, x: np.ndarray) -> np.ndarray:
    if name == "gelu":
        return 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "relu":
        return np.maximum(x, 0)
    return x / (1.0 + np.exp(-x))


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


class NumpyRemBert:
    """RemBERT forward in float64 NumPy over canonical tensors (PyTorch semantics, no dropout)."""

    def __init__(self, config: RemBertConfig, tensors: Mapping[str, np.ndarray], task: str) -> None:
        self.c = config
        self.t = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
        self.task = task
        self.p = "" if task == "base" else "rembert."

    def lin(self, name: str, x: np.ndarray) -> np.ndarray:
        return x @ self.t[name + ".weight"].T + self.t[name + ".bias"]

    def ln(self, name: str, x: np.ndarray) -> np.ndarray:
        return _ln(x, self.t[name + ".weight"], self.t[name + ".bias"], self.c.layer_norm_eps)

    def attention(
        self, prefix: str, x: np.ndarray, mask: np.ndarray, source: np.ndarray, head_mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        b, s, h = x.shape
        n, d = self.c.num_attention_heads, self.c.head_dim

        def split(y: np.ndarray) -> np.ndarray:
            return y.reshape(b, -1, n, d).transpose(0, 2, 1, 3)

        q = split(self.lin(prefix + ".self.query", x))
        k = split(self.lin(prefix + ".self.key", source))
        v = split(self.lin(prefix + ".self.value", source))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + mask
        probs = _softmax(scores)
        if head_mask is not None:
            probs = probs * head_mask.reshape(1, n, 1, 1)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        out = self.ln(prefix + ".output.LayerNorm", self.lin(prefix + ".output.dense", ctx) + x)
        return out, probs

    def backbone(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray | None = None,
        token_type_ids: np.ndarray | None = None,
        head_mask: np.ndarray | None = None,
        encoder_hidden_states: np.ndarray | None = None,
    ) -> dict[str, Any]:
        c, p = self.c, self.p
        b, s = input_ids.shape
        mask = np.ones((b, s)) if attention_mask is None else attention_mask.astype(np.float64)
        types = np.zeros((b, s), int) if token_type_ids is None else token_type_ids
        emb = (
            self.t[p + "embeddings.word_embeddings.weight"][input_ids]
            + self.t[p + "embeddings.token_type_embeddings.weight"][types]
            + self.t[p + "embeddings.position_embeddings.weight"][np.arange(s)][None]
        )
        emb = self.ln(p + "embeddings.LayerNorm", emb)
        ext = mask[:, None, None, :]
        if c.is_decoder:
            ext = np.tril(np.ones((s, s)))[None, None] * ext
        ext = (1.0 - ext) * np.finfo(np.float32).min
        enc_ext = np.zeros((b, 1, 1, 1))
        x = self.lin(p + "encoder.embedding_hidden_mapping_in", emb)
        hidden, attentions, cross = [x], [], []
        for i in range(c.num_hidden_layers):
            hm = None
            if head_mask is not None:
                hm = head_mask if head_mask.ndim == 1 else head_mask[i]
            layer = f"{p}encoder.layer.{i}"
            x, probs = self.attention(layer + ".attention", x, ext, x, hm)
            attentions.append(probs)
            if c.is_decoder and encoder_hidden_states is not None:
                x, cprobs = self.attention(layer + ".crossattention", x, enc_ext, encoder_hidden_states, hm)
                cross.append(cprobs)
            inter = _act(c.hidden_act, self.lin(layer + ".intermediate.dense", x))
            x = self.ln(layer + ".output.LayerNorm", self.lin(layer + ".output.dense", inter) + x)
            hidden.append(x)
        out: dict[str, Any] = {"last_hidden_state": x, "hidden_states": hidden, "attentions": attentions}
        if cross:
            out["cross_attentions"] = cross
        if p + "pooler.dense.weight" in self.t:
            out["pooler_output"] = np.tanh(self.lin(p + "pooler.dense", x[:, 0]))
        return out

    def forward(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Reference outputs (fields as the task's output) for ``inputs`` (numpy, no labels)."""
        task = self.task
        kwargs = {k: inputs[k] for k in ("attention_mask", "token_type_ids", "head_mask") if k in inputs}
        ids = inputs["input_ids"]
        if task == "multiple_choice":
            b, n, s = ids.shape
            flat = {k: v.reshape(b * n, s) for k, v in kwargs.items() if k != "head_mask"}
            if "head_mask" in kwargs:
                flat["head_mask"] = kwargs["head_mask"]
            out = self.backbone(ids.reshape(b * n, s), **flat)
            logits = self.lin("classifier", out["pooler_output"]).reshape(b, n)
            return {"logits": logits, "hidden_states": out["hidden_states"], "attentions": out["attentions"]}
        out = self.backbone(ids, encoder_hidden_states=inputs.get("encoder_hidden_states"), **kwargs)
        common = {"hidden_states": out["hidden_states"], "attentions": out["attentions"]}
        if task == "base":
            return out
        x = out["last_hidden_state"]
        if task in ("masked_lm", "causal_lm"):
            y = _act(self.c.hidden_act, self.lin("cls.predictions.dense", x))
            y = self.ln("cls.predictions.LayerNorm", y)
            return {"logits": self.lin("cls.predictions.decoder", y), **common}
        if task == "sequence_classification":
            return {"logits": self.lin("classifier", out["pooler_output"]), **common}
        if task == "token_classification":
            return {"logits": self.lin("classifier", x), **common}
        logits = self.lin("qa_outputs", x)
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1], **common}


@pytest.fixture
def numpy_reference() -> type[NumpyRemBert]:
    """The :class:`NumpyRemBert` class."""
    return NumpyRemBert


def np_cross_entropy(logits: np.ndarray, labels: np.ndarray, ignore_index: int = -100) -> float:
    """Mean cross-entropy over labels != ignore_index (float64)."""
    logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    labels = labels.reshape(-1)
    keep = labels != ignore_index
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    nll = logz - logits[np.arange(len(labels)), np.where(keep, labels, 0)]
    return float(nll[keep].sum() / keep.sum())


@pytest.fixture
def cross_entropy() -> Callable[..., float]:
    """:func:`np_cross_entropy`."""
    return np_cross_entropy
