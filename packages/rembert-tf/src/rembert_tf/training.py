"""Keras training glue: which labels and outputs ``fit``/``evaluate`` hand to the loss and to the metrics.

transformers' TF models train the Keras way, and so do ours (:class:`~rembert_tf.TFRemBertPreTrainedModel`'s
``train_step``, ``compute_loss`` and ``compute_metrics`` call the functions here):

* labels inside ``x`` (``{"input_ids": ..., "labels": ...}``) or given as ``y``;
* ``compile`` without a ``loss``: the model's own loss (labels given as ``y`` are moved into the inputs
  first, as transformers does); with a Keras ``loss``: that loss on the matching output;
* metrics compare each label with its output (``labels`` with ``logits``; ``start_positions`` /
  ``end_positions`` with ``start_logits`` / ``end_logits``). For the token-level heads they see what the
  model's own loss sees: only the positions not labelled -100, and the causal LM compares
  position t's logits with label t + 1. (transformers' TF models give metrics the raw labels: there,
  -100 positions count as misses and causal-LM metrics are off by one position.)
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rembert_core import InputError
from rembert_tf._tensorflow import keras, tf
from rembert_tf.outputs import ModelOutput

if TYPE_CHECKING:
    from rembert_tf.pretrained import TFRemBertPreTrainedModel

__all__ = ["broadcast_metrics", "label_to_output_names", "labels_into_inputs", "match_labels", "prepare_tf_dataset"]

#: Heads whose labels are per token (-100: not scored).
TOKEN_LEVEL_TASKS = frozenset({"masked_lm", "causal_lm", "token_classification"})


def label_to_output_names(model: TFRemBertPreTrainedModel) -> dict[str, str]:
    """``{label input name: output field}`` of a head (empty for the bare model)."""
    if "start_positions" in model.INPUT_NAMES:
        return {"start_positions": "start_logits", "end_positions": "end_logits"}
    if "labels" in model.INPUT_NAMES:
        return {"labels": "logits"}
    return {}


def labels_into_inputs(model: TFRemBertPreTrainedModel, data: Any) -> Any:
    """For a model compiled without a loss, copy ``y`` into the inputs so the model computes its own loss.

    ``y`` may be a tensor (the head's one label input), a tuple (the label inputs in order: start and end
    positions) or a dict keyed by label input or output names. Labels already in ``x`` are kept.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if y is None or getattr(model, "_compile_loss", None) is not None:
        return data
    mapping = label_to_output_names(model)
    if not mapping:
        return data
    if not isinstance(x, Mapping):
        x = {"input_ids": x}
    x = dict(x)
    by_output = {output: label for label, output in mapping.items()}
    if isinstance(y, Mapping):
        given = {by_output.get(key, key): value for key, value in y.items()}
    elif isinstance(y, list | tuple):
        if len(y) > len(mapping):
            raise InputError(f"y has {len(y)} entries; {type(model).__name__} takes {list(mapping)}")
        given = dict(zip(mapping, y, strict=False))
    elif len(mapping) == 1:
        given = {next(iter(mapping)): y}
    else:
        raise InputError(f"y must be a tuple or dict of {list(mapping)} for {type(model).__name__}, got one tensor")
    for key, value in given.items():
        if key in mapping and x.get(key) is None:
            x[key] = value
    return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)


def _outputs(y_pred: ModelOutput) -> list[str]:
    """The output fields that can be compared with labels (not the loss, not per-layer tuples)."""
    return [k for k in y_pred if k not in ("loss", "past_key_values", "hidden_states", "attentions")]


def match_labels(
    model: TFRemBertPreTrainedModel, x: Any, y: Any, y_pred: ModelOutput, sample_weight: Any = None
) -> tuple[Any, Any, Any]:
    """``(y, y_pred, sample_weight)`` for a Keras loss or metrics: each label with its output.

    ``y`` None takes the labels from ``x``; a dict ``y`` is matched by name (label input or output
    name), a tuple by order of the outputs, a tensor with the first output (``logits`` or ``start_logits``). For the
    token-level heads, only the positions not labelled -100 count and the causal LM's labels are shifted.
    """
    mapping = label_to_output_names(model)
    names = _outputs(y_pred)
    if not names:
        raise InputError(
            f"{type(model).__name__} returned only its loss (return_logits=False, or config.return_logits=False, "
            "drops the logits): a Keras loss or metrics have no output to compare the labels with; compile "
            "without them, or keep the logits"
        )
    if y is None and isinstance(x, Mapping):
        y = {key: x[key] for key in mapping if x.get(key) is not None} or None
    if y is None:
        return None, y_pred[names[0]], sample_weight
    if isinstance(y, list | tuple):  # by order: the outputs that are not the loss
        if len(y) > len(names):
            raise InputError(f"y has {len(y)} entries; {type(model).__name__} has {len(names)} outputs: {names}")
        y = dict(zip(names, y, strict=False))
    if isinstance(y, Mapping):
        renamed: dict[str, Any] = {str(mapping.get(key, key)): value for key, value in y.items()}
        unknown = sorted(set(renamed) - set(names))
        if unknown:
            raise InputError(f"labels {unknown} match no output of {type(model).__name__} (outputs: {names})")
        if len(renamed) == 1:
            ((name, y),) = renamed.items()
            pred: Any = y_pred[name]
        else:
            order = [k for k in names if k in renamed]
            y = OrderedDict((k, renamed[k]) for k in order)
            pred = OrderedDict((k, y_pred[k]) for k in order)
    else:
        pred = y_pred[names[0]]
    if model.task in TOKEN_LEVEL_TASKS and hasattr(y, "dtype") and not isinstance(y, Mapping):
        y, pred, sample_weight = _token_level(model.task, tf.convert_to_tensor(y), pred, sample_weight)
    return y, pred, sample_weight


def _token_level(task: str, labels: tf.Tensor, logits: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """Per-token labels as the model's loss sees them: the scored positions only (labels not -100), flattened
    to ``(n,)`` labels and ``(n, classes)`` logits; the causal LM's shifted by one.

    Dropping the -100 positions (rather than weighting them 0) keeps them out of unweighted metrics too:
    Keras gives ``sample_weight`` only to ``weighted_metrics``.
    """
    if not labels.dtype.is_integer or labels.shape.rank != 2:
        return labels, logits, sample_weight
    if task == "causal_lm":  # position t predicts label t + 1
        labels, logits = labels[:, 1:], logits[:, :-1]
    keep = tf.not_equal(labels, tf.constant(-100, labels.dtype))  # (batch, seq)
    if sample_weight is not None:
        sample_weight = tf.convert_to_tensor(sample_weight)
        if sample_weight.shape.rank == 1:
            sample_weight = tf.broadcast_to(sample_weight[:, None], tf.shape(labels))
        elif task == "causal_lm":
            sample_weight = sample_weight[:, 1:]
        sample_weight = tf.boolean_mask(sample_weight, keep)
    return tf.boolean_mask(labels, keep), tf.boolean_mask(logits, keep), sample_weight


def broadcast_metrics(model: TFRemBertPreTrainedModel, metrics: Any) -> Any:
    """A flat list of metrics for a head with several outputs (question answering): one copy per output.

    tf-keras applies such a list to every output, Keras 3 refuses it; this keeps the tf-keras meaning
    (``start_logits_accuracy``, ``end_logits_accuracy``).
    """
    outputs = list(label_to_output_names(model).values())
    if len(outputs) < 2 or not isinstance(metrics, list | tuple) or len(metrics) == len(outputs):
        return metrics
    if any(isinstance(m, list | tuple | Mapping) for m in metrics):
        return metrics
    return {name: [_copy_metric(m) for m in metrics] for name in outputs}


def _copy_metric(metric: Any) -> Any:
    if isinstance(metric, keras.metrics.Metric):
        return type(metric).from_config(metric.get_config())
    return metric


# -- datasets.Dataset to tf.data ---------------------------------------------------------------------

#: Column names ``datasets`` and transformers' collators turn into ``labels``.
_LABEL_ALIASES = ("label", "label_ids")


def collate(features: Sequence[Mapping[str, Any]], tokenizer: Any = None) -> dict[str, np.ndarray]:
    """Rows to a batch of NumPy arrays: stacked, or padded by ``tokenizer.pad``; ``label``/``label_ids`` become
    ``labels`` (what transformers' ``DefaultDataCollator`` and ``DataCollatorWithPadding`` do).
    """
    rows = [dict(row) for row in features]
    if tokenizer is not None:
        batch = {k: np.asarray(v) for k, v in tokenizer.pad(rows, return_tensors="np").items()}
    else:
        batch = {key: np.stack([np.asarray(row[key]) for row in rows]) for key in rows[0]}
    for alias in _LABEL_ALIASES:
        if alias in batch and "labels" not in batch:
            batch["labels"] = batch.pop(alias)
    return batch


def prepare_tf_dataset(
    model: TFRemBertPreTrainedModel,
    dataset: Any,
    batch_size: int = 8,
    shuffle: bool = True,
    tokenizer: Any = None,
    collate_fn: Callable[..., Any] | None = None,
    collate_fn_args: dict[str, Any] | None = None,
    drop_remainder: bool | None = None,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """``dataset.to_tf_dataset`` with the model's input columns as features and its label columns as labels."""
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "prepare_tf_dataset needs the `datasets` package (pip install datasets); or build a tf.data.Dataset "
            "of {input name: array} dicts yourself"
        ) from None
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}")
    label_names = list(label_to_output_names(model))
    columns = list(dataset.column_names)
    features = [c for c in columns if c in model.INPUT_NAMES and c not in label_names]
    labels = [c for c in columns if c in label_names or ("labels" in label_names and c in _LABEL_ALIASES)]
    if collate_fn is None:
        collate_fn = functools.partial(collate, tokenizer=tokenizer)
    return dataset.to_tf_dataset(
        columns=features[0] if len(features) == 1 else features,  # one column: a tensor, as transformers
        label_cols=(labels[0] if len(labels) == 1 else labels) or None,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_remainder=shuffle if drop_remainder is None else drop_remainder,
        collate_fn=collate_fn,
        collate_fn_args=collate_fn_args or {},
        prefetch=prefetch,
    )
