"""Eager, ``tf.function`` (dynamic shapes) and XLA (``jit_compile=True``) give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from rembert_core.tolerances import assert_close
from rembert_tf import (
    TFRemBertForCausalLM,
    TFRemBertForMaskedLM,
    TFRemBertForMultipleChoice,
    TFRemBertForQuestionAnswering,
    TFRemBertForSequenceClassification,
)

SIG2 = tf.TensorSpec([None, None], tf.int32)


def _fields(out):
    return {k: v for k, v in out.items() if isinstance(v, tf.Tensor)}


@pytest.mark.parametrize(
    ("cls", "labels"),
    [
        (TFRemBertForMaskedLM, "ids"),
        (TFRemBertForSequenceClassification, "class"),
        (TFRemBertForQuestionAnswering, None),
    ],
)
def test_eager_function_and_xla_agree(config_factory, batch_factory, cls, labels):
    config = config_factory("tiny", num_labels=2)
    model = cls(config)
    batch = batch_factory(config)
    if labels == "ids":
        batch["labels"] = batch["input_ids"]
    elif labels == "class":
        batch["labels"] = np.array([0, 1, 1], np.int32)

    def run(inputs):
        return model(**inputs, output_hidden_states=True, training=False)

    eager = run(batch)
    traced = tf.function(run)(batch)
    xla = tf.function(run, jit_compile=True)(batch)
    assert set(eager.keys()) == set(traced.keys()) == set(xla.keys())
    for key in eager:
        for other, how in ((traced, "tf.function"), (xla, "XLA")):
            expected, actual = eager[key], other[key]
            pairs = zip(expected, actual, strict=True) if isinstance(expected, tuple) else [(expected, actual)]
            for e, a in pairs:
                quantity = "loss" if key == "loss" else "activations"
                assert_close(a.numpy(), e.numpy(), quantity=quantity, cross_framework=False, name=f"{how} {key}")


def test_one_trace_serves_every_batch_and_sequence_length(config_factory, batch_factory):
    config = config_factory("odd")
    model = TFRemBertForMaskedLM(config)
    fn = tf.function(
        lambda ids, mask, types: model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits,
        input_signature=[SIG2, SIG2, SIG2],
    )
    for batch, seq in ((1, 3), (3, 9), (2, 17)):
        inputs = batch_factory(config, batch=batch, seq=seq, seed=batch)
        eager = model(**inputs).logits.numpy()
        traced = fn(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]).numpy()
        assert_close(traced, eager, cross_framework=False, name=f"logits {batch}x{seq}")
    assert len(fn._list_all_concrete_functions()) == 1


def test_multiple_choice_dynamic_choices(config_factory, batch_factory):
    config = config_factory("tiny")
    model = TFRemBertForMultipleChoice(config)
    sig = tf.TensorSpec([None, None, None], tf.int32)
    fn = tf.function(lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits, input_signature=[sig, sig])
    for choices in (2, 4):
        parts = [batch_factory(config, batch=2, seq=6, seed=s) for s in range(choices)]
        ids = np.stack([p["input_ids"] for p in parts], 1)
        mask = np.stack([p["attention_mask"] for p in parts], 1)
        out = fn(ids, mask).numpy()
        assert out.shape == (2, choices)
        assert_close(out, model(input_ids=ids, attention_mask=mask).logits.numpy(), cross_framework=False)


def test_cached_decoding_step_under_xla(config_factory, batch_factory):
    config = config_factory("tiny", is_decoder=True)
    model = TFRemBertForCausalLM(config)
    ids = batch_factory(config, batch=2, seq=6, pad=False)["input_ids"]
    first = model(input_ids=ids[:, :5], use_cache=True)

    def step(token, past):
        out = model(input_ids=token, past_key_values=past, use_cache=True)
        return out.logits, out.past_key_values

    eager_logits, _ = step(ids[:, 5:], first.past_key_values)
    xla_logits, xla_past = tf.function(step, jit_compile=True)(tf.constant(ids[:, 5:]), first.past_key_values)
    assert_close(xla_logits.numpy(), eager_logits.numpy(), cross_framework=False, name="xla step logits")
    assert xla_past[0][0].shape[2] == 6


def test_mixed_bfloat16_under_xla(config_factory, batch_factory):
    config = config_factory("tiny")
    model = TFRemBertForMaskedLM(config, dtype="mixed_bfloat16")
    batch = batch_factory(config)
    batch["labels"] = batch["input_ids"]
    eager = model(**batch)
    xla = tf.function(lambda inputs: model(**inputs), jit_compile=True)(batch)
    assert xla.logits.dtype == tf.bfloat16 and xla.loss.dtype == tf.float32
    # XLA fuses bfloat16 ops differently from the eager kernels: equal within bfloat16 bounds.
    assert_close(tf.cast(xla.logits, tf.float32).numpy(), tf.cast(eager.logits, tf.float32).numpy(), dtype="bfloat16")
    assert_close(xla.loss.numpy(), eager.loss.numpy(), dtype="bfloat16", quantity="loss")
