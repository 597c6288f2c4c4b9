"""rembert_tf.distributed in one process; multi-replica and multi-worker runs are in ``tests/distributed``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from rembert_core import ConfigError, RemBertConfig
from rembert_core.tolerances import assert_close
from rembert_tf import TFRemBertForSequenceClassification
from rembert_tf.distributed import (
    distribute_global_batches,
    first_local_batch,
    gather_with_dense_gradient,
    is_chief,
    logs_for_multi_worker,
    make_strategy,
    save_pretrained_on_chief,
    scale_loss_for_distribution,
)

CONFIG = dict(
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    input_embedding_size=8,
    output_embedding_size=12,
    intermediate_size=20,
    max_position_embeddings=16,
    num_labels=2,
    classifier_dropout_prob=0.0,
)


def test_dense_gradient_sums_duplicate_ids() -> None:
    table = tf.Variable(tf.random.stateless_normal((6, 3), seed=(1, 2)))
    ids = tf.constant([[1, 4, 1], [1, 0, 4]])
    upstream = tf.random.stateless_normal((2, 3, 3), seed=(3, 4))
    with tf.GradientTape() as tape:
        out = gather_with_dense_gradient(tf.convert_to_tensor(table), ids)
        loss = tf.reduce_sum(out * upstream)
    grad = tape.gradient(loss, table)
    np.testing.assert_array_equal(out.numpy(), tf.gather(table, ids).numpy())
    assert isinstance(grad, tf.Tensor) and not isinstance(grad, tf.IndexedSlices)
    expected = np.zeros((6, 3), np.float32)
    np.add.at(expected, ids.numpy().reshape(-1), upstream.numpy().reshape(-1, 3))
    assert_close(grad.numpy(), expected, quantity="gradients", cross_framework=False, name="table gradient")


def test_embedding_gradients_are_dense() -> None:
    model = TFRemBertForSequenceClassification(RemBertConfig(**CONFIG))
    ids = tf.constant([[5, 6, 5, 7]])
    with tf.GradientTape() as tape:
        loss = model(ids, labels=tf.constant([1]), training=True).loss
    table = model.get_input_embeddings().weight
    grad = tape.gradient(loss, table)
    assert not isinstance(grad, tf.IndexedSlices)  # Keras' optimizers would square duplicate rows apart


def test_default_strategy_helpers(tmp_path: Path) -> None:
    strategy = make_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy)
    loss = tf.constant(2.5)
    assert float(scale_loss_for_distribution(loss)) == 2.5
    logs = {"loss": tf.constant(1.0)}
    assert logs_for_multi_worker(logs) is logs
    assert first_local_batch(strategy, {"a": 1}) == {"a": 1}
    model = TFRemBertForSequenceClassification(RemBertConfig(**CONFIG))
    files = save_pretrained_on_chief(model, tmp_path / "out", strategy)
    assert (tmp_path / "out" / "model.safetensors") in files


def test_global_batches_in_order() -> None:
    strategy = make_strategy("default")
    ids = np.arange(20 * 3, dtype=np.int32).reshape(20, 3)
    labels = np.arange(20, dtype=np.int32)
    dataset = distribute_global_batches(strategy, {"input_ids": ids, "labels": labels}, 8)
    batches = [b["labels"].numpy().tolist() for b in dataset]
    assert batches == [list(range(8)), list(range(8, 16))]  # the partial batch is dropped


def test_fit_with_a_distributed_dataset_uses_the_model_loss() -> None:
    import keras

    keras.utils.set_random_seed(0)
    strategy = make_strategy("default")
    with strategy.scope():
        model = TFRemBertForSequenceClassification(RemBertConfig(**CONFIG))
        model.compile(optimizer=keras.optimizers.SGD(0.0))
    rng = np.random.default_rng(0)
    features = {"input_ids": rng.integers(3, 50, (8, 5)).astype(np.int32), "labels": np.array([0, 1] * 4, np.int32)}
    history = model.fit(distribute_global_batches(strategy, features, 8), epochs=1, verbose=0, shuffle=False)
    expected = model({"input_ids": features["input_ids"], "labels": features["labels"]}, training=False).loss
    assert_close(history.history["loss"][0], float(expected), quantity="loss", cross_framework=False, name="fit loss")


def test_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = make_strategy("default")
    with pytest.raises(ConfigError, match="unknown strategy kind"):
        make_strategy("tpu")
    with pytest.raises(ConfigError, match="empty"):
        distribute_global_batches(strategy, {}, 8)
    with pytest.raises(ConfigError, match="positive multiple"):
        distribute_global_batches(strategy, {"a": np.zeros((8, 2))}, 0)
    with pytest.raises(ConfigError, match="different numbers of rows"):
        distribute_global_batches(strategy, {"a": np.zeros((8, 2)), "b": np.zeros(9)}, 4)
    with pytest.raises(ConfigError, match="do not fill one global batch"):
        distribute_global_batches(strategy, {"a": np.zeros((3, 2))}, 4)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        make_strategy()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"task": {}}))
    with pytest.raises(ConfigError, match="'cluster' mapping"):
        make_strategy()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {}}))
    assert make_strategy().num_replicas_in_sync == 1  # one task: no multi-worker strategy
