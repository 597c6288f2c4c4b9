"""``rembert_tf.pipeline``: the framework-free pipelines of :mod:`rembert_core.pipelines` on TensorFlow models.

This module only runs models (through the ``tf`` backend's NumPy contract); every task's pre- and
post-processing is :mod:`rembert_core.pipelines`'. TensorFlow is imported when a model runs.

Example:
    >>> from rembert_tf import pipeline
    >>> fill = pipeline("fill-mask", model="path/to/checkpoint")  # doctest: +SKIP
    >>> fill("Hello [MASK]!", top_k=2)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core import InputError
from rembert_core.pipelines import ModelRunner, Pipeline, model_and_tokenizer, resolve_task

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
    from rembert_tf.modeling import MODEL_CLASSES

    cls = resolve_task(task)
    loading = {} if dtype is None else {"dtype": dtype}
    model, tokenizer = model_and_tokenizer(cls, model, tokenizer, MODEL_CLASSES, loading)
    runner = TFRunner(model, device)
    return cls(runner, tokenizer, batch_size=batch_size or 8, progress=progress, **task_options)
