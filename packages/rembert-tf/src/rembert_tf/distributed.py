"""Training RemBERT Keras models under ``tf.distribute``: strategies, exact data sharding, chief-only saving.

The models train with ``model.fit`` under :class:`tf.distribute.MirroredStrategy` (several
devices of one machine) and :class:`tf.distribute.MultiWorkerMirroredStrategy` (several
processes or machines, described by ``TF_CONFIG``). Build (or load) the model and call
``compile`` inside ``strategy.scope()``; a model's own loss (labels in the input dict) is
scaled by :func:`scale_loss_for_distribution` as Keras scales its compiled losses, so the
gradients summed over replicas are those of the mean loss.

* :func:`make_strategy` picks the strategy: ``TF_CONFIG`` with several tasks gives
  ``MultiWorkerMirroredStrategy``; several local devices ``MirroredStrategy``.
* :func:`distribute_global_batches` feeds each replica its exact slice of each global batch
  (rows ``[r * n / R, (r + 1) * n / R)`` for replica ``r`` of ``R``), so a run on R replicas
  sees the same global batches as a one-replica run.
* :func:`is_chief` and :func:`save_pretrained_on_chief` write the canonical checkpoint from the
  chief only (other workers write nothing), through the model's ``save_pretrained``.
* :func:`limit_threads` keeps several CPU workers on one machine from oversubscribing its cores.

Example (run once per worker, ``TF_CONFIG`` set by the launcher)::

    strategy = make_strategy()
    with strategy.scope():
        model = TFRemBertForSequenceClassification.from_pretrained("ckpt", num_labels=2)
        model.compile(optimizer=keras.optimizers.Adam(1e-4))
    model.fit(distribute_global_batches(strategy, features, global_batch_size=32), epochs=1)
    save_pretrained_on_chief(model, "out", strategy)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from rembert_core import ConfigError

__all__ = [
    "distribute_global_batches",
    "first_local_batch",
    "gather_with_dense_gradient",
    "is_chief",
    "limit_threads",
    "logs_for_multi_worker",
    "make_strategy",
    "save_pretrained_on_chief",
    "scale_loss_for_distribution",
]


def scale_loss_for_distribution(loss: tf.Tensor) -> tf.Tensor:
    """``loss`` divided by the number of replicas in sync (unchanged outside a multi-replica strategy).

    Keras' ``fit`` sums gradients over replicas; each replica's loss is a mean over its own
    slice of the batch, so dividing by the number of replicas makes the summed gradient the
    gradient of the mean of the replicas' losses (Keras does the same for compiled losses).
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        return loss * tf.cast(1.0 / replicas, loss.dtype)
    return loss


def gather_with_dense_gradient(table: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """``tf.gather(table, ids)`` whose gradient w.r.t. ``table`` is a dense tensor (duplicate ids summed).

    ``tf.gather``'s gradient is an ``IndexedSlices`` holding one row per looked-up id,
    duplicates included; under a strategy the replicas' slices are concatenated, adding more
    duplicates. Keras' optimizers square such slices row by row (``ops.square`` keeps the
    indices), so Adam's second moment of a row seen k times becomes the sum of k squares
    instead of the square of the summed gradient: the update depends on how the batch was
    split over replicas, and differs from PyTorch's ``nn.Embedding``. Summing duplicates into
    a dense ``(rows, width)`` gradient fixes both; Adam updates every row of its moment
    tensors each step anyway, so the dense gradient adds no asymptotic cost.

    ``table`` (rows, width), ``ids`` int (...) -> (..., width).
    """

    def lookup(params: tf.Tensor) -> Any:
        def grad(upstream: tf.Tensor) -> tf.Tensor:
            width = tf.shape(params)[-1]
            flat = tf.reshape(upstream, tf.stack([-1, width]))  # (n ids, width)
            return tf.math.unsorted_segment_sum(flat, tf.reshape(ids, [-1]), tf.shape(params)[0])

        return tf.gather(params, ids), grad

    return tf.custom_gradient(lookup)(table)


def first_local_batch(strategy: tf.distribute.Strategy, batch: Any) -> Any:
    """``batch`` with every distributed value replaced by its first local replica's tensor (others kept)."""

    def local(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return tf.nest.map_structure(local, batch)


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return False
    spec = resolver.cluster_spec().as_dict()
    return sum(len(tasks) for tasks in spec.values()) > 1


def logs_for_multi_worker(logs: Any) -> Any:
    """Train/test-step logs reshaped to ``(1,)`` under a multi-worker ``MultiWorkerMirroredStrategy``.

    Keras 3's TF trainer reduces each log across workers with ``strategy.reduce("MEAN", value,
    axis=0)``, which fails on the scalar logs every step returns ("Invalid reduction dimension 0
    for input with 0 dimensions", tensorflow/tensorflow#72388). With a leading axis of one the
    reduction is the mean over workers and yields a scalar. Other strategies get ``logs`` unchanged.
    """
    if not _multi_worker(tf.distribute.get_strategy()):
        return logs

    def expand(value: Any) -> Any:
        if isinstance(value, tf.Tensor | tf.Variable) and value.shape.rank == 0:
            return tf.reshape(value, [1])
        return value

    return tf.nest.map_structure(expand, logs)


def limit_threads(intra_op: int = 1, inter_op: int = 1) -> None:
    """Cap TensorFlow's thread pools; call before any TensorFlow op runs (at the start of a worker).

    Several CPU workers on one machine each default to one thread per core; with as many
    workers as cores they thrash. One intra-op and one inter-op thread per worker keeps a
    2-worker run on 2 cores near the speed of a single worker.
    """
    if intra_op < 0 or inter_op < 0:
        raise ConfigError(f"thread counts must be >= 0 (0 = TensorFlow's default), got {intra_op}, {inter_op}")
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def _tf_config() -> dict[str, Any] | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict):
        raise ConfigError("TF_CONFIG must be a JSON object with a 'cluster' mapping and a 'task'")
    return value


def make_strategy(kind: str = "auto", *, communication: str = "auto") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy for training.

    Args:
        kind: ``"auto"`` (``multi_worker`` when ``TF_CONFIG`` lists several tasks, else
            ``mirrored`` when there are several GPUs, else the default strategy),
            ``"multi_worker"``, ``"mirrored"`` or ``"default"`` (no distribution).
        communication: collective implementation for ``multi_worker``: ``"auto"``,
            ``"ring"`` (gRPC, works on CPUs) or ``"nccl"`` (GPUs).
    """
    kinds = ("auto", "multi_worker", "mirrored", "default")
    if kind not in kinds:
        raise ConfigError(f"unknown strategy kind {kind!r}; choose one of {kinds}")
    if kind == "auto":
        config = _tf_config()
        tasks = sum(len(v) for v in config["cluster"].values()) if config else 0
        if tasks > 1:
            kind = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "multi_worker":
        implementations = {
            "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
        }
        if communication not in implementations:
            raise ConfigError(f"unknown communication {communication!r}; choose one of {sorted(implementations)}")
        options = tf.distribute.experimental.CommunicationOptions(implementation=implementations[communication])
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process is the chief: the ``chief`` task, or worker 0 when the cluster has no chief.

    Single-process strategies are always the chief.
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return bool(task_type == "worker" and task_id == 0 and not has_chief)


def save_pretrained_on_chief(
    model: Any,
    save_directory: str | os.PathLike[str],
    strategy: tf.distribute.Strategy | None = None,
    *,
    max_shard_size: int | str | None = None,
) -> list[Path]:
    """``model.save_pretrained(save_directory)`` on the chief; other workers write nothing and get ``[]``.

    The variables of a mirrored model hold the same values on every replica, so the chief's
    copy is the model; the checkpoint is the canonical one (loads in rembert-torch and
    transformers). Call it on every worker after ``fit`` returns (no collective is involved).
    """
    if not is_chief(strategy):
        return []
    files: list[Path] = model.save_pretrained(save_directory, max_shard_size=max_shard_size)
    return files


def distribute_global_batches(
    strategy: tf.distribute.Strategy,
    features: Mapping[str, np.ndarray],
    global_batch_size: int,
    *,
    repeat: bool = False,
) -> Any:
    """A distributed dataset giving replica ``r`` of ``R`` rows ``[r * b, (r + 1) * b)`` of each global batch.

    ``features`` maps input names (``input_ids``, ``attention_mask``, ``labels``, ...) to
    arrays with the same first dimension; consecutive ``global_batch_size`` rows form one
    global batch (a trailing partial batch is dropped), and ``b = global_batch_size / R``.
    Every worker passes the same arrays and keeps only its replicas' rows, so the replicas
    together see exactly the global batches of a one-replica run, in order. The result is
    a ``tf.distribute`` dataset for ``model.fit`` (pass ``steps_per_epoch`` when ``repeat``).
    """
    if not features:
        raise ConfigError("features is empty")
    replicas = strategy.num_replicas_in_sync
    if global_batch_size < 1 or global_batch_size % replicas:
        raise ConfigError(f"global_batch_size {global_batch_size} must be a positive multiple of {replicas} replicas")
    arrays = {name: np.asarray(value) for name, value in features.items()}
    rows = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(rows.values())) != 1:
        raise ConfigError(f"features have different numbers of rows: {rows}")
    n_rows = next(iter(rows.values()))
    steps = n_rows // global_batch_size
    if steps == 0:
        raise ConfigError(f"{n_rows} rows do not fill one global batch of {global_batch_size}")
    per_replica = global_batch_size // replicas

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        sliced = {}
        for name, a in arrays.items():
            # (steps, replicas, per_replica, ...) -> this pipeline's replicas -> (steps * local, per_replica, ...)
            blocks = a[: steps * global_batch_size].reshape(steps, replicas, per_replica, *a.shape[1:])
            mine = blocks[:, first : first + local]
            sliced[name] = mine.reshape(steps * local, per_replica, *a.shape[1:])
        dataset = tf.data.Dataset.from_tensor_slices(sliced)  # elements are per-replica batches already
        if repeat:
            dataset = dataset.repeat()
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(2)

    return strategy.distribute_datasets_from_function(dataset_fn)
