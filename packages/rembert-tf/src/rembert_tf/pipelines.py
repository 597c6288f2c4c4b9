"""``rembert_tf.pipeline``: the framework-free pipelines of :mod:`rembert_core.pipelines` on TensorFlow models.

This module only runs models (through the ``tf`` backend's NumPy contract); every task's pre- and
post-processing is :mod:`rembert_core.pipelines`'. TensorFlow is imported when a model runs.

Example:
    >>> from rembert_tf import pipeline
    >>> fill = pipeline("fill-mask", model="path/to/checkpoint")  # doctest: +SKIP
    >>> fill("Hello [MASK]!", top_k=2)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core import InputError
from rembert_core.pipelines import ModelRunner, Pipeline, checkpoint_directory, load_tokenizer, resolve_task

__all__ = ["TFRunner", "pipeline"]


class TFRunner(ModelRunner):
    """A rembert_tf model (any head) run on NumPy ids, in inference mode, on ``device`` if given."""

    def __init__(self, model: Any, device: str | None = None) -> None:
        from rembert_tf.modeling import TFRemBertPreTrainedModel
        from rembert_tf.plugin import TFBackend

        if not isinstance(model, TFRemBertPreTrainedModel):
            raise InputError(f"expected a rembert_tf model, got {type(model).__name__}")
        self.model = model
        self.config = model.config
        self.head = model.task
        self.device = device
        self._backend = TFBackend()

    def _scope(self) -> Any:
        import contextlib

        if self.device is None:
            return contextlib.nullcontext()
        import tensorflow as tf

        return tf.device(self.device)

    def forward(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        with self._scope():
            return self._backend.forward(self.model, {k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()})

    def generate(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, *, max_new_tokens: int, **options: Any
    ) -> np.ndarray:
        with self._scope():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, **options
            )
        sequences = out.sequences if hasattr(out, "sequences") else out
        return np.asarray(sequences)

    def __repr__(self) -> str:
        return f"TFRunner({type(self.model).__name__})"


def pipeline(
    task: str,
    model: Any = None,
    tokenizer: Any = None,
    device: str | None = None,
    batch_size: int | None = None,
    *,
    dtype: str | None = None,
    progress: bool = True,
    **task_options: Any,
) -> Pipeline:
    """A pipeline for ``task`` on a rembert_tf model (the signature of ``rembert_torch.pipeline``).

    Args:
        task: ``"fill-mask"``, ``"text-classification"`` (``"sentiment-analysis"``),
            ``"token-classification"`` (``"ner"``), ``"question-answering"``, ``"feature-extraction"``,
            ``"text-generation"`` or ``"zero-shot-classification"``.
        model: a checkpoint directory or Hub id (loaded with the task's head class), or a model object.
        tokenizer: a tokenizer or its directory; by default the one saved beside the checkpoint (the fast
            one when ``tokenizers`` is installed). Required with a model object.
        device: a TensorFlow device string (``"/GPU:0"``) the model runs under; default: TensorFlow's choice.
        batch_size: rows per forward pass (default 8); inputs are sorted by length within windows.
        dtype: the dtype a checkpoint is loaded in (``from_pretrained``'s ``dtype``).
        progress: a progress bar for long inputs of known length.
        task_options: the task's options (``top_k``, ``aggregation_strategy``, ...).
    """
    cls = resolve_task(task)
    if model is None:
        raise InputError(f"pipeline({cls.task!r}) needs model= (a checkpoint directory, Hub id or model)")
    if isinstance(model, (str, os.PathLike)):
        from rembert_tf.modeling import MODEL_CLASSES

        path = model
        model = _load(MODEL_CLASSES[cls.heads[0]], path, cls.task, {} if dtype is None else {"dtype": dtype})
        if tokenizer is None:
            tokenizer = load_tokenizer(checkpoint_directory(path))  # a Hub id: its cached snapshot
    elif tokenizer is None:
        raise InputError("a pipeline on a model object needs tokenizer= (a tokenizer or its directory)")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    runner = TFRunner(model, device)
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
