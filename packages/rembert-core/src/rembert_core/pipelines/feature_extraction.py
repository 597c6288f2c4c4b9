"""``feature-extraction``: the encoder's hidden states of texts (the backbone of any checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core.errors import InputError
from rembert_core.pipelines.base import Feature, Pipeline

__all__ = ["FeatureExtractionPipeline"]


class FeatureExtractionPipeline(Pipeline):
    """The last hidden state of each text, ``(1, seq, hidden)`` as nested lists (transformers' layout).

    Options: ``return_tensors=True`` gives a NumPy array instead of lists; ``pooled=True`` the pooler
    output ``(1, hidden)`` instead of the hidden states; ``truncation`` and ``tokenize_kwargs`` go to
    the tokenizer.
    """

    task = "feature-extraction"
    heads = ("base",)
    token_outputs = ("last_hidden_state",)

    def _options(
        self,
        *,
        return_tensors: bool | None = None,
        pooled: bool | None = None,
        truncation: Any = None,
        tokenize_kwargs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {}
        kwargs = dict(tokenize_kwargs or {})
        if truncation is not None:
            if "truncation" in kwargs:
                raise InputError("truncation is given twice (as an option and in tokenize_kwargs)")
            kwargs["truncation"] = truncation
        if tokenize_kwargs is not None or truncation is not None:
            options["tokenize_kwargs"] = kwargs
        if return_tensors is not None:
            options["return_tensors"] = bool(return_tensors)
        if pooled is not None:
            options["pooled"] = bool(pooled)
        if not hasattr(self, "options"):
            options.setdefault("tokenize_kwargs", {})
            options.setdefault("return_tensors", False)
            options.setdefault("pooled", False)
        return options

    def check(self, item: Any, options: Mapping[str, Any]) -> None:
        if not isinstance(item, str):
            raise InputError(f"feature-extraction takes texts, got {type(item).__name__}")

    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        return [self.feature(self.encode(item, **options["tokenize_kwargs"]))]

    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        outputs = features[0].outputs
        if options["pooled"]:
            if "pooler_output" not in outputs:
                raise InputError("pooled=True needs a model with a pooler")
            value = np.asarray(outputs["pooler_output"])[None]
        else:
            value = np.asarray(outputs["last_hidden_state"])[None]
        return value if options["return_tensors"] else value.tolist()
