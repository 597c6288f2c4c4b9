"""``token-classification`` (alias ``ner``): a label per token, or per word or entity (a token-classification head)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core.errors import InputError
from rembert_core.pipelines.base import Feature, Pipeline, softmax

__all__ = ["AGGREGATIONS", "TokenClassificationPipeline"]

#: Values of ``aggregation_strategy``.
AGGREGATIONS = ("none", "simple", "first", "average", "max")


def _tag(label: str) -> tuple[str, str]:
    """(``"B"`` or ``"I"``, entity type) of a label: ``B-PER`` -> (B, PER); ``PER`` and ``I-PER`` -> (I, PER)."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


class TokenClassificationPipeline(Pipeline):
    """Label the tokens of texts (named entities, parts of speech).

    Options: ``aggregation_strategy`` (``"none"``: one dict per token with ``entity``, ``score``,
    ``index``, ``word``, ``start``, ``end``; ``"simple"``: adjacent tokens of one entity grouped, dicts
    with ``entity_group``; ``"first"``/``"average"``/``"max"``: the tokens of a word first agree on a
    label (the first token's, the average scores', the most confident token's), then are grouped);
    ``ignore_labels`` (default ``["O"]``); ``stride``: texts longer than the tokenizer's
    ``model_max_length`` are split in windows overlapping by ``stride`` tokens and the entities merged
    (needs an aggregation other than ``"none"``). ``start``/``end`` are character offsets into the text
    (a fast tokenizer gives them; ``None`` with a slow one). A word starts where the text has a space
    before a token, as in transformers for SentencePiece tokenizers.
    """

    task = "token-classification"
    heads = ("token_classification",)
    token_outputs = ("logits",)

    def _options(
        self,
        *,
        aggregation_strategy: str | None = None,
        ignore_labels: list[str] | None = None,
        stride: int | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if aggregation_strategy is not None:
            name = str(getattr(aggregation_strategy, "value", aggregation_strategy)).lower()
            if name not in AGGREGATIONS:
                raise InputError(f"aggregation_strategy must be one of {AGGREGATIONS}, got {aggregation_strategy!r}")
            if name in ("first", "average", "max") and not self.tokenizer.is_fast:
                raise InputError(
                    f'aggregation_strategy="{name}" needs word boundaries, which a slow tokenizer does not give; '
                    'use "simple" or a fast tokenizer'
                )
            options["aggregation_strategy"] = name
        if ignore_labels is not None:
            options["ignore_labels"] = list(ignore_labels)
        if stride is not None:
            if not isinstance(stride, int) or isinstance(stride, bool) or stride < 0:
                raise InputError(f"stride must be a non-negative integer, got {stride!r}")
            if stride >= self.tokenizer.model_max_length:
                raise InputError(
                    f"stride ({stride}) must be less than the tokenizer's model_max_length "
                    f"({self.tokenizer.model_max_length})"
                )
            if not self.tokenizer.is_fast:
                raise InputError("stride splits long texts in windows, which needs a fast tokenizer")
            options["stride"] = stride
        if not hasattr(self, "options"):
            options.setdefault("aggregation_strategy", "none")
            options.setdefault("ignore_labels", ["O"])
            options.setdefault("stride", None)
        return options

    def check_options(self, options: Mapping[str, Any]) -> None:
        if options["stride"] is not None and options["aggregation_strategy"] == "none":
            raise InputError('stride merges the windows of long texts, which needs an aggregation_strategy, not "none"')

    def check(self, item: Any, options: Mapping[str, Any]) -> None:
        if not isinstance(item, str):
            raise InputError(f"token-classification takes texts, got {type(item).__name__}")

    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        fast = self.tokenizer.is_fast
        kwargs: dict[str, Any] = {}
        if options["stride"] is not None:
            kwargs = {"return_overflowing_tokens": True, "padding": True, "stride": options["stride"]}
        max_length = self.tokenizer.model_max_length
        encoding = self.encode(
            item,
            truncation=bool(max_length and max_length > 0),
            return_special_tokens_mask=True,
            return_offsets_mapping=fast,
            **kwargs,
        )
        rows = len(encoding["input_ids"]) if kwargs else None
        indices = range(rows) if rows is not None else [None]
        features = []
        for row in indices:
            feature = self.feature(encoding, row)
            for key in ("special_tokens_mask", "offset_mapping"):
                if key in encoding:
                    feature.meta[key] = encoding[key] if row is None else encoding[key][row]
            features.append(feature)
        return features

    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        strategy = options["aggregation_strategy"]
        ignore = options["ignore_labels"]
        entities: list[dict[str, Any]] = []
        for feature in features:
            scores = softmax(np.asarray(feature.outputs["logits"], dtype=np.float32))
            pre = self._pre_entities(item, feature, scores)
            grouped = self._aggregate(pre, strategy)
            entities.extend(e for e in grouped if e.get("entity") not in ignore and e.get("entity_group") not in ignore)
        if len(features) > 1:
            entities = self._merge_overlapping(entities)
        return entities

    # -- steps (transformers' algorithm) ---------------------------------------------------------

    def _pre_entities(self, sentence: str, feature: Feature, scores: np.ndarray) -> list[dict[str, Any]]:
        input_ids = feature.inputs["input_ids"]
        special = feature.meta["special_tokens_mask"]
        offsets = feature.meta.get("offset_mapping")
        unk = self.tokenizer.unk_token_id
        pre = []
        for index, token_scores in enumerate(scores):
            if special[index]:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(input_ids[index]))
            if offsets is not None:
                start, end = (int(x) for x in offsets[index])
                # SentencePiece pieces carry no continuation mark: a piece continues a word unless a space
                # precedes it (or it starts the text)
                is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
                if int(input_ids[index]) == unk:
                    word = sentence[start:end]
                    is_subword = False
            else:
                start = end = None  # type: ignore[assignment]  # a slow tokenizer gives no offsets
                is_subword = False
            pre.append(
                {
                    "word": word,
                    "scores": token_scores,
                    "start": start,
                    "end": end,
                    "index": index,
                    "is_subword": is_subword,
                }
            )
        return pre

    def _label(self, index: int) -> str:
        return str((self.config.id2label or {})[int(index)])

    def _aggregate(self, pre: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
        if strategy in ("none", "simple"):
            entities = []
            for p in pre:
                best = int(p["scores"].argmax())
                entities.append(
                    {
                        "entity": self._label(best),
                        "score": float(p["scores"][best]),
                        "index": p["index"],
                        "word": p["word"],
                        "start": p["start"],
                        "end": p["end"],
                    }
                )
        else:
            entities = self._aggregate_words(pre, strategy)
        if strategy == "none":
            return entities
        return self._group_entities(entities)

    def _aggregate_word(self, tokens: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
        word = self.tokenizer.convert_tokens_to_string([t["word"] for t in tokens])
        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda t: t["scores"].max())["scores"]
        else:  # average
            scores = np.nanmean(np.stack([t["scores"] for t in tokens]), axis=0)
        best = int(scores.argmax())
        return {
            "entity": self._label(best),
            "score": float(scores[best]),
            "word": word,
            "start": tokens[0]["start"],
            "end": tokens[-1]["end"],
        }

    def _aggregate_words(self, pre: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
        words: list[dict[str, Any]] = []
        group: list[dict[str, Any]] = []
        for p in pre:
            if group and not p["is_subword"]:
                words.append(self._aggregate_word(group, strategy))
                group = []
            group.append(p)
        if group:
            words.append(self._aggregate_word(group, strategy))
        return words

    def _group(self, entities: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": float(np.nanmean([e["score"] for e in entities])),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def _group_entities(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        current: list[dict[str, Any]] = []
        for entity in entities:
            if current:
                bi, tag = _tag(entity["entity"])
                _, last_tag = _tag(current[-1]["entity"])
                if tag == last_tag and bi != "B":
                    current.append(entity)
                    continue
                groups.append(self._group(current))
            current = [entity]
        if current:
            groups.append(self._group(current))
        return groups

    @staticmethod
    def _merge_overlapping(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Entities of overlapping windows: of two that overlap keep the longer (the more confident if equal)."""
        if not entities:
            return entities
        entities = sorted(entities, key=lambda e: e["start"])
        merged = []
        previous = entities[0]
        for entity in entities:
            if previous["start"] <= entity["start"] < previous["end"]:
                length = entity["end"] - entity["start"]
                previous_length = previous["end"] - previous["start"]
                if length > previous_length or (length == previous_length and entity["score"] > previous["score"]):
                    previous = entity
            else:
                merged.append(previous)
                previous = entity
        merged.append(previous)
        return merged
