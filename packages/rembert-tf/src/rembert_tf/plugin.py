"""The ``tf`` backend plugin: rembert-tf seen through NumPy, per the :class:`rembert_core.Backend` contract.

Registered through the ``rembert`` entry-point group (``tf = "rembert_tf.plugin"``).
Importing this module does not import TensorFlow or Keras; they are imported
when a backend method is first used.

Example:
    >>> from rembert_core import get_backend
    >>> backend = get_backend("tf")  # doctest: +SKIP
    >>> model = backend.build_model(config, "masked_lm")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from rembert_core import TASKS, Backend, InputError, RemBertConfig, hookimpl
from rembert_core.formats import PRECEDENCE, CheckpointFormat

__all__ = ["TF_CHECKPOINT", "TFBackend", "register_backends", "register_checkpoint_formats"]

#: Backend dtype -> Keras dtype policy.
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def _version() -> str:
    try:
        return metadata.version("rembert-tf")
    except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
        return ""


class TFBackend(Backend):
    """RemBERT on TensorFlow / Keras 3 (``rembert-tf``).

    ``bfloat16`` builds the model under Keras' ``mixed_bfloat16`` policy
    (float32 variables, bfloat16 matmuls, float32 softmax/LayerNorm/loss).
    Models run in inference mode (no dropout), also for :meth:`gradients`.

    Example:
        >>> backend = TFBackend()
        >>> backend.name, backend.dtypes
        ('tf', ('float32', 'bfloat16'))
    """

    name = "tf"
    tasks = TASKS
    dtypes = ("float32", "bfloat16")
    requires = ("tensorflow", "keras")  # `rembert backends --strict` imports them: a broken install shows there

    def __init__(self) -> None:
        self.version = _version()
        self.distribution = "rembert-tf"

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> Any:
        """A ``rembert_tf`` model of ``task`` computing in ``dtype`` (weights random until :meth:`load_tensors`)."""
        if task not in TASKS:
            raise InputError(f"unknown task {task!r}; choose one of {TASKS}")
        if dtype not in _POLICIES:
            raise InputError(f"the tf backend supports dtypes {tuple(_POLICIES)}, got {dtype!r}")
        from rembert_tf.modeling import MODEL_CLASSES

        return MODEL_CLASSES[task](config, dtype=_POLICIES[dtype])

    def load_tensors(self, model: Any, tensors: Mapping[str, np.ndarray]) -> None:
        """Assign every canonical tensor (schema names and layouts, any float dtype)."""
        missing = model.load_tensors(tensors, strict=True)
        if missing:
            from rembert_core import CheckpointError

            raise CheckpointError(f"load_tensors: tensors not given: {', '.join(missing)}")

    def export_tensors(self, model: Any) -> dict[str, np.ndarray]:
        """The weights as canonical tensors (schema names, PyTorch layout), in the variables' dtype."""
        return dict(model.export_tensors())

    def _call(self, model: Any, inputs: Mapping[str, np.ndarray], **kwargs: Any) -> Any:
        import tensorflow as tf

        accepted = set(model.INPUT_NAMES)
        unknown = sorted(set(inputs) - accepted)
        if unknown:
            raise InputError(f"{type(model).__name__} does not take input(s) {unknown}")
        feed = {k: tf.convert_to_tensor(v) for k, v in inputs.items() if v is not None}
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        return model(**feed, **kwargs, training=False)

    def forward(
        self,
        model: Any,
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        """Run ``model`` on NumPy inputs; return the reference output fields as float32 NumPy arrays."""
        kwargs: dict[str, Any] = {
            "output_hidden_states": output_hidden_states,
            "output_attentions": output_attentions,
            "use_cache": use_cache,
        }
        if past_key_values is not None:
            kwargs["past_key_values"] = tuple(tuple(np.asarray(t) for t in layer) for layer in past_key_values)
        out = self._call(model, inputs, **kwargs)
        result: dict[str, Any] = {}
        for key, value in out.items():
            if key == "past_key_values":
                result[key] = [tuple(_np(t) for t in layer) for layer in value]
            elif isinstance(value, tuple | list):
                result[key] = [_np(t) for t in value]
            else:
                result[key] = _np(value)
        return result

    def gradients(self, model: Any, inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its gradient w.r.t. every canonical tensor (float32, canonical layout)."""
        import tensorflow as tf

        variables = model.canonical_variables()
        names = list(variables)
        with tf.GradientTape() as tape:
            out = self._call(model, inputs, use_cache=False)
            loss = out.get("loss")
            if loss is None:
                raise InputError("gradients need labels (or start/end positions) in the inputs")
        grads = tape.gradient(loss, [variables[n][0] for n in names])
        result: dict[str, np.ndarray] = {}
        for name, grad in zip(names, grads, strict=True):
            var, transposed = variables[name]
            value = np.zeros(tuple(var.shape), np.float32) if grad is None else _np(tf.convert_to_tensor(grad))
            result[name] = np.ascontiguousarray(value.T) if transposed else value
        return float(_np(loss)), result


def _np(value: Any) -> np.ndarray:
    return np.asarray(value).astype(np.float32)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register the ``tf`` backend (TensorFlow is not imported here)."""
    register(TFBackend())


def _detect_tf_checkpoint(path: Path) -> Path | None:
    """An original TF checkpoint: a directory with a ``checkpoint`` state file, or a prefix with ``.index``."""
    if path.is_dir():
        return path if (path / "checkpoint").is_file() and any(path.glob("*.index")) else None
    if path.name.endswith(".index") and path.is_file():
        return path.with_suffix("")
    return path if Path(str(path) + ".index").is_file() else None


#: Google's original TensorFlow RemBERT checkpoints (``bert/encoder/layer_N/…``), read with TensorFlow.
TF_CHECKPOINT = CheckpointFormat(
    name="tf_checkpoint",
    detect=_detect_tf_checkpoint,
    opener="rembert_tf.loading:open_tf_checkpoint",
    precedence=PRECEDENCE["tf_checkpoint"],
    description="original TensorFlow checkpoint (prefix.index + prefix.data-*), read with TensorFlow",
)


@hookimpl
def register_checkpoint_formats(register: Callable[[CheckpointFormat], None]) -> None:
    """Register the original TensorFlow checkpoint format (TensorFlow is imported only to read one)."""
    register(TF_CHECKPOINT)
