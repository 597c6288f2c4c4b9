"""``zero-shot-classification``: candidate labels scored as NLI hypotheses (an NLI sequence-classification head)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core.errors import InputError
from rembert_core.pipelines.base import Feature, Pipeline

__all__ = ["ZeroShotClassificationPipeline"]

logger = logging.getLogger("rembert_core.pipelines")


def _parse_labels(labels: Any) -> list[str]:
    if isinstance(labels, str):
        return [label.strip() for label in labels.split(",") if label.strip()]
    if labels is None:
        return []
    return list(labels)


class ZeroShotClassificationPipeline(Pipeline):
    """Score ``candidate_labels`` for texts with a model trained on natural language inference.

    Each (text, ``hypothesis_template.format(label)``) pair is classified; the entailment logit (the
    label whose name starts with ``entail`` in ``config.label2id``) scores the label. Options:
    ``candidate_labels`` (a list, or one comma-separated string), ``hypothesis_template`` (default
    ``"This example is {}."``), ``multi_label`` (score each label on its own: entailment vs
    contradiction; otherwise a softmax over the labels' entailment logits). Result per text:
    ``{"sequence", "labels", "scores"}``, best first.
    """

    task = "zero-shot-classification"
    heads = ("sequence_classification",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.entailment_id == -1:
            logger.warning(
                "No label of the model's config starts with 'entail'; zero-shot scores use the last label's logits"
            )

    @property
    def entailment_id(self) -> int:
        """The index of the entailment label (-1 when no label name starts with ``entail``)."""
        for label, index in (self.config.label2id or {}).items():
            if str(label).lower().startswith("entail"):
                return int(index)
        return -1

    def _options(
        self,
        *,
        candidate_labels: Any = None,
        hypothesis_template: str | None = None,
        multi_label: bool | None = None,
        multi_class: bool | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if candidate_labels is not None:
            options["candidate_labels"] = _parse_labels(candidate_labels)
        if hypothesis_template is not None:
            options["hypothesis_template"] = hypothesis_template
        if multi_class is not None and multi_label is None:
            multi_label = multi_class
        if multi_label is not None:
            options["multi_label"] = bool(multi_label)
        if not hasattr(self, "options"):
            options.setdefault("candidate_labels", None)
            options.setdefault("hypothesis_template", "This example is {}.")
            options.setdefault("multi_label", False)
        return options

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Classify ``inputs``; the candidate labels may follow as the second positional argument."""
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise InputError(f"unexpected extra arguments {args!r}")
        return super().__call__(inputs, **kwargs)

    def check(self, item: Any, options: Mapping[str, Any]) -> None:
        if not isinstance(item, str):
            raise InputError(f"zero-shot-classification takes texts, got {type(item).__name__}")
        labels = options["candidate_labels"]
        if not labels:
            raise InputError("zero-shot-classification needs at least one candidate label (candidate_labels=)")
        template = options["hypothesis_template"]
        if template.format(labels[0]) == template:
            raise InputError(
                f"the hypothesis_template {template!r} has no {{}} where the label goes; it cannot be formatted"
            )

    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        features = []
        template = options["hypothesis_template"]
        for label in options["candidate_labels"]:
            encoding = self.encode(item, template.format(label), padding=True, truncation="only_first")
            features.append(self.feature(encoding, candidate_label=label))
        return features

    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        labels = [f.meta["candidate_label"] for f in features]
        logits = np.stack([np.asarray(f.outputs["logits"], dtype=np.float32) for f in features])  # (labels, classes)
        entailment = self.entailment_id
        if options["multi_label"] or len(labels) == 1:
            contradiction = -1 if entailment == 0 else 0
            pair = logits[:, [contradiction, entailment]]
            scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[:, 1]
        else:
            entail = logits[:, entailment]
            scores = np.exp(entail) / np.exp(entail).sum(-1, keepdims=True)
        order = list(reversed(scores.argsort()))
        return {"sequence": item, "labels": [labels[i] for i in order], "scores": scores[order].tolist()}
