"""``transformers``: transformers' PyTorch RemBERT classes behind the :class:`rembert_core.Backend` contract.

The canonical tensor names are transformers' own ``state_dict`` keys, so loading is ``load_state_dict`` and
exporting is ``state_dict``; inputs and outputs go through NumPy. torch and transformers are imported when the
backend is first used, never when it is registered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rembert_core import TASKS, Backend, CheckpointError, InputError, RemBertConfig
from rembert_reference._common import (
    architecture,
    check_ids,
    quiet_transformers,
    reference_config,
    transformers_version,
)

__all__ = ["TransformersTorchBackend", "TransformersTorchModel"]

_FLOAT_INPUTS = ("inputs_embeds", "encoder_hidden_states")
_LABELS = ("labels", "start_positions", "end_positions")


@dataclass
class TransformersTorchModel:
    """What :meth:`TransformersTorchBackend.build_model` returns: the transformers module and its task."""

    module: Any  # transformers.RemBertFor... in eval mode
    task: str
    dtype: Any  # torch.dtype


class TransformersTorchBackend(Backend):
    """transformers 4.57's RemBERT PyTorch classes (``RemBertModel``, ``RemBertForMaskedLM``, ...), eager attention.

    Models run in eval mode (no dropout) on CPU, in float32 or bfloat16.
    """

    name = "transformers"
    distribution = "rembert-reference"
    tasks = TASKS
    dtypes = ("float32", "bfloat16")
    requires = ("torch", "transformers")

    def __init__(self) -> None:
        self.version = transformers_version()
        self.reference = f"transformers {self.version} (PyTorch classes)"

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> TransformersTorchModel:
        """transformers' class for ``task``, built from ``config`` in eval mode, computing in ``dtype``.

        Its weights are unspecified until :meth:`load_tensors` (as the contract says), so they are not
        initialised (transformers' ``no_init_weights``, which ``from_pretrained`` uses for the same reason).
        """
        import torch
        import transformers

        if dtype not in self.dtypes:
            raise InputError(
                f"dtype {dtype!r} is not supported by the {self.name} backend; choose one of {self.dtypes}"
            )
        from transformers.modeling_utils import no_init_weights

        cls = getattr(transformers, architecture(task))
        with quiet_transformers(), no_init_weights():  # the weights come from load_tensors: no random init first
            module = cls(reference_config(config))
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        return TransformersTorchModel(module.to(torch_dtype).eval(), task, torch_dtype)

    def load_tensors(self, model: TransformersTorchModel, tensors: Mapping[str, np.ndarray]) -> None:
        """``load_state_dict`` from the canonical tensors (transformers' names), cast to the model's dtype."""
        import torch

        expected = model.module.state_dict()
        missing = [name for name in expected if name not in tensors]
        if missing:
            raise CheckpointError(f"{len(missing)} tensors missing for {model.task}, e.g. {missing[0]!r}")
        state = {
            name: torch.from_numpy(np.ascontiguousarray(tensors[name], dtype=np.float32)).to(model.dtype)
            for name in expected
        }
        model.module.load_state_dict(state, strict=True)

    def export_tensors(self, model: TransformersTorchModel) -> dict[str, np.ndarray]:
        """``state_dict`` as NumPy arrays in the model's dtype (``ml_dtypes.bfloat16`` for bfloat16)."""
        import torch

        out: dict[str, np.ndarray] = {}
        for name, tensor in model.module.state_dict().items():
            if tensor.dtype == torch.bfloat16:
                import ml_dtypes

                out[name] = tensor.detach().float().numpy().astype(ml_dtypes.bfloat16)
            else:
                out[name] = tensor.detach().numpy().copy()
        return out

    def _inputs(self, model: TransformersTorchModel, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        import torch

        out: dict[str, Any] = {}
        for key, value in inputs.items():
            if value is None:
                continue
            array = np.asarray(value)
            if key in _FLOAT_INPUTS:
                out[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(model.dtype)
            elif array.dtype.kind in "iub":
                out[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
            else:
                out[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        return out

    def forward(
        self,
        model: TransformersTorchModel,
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        """Run the transformers model; outputs as float32 NumPy arrays, the cache in the legacy tuple layout."""
        import torch
        import transformers

        check_ids(inputs, model.module.config)
        kwargs = self._inputs(model, inputs)
        if past_key_values is not None:
            legacy = tuple(
                tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(model.dtype) for a in layer)
                for layer in past_key_values
            )
            cache_cls = transformers.EncoderDecoderCache if len(legacy[0]) == 4 else transformers.DynamicCache
            kwargs["past_key_values"] = cache_cls.from_legacy_cache(legacy)
        if model.task in ("base", "causal_lm"):
            kwargs["use_cache"] = use_cache
        with torch.no_grad():
            out = model.module(
                **kwargs,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
            )
        return {key: _numpy(value) for key, value in out.items() if value is not None}

    def gradients(
        self, model: TransformersTorchModel, inputs: Mapping[str, np.ndarray]
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its float32 gradient with respect to every ``state_dict`` tensor."""
        import torch

        check_ids(inputs, model.module.config)
        kwargs = self._inputs(model, inputs)
        if not any(k in kwargs for k in _LABELS):
            raise InputError("gradients need labels (or start_positions and end_positions) in the inputs")
        model.module.zero_grad(set_to_none=True)
        with torch.enable_grad():
            out = model.module(**kwargs, return_dict=True)
            out.loss.backward()
        params = dict(model.module.named_parameters())
        grads: dict[str, np.ndarray] = {}
        for name in model.module.state_dict():
            grad = params[name].grad if name in params else None
            shape = tuple(params[name].shape) if name in params else ()
            grads[name] = np.zeros(shape, np.float32) if grad is None else grad.detach().float().numpy()
        model.module.zero_grad(set_to_none=True)
        return float(out.loss.detach().float()), grads


def _numpy(value: Any) -> Any:
    """torch tensors to float32 NumPy; tuples to lists; a transformers Cache to the legacy per-layer tuples."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().float().numpy()
    to_legacy = getattr(value, "to_legacy_cache", None)
    if callable(to_legacy):
        return [tuple(_numpy(t) for t in layer if t is not None) for layer in to_legacy()]
    if isinstance(value, tuple | list):
        return [_numpy(v) for v in value]
    return value
