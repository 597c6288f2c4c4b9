"""``text-generation``: prompts continued by a causal-LM head, through the runner's ``generate``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rembert_core.errors import InputError
from rembert_core.pipelines.base import Feature, Pipeline

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "TextGenerationPipeline"]

#: New tokens generated when neither ``max_new_tokens`` nor the call says otherwise (transformers' pipeline default).
DEFAULT_MAX_NEW_TOKENS = 256

_OWN = ("return_full_text", "return_tensors", "clean_up_tokenization_spaces", "skip_special_tokens", "prefix")


class TextGenerationPipeline(Pipeline):
    """Continue prompts: ``[{"generated_text": prompt + continuation}]`` per prompt.

    Options: ``return_full_text`` (default True; False gives the continuation only), ``return_tensors``
    (``{"generated_token_ids": [...]}`` instead of text), ``max_new_tokens`` (default 256),
    ``do_sample``, ``prefix`` (text put before every prompt), ``skip_special_tokens`` and
    ``clean_up_tokenization_spaces`` (decoding), and any other option of the runner's ``generate``.
    Each prompt is generated on its own (no padding), as transformers' pipeline does by default. The
    prompt is tokenized with the special tokens, as transformers does.
    """

    task = "text-generation"
    heads = ("causal_lm",)

    def _options(self, **options: Any) -> dict[str, Any]:
        result = dict(options)
        max_new = result.get("max_new_tokens")
        if max_new is not None and (not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 0):
            raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new!r}")
        if not hasattr(self, "options"):
            defaults = {
                "return_full_text": True,
                "return_tensors": False,
                "clean_up_tokenization_spaces": True,
                "skip_special_tokens": True,
                "prefix": "",
                "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
            }
            result = {**defaults, **result}
        return result

    def check(self, item: Any, options: Mapping[str, Any]) -> None:
        if not isinstance(item, str):
            raise InputError(f"text-generation takes prompts (strings), got {type(item).__name__}")

    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        return [self.feature(self.encode(options["prefix"] + item))]

    def _forward(self, features: Sequence[Feature], options: Mapping[str, Any]) -> None:
        generate = {k: v for k, v in options.items() if k not in _OWN}
        for feature in features:
            ids = feature.inputs["input_ids"][None]
            mask = feature.inputs["attention_mask"][None]
            feature.outputs = {"sequences": np.asarray(self.runner.generate(ids, mask, **generate))}

    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        feature = features[0]
        records = []
        for sequence in feature.outputs["sequences"].tolist():
            if options["return_tensors"]:
                records.append({"generated_token_ids": sequence})
                continue
            decode = {
                "skip_special_tokens": options["skip_special_tokens"],
                "clean_up_tokenization_spaces": options["clean_up_tokenization_spaces"],
            }
            text = self.tokenizer.decode(sequence, **decode)
            prompt_length = len(self.tokenizer.decode(feature.inputs["input_ids"].tolist(), **decode))
            new_text = text[prompt_length:]
            records.append({"generated_text": item + new_text if options["return_full_text"] else new_text})
        return records
