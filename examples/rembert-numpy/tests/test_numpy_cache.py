"""Incremental decoding: a prefix with ``use_cache`` then new tokens from the cache equals one full forward pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rembert_core import InputError, RemBertConfig
from rembert_core.tolerances import assert_close
from rembert_numpy import NumpyBackend


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cross", [True, False])
@pytest.mark.parametrize("task", ["causal_lm", "base"])
@pytest.mark.parametrize("steps", [(5, 1, 1, 1), (3, 4, 1)])
def test_incremental_equals_full(
    backend: NumpyBackend,
    configs: dict[str, RemBertConfig],
    make_batch: Callable[..., dict[str, Any]],
    build: Callable[..., Any],
    task: str,
    cross: bool,
    dtype: str,
    steps: tuple[int, ...],
) -> None:
    config = configs["odd"].copy(is_decoder=True, add_cross_attention=cross)
    seq = sum(steps)
    full = make_batch(config, "causal_lm", seed=4, batch=3, seq=seq)
    full.pop("labels")
    full["attention_mask"][2, :2] = 1  # the "fully padded" row keeps two tokens so every step attends somewhere
    model, _ = build(config, task, dtype, scale=20.0 if dtype == "float64" else 10.0)  # float32: see the oracle tests
    key = "logits" if task == "causal_lm" else "last_hidden_state"
    whole = backend.forward(model, full, use_cache=True, output_hidden_states=True)
    past = None
    start = 0
    pieces = []
    for length in steps:
        end = start + length
        step = {
            "input_ids": full["input_ids"][:, start:end],
            "token_type_ids": full["token_type_ids"][:, start:end],
            "attention_mask": full["attention_mask"][:, :end],
        }
        if cross:
            step["encoder_hidden_states"] = full["encoder_hidden_states"]
            step["encoder_attention_mask"] = full["encoder_attention_mask"]
        out = backend.forward(model, step, use_cache=True, past_key_values=past)
        past = out["past_key_values"]
        assert len(past) == config.num_hidden_layers
        assert all(len(layer) == (4 if cross else 2) for layer in past)
        assert past[0][0].shape == (3, config.num_attention_heads, end, config.head_dim)
        pieces.append(out[key])
        start = end
    assert past is not None
    incremental = np.concatenate(pieces, axis=1)
    # Rows and positions a padded query never reads are still computed; compare where the mask is 1.
    keep = full["attention_mask"].astype(bool)
    assert_close(incremental[keep], whole[key][keep], dtype=dtype, cross_framework=False, name=f"incremental {key}")
    for i, (a_layer, b_layer) in enumerate(zip(past, whole["past_key_values"], strict=True)):
        for j, (a, b) in enumerate(zip(a_layer, b_layer, strict=True)):
            assert_close(a, b, dtype=dtype, cross_framework=False, name=f"past_key_values[{i}][{j}]")


def test_cached_cross_attention_is_reused(
    backend: NumpyBackend, configs: dict[str, RemBertConfig], make_batch: Callable[..., dict[str, Any]], build: Any
) -> None:
    """With a 4-array cache, the cross keys/values come from the cache, as in the reference's EncoderDecoderCache."""
    config = configs["odd"].copy(is_decoder=True, add_cross_attention=True)
    full = make_batch(config, "causal_lm", seed=2, batch=2, seq=4)
    full.pop("labels")
    model, _ = build(config, "causal_lm", "float64")
    prefix = {k: (v[:, :3] if k in ("input_ids", "token_type_ids", "attention_mask") else v) for k, v in full.items()}
    past = backend.forward(model, prefix, use_cache=True)["past_key_values"]
    step = {k: (v[:, 3:] if k in ("input_ids", "token_type_ids") else v) for k, v in full.items()}
    tampered = [(k, v, ck, 2.0 * cv) for k, v, ck, cv in past]
    a = backend.forward(model, step, past_key_values=past)["logits"]
    b = backend.forward(model, step, past_key_values=tampered)["logits"]
    assert not np.allclose(a, b)


def test_cache_errors(
    backend: NumpyBackend, configs: dict[str, RemBertConfig], make_batch: Callable[..., dict[str, Any]], build: Any
) -> None:
    decoder = configs["odd"].copy(is_decoder=True)
    model, _ = build(decoder, "causal_lm", "float64")
    ids = np.array([[5, 6, 7]])
    past = backend.forward(model, {"input_ids": ids}, use_cache=True)["past_key_values"]
    with pytest.raises(InputError, match="layers"):
        backend.forward(model, {"input_ids": ids}, past_key_values=past[:1])
    with pytest.raises(InputError, match=r"attention_mask has shape \(1, 3\), expected \(1, 6\)"):
        backend.forward(model, {"input_ids": ids, "attention_mask": np.ones((1, 3), int)}, past_key_values=past)
    with pytest.raises(InputError, match="past_key_values\\[0\\]\\[1\\] has shape"):
        backend.forward(model, {"input_ids": ids}, past_key_values=[(k, v[:, :1]) for k, v in past])
    encoder, _ = build(configs["odd"], "masked_lm", "float64")
    with pytest.raises(InputError, match="not an input of the masked_lm model"):
        backend.forward(encoder, {"input_ids": ids}, past_key_values=past)
    assert "past_key_values" not in backend.forward(encoder, {"input_ids": ids}, use_cache=True)
