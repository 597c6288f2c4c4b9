"""``fill-mask``: the most likely tokens at each mask token of a text (a masked-LM head)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core.errors import InputError
from rembert_core.pipelines.base import Feature, Pipeline, softmax

__all__ = ["FillMaskPipeline"]

logger = logging.getLogger("rembert_core.pipelines")


class FillMaskPipeline(Pipeline):
    """Predict the token behind each mask token (``tokenizer.mask_token``) of a text.

    Options: ``top_k`` (default 5) predictions per mask; ``targets`` (a token or a list) restricts the
    scores to those tokens (a target not in the vocabulary is replaced by its first piece, with a
    warning). One mask: a list of ``{"score", "token", "token_str", "sequence"}`` dicts, best first;
    several masks: one such list per mask, and ``sequence`` keeps the special tokens (as transformers).
    """

    task = "fill-mask"
    heads = ("masked_lm",)
    token_outputs = ("logits",)

    def _options(self, *, top_k: int | None = None, targets: str | list[str] | None = None) -> dict[str, Any]:
        if self.tokenizer.mask_token_id is None:
            raise InputError("fill-mask needs a tokenizer with a mask token")
        options: dict[str, Any] = {}
        if top_k is not None:
            if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
                raise InputError(f"top_k must be a positive integer, got {top_k!r}")
            options["top_k"] = top_k
        if targets is not None:
            options["target_ids"] = self._target_ids(targets)
        if not hasattr(self, "options"):
            options.setdefault("top_k", 5)
            options.setdefault("target_ids", None)
        return options

    def _target_ids(self, targets: str | list[str]) -> np.ndarray:
        if isinstance(targets, str):
            targets = [targets]
        vocab = self.tokenizer.get_vocab()
        ids: list[int] = []
        for target in targets:
            index = vocab.get(target)
            if index is None:
                pieces = self.tokenizer(
                    target,
                    add_special_tokens=False,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                    max_length=1,
                    truncation=True,
                )["input_ids"]
                if len(pieces) == 0:
                    logger.warning("The target %r is not in the vocabulary and has no piece; ignoring it", target)
                    continue
                index = pieces[0]
                logger.warning(
                    "The target %r is not in the vocabulary; using %r instead",
                    target,
                    self.tokenizer.convert_ids_to_tokens(index),
                )
            ids.append(int(index))
        unique = sorted(set(ids))
        if not unique:
            raise InputError("fill-mask: none of the targets can be scored (give at least one)")
        return np.array(unique, dtype=np.int64)

    def check(self, item: Any, options: Mapping[str, Any]) -> None:
        if not isinstance(item, str):
            raise InputError(f"fill-mask takes texts, got {type(item).__name__}")
        if self.tokenizer.mask_token not in item:
            raise InputError(f"fill-mask: no mask token ({self.tokenizer.mask_token}) in the input {item[:80]!r}")

    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        encoding = self.encode(item)
        feature = self.feature(encoding)
        if not (feature.inputs["input_ids"] == self.tokenizer.mask_token_id).any():
            raise InputError(f"fill-mask: no mask token ({self.tokenizer.mask_token}) in the input {item[:80]!r}")
        return [feature]

    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        (feature,) = features
        input_ids = feature.inputs["input_ids"]
        positions = np.flatnonzero(input_ids == self.tokenizer.mask_token_id)
        probs = softmax(np.asarray(feature.outputs["logits"][positions], dtype=np.float32))
        target_ids = options["target_ids"]
        top_k = options["top_k"]
        if target_ids is not None:
            probs = probs[:, target_ids]
            top_k = min(top_k, len(target_ids))
        single = len(positions) == 1
        pad = self.tokenizer.pad_token_id
        result = []
        for row, position in zip(probs, positions, strict=True):
            # top-k by descending probability; equal probabilities keep the lower index first (torch.topk order)
            best = np.argsort(-row, kind="stable")[:top_k]
            predictions = []
            for index in best:
                token = int(target_ids[index]) if target_ids is not None else int(index)
                tokens = input_ids.copy()
                tokens[position] = token
                tokens = tokens[tokens != pad]
                predictions.append(
                    {
                        "score": float(row[index]),
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        "sequence": self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single),
                    }
                )
            result.append(predictions)
        return result[0] if single else result

    def _finish(self, inputs: Any, results: list[Any], options: Mapping[str, Any]) -> Any:
        # transformers returns the single result of a one-item list unwrapped
        return results[0] if len(results) == 1 else results
