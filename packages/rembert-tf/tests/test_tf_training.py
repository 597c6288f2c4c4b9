"""Training and export: fit() with the internal and a user loss, mixed_bfloat16, SavedModel round trip."""

from __future__ import annotations

import keras
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
    TFRemBertModel,
)


def _classification_data(config, n=32, seq=8, seed=0):
    """Label = whether token 7 appears: learnable from the ids."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(8, config.vocab_size, size=(n, seq)).astype(np.int32)
    labels = (np.arange(n) % 2).astype(np.int32)
    ids[labels == 1, rng.integers(0, seq)] = 7
    return ids, labels


def test_fit_reduces_the_internal_loss(config_factory):
    keras.utils.set_random_seed(0)
    config = config_factory("tiny", num_labels=2, hidden_dropout_prob=0.1)
    model = TFRemBertForSequenceClassification(config)
    ids, labels = _classification_data(config)
    data = tf.data.Dataset.from_tensor_slices({"input_ids": ids, "labels": labels}).batch(8)
    before = float(model(input_ids=ids, labels=labels).loss)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(data, epochs=4, verbose=0, shuffle=False)
    after = float(model(input_ids=ids, labels=labels).loss)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert after < before


def test_fit_with_a_user_loss_on_logits(config_factory):
    keras.utils.set_random_seed(1)
    config = config_factory("tiny", num_labels=2)
    model = TFRemBertForSequenceClassification(config)
    ids, labels = _classification_data(config, seed=1)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    # Eight epochs of Adam memorise the 32 examples (the loss falls from ln 2 to below 0.1 for every seed tried);
    # four epochs of SGD barely moved it, so whether it fell was down to the seed and the TF version.
    history = model.fit(ids, labels, batch_size=8, epochs=8, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[0] == pytest.approx(np.log(2), abs=0.05)
    assert losses[-1] < 0.25 * losses[0], losses


def test_fit_masked_lm_and_causal_lm(config_factory, batch_factory):
    keras.utils.set_random_seed(2)
    for cls, changes in ((TFRemBertForMaskedLM, {}), (TFRemBertForCausalLM, {"is_decoder": True})):
        config = config_factory("tiny", **changes)
        model = cls(config)
        batch = batch_factory(config, batch=8, seq=6, pad=False)
        labels = np.where(batch["attention_mask"] == 1, batch["input_ids"], -100)
        data = tf.data.Dataset.from_tensor_slices({**batch, "labels": labels}).batch(4)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        history = model.fit(data, epochs=3, verbose=0, shuffle=False)
        assert history.history["loss"][-1] < history.history["loss"][0], cls.__name__


@pytest.mark.parametrize("cls", [TFRemBertForMaskedLM, TFRemBertForSequenceClassification, TFRemBertModel])
def test_mixed_bfloat16_is_close_to_float32(config_factory, batch_factory, cls):
    config = config_factory("odd", num_labels=3)
    model32 = cls(config)
    model16 = cls(config, dtype="mixed_bfloat16")
    model16.load_tensors(model32.export_tensors())
    assert all(v.dtype == "float32" for v in model16.trainable_variables)
    batch = batch_factory(config)
    out32 = model32(**batch, output_attentions=True)
    out16 = model16(**batch, output_attentions=True)
    key = "logits" if "logits" in out32 else "last_hidden_state"
    # Matmul outputs are bfloat16; the residual stream after LayerNorm stays float32, as under torch autocast.
    assert out16[key].dtype == (tf.bfloat16 if key == "logits" else tf.float32)
    assert out16.attentions[0].dtype == tf.float32  # softmax in float32
    assert_close(tf.cast(out16[key], tf.float32).numpy(), out32[key].numpy(), dtype="bfloat16", name=key)
    for i, (a, b) in enumerate(zip(out16.attentions, out32.attentions, strict=True)):
        assert_close(a.numpy(), b.numpy(), dtype="bfloat16", quantity="attentions", name=f"attentions[{i}]")


def test_mixed_bfloat16_global_policy_and_training(config_factory, batch_factory):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        config = config_factory("tiny")
        model = TFRemBertForMaskedLM(config)
        batch = batch_factory(config, batch=4, seq=5, pad=False)
        out = model(**batch, labels=batch["input_ids"])
        assert out.loss.dtype == tf.float32 and np.isfinite(out.loss.numpy())
        data = tf.data.Dataset.from_tensor_slices({**batch, "labels": batch["input_ids"]}).batch(2)
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        history = model.fit(data, epochs=3, verbose=0, shuffle=False)
        assert history.history["loss"][-1] < history.history["loss"][0]
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize(
    "cls", [TFRemBertForSequenceClassification, TFRemBertForMultipleChoice, TFRemBertForQuestionAnswering]
)
def test_savedmodel_export_round_trip(tmp_path, config_factory, batch_factory, cls):
    config = config_factory("tiny", num_labels=2)
    model = cls(config)
    model.export(tmp_path / "saved", verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert "serving_default" in loaded.signatures
    for batch_size, seq in ((2, 5), (3, 9)):
        batch = batch_factory(config, batch=batch_size, seq=seq, seed=seq)
        if cls is TFRemBertForMultipleChoice:
            batch = {k: np.stack([v, v[::-1]], 1) for k, v in batch.items()}
        inputs = {k: tf.constant(v, tf.int32) for k, v in batch.items()}
        expected = model(**inputs)
        served = loaded.serve(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
        signature = loaded.signatures["serving_default"](**inputs)
        for key, value in served.items():
            assert_close(value.numpy(), expected[key].numpy(), cross_framework=False, name=key)
            assert_close(signature[key].numpy(), expected[key].numpy(), cross_framework=False, name=key)


@pytest.mark.parametrize(
    "cls", [TFRemBertForSequenceClassification, TFRemBertForQuestionAnswering, TFRemBertForMaskedLM, TFRemBertModel]
)
def test_predict_returns_a_dict_of_the_batched_outputs(config_factory, cls):
    """model.predict (Keras' batching) gives a plain dict of arrays equal to one call on the whole input."""
    keras.utils.set_random_seed(2)
    config = config_factory("tiny", num_labels=2 if cls is TFRemBertForQuestionAnswering else 3)
    model = cls(config)
    ids, _ = _classification_data(config, n=10, seq=6)
    mask = np.ones_like(ids)
    mask[3, 4:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    predicted = model.predict(inputs, batch_size=4, verbose=0)  # batches of 4, 4 and 2 rows
    expected = model(**inputs).to_dict()
    assert isinstance(predicted, dict)
    assert set(predicted) == set(expected)
    for key, value in expected.items():
        assert isinstance(predicted[key], np.ndarray), key
        assert_close(predicted[key], np.asarray(value), cross_framework=False, name=key)
