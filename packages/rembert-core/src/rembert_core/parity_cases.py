"""The cases parity runs: the embedded configs, each task's config, seeded weights and seeded inputs.

Importable from :mod:`rembert_core.parity` as well; they live here so the engine reads on its own.
"""

from __future__ import annotations

import numpy as np

from rembert_core.config import RemBertConfig
from rembert_core.errors import RemBertError
from rembert_core.schema import Init, build_schema
from rembert_core.testing.configs import tiny_config

__all__ = ["NUM_CHOICES", "default_config", "make_inputs", "seeded_tensors", "task_config"]

NUM_CHOICES = 2


def default_config(name: str = "tiny", *, layers: int | None = None) -> RemBertConfig:
    """The embedded parity configs.

    ``"tiny"``: odd sizes that catch transposes and head-splitting bugs (hidden 48
    with 6 heads of 8, decoupled embeddings 20/36, vocab 301, 3 token types,
    3 labels). ``"full"``: RemBERT's real widths (hidden 1152, 18 heads,
    embeddings 256/1664, intermediate 4608) with a small vocabulary and 2 layers
    unless ``layers`` says otherwise, so parity is shown at the real scale.
    """
    if name == "tiny":
        config = tiny_config()
    elif name == "full":
        config = RemBertConfig(vocab_size=4096, num_hidden_layers=2, num_labels=3, bos_token_id=1, eos_token_id=2)
    else:
        raise RemBertError(f"unknown parity config {name!r}; choose 'tiny' or 'full'")
    if layers is not None:
        config.num_hidden_layers = int(layers)
        config.validate()
    return config


def task_config(config: RemBertConfig, task: str) -> RemBertConfig:
    """The config a task is checked with: causal LM runs as a decoder with cross-attention; QA has 2 labels."""
    if task == "causal_lm":
        return config.copy(is_decoder=True, add_cross_attention=True)
    if task == "question_answering" and config.num_labels != 2:
        return config.copy(num_labels=2)  # start and end logits
    return config


def seeded_tensors(config: RemBertConfig, task: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic float32 canonical tensors for ``task``.

    Weights are normal with a spread large enough that attention is far from
    uniform; LayerNorm gains are near one; the padding row of the word embeddings
    is zero, as in a trained model.
    """
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for name, spec in build_schema(config, task).items():
        if spec.init is Init.ONES:
            value = 1.0 + 0.1 * rng.standard_normal(spec.shape)
        elif spec.init is Init.ZEROS:
            value = 0.05 * rng.standard_normal(spec.shape)
        else:
            fan_in = spec.shape[-1]
            value = rng.standard_normal(spec.shape) / np.sqrt(fan_in)
            if spec.init is Init.NORMAL_PADDED and config.pad_token_id is not None:
                value[config.pad_token_id] = 0.0
        tensors[name] = value.astype(np.float32)
    return tensors


def make_inputs(
    config: RemBertConfig, task: str, *, batch: int = 2, seq_len: int = 8, seed: int = 0
) -> dict[str, np.ndarray]:
    """A deterministic padded batch for ``task``: ids, attention mask, token types and labels.

    Row 0 is full length; every other row is padded over its last third, and with
    three rows or more the last one is padding only. Multiple
    choice inputs are (batch, 2 choices, seq_len); causal LM also gets
    ``encoder_hidden_states`` for its cross-attention.
    """
    if batch < 1 or seq_len < 2:
        raise RemBertError(f"parity needs batch >= 1 and seq_len >= 2, got batch={batch}, seq_len={seq_len}")
    if seq_len > config.max_position_embeddings:
        raise RemBertError(f"seq_len {seq_len} exceeds max_position_embeddings {config.max_position_embeddings}")
    rng = np.random.default_rng(seed + 1)
    shape: tuple[int, ...] = (batch, NUM_CHOICES, seq_len) if task == "multiple_choice" else (batch, seq_len)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    low = min(3, config.vocab_size - 1)
    input_ids = rng.integers(low, config.vocab_size, size=shape)
    mask = np.ones(shape, dtype=np.int64)
    keep = max(1, seq_len - max(1, seq_len // 3))
    mask[1:, ..., keep:] = 0
    if batch >= 3:
        mask[-1] = 0  # a fully padded row: every score masked, a classic source of NaN and backend drift
    input_ids = np.where(mask == 1, input_ids, pad)
    token_type_ids = rng.integers(0, config.type_vocab_size, size=shape) * mask
    inputs: dict[str, np.ndarray] = {
        "input_ids": input_ids.astype(np.int64),
        "attention_mask": mask,
        "token_type_ids": token_type_ids.astype(np.int64),
    }
    if task == "masked_lm":
        chosen = (rng.random(shape) < 0.4) & (mask == 1)
        chosen[0, 0] = True
        inputs["labels"] = np.where(chosen, rng.integers(low, config.vocab_size, size=shape), -100)
    elif task == "causal_lm":
        inputs["labels"] = np.where(mask == 1, input_ids, -100)
        enc_len = max(2, seq_len // 2 + 1)
        inputs["encoder_hidden_states"] = rng.standard_normal((batch, enc_len, config.hidden_size)).astype(np.float32)
        enc_mask = np.ones((batch, enc_len), dtype=np.int64)
        enc_mask[1:, enc_len - 1 :] = 0
        inputs["encoder_attention_mask"] = enc_mask
    elif task == "sequence_classification":
        inputs["labels"] = rng.integers(0, config.num_labels, size=(batch,))
    elif task == "multiple_choice":
        inputs["labels"] = rng.integers(0, NUM_CHOICES, size=(batch,))
    elif task == "token_classification":
        inputs["labels"] = np.where(mask == 1, rng.integers(0, config.num_labels, size=shape), -100)
    elif task == "question_answering":
        inputs["start_positions"] = rng.integers(0, keep, size=(batch,))
        inputs["end_positions"] = rng.integers(0, keep, size=(batch,))
    return {k: (v.astype(np.int64) if v.dtype.kind in "iu" else v) for k, v in inputs.items()}
