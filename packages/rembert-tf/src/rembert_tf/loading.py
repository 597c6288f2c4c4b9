"""Checkpoints of the TensorFlow models: safetensors and ``tf_model.h5`` in, canonical safetensors out.

Reading never imports torch. A safetensors checkpoint (single file or shards
plus index, as written by ``transformers``, rembert-torch or this package) is
read through :mod:`rembert_core.checkpoint`: memory-mapped, validated against
the core schema from the headers alone, then streamed into the Keras variables
one tensor at a time (dense kernels transposed from the canonical ``[out, in]``).
The model is built with zero-filled variables first (no random initialisation
work), so peak memory stays near one copy of the weights plus one tensor.

``tf_model.h5`` files written by ``transformers``' TensorFlow classes are read
with h5py through a declarative table of name rules (:data:`H5_NAME_RULES`).

Writing produces ``config.json`` (``architectures`` set to the PyTorch class
name) and canonical safetensors via :func:`rembert_core.save_safetensors`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from rembert_core import ARCHITECTURES, CheckpointError, RemBertConfig, build_schema, save_safetensors
from rembert_core.checkpoint import PT_WEIGHTS_INDEX_NAME, PT_WEIGHTS_NAME, TF_WEIGHTS_NAME, match_weights
from rembert_core.schema import CheckpointSchema, Init, SchemaReport
from rembert_core.serialization import find_safetensors, open_checkpoint

if TYPE_CHECKING:
    from rembert_tf.modeling import TFRemBertPreTrainedModel

__all__ = [
    "H5_NAME_RULES",
    "assign_canonical",
    "from_pretrained",
    "h5_name_to_canonical",
    "model_schema",
    "read_h5_weights",
    "save_pretrained",
]

logger = logging.getLogger("rembert_tf")

#: Rules applied in order to a ``tf_model.h5`` weight name (model scope already stripped) to get the
#: canonical name; the flag says whether the stored array is the transpose of the canonical tensor.
H5_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r":0$", ""),  # TF variable suffix
    (r"^mlm___cls/", "cls/"),  # transformers' TF LM heads are scoped "mlm___cls"
    (r"/layer_\._(\d+)/", r"/layer/\1/"),  # "layer_._3" -> "layer.3"
    (r"/LayerNorm/gamma$", "/LayerNorm/weight"),
    (r"/LayerNorm/beta$", "/LayerNorm/bias"),
    (r"_embeddings/embeddings$", "_embeddings/weight"),  # position/token type tables
    (r"/kernel$", "/weight"),  # dense kernels: [in, out], transposed below
    (r"/", "."),
)


def h5_name_to_canonical(weight_name: str) -> tuple[str, bool]:
    """Map ``tf_rem_bert_for_masked_lm/rembert/encoder/layer_._0/…/kernel:0`` to ``(canonical, transposed)``.

    The first path component (the Keras model scope) is dropped; the result
    keeps the ``rembert.`` prefix, which the schema accepts for every task.

    Example:
        >>> h5_name_to_canonical("tf_rem_bert_model/rembert/encoder/layer_._0/attention/self/query/kernel:0")
        ('rembert.encoder.layer.0.attention.self.query.weight', True)
    """
    name = weight_name.split("/", 1)[1] if "/" in weight_name else weight_name
    transposed = bool(re.search(r"/kernel(:0)?$", name))
    for pattern, replacement in H5_NAME_RULES:
        name = re.sub(pattern, replacement, name)
    return name, transposed


def model_schema(model: TFRemBertPreTrainedModel) -> CheckpointSchema:
    """The core schema of ``model`` (task and pooler as built)."""
    rembert = getattr(model, "rembert", None)
    pooler = getattr(rembert, "pooler", None) is not None
    return build_schema(model.config, model.task, add_pooling_layer=pooler)


def _assign(var: Any, transposed: bool, array: Any, name: str, source: str) -> None:
    array = np.asarray(array)
    expected = tuple(int(d) for d in var.shape)
    if transposed:
        expected = expected[::-1]
    if tuple(array.shape) != expected:
        raise CheckpointError(f"{source}: tensor {name} has shape {tuple(array.shape)}, expected {expected}")
    if transposed:
        array = array.T
    var.assign(tf.cast(tf.convert_to_tensor(np.ascontiguousarray(array)), var.dtype))


def assign_canonical(
    model: TFRemBertPreTrainedModel, tensors: Mapping[str, Any], *, strict: bool = True, source: str = "tensors"
) -> list[str]:
    """Assign canonical tensors (names with or without the ``rembert.`` prefix) to ``model``'s variables.

    Returns the canonical names that were not given. With ``strict``, unknown
    names raise :class:`CheckpointError`; shapes are always checked.
    """
    variables = model.canonical_variables()
    schema = model_schema(model)
    given: set[str] = set()
    unknown: list[str] = []
    for key, array in tensors.items():
        name = schema.canonical_name(key)
        if name is None or name not in variables:
            unknown.append(key)
            continue
        var, transposed = variables[name]
        _assign(var, transposed, array, name, source)
        given.add(name)
    if unknown and strict:
        raise CheckpointError(f"{source}: unknown tensor name(s) for {type(model).__name__}: {', '.join(unknown)}")
    return [name for name in variables if name not in given]


def _initialize(model: TFRemBertPreTrainedModel, schema: CheckpointSchema, names: list[str]) -> None:
    """Give the tensors ``names`` (absent from the checkpoint) their reference initial values."""
    import keras

    variables = model.canonical_variables()
    std = model.config.initializer_range
    for name in names:
        var, _ = variables[name]
        init = schema[name].init
        shape = tuple(int(d) for d in var.shape)
        if init is Init.ZEROS:
            value = tf.zeros(shape)
        elif init is Init.ONES:
            value = tf.ones(shape)
        else:
            value = keras.random.normal(shape, stddev=std)
            pad = model.config.pad_token_id
            if init is Init.NORMAL_PADDED and pad is not None:
                value = value * tf.cast(tf.range(shape[0]) != pad, value.dtype)[:, None]
        var.assign(tf.cast(value, var.dtype))


def read_h5_weights(path: Path) -> tuple[dict[str, tuple[str, str, bool]], dict[str, tuple[int, ...]], dict[str, str]]:
    """Index a ``tf_model.h5``: ``{canonical: (group, weight name, transposed)}``, canonical shapes, dtypes."""
    import h5py

    entries: dict[str, tuple[str, str, bool]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    try:
        with h5py.File(path, "r") as f:
            layer_names = [_text(n) for n in f.attrs.get("layer_names", list(f.keys()))]
            for layer in layer_names:
                group = f[layer]
                weight_names = [_text(n) for n in group.attrs.get("weight_names", [])]
                for weight_name in weight_names:
                    dataset = group[weight_name]
                    key, transposed = h5_name_to_canonical(weight_name)
                    if key in entries:
                        raise CheckpointError(
                            f"{path}: two weights map to {key} ({entries[key][1]!r}, {weight_name!r})"
                        )
                    entries[key] = (layer, weight_name, transposed)
                    shape = tuple(int(d) for d in dataset.shape)
                    shapes[key] = shape[::-1] if transposed else shape
                    dtypes[key] = str(dataset.dtype)
    except (OSError, KeyError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot read {path} as a Keras HDF5 weights file: {exc}") from None
    return entries, shapes, dtypes


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _load_h5(model: TFRemBertPreTrainedModel, schema: CheckpointSchema, path: Path) -> SchemaReport:
    import h5py

    entries, shapes, dtypes = read_h5_weights(path)
    report = schema.validate(shapes, dtypes)
    report.raise_for_errors(str(path))
    variables = model.canonical_variables()
    with h5py.File(path, "r") as f:
        for name, key in report.matched.items():
            layer, weight_name, transposed = entries[key]
            dataset = f[layer][weight_name]
            var, var_transposed = variables[name]
            if dataset.nbytes > STREAM_BLOCK_BYTES and dataset.ndim == 2:
                # Stored [in, out] kernels already have the variable's layout; other 2-D tensors are canonical.
                same_layout = transposed == var_transposed
                _assign_blocks(var, not same_layout, dataset, tuple(dataset.shape), dataset.dtype.itemsize)
                continue
            array = dataset[()]  # one tensor in memory at a time
            stored = array.T if transposed else array  # canonical layout
            _assign(var, var_transposed, stored, name, str(path))
    return report


#: Tensors larger than this are copied into their variable in row blocks of about this size, so
#: loading never holds more than a block beyond the variables themselves (the full-size word
#: embeddings are 256 MB, the output decoder 1.7 GB).
STREAM_BLOCK_BYTES = 32 * 2**20


def _assign_blocks(var: Any, transposed: bool, tensor_slice: Any, shape: tuple[int, ...], itemsize: int) -> None:
    """Copy a 2-D canonical tensor into ``var`` block by block (canonical rows = kernel columns when transposed)."""
    target = var.value  # the backing tf.Variable, for sliced assignment
    rows = shape[0]
    step = max(1, STREAM_BLOCK_BYTES // max(1, int(np.prod(shape[1:])) * itemsize))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        block = np.asarray(tensor_slice[start:stop])  # (stop - start, in): read from the memory map
        value = tf.cast(tf.convert_to_tensor(np.ascontiguousarray(block.T if transposed else block)), var.dtype)
        if transposed:
            target[:, start:stop].assign(value)  # kernel (in, out): the columns of this block
        else:
            target[start:stop].assign(value)


def _load_safetensors(model: TFRemBertPreTrainedModel, schema: CheckpointSchema, path: Path) -> SchemaReport:
    from safetensors import safe_open

    variables = model.canonical_variables()
    with open_checkpoint(path) as weights:
        report = match_weights(weights, schema, source=str(path))
        handles: dict[Path, Any] = {}
        for name, key in report.matched.items():
            var, transposed = variables[name]
            info = weights.info(key)
            if info.nbytes > STREAM_BLOCK_BYTES and len(info.shape) == 2:
                if info.file not in handles:
                    handles[info.file] = safe_open(str(info.file), framework="np")
                itemsize = info.nbytes // max(1, int(np.prod(info.shape)))
                _assign_blocks(var, transposed, handles[info.file].get_slice(key), info.shape, itemsize)
            else:
                _assign(var, transposed, weights[key], name, str(path))  # one tensor from the memory map
        handles.clear()
    return report


def _weights_file(directory: Path) -> Path:
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    found = find_safetensors(directory)
    if found is not None:
        return found
    if directory.is_dir() and (directory / TF_WEIGHTS_NAME).is_file():
        return directory / TF_WEIGHTS_NAME
    if directory.is_file() and directory.suffix == ".h5":
        return directory
    torch_files = [n for n in (PT_WEIGHTS_NAME, PT_WEIGHTS_INDEX_NAME) if (directory / n).is_file()]
    if torch_files:
        raise CheckpointError(
            f"{directory} holds only {', '.join(torch_files)} (PyTorch pickles); rembert-tf reads safetensors and "
            "tf_model.h5 without torch: re-save it with safetensors (transformers or rembert-torch save_pretrained)"
        )
    present = ", ".join(sorted(p.name for p in directory.iterdir())[:10]) if directory.is_dir() else directory.name
    raise CheckpointError(
        f"no weights in {directory} (looked for model.safetensors, model.safetensors.index.json, {TF_WEIGHTS_NAME}; "
        f"found {present or 'nothing'})"
    )


#: Keyword arguments of from_pretrained that go to the model constructor rather than the config.
_MODEL_ARGUMENTS = ("add_pooling_layer", "name")


def from_pretrained(
    cls: type[TFRemBertPreTrainedModel],
    path: str | os.PathLike[str],
    *,
    config: RemBertConfig | None = None,
    output_loading_info: bool = False,
    dtype: Any = None,
    **config_overrides: Any,
) -> Any:
    """Build ``cls`` from a checkpoint directory; see :meth:`TFRemBertPreTrainedModel.from_pretrained`."""
    from rembert_tf.modeling import skip_init

    directory = Path(path)
    weights_file = _weights_file(directory)
    kwargs: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
    for name in _MODEL_ARGUMENTS:  # constructor arguments, not config fields
        if name in config_overrides:
            kwargs[name] = config_overrides.pop(name)
    if config is None:
        config_dir = directory if directory.is_dir() else directory.parent
        config = RemBertConfig.from_pretrained(config_dir, **config_overrides)
    elif config_overrides:
        config = config.copy(**config_overrides)
    with skip_init():
        model = cls(config, **kwargs)
    schema = model_schema(model)
    if weights_file.suffix == ".h5":
        report = _load_h5(model, schema, weights_file)
    else:
        report = _load_safetensors(model, schema, weights_file)
    _initialize(model, schema, report.newly_initialized)
    if report.newly_initialized:
        logger.warning(
            "Some weights of %s were not in %s and are newly initialized: %s. Train the model before using it.",
            cls.__name__,
            weights_file,
            ", ".join(report.newly_initialized),
        )
    if report.unused:
        logger.info("Some tensors of %s were not used by %s: %s", weights_file, cls.__name__, ", ".join(report.unused))
    if output_loading_info:
        info = {
            "missing_keys": list(report.missing),
            "unexpected_keys": list(report.unexpected),
            "mismatched_keys": [name for name, _, _ in report.mismatched],
            "newly_initialized": list(report.newly_initialized),
            "unused": list(report.unused),
        }
        return model, info
    return model


def save_pretrained(
    model: TFRemBertPreTrainedModel, directory: str | os.PathLike[str], *, max_shard_size: int | str | None = None
) -> list[Path]:
    """Write ``config.json`` (``architectures`` = the PyTorch class name) and canonical safetensors."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"cannot save: {directory} exists and is not a directory")
    schema = model_schema(model)
    tensors = model.export_tensors()
    ordered = {name: tensors[name] for name in schema}
    missing = sorted(set(tensors) - set(ordered))
    if missing:  # pragma: no cover - the walk and the schema disagree: a bug
        raise CheckpointError(f"model variables not in the schema: {missing}")
    config = model.config.copy(architectures=[ARCHITECTURES[model.task]])
    config_path = config.save_pretrained(directory)
    files = save_safetensors(ordered, directory, max_shard_size=max_shard_size, metadata={"format": "pt"})
    return [config_path, *files]
