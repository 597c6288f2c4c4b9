"""``rembert_torch.pipeline``: the framework-free pipelines of :mod:`rembert_core.pipelines` on PyTorch models.

This module only runs models: ids in as NumPy, moved to the model's device, outputs back as NumPy. Every
task's pre- and post-processing is :mod:`rembert_core.pipelines`'.

Example:
    >>> from rembert_torch import pipeline
    >>> fill = pipeline("fill-mask", model="path/to/checkpoint")  # doctest: +SKIP
    >>> fill("Hello [MASK]!", top_k=2)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rembert_core import InputError
from rembert_core.pipelines import ModelRunner, Pipeline, checkpoint_directory, load_tokenizer, resolve_task

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
    cls = resolve_task(task)
    if model is None:
        raise InputError(f"pipeline({cls.task!r}) needs model= (a checkpoint directory, Hub id or model)")
    if isinstance(model, (str, os.PathLike)):
        from rembert_torch import TASK_CLASSES

        kwargs: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
        path = model
        model = _load(TASK_CLASSES[cls.heads[0]], path, cls.task, kwargs)
        if tokenizer is None:
            tokenizer = load_tokenizer(checkpoint_directory(path))  # a Hub id: its cached snapshot
    elif tokenizer is None:
        raise InputError("a pipeline on a model object needs tokenizer= (a tokenizer or its directory)")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if device is not None:
        if isinstance(device, int):  # transformers' convention: -1 is the CPU, n >= 0 the n-th GPU
            device = "cpu" if device < 0 else f"cuda:{device}"
        model = model.to(torch.device(device))
    runner = TorchRunner(model)
    return cls(runner, tokenizer, batch_size=batch_size or 8, progress=progress, **task_options)


def _load(model_class: Any, path: str | os.PathLike[str], task: str, kwargs: dict[str, Any]) -> Any:
    """Load ``path`` with the task's head class; refuse a checkpoint that has no weights for that head."""
    model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    missing = info["newly_initialized"]
    if model_class.task == "base":  # the backbone of a masked-LM checkpoint has no pooler; features need none
        missing = [n for n in missing if ".pooler." not in n and not n.startswith("pooler.")]
    if missing:
        found = ", ".join(model.config.architectures or []) or "unknown"
        raise InputError(
            f"the checkpoint at {os.fspath(path)} (architecture {found}) has no {model_class.task!r} head, which the "
            f"task {task!r} needs (missing: {', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})"
        )
    return model
