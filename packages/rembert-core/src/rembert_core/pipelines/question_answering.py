"""``question-answering``: the span of a context that answers a question (an extractive QA head)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core.errors import InputError
from rembert_core.pipelines.base import Feature, Pipeline

__all__ = ["QuestionAnsweringPipeline", "decode_spans", "select_spans"]


def decode_spans(
    start: np.ndarray, end: np.ndarray, top_k: int, max_answer_len: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``top_k`` best (start, end, score) spans from start and end probabilities ``(1, seq)``.

    A span's score is ``start[s] * end[e]``; spans with ``e < s`` or longer than ``max_answer_len``
    tokens score 0; spans starting or ending outside ``allowed`` are dropped (after taking the top k,
    as transformers does).
    """
    outer = np.matmul(start[:, :, None], end[:, None, :])
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) < top_k:
        order = np.argsort(-flat)
    else:
        best = np.argpartition(-flat, top_k)[0:top_k]
        order = best[np.argsort(-flat[best])]
    starts, ends = np.unravel_index(order, candidates.shape)[1:]
    keep_index = allowed.nonzero()
    keep = np.isin(starts, keep_index) & np.isin(ends, keep_index)
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[0, starts, ends]


def select_spans(
    start: np.ndarray,
    end: np.ndarray,
    p_mask: np.ndarray,
    attention_mask: np.ndarray,
    min_null_score: float,
    top_k: int,
    handle_impossible_answer: bool,
    max_answer_len: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Normalise a window's start/end logits ``(1, seq)`` over its context tokens; its best spans.

    Returns (starts, ends, scores, the smallest null-answer score seen so far).
    """
    allowed = np.abs(p_mask - 1) & attention_mask
    masked = allowed == 0
    start = np.where(masked, -10000.0, start)
    end = np.where(masked, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, float(start[0, 0] * end[0, 0]))
    start[0, 0] = end[0, 0] = 0.0
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, allowed)
    return starts, ends, scores, min_null_score


def _row(encoding: Any, key: str, row: int) -> Any:
    return encoding[key][row]


def _sequence_ids(encoding: Any, row: int) -> list[int | None]:
    method = getattr(encoding, "sequence_ids", None)
    if method is not None:
        try:
            return list(method(row))
        except (AttributeError, NotImplementedError, TypeError, ValueError):
            pass
    # Without sequence_ids(): special tokens belong to no sequence, the others to their token type.
    special = _row(encoding, "special_tokens_mask", row)
    types = _row(encoding, "token_type_ids", row)
    return [None if s else int(t) for s, t in zip(special, types, strict=True)]


class QuestionAnsweringPipeline(Pipeline):
    """Answer questions with spans of their contexts: ``pipe(question=..., context=...)``.

    Inputs: ``question=`` and ``context=`` (strings, or lists of the same length), a dict with
    ``question`` and ``context``, or a list of such dicts. Options: ``top_k`` (default 1),
    ``max_answer_len`` (15 tokens), ``handle_impossible_answer`` (also score the empty answer),
    ``align_to_words`` (default True: widen the span to whole words), ``max_seq_len`` (tokens per window,
    default ``min(model_max_length, 384)``) and ``doc_stride`` (overlap of the windows a long context is
    cut into, default ``min(max_seq_len // 2, 128)``). Each answer is ``{"score", "start", "end",
    "answer"}`` with character offsets into the context; ``top_k > 1`` gives a list. Needs a fast
    tokenizer (offsets).
    """

    task = "question-answering"
    heads = ("question_answering",)
    token_outputs = ("start_logits", "end_logits")

    def _options(
        self,
        *,
        top_k: int | None = None,
        max_answer_len: int | None = None,
        handle_impossible_answer: bool | None = None,
        align_to_words: bool | None = None,
        max_seq_len: int | None = None,
        doc_stride: int | None = None,
        max_question_len: int | None = None,
        padding: Any = None,
    ) -> dict[str, Any]:
        if not self.tokenizer.is_fast:
            raise InputError("question-answering maps answers to characters with offsets, which needs a fast tokenizer")
        options: dict[str, Any] = {}
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len), ("max_seq_len", max_seq_len)):
            if value is not None:
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise InputError(f"{name} must be a positive integer, got {value!r}")
                options[name] = value
        if doc_stride is not None:
            if not isinstance(doc_stride, int) or isinstance(doc_stride, bool) or doc_stride < 0:
                raise InputError(f"doc_stride must be a non-negative integer, got {doc_stride!r}")
            options["doc_stride"] = doc_stride
        if max_question_len is not None:
            options["max_question_len"] = max_question_len  # used by transformers' slow path only
        if handle_impossible_answer is not None:
            options["handle_impossible_answer"] = bool(handle_impossible_answer)
        if align_to_words is not None:
            options["align_to_words"] = bool(align_to_words)
        if padding is not None:
            options["padding"] = padding
        if not hasattr(self, "options"):
            defaults: dict[str, Any] = {
                "top_k": 1,
                "max_answer_len": 15,
                "handle_impossible_answer": False,
                "align_to_words": True,
            }
            defaults.update({"max_seq_len": None, "doc_stride": None, "max_question_len": 64, "padding": "do_not_pad"})
            options = {**defaults, **options}
        return options

    def _normalize(self, inputs: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        question = kwargs.pop("question", None)
        context = kwargs.pop("context", None)
        if inputs is not None and (question is not None or context is not None):
            raise InputError("give the inputs either as question=/context= or as dicts, not both")
        if inputs is None:
            if question is None or context is None:
                raise InputError("question-answering needs both question= and context=")
            if isinstance(question, str) and isinstance(context, str):
                inputs = {"question": question, "context": context}
            elif isinstance(question, str):
                inputs = [{"question": question, "context": c} for c in context]
            elif isinstance(context, str):
                inputs = [{"question": q, "context": context} for q in question]
            else:
                question, context = list(question), list(context)
                if len(question) != len(context):
                    raise InputError(f"{len(question)} questions but {len(context)} contexts")
                inputs = [{"question": q, "context": c} for q, c in zip(question, context, strict=True)]
        return inputs, kwargs

    def _is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, dict)

    def check(self, item: Any, options: Mapping[str, Any]) -> None:
        if not isinstance(item, dict) or "question" not in item or "context" not in item:
            raise InputError(f"question-answering takes dicts with 'question' and 'context', got {item!r:.80}")
        for key in ("question", "context"):
            value = item[key]
            if not isinstance(value, str):
                raise InputError(f"the {key} must be a string, got {type(value).__name__}")
            if not value.strip():
                raise InputError(f"the {key} is empty")

    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        max_seq_len = options["max_seq_len"] or min(self.tokenizer.model_max_length, 384)
        doc_stride = options["doc_stride"]
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise InputError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})")
        question_first = self.tokenizer.padding_side == "right"
        question, context = item["question"], item["context"]
        encoding = self.encode(
            text=question if question_first else context,
            text_pair=context if question_first else question,
            padding=options["padding"],
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=True,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        ids = encoding["input_ids"]
        if ids and not isinstance(ids[0], (list, tuple, np.ndarray)):
            raise InputError(
                "the tokenizer returned one row for return_overflowing_tokens=True; question-answering needs a "
                "tokenizer that returns one row per window (transformers' fast layout)"
            )
        features = []
        cls_id = self.tokenizer.cls_token_id
        for row in range(len(ids)):
            sequence_ids = _sequence_ids(encoding, row)
            p_mask = np.array([(s != 1) if question_first else 0 for s in sequence_ids], dtype=np.int64)
            if cls_id is not None:
                p_mask[np.asarray(ids[row]) == cls_id] = 0
            features.append(
                self.feature(
                    encoding,
                    row,
                    p_mask=p_mask,
                    offsets=[tuple(int(x) for x in o) for o in _row(encoding, "offset_mapping", row)],
                    word_ids=list(encoding.word_ids(row)),
                    sequence_ids=sequence_ids,
                )
            )
        return features

    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        top_k = options["top_k"]
        align = options["align_to_words"]
        impossible = options["handle_impossible_answer"]
        context = item["context"]
        question_first = self.tokenizer.padding_side == "right"
        sequence_index = 1 if question_first else 0
        min_null_score = 1000000.0
        answers: list[dict[str, Any]] = []
        for feature in features:
            starts, ends, scores, min_null_score = select_spans(
                np.asarray(feature.outputs["start_logits"], dtype=np.float32)[None],
                np.asarray(feature.outputs["end_logits"], dtype=np.float32)[None],
                feature.meta["p_mask"][None],
                feature.inputs["attention_mask"][None],
                min_null_score,
                top_k * 2 + 10 if align else top_k,
                impossible,
                options["max_answer_len"],
            )
            offset = 0
            if self.tokenizer.padding_side == "left":
                offset = int((feature.inputs["input_ids"] == self.tokenizer.pad_token_id).sum())
            for s, e, score in zip(starts, ends, scores, strict=True):
                begin, finish = self._indices(feature.meta, int(s) - offset, int(e) - offset, sequence_index, align)
                text = context[begin:finish]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += float(score)
                else:
                    answers.append({"score": float(score), "start": begin, "end": finish, "answer": text})
        if impossible:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers

    @staticmethod
    def _indices(meta: Mapping[str, Any], s: int, e: int, sequence_index: int, align: bool) -> tuple[int, int]:
        offsets = meta["offsets"]
        if align:
            word_ids, sequence_ids = meta["word_ids"], meta["sequence_ids"]
            start_word, end_word = word_ids[s], word_ids[e]
            if start_word is not None and end_word is not None:
                pairs = list(zip(word_ids, sequence_ids, strict=True))
                start_tokens = [t for t, p in enumerate(pairs) if p == (start_word, sequence_index)]
                end_tokens = [t for t, p in enumerate(pairs) if p == (end_word, sequence_index)]
                if start_tokens and end_tokens:
                    return offsets[start_tokens[0]][0], offsets[end_tokens[-1]][1]
        return offsets[s][0], offsets[e][1]

    def _finish(self, inputs: Any, results: list[Any], options: Mapping[str, Any]) -> Any:
        return results[0] if len(results) == 1 else results
