"""``rembert_torch.pipeline``: the framework-free pipelines of :mod:`rembert_core.pipelines` on PyTorch models.

This module only runs models: ids in as NumPy, moved to the model's device, outputs back as NumPy. Every
task's pre- and post-processing is :mod:`rembert_core.pipelines`'.

Example:
    >>> from rembert_torch import pipeline
    >>> fill = pipeline("fill-mask", model="path/to/checkpoint")  # doctest: +SKIP
    >>> fill("Hello [MASK]!", top_k=2)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rembert_core import InputError
from rembert_core.pipelines import ModelRunner, Pipeline, model_and_tokenizer, resolve_task

__all__ = ["TorchRunner", "pipeline"]


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return value


class TorchRunner(ModelRunner):
    """A rembert_torch model (any head) run on NumPy ids, on its device, without gradients."""

    def __init__(self, model: Any) -> None:
        from rembert_torch.modeling import RemBertPreTrainedModel

        if not isinstance(model, RemBertPreTrainedModel):
            raise InputError(f"expected a rembert_torch model, got {type(model).__name__}")
        self.model = model.eval()
        self.config = model.config
        self.head = model.task

    @property
    def device(self) -> torch.device:
        """The device of the model's weights."""
        return next(self.model.parameters()).device

    def _tensors(self, inputs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(np.asarray(v, dtype=np.int64), device=self.device) for k, v in inputs.items()}

    def forward(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        with torch.inference_mode():
            out = self.model(**self._tensors(inputs), return_dict=True)
        return {k: _numpy(v) for k, v in out.items() if isinstance(v, torch.Tensor)}

    def generate(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, *, max_new_tokens: int, **options: Any
    ) -> np.ndarray:
        tensors = self._tensors({"input_ids": input_ids, "attention_mask": attention_mask})
        with torch.inference_mode():
            out = self.model.generate(**tensors, max_new_tokens=max_new_tokens, **options)  # type: ignore[operator]
        sequences = out.sequences if hasattr(out, "sequences") else out
        return np.asarray(sequences.cpu().numpy())

    def __repr__(self) -> str:
        return f"TorchRunner({type(self.model).__name__}, device={self.device})"


def pipeline(
    task: str,
    model: Any = None,
    tokenizer: Any = None,
    device: str | int | torch.device | None = None,
    batch_size: int | None = None,
    *,
    dtype: str | torch.dtype | None = None,
    progress: bool = True,
    **task_options: Any,
) -> Pipeline:
    """A pipeline for ``task`` on a rembert_torch model.

    Args:
        task: ``"fill-mask"``, ``"text-classification"`` (``"sentiment-analysis"``),
            ``"token-classification"`` (``"ner"``), ``"question-answering"``, ``"feature-extraction"``,
            ``"text-generation"`` or ``"zero-shot-classification"``.
        model: a checkpoint directory or Hub id (loaded with the task's head class), or a model object.
        tokenizer: a tokenizer or its directory; by default the one saved beside the checkpoint (the fast
            one when ``tokenizers`` is installed). Required with a model object.
        device: where the model runs (``"cpu"``, ``"cuda:0"``, a ``torch.device``, or an index: -1 the CPU,
            n the n-th GPU); default: where the model is.
        batch_size: rows per forward pass (default 8); inputs are sorted by length within windows.
        dtype: the dtype a checkpoint is loaded in (``from_pretrained``'s ``dtype``).
        progress: a progress bar for long inputs of known length.
        task_options: the task's options (``top_k``, ``aggregation_strategy``, ...).
    """
    from rembert_torch import TASK_CLASSES

    cls = resolve_task(task)
    loading = {} if dtype is None else {"dtype": dtype}
    model, tokenizer = model_and_tokenizer(cls, model, tokenizer, TASK_CLASSES, loading)
    if device is not None:
        if isinstance(device, int):  # transformers' convention: -1 is the CPU, n >= 0 the n-th GPU
            device = "cpu" if device < 0 else f"cuda:{device}"
        model = model.to(torch.device(device))
    runner = TorchRunner(model)
    return cls(runner, tokenizer, batch_size=batch_size or 8, progress=progress, **task_options)
