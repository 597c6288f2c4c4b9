"""The ``torch`` backend and the ``pytorch`` checkpoint format, registered through the ``rembert`` entry points.

This module does not import torch: registering (``rembert backends``) is free;
torch is imported inside the methods, when the backend is used, and by the
format's opener when a ``pytorch_model.bin`` is read.

Example:
    >>> from rembert_core import get_backend
    >>> backend = get_backend("torch")  # doctest: +SKIP
    >>> model = backend.build_model(config, "masked_lm")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import numpy as np

from rembert_core import Backend, InputError, RemBertConfig, hookimpl
from rembert_core.formats import PYTORCH
from rembert_core.schema import TASKS

__all__ = ["PYTORCH_FORMAT", "TorchBackend", "register_backends", "register_checkpoint_formats"]

_FLOAT_INPUTS = ("inputs_embeds", "encoder_hidden_states")
_LABEL_INPUTS = ("labels", "start_positions", "end_positions")


def _version() -> str:
    try:
        return metadata.version("rembert-torch")
    except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
        return "0.0.0+unknown"


class TorchBackend(Backend):
    """RemBERT on PyTorch (``rembert_torch``), NumPy in and NumPy out.

    Models are built in eval mode (no dropout) on CPU, computing in float32,
    bfloat16 or float16.
    """

    name = "torch"
    distribution = "rembert-torch"
    tasks = TASKS
    dtypes = ("float32", "bfloat16", "float16")
    requires = ("torch",)  # `rembert backends --strict` imports it: a broken torch install shows there

    def __init__(self) -> None:
        self.version = _version()

    # -- models ----------------------------------------------------------------------------------

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> Any:
        """An eval-mode model of ``task`` in ``dtype``; its weights are uninitialised until :meth:`load_tensors`."""
        import torch

        from rembert_torch import TASK_CLASSES
        from rembert_torch.loading import resolve_dtype

        if task not in TASK_CLASSES:
            raise InputError(f"unknown task {task!r}; choose one of {tuple(TASK_CLASSES)}")
        if dtype not in self.dtypes:
            raise InputError(f"dtype {dtype!r} is not supported by the torch backend; choose one of {self.dtypes}")
        with torch.device("meta"):
            model = TASK_CLASSES[task](config)
        model = model.to_empty(device="cpu").to(resolve_dtype(dtype))
        return model.eval()

    def load_tensors(self, model: Any, tensors: Mapping[str, np.ndarray]) -> None:
        """Set every weight from canonical tensors (checked against the schema, cast to the model's dtype)."""
        import torch

        from rembert_core.loading import match_weights
        from rembert_torch.loading import schema_for, set_tensors

        schema = schema_for(model)
        report = match_weights(tensors, schema, source="tensors given to load_tensors")
        dtype = model.dtype
        set_tensors(
            model,
            ((name, tensors[key]) for name, key in report.matched.items()),
            schema,
            dtype=dtype,
            device=torch.device("cpu"),
            initialize=report.newly_initialized,
        )

    def export_tensors(self, model: Any) -> dict[str, np.ndarray]:
        """Every weight as a canonical NumPy array (schema names), in the model's dtype."""
        from rembert_torch.loading import torch_to_numpy

        return {name: torch_to_numpy(t) for name, t in model.state_dict().items()}

    # -- computation -----------------------------------------------------------------------------

    def _to_torch(self, model: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        import torch

        from rembert_core.backend import INPUT_NAMES

        out: dict[str, Any] = {}
        for key, value in inputs.items():
            if key not in INPUT_NAMES:
                raise InputError(f"unknown input {key!r}; known inputs: {INPUT_NAMES}")
            if value is None:
                continue
            array = np.asarray(value)
            if key in _FLOAT_INPUTS or (key == "labels" and array.dtype.kind == "f"):
                out[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(model.dtype)
            elif array.dtype.kind in "iub":
                out[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
            elif key == "attention_mask" or key == "encoder_attention_mask":
                out[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            else:
                raise InputError(f"input {key!r} must be an integer array, got dtype {array.dtype}")
        return out

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
        import torch

        kwargs = self._to_torch(model, inputs)
        if past_key_values is not None:
            kwargs["past_key_values"] = tuple(
                tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(model.dtype) for a in layer)
                for layer in past_key_values
            )
        if model.task in ("base", "causal_lm"):
            kwargs["use_cache"] = use_cache
        elif use_cache or past_key_values is not None:
            raise InputError(f"use_cache/past_key_values apply to the base and causal_lm tasks, not {model.task!r}")
        with torch.no_grad():
            out = model(
                **kwargs,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
            )
        return {key: _to_float32(value) for key, value in out.items()}

    def gradients(self, model: Any, inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        """The loss for ``inputs`` (with labels) and its float32 gradient w.r.t. every canonical tensor."""
        import torch

        kwargs = self._to_torch(model, inputs)
        if not any(k in kwargs for k in _LABEL_INPUTS):
            raise InputError("gradients need labels (or start_positions and end_positions) in the inputs")
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            out = model(**kwargs, return_dict=True)
            if out.loss is None:
                raise InputError("the model computed no loss from these inputs")
            out.loss.backward()
        params = dict(model.named_parameters())
        grads: dict[str, np.ndarray] = {}
        for name in model.state_dict():
            grad = params[name].grad
            grads[name] = (
                np.zeros(tuple(params[name].shape), dtype=np.float32)
                if grad is None
                else grad.detach().float().cpu().numpy()
            )
        model.zero_grad(set_to_none=True)
        return float(out.loss.detach().float()), grads


def _to_float32(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    if isinstance(value, tuple | list):
        items = [_to_float32(v) for v in value]
        return items if all(isinstance(v, np.ndarray) for v in items) else [tuple(v) for v in items]
    return value


#: ``pytorch_model.bin`` (single or sharded), read with ``torch.load(weights_only=True, mmap=True)``
#: (the format's one definition is core's :data:`rembert_core.formats.PYTORCH`).
PYTORCH_FORMAT = PYTORCH


@hookimpl
def register_backends(register: Any) -> None:
    """Register :class:`TorchBackend` (torch is not imported here)."""
    register(TorchBackend())


@hookimpl
def register_checkpoint_formats(register: Any) -> None:
    """Register :data:`PYTORCH_FORMAT` (torch is imported only when such a file is opened)."""
    register(PYTORCH_FORMAT)
