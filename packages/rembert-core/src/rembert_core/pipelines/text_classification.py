"""``text-classification`` (alias ``sentiment-analysis``): labels of texts or text pairs (a classification head)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core.errors import InputError
from rembert_core.pipelines.base import Feature, Pipeline, softmax

__all__ = ["FUNCTIONS", "TextClassificationPipeline", "sigmoid"]

#: Values of ``function_to_apply``.
FUNCTIONS = ("softmax", "sigmoid", "none")

_UNSET: Any = ""  # top_k's "not given" (None means "every label", as in transformers)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class TextClassificationPipeline(Pipeline):
    """Classify texts, or text pairs given as ``{"text": ..., "text_pair": ...}``.

    Options: ``top_k`` (``None`` for every label, best first); ``function_to_apply`` (``"softmax"``,
    ``"sigmoid"``, ``"none"``; by default none for ``problem_type="regression"``, sigmoid for multi-label
    or one label, softmax otherwise). Without ``top_k`` a text gives ``[{"label", "score"}]`` (the best
    label) and a list of texts one such dict per text, as in transformers; with ``top_k`` each text
    gives a list of dicts.
    """

    task = "text-classification"
    heads = ("sequence_classification",)

    def _options(self, *, top_k: int | None = _UNSET, function_to_apply: str | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if top_k is not _UNSET:
            if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
                raise InputError(f"top_k must be a positive integer or None, got {top_k!r}")
            options["top_k"] = top_k
            options["legacy"] = False
        if function_to_apply is not None:
            name = str(function_to_apply).lower()
            if name not in FUNCTIONS:
                raise InputError(f"function_to_apply must be one of {FUNCTIONS}, got {function_to_apply!r}")
            options["function_to_apply"] = name
        if not hasattr(self, "options"):
            options.setdefault("top_k", 1)
            options.setdefault("legacy", True)
            options.setdefault("function_to_apply", None)
        return options

    def _is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, dict))

    def check(self, item: Any, options: Mapping[str, Any]) -> None:
        if isinstance(item, dict):
            if "text" not in item or set(item) - {"text", "text_pair"}:
                raise InputError(f"a text pair is a dict with the keys 'text' and 'text_pair', got {sorted(item)}")
            if not isinstance(item["text"], str) or not isinstance(item.get("text_pair", ""), str):
                raise InputError("the 'text' and 'text_pair' of a text pair must be strings")
        elif isinstance(item, (list, tuple)) and len(item) == 1 and isinstance(item[0], (list, tuple)):
            if len(item[0]) != 2 or not all(isinstance(t, str) for t in item[0]):
                raise InputError("a text pair given as [[text, text_pair]] needs exactly two strings")
        elif not isinstance(item, str):
            raise InputError(
                "text-classification takes texts; send a text pair as {'text': ..., 'text_pair': ...}, "
                f"got {type(item).__name__}"
            )

    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        if isinstance(item, dict):
            return [self.feature(self.encode(**item))]
        if isinstance(item, (list, tuple)):
            return [self.feature(self.encode(text=item[0][0], text_pair=item[0][1]))]
        return [self.feature(self.encode(item))]

    def default_function(self) -> str:
        """The function transformers applies by default for this model's config."""
        config = self.config
        if config.problem_type == "regression":
            return "none"
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def scores(self, logits: np.ndarray, function: str | None) -> np.ndarray:
        """Scores of one row of logits under ``function`` (the default when None)."""
        function = function or self.default_function()
        logits = np.asarray(logits, dtype=np.float32)
        if function == "sigmoid":
            return sigmoid(logits)
        if function == "softmax":
            return softmax(logits)
        return logits

    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        scores = self.scores(features[0].outputs["logits"], options["function_to_apply"])
        id2label = self.config.id2label or {}
        if options["top_k"] == 1 and options["legacy"]:
            best = int(scores.argmax())
            return {"label": id2label[best], "score": float(scores[best])}
        results: list[dict[str, Any]] = [{"label": id2label[i], "score": float(s)} for i, s in enumerate(scores)]
        if not options["legacy"]:
            results.sort(key=lambda r: r["score"], reverse=True)
            if options["top_k"] is not None:
                results = results[: options["top_k"]]
        return results

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        result = super().__call__(inputs, **kwargs)
        # transformers wraps the result of one text in a list unless the call gave top_k
        return [result] if isinstance(inputs, str) and "top_k" not in kwargs else result
