"""Checkpoints of the TensorFlow models: safetensors and ``tf_model.h5`` in, canonical safetensors out.

Reading never imports torch. The checkpoint format is chosen by
:func:`rembert_core.loading.detect_format` among the registered formats
(safetensors single or sharded, ``tf_model.h5`` read by core with h5py, Google's
original TensorFlow checkpoints registered by this package's plugin), whose
readers present canonical names and layouts. Tensors are validated against the
core schema from the headers alone, then streamed into the Keras variables one
at a time (dense kernels transposed from the canonical ``[out, in]``);
safetensors tensors larger than :data:`STREAM_BLOCK_BYTES` are copied in row
blocks read from the file. The model is built under
:func:`~rembert_tf.kernels.skip_init`: its large float32 variables start as
untouched zero pages in NumPy buffers that TensorFlow adopts, and the values are
written straight into those buffers (:func:`host_buffer`), so peak memory stays at
one copy of the weights plus a block (measured on the full-size backbone:
1.27x the checkpoint size, TensorFlow's own 0.6 GB included).

Writing produces ``config.json`` (``architectures`` set to the PyTorch class
name) and canonical safetensors via :func:`rembert_core.save_safetensors`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rembert_core import ARCHITECTURES, CheckpointError, RemBertConfig, build_schema, save_safetensors
from rembert_core.config import CONFIG_NAME
from rembert_core.generation import GENERATION_CONFIG_NAME, GenerationConfig
from rembert_core.io.tf_names import tf_checkpoint_name
from rembert_core.loading import LoadPlan, plan_load
from rembert_core.schema import CheckpointSchema, SchemaReport
from rembert_core.serialization import (
    SafetensorsCheckpoint,
    TensorInfo,
    TensorSource,
    dtype_code,
    save_transaction,
)
from rembert_tf._tensorflow import tf

if TYPE_CHECKING:
    from rembert_tf.pretrained import TFRemBertPreTrainedModel

__all__ = [
    "STREAM_BLOCK_BYTES",
    "TFCheckpointSource",
    "assign_canonical",
    "from_pretrained",
    "host_buffer",
    "load_weights",
    "model_schema",
    "open_tf_checkpoint",
    "save_pretrained",
]

logger = logging.getLogger("rembert_tf")


def model_schema(model: TFRemBertPreTrainedModel) -> CheckpointSchema:
    """The core schema of ``model`` (task and pooler as built)."""
    rembert = getattr(model, "rembert", None)
    pooler = getattr(rembert, "pooler", None) is not None
    return build_schema(model.config, model.task, add_pooling_layer=pooler)


class _DLPackCapsule:
    """A DLPack capsule from ``tf.experimental.dlpack.to_dlpack`` in the protocol ``np.from_dlpack`` reads
    (TensorFlow's tensors only implement ``__dlpack__`` themselves from 2.17 on)."""

    def __init__(self, capsule: Any) -> None:
        self._capsule = capsule

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU: to_dlpack of a tensor on another device is refused by from_dlpack below


def host_buffer(var: Any) -> np.ndarray | None:
    """The writable NumPy array that holds ``var``'s values, when it is one of the model's lazy buffers.

    Models built under :func:`rembert_tf.kernels.skip_init` keep their large float32
    variables in NumPy buffers adopted by TensorFlow; writing into such a buffer is
    writing into the variable, with no TensorFlow copy. The address of the variable's
    current value proves the aliasing; anything else (another device, a buffer
    TensorFlow copied or replaced since) gives ``None`` and the TensorFlow ops path.
    """
    from rembert_tf.kernels import LAZY_BUFFERS

    if not LAZY_BUFFERS:
        return None
    variable = getattr(var, "value", var)  # a Keras variable's backing tf.Variable
    if isinstance(variable, tf.distribute.DistributedValues):
        return None  # one buffer per replica: written through TensorFlow ops, every copy
    try:  # the current value shares the variable's buffer (no copy on read)
        current = np.from_dlpack(_DLPackCapsule(tf.experimental.dlpack.to_dlpack(variable.read_value())))
    except (AttributeError, BufferError, RuntimeError, TypeError, ValueError, tf.errors.OpError):
        return None
    array = LAZY_BUFFERS.get(current.ctypes.data)
    if array is None or array.shape != current.shape or array.dtype != current.dtype:
        return None
    return array


def _assign(var: Any, transposed: bool, array: Any, name: str, source: str) -> None:
    array = np.asarray(array)
    expected = tuple(int(d) for d in var.shape)
    if transposed:
        expected = expected[::-1]
    if tuple(array.shape) != expected:
        raise CheckpointError(f"{source}: tensor {name} has shape {tuple(array.shape)}, expected {expected}")
    buffer = host_buffer(var)
    if buffer is not None:
        np.copyto(buffer, array.T if transposed else array, casting="same_kind")  # into the variable itself
        return
    value = tf.cast(tf.convert_to_tensor(np.ascontiguousarray(array)), var.dtype)
    if transposed:
        value = tf.transpose(value)  # canonical (out, in) -> kernel (in, out), in TensorFlow's threaded kernel
    _write_in_place(var, value)


def _handles(var: Any) -> list[Any]:
    """The resources backing a Keras variable: one, or one per local replica under a ``tf.distribute`` strategy.

    A variable created in a strategy's scope (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``)
    is a ``MirroredVariable`` whose ``handle`` exists only in a replica context; writing each local
    copy keeps them identical, as the strategy's own ``assign`` would.
    """
    backing = var.value
    if isinstance(backing, tf.distribute.DistributedValues):
        return [local.handle for local in backing.distribute_strategy.experimental_local_results(backing)]
    return [backing.handle]


def _write_in_place(var: Any, value: Any, begin: Sequence[int] | None = None) -> None:
    """Write ``value`` into ``var``'s existing buffer(s) at ``begin`` (default: the whole variable).

    Unlike ``AssignVariableOp``, which adopts ``value``'s buffer, this keeps the
    variable's own buffer (under ``skip_init``, untouched zero pages outside
    TensorFlow's pooling allocator), and Keras' ``assign`` would validate and
    convert once more. Under a strategy every local replica's copy is written.
    """
    shape = [int(d) for d in value.shape]
    begin = [0] * len(shape) if begin is None else list(begin)
    end = [b + d for b, d in zip(begin, shape, strict=True)]
    for handle in _handles(var):
        if not shape:  # scalars have no slice to write
            tf.raw_ops.AssignVariableOp(resource=handle, value=value)
        else:
            tf.raw_ops.ResourceStridedSliceAssign(
                ref=handle, begin=begin, end=end, strides=[1] * len(shape), value=value
            )


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
    """Give the tensors ``names`` (absent from the checkpoint) their initial values, from each spec's ``init``.

    The values come from :func:`rembert_tf.kernels.initial_value`, as a new model's do; they are drawn in
    Keras' default float dtype and cast to the variable's (for a float32 variable: the constructor's draw).
    """
    import keras

    from rembert_tf.kernels import initial_value

    variables = model.canonical_variables()
    config = model.config
    for name in names:
        var, _ = variables[name]
        shape = tuple(int(d) for d in var.shape)
        value = initial_value(
            schema[name].init,
            shape,
            keras.backend.floatx(),
            initializer_range=config.initializer_range,
            pad_token_id=config.pad_token_id,
        )
        var.assign(tf.cast(value, var.dtype))


#: Tensors larger than this are copied into their variable in row blocks of about this size, so
#: loading never holds more than a block beyond the variables themselves (the full-size word
#: embeddings are 256 MB, the output decoder 1.7 GB).
STREAM_BLOCK_BYTES = 8 * 2**20  # measured on the full-size backbone: 8 MiB keeps a 3.8 s load at 1.34x peak RSS


def _assign_blocks(
    var: Any, transposed: bool, weights: SafetensorsCheckpoint, key: str, shape: tuple[int, ...], itemsize: int
) -> None:
    """Copy a 2-D canonical tensor into ``var`` block by block (canonical rows = kernel columns when transposed)."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    step = max(1, STREAM_BLOCK_BYTES // max(1, cols * itemsize))
    buffer = host_buffer(var)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        block = weights.read_rows(key, start, stop)  # (stop - start, in): only these bytes are read
        if buffer is not None:  # straight into the variable's memory
            target = buffer[:, start:stop] if transposed else buffer[start:stop]  # kernel (in, out) columns
            np.copyto(target, block.T if transposed else block, casting="same_kind")
            continue
        value = tf.cast(tf.convert_to_tensor(np.ascontiguousarray(block.T if transposed else block)), var.dtype)
        # Write the block in place. (`variable[a:b].assign(...)` would first read the whole variable:
        # a full copy per block.) Kernels are (in, out): a block of canonical rows is a block of columns.
        _write_in_place(var, value, [0, start] if transposed else [start, 0])


def _install(model: TFRemBertPreTrainedModel, plan: LoadPlan) -> None:
    """Stream every matched tensor of ``plan`` into ``model``'s variables, one tensor (or row block) at a time."""
    weights = plan.weights
    variables = model.canonical_variables()
    for name, key in plan.matched():
        var, transposed = variables[name]
        info = weights.info(key)
        if isinstance(weights, SafetensorsCheckpoint) and info.nbytes > STREAM_BLOCK_BYTES and len(info.shape) == 2:
            itemsize = info.nbytes // max(1, int(np.prod(info.shape)))
            _assign_blocks(var, transposed, weights, key, info.shape, itemsize)
        else:
            _assign(var, transposed, weights[key], name, plan.source)  # one tensor in memory at a time


def load_weights(model: TFRemBertPreTrainedModel, path: str | os.PathLike[str]) -> SchemaReport:
    """Stream the checkpoint at ``path`` (any registered format) into ``model``; return the schema report.

    Raises :class:`CheckpointError` listing every missing, unexpected or mis-shaped tensor. Tensors the
    checkpoint lacks (a head, the pooler) are left as they are and listed in ``report.newly_initialized``.
    """
    with plan_load(path, config=model.config) as plan:
        if plan.detected.ignored:
            logger.info(
                "%s: reading %s, ignoring %s", path, plan.detected.format.name, [n for n, _ in plan.detected.ignored]
            )
        report = plan.match(model_schema(model))
        _install(model, plan)
    return report


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
    """Build ``cls`` from a checkpoint (path or Hub id); see :meth:`TFRemBertPreTrainedModel.from_pretrained`."""
    from rembert_tf.kernels import skip_init

    ignore_mismatched_sizes = bool(config_overrides.pop("ignore_mismatched_sizes", False))
    kwargs: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
    for name in _MODEL_ARGUMENTS:  # constructor arguments, not config fields
        if name in config_overrides:
            kwargs[name] = config_overrides.pop(name)
    with plan_load(path, config=config, overrides=config_overrides) as plan:
        with skip_init():
            model = cls(plan.config, **kwargs)
        schema = model_schema(model)
        plan.match(schema, ignore_mismatched_sizes=ignore_mismatched_sizes)
        _install(model, plan)
        _initialize(model, schema, [name for name, _ in plan.to_initialize()])
    plan.log(logger, cls.__name__)
    generation_file = plan.directory / GENERATION_CONFIG_NAME
    if getattr(model, "can_generate", lambda: False)() and generation_file.is_file():
        model.generation_config = GenerationConfig.from_pretrained(plan.directory)
    if output_loading_info:
        return model, plan.loading_info()
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
    # config.json and the weights replace the previous ones together: a save killed at any point leaves
    # the previous complete checkpoint or the new one, never a new config with old weights.
    with save_transaction(directory) as save:
        save.write_bytes(CONFIG_NAME, config.to_json_string().encode("utf-8"))
        generation = getattr(model, "generation_config", None)  # models that generate, as transformers writes it
        if isinstance(generation, GenerationConfig):
            save.write_bytes(GENERATION_CONFIG_NAME, generation.to_json_string().encode("utf-8"))
        files = save_safetensors(
            ordered, directory, max_shard_size=max_shard_size, metadata={"format": "pt"}, transaction=save
        )
    return [directory / CONFIG_NAME, *files]


# -- Google's original TensorFlow checkpoints ---------------------------------------------------------


class TFCheckpointSource(TensorSource):
    """The weights of an original TensorFlow checkpoint (``prefix.index`` + ``prefix.data-*``), canonical names."""

    def __init__(self, prefix: Path) -> None:
        try:
            self._reader = tf.train.load_checkpoint(str(prefix))
        except (tf.errors.OpError, ValueError) as exc:
            raise CheckpointError(f"cannot read TensorFlow checkpoint {prefix}: {exc}") from None
        self._prefix = prefix
        self.metadata: dict[str, str] = {}
        self._names: dict[str, tuple[str, bool]] = {}
        self._infos: dict[str, TensorInfo] = {}
        dtypes = self._reader.get_variable_to_dtype_map()
        for variable, shape in sorted(self._reader.get_variable_to_shape_map().items()):
            mapped = tf_checkpoint_name(variable)
            if mapped is None:
                continue
            name, transposed = mapped
            transposed = transposed and len(shape) == 2
            dims = tuple(int(d) for d in shape)
            if name in self._names:
                raise CheckpointError(
                    f"{prefix}: variables {self._names[name][0]!r} and {variable!r} both map to {name}"
                )
            self._names[name] = (variable, transposed)
            code = dtype_code(dtypes[variable].as_numpy_dtype, strict=False)
            self._infos[name] = TensorInfo(name, dims[::-1] if transposed else dims, code, prefix)

    @property
    def files(self) -> list[Path]:
        return sorted(self._prefix.parent.glob(self._prefix.name + ".*"))

    def infos(self) -> dict[str, TensorInfo]:
        return dict(self._infos)

    def __getitem__(self, name: str) -> np.ndarray:
        variable, transposed = self._names[name]
        try:
            value = np.asarray(self._reader.get_tensor(variable))
        except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as exc:  # truncated or corrupt data files
            raise CheckpointError(f"cannot read variable {variable!r} from {self._prefix}: {exc}") from None
        return np.ascontiguousarray(value.T) if transposed else value


def open_tf_checkpoint(path: Path) -> TFCheckpointSource:
    """Open an original TensorFlow checkpoint: a directory with a ``checkpoint`` file, or a prefix."""
    path = Path(path)
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))
        if latest is None:
            raise CheckpointError(f"{path}/checkpoint names no readable checkpoint")
        # The state file may name any prefix (absolute, ../...): only one inside this directory is read.
        prefix = Path(latest)
        if path.resolve() not in (path / prefix).resolve().parents:
            raise CheckpointError(f"{path}/checkpoint names {latest!r}, outside the checkpoint directory: refused")
        path = prefix if prefix.is_absolute() else path / prefix
    return TFCheckpointSource(path)
