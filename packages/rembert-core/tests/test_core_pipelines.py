"""rembert_core.pipelines without any framework: a word-level fake tokenizer and fake backends.

The agreement with transformers' pipelines is tested in tests/test_pipelines.py (tests-cross); these
tests pin the framework-free parts: the task table, errors before any forward pass, batching and
streaming, and each task's post-processing on logits chosen by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rembert_core import Backend, InputError, RemBertConfig, pipeline
from rembert_core.pipelines import ModelRunner, make_pipeline, resolve_task
from rembert_core.pipelines.question_answering import decode_spans, select_spans
from rembert_core.testing import tiny_config

CLS, SEP, PAD, MASK, UNK = 0, 1, 2, 3, 4
SPECIAL = {"[CLS]": CLS, "[SEP]": SEP, "[PAD]": PAD, "[MASK]": MASK, "<unk>": UNK}


class WordTokenizer:
    """One token per whitespace word (ids from a growing vocabulary), with offsets, like a fast tokenizer."""

    is_fast = True
    padding_side = "right"
    model_max_length = 64
    mask_token, mask_token_id = "[MASK]", MASK
    pad_token_id, cls_token_id, sep_token_id, unk_token_id = PAD, CLS, SEP, UNK

    def __init__(self) -> None:
        self.vocab: dict[str, int] = dict(SPECIAL)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def _id(self, word: str) -> int:
        return self.vocab.setdefault(word, len(self.vocab))

    def _words(self, text: str) -> list[tuple[str, int, int]]:
        words, at = [], 0
        for word in text.split():
            start = text.index(word, at)
            words.append((word, start, start + len(word)))
            at = start + len(word)
        return words

    def __call__(self, text: str, text_pair: str | None = None, **kwargs: Any) -> dict[str, Any]:
        ids, offsets, types, special = [CLS], [(0, 0)], [0], [1]
        for sequence, part in enumerate((text, text_pair)):
            if part is None:
                continue
            for word, start, end in self._words(part):
                ids.append(self._id(word))
                offsets.append((start, end))
                types.append(sequence)
                special.append(0)
            ids.append(SEP)
            offsets.append((0, 0))
            types.append(sequence)
            special.append(1)
        if not kwargs.get("add_special_tokens", True):
            keep = [i for i, s in enumerate(special) if not s]
            ids = [ids[i] for i in keep]
        max_length = kwargs.get("max_length")
        if kwargs.get("truncation") is True and max_length:
            ids = ids[:max_length]
        out: dict[str, Any] = {"input_ids": ids, "token_type_ids": types[: len(ids)], "attention_mask": [1] * len(ids)}
        if kwargs.get("return_offsets_mapping"):
            out["offset_mapping"] = offsets
        if kwargs.get("return_special_tokens_mask"):
            out["special_tokens_mask"] = special
        return out

    def convert_ids_to_tokens(self, index: int) -> str:
        return {v: k for k, v in self.vocab.items()}[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def decode(self, ids: list[int], skip_special_tokens: bool = False, **kwargs: Any) -> str:
        words = [self.convert_ids_to_tokens(i) for i in ids if not (skip_special_tokens and i in (CLS, SEP, PAD))]
        return " ".join(words)


class TableRunner(ModelRunner):
    """Logits looked up from a fixed table by token id (each token's logits depend on that token only)."""

    def __init__(self, head: str, width: int, config: RemBertConfig | None = None, seed: int = 0) -> None:
        self.head = head
        self.config = config or tiny_config(num_labels=width)
        self.table = np.random.default_rng(seed).normal(0, 3, (200, width)).astype(np.float32)
        self.calls: list[tuple[int, int]] = []

    def forward(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        ids = inputs["input_ids"]
        self.calls.append(ids.shape)
        logits = self.table[ids]
        if self.head == "sequence_classification":
            return {"logits": logits[:, 1, :]}  # the first real token decides
        if self.head == "question_answering":
            return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
        if self.head == "base":
            return {"last_hidden_state": logits, "pooler_output": logits[:, 0]}
        return {"logits": logits}


# -- the task table and errors -----------------------------------------------------------------


def test_unknown_task_lists_the_tasks() -> None:
    with pytest.raises(InputError, match="fill-mask.*zero-shot-classification.*sentiment-analysis"):
        resolve_task("translation")
    assert resolve_task("ner").task == "token-classification"
    assert resolve_task("sentiment-analysis").task == "text-classification"


def test_head_that_does_not_fit_the_task() -> None:
    with pytest.raises(InputError, match="head is 'masked_lm'.*'text-classification'"):
        make_pipeline("text-classification", TableRunner("masked_lm", 8), WordTokenizer())


def test_fill_mask_checks_every_text_before_any_forward() -> None:
    runner = TableRunner("masked_lm", 60)
    fill = make_pipeline("fill-mask", runner, WordTokenizer())
    with pytest.raises(InputError, match="no mask token"):
        fill(["a [MASK] b", "no mask"])
    with pytest.raises(InputError, match="no mask token"):
        fill("no mask")
    assert runner.calls == []


def test_fill_mask_top_k_targets_and_several_masks() -> None:
    tokenizer = WordTokenizer()
    for word in ("alpha", "beta", "gamma", *(f"w{i}" for i in range(60))):
        tokenizer._id(word)
    runner = TableRunner("masked_lm", len(tokenizer.vocab))
    fill = make_pipeline("fill-mask", runner, tokenizer)
    result = fill("x [MASK] y", top_k=3)
    probs = np.exp(runner.table[MASK]) / np.exp(runner.table[MASK]).sum()
    assert [r["token"] for r in result] == list(np.argsort(-probs)[:3])
    assert result[0]["score"] == pytest.approx(float(probs.max()), rel=1e-5)
    targeted = fill("x [MASK] y", targets=["alpha", "beta"])
    assert sorted(r["token_str"] for r in targeted) == ["alpha", "beta"]
    two = fill("[MASK] and [MASK]", top_k=2)
    assert len(two) == 2 and all(len(row) == 2 for row in two)
    assert two[0][0]["sequence"].startswith("[CLS]")  # several masks keep the special tokens
    with pytest.raises(InputError, match="no option.*topk.*its options: top_k, targets"):
        fill("x [MASK] y", topk=3)


def test_text_classification_functions_and_shapes() -> None:
    config = tiny_config(num_labels=3, id2label={0: "neg", 1: "mid", 2: "pos"})
    runner = TableRunner("sequence_classification", 3, config)
    tokenizer = WordTokenizer()
    classify = make_pipeline("sentiment-analysis", runner, tokenizer)
    one = classify("good film")
    logits = runner.table[tokenizer.vocab["good"]]
    probs = np.exp(logits) / np.exp(logits).sum()
    assert one == [{"label": config.id2label[int(probs.argmax())], "score": pytest.approx(float(probs.max()))}]
    every = classify("good film", top_k=None)
    assert [r["score"] for r in every] == sorted((r["score"] for r in every), reverse=True)
    raw = classify(["good film", "bad"], function_to_apply="none", top_k=1)
    assert raw[0][0]["score"] == pytest.approx(float(logits.max()))
    pair = classify({"text": "good", "text_pair": "film"})
    assert set(pair) == {"label", "score"}
    with pytest.raises(InputError, match="function_to_apply"):
        classify("x", function_to_apply="tanh")


def test_batches_are_sorted_by_length_and_results_keep_input_order() -> None:
    runner = TableRunner("base", 4)
    features = make_pipeline("feature-extraction", runner, WordTokenizer(), batch_size=2)
    texts = ["a b c d e f", "a", "a b c d e", "a b"]
    out = features(texts, return_tensors=True)
    assert [o.shape[1] for o in out] == [len(t.split()) + 2 for t in texts]
    assert runner.calls == [(2, 4), (2, 8)]  # (1-2 words), (5-6 words): little padding
    for text, o in zip(texts, out, strict=True):
        single = features(text, return_tensors=True)
        np.testing.assert_array_equal(o, single)


def test_generators_are_streamed() -> None:
    runner = TableRunner("base", 4)
    features = make_pipeline("feature-extraction", runner, WordTokenizer(), batch_size=1)
    seen: list[int] = []

    def texts() -> Iterator[str]:
        for i in range(10_000):
            seen.append(i)
            yield "a " * (i % 5 + 1)

    stream = features(texts())
    first = next(stream)
    assert np.shape(first) == (1, 3, 4)
    assert len(seen) < 100  # one window read, not the whole generator


def test_token_classification_aggregations() -> None:
    config = tiny_config(num_labels=3, id2label={0: "O", 1: "B-PER", 2: "I-PER"})
    tokenizer = WordTokenizer()
    runner = TableRunner("token_classification", 3, config)
    names = {"Ann": [0, 9, 0], "Lee": [0, 0, 9], "met": [9, 0, 0], "Bob": [0, 9, 0]}
    for word, row in names.items():
        runner.table[tokenizer._id(word)] = row
    ner = make_pipeline("ner", runner, tokenizer)
    tokens = ner("Ann Lee met Bob")
    assert [(e["entity"], e["word"], e["start"], e["end"]) for e in tokens] == [
        ("B-PER", "Ann", 0, 3),
        ("I-PER", "Lee", 4, 7),
        ("B-PER", "Bob", 12, 15),
    ]
    grouped = ner("Ann Lee met Bob", aggregation_strategy="simple")
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in grouped] == [
        ("PER", "Ann Lee", 0, 7),
        ("PER", "Bob", 12, 15),
    ]
    everything = ner("Ann met", aggregation_strategy="first", ignore_labels=[])
    assert [e["entity_group"] for e in everything] == ["PER", "O"]
    with pytest.raises(InputError, match="aggregation_strategy"):
        ner("x", aggregation_strategy="longest")
    with pytest.raises(InputError, match="stride"):
        ner("x", stride=2)


def test_decode_spans_respects_order_length_and_allowed_tokens() -> None:
    start = np.array([[0.1, 0.6, 0.2, 0.1]])
    end = np.array([[0.1, 0.1, 0.2, 0.6]])
    allowed = np.array([[0, 1, 1, 1]])
    starts, ends, scores = decode_spans(start, end, 2, 3, allowed)
    assert next(zip(starts.tolist(), ends.tolist(), strict=True)) == (1, 3)
    assert scores[0] == pytest.approx(0.36)
    starts, ends, _ = decode_spans(start, end, 1, 1, allowed)  # one-token answers only
    assert starts[0] == ends[0]
    s, _e, _, null = select_spans(start, end, np.array([[0, 0, 0, 0]]), np.array([[1, 1, 1, 1]]), 1e6, 1, True, 15)
    assert null < 1e6 and len(s) == 1


def test_question_answering_inputs_and_errors() -> None:
    runner = TableRunner("question_answering", 2, tiny_config(num_labels=2))
    tokenizer = WordTokenizer()
    qa = make_pipeline("question-answering", runner, tokenizer)

    def overflow(text: str, text_pair: str | None = None, **kwargs: Any) -> Any:
        out = WordTokenizer.__call__(tokenizer, text, text_pair, **kwargs)
        rows = {k: [v] for k, v in out.items()}

        class Encoding(dict[str, Any]):
            def word_ids(self, row: int) -> list[int | None]:
                special = rows["special_tokens_mask"][row]
                types = rows["token_type_ids"][row]
                counters = [0, 0]
                result: list[int | None] = []
                for s, t in zip(special, types, strict=True):
                    result.append(None if s else counters[t])
                    counters[t] += 0 if s else 1
                return result

        return Encoding(rows)

    tokenizer.__call__ = overflow  # type: ignore[method-assign]
    qa.encode = overflow  # type: ignore[method-assign]
    answer = qa(question="who came", context="Ann came home late")
    assert set(answer) == {"score", "start", "end", "answer"}
    assert answer["answer"] == "Ann came home late"[answer["start"] : answer["end"]]
    several = qa(question=["who", "where"], context="Ann came home")
    assert len(several) == 2
    with pytest.raises(InputError, match="question is empty"):
        qa(question="  ", context="x")
    with pytest.raises(InputError, match="context is empty"):
        qa({"question": "q", "context": ""})
    assert runner.calls and all(shape[0] <= 8 for shape in runner.calls)


def test_zero_shot_scores_and_errors() -> None:
    config = tiny_config(num_labels=3, id2label={0: "contradiction", 1: "neutral", 2: "entailment"})
    runner = TableRunner("sequence_classification", 3, config)
    zero = make_pipeline("zero-shot-classification", runner, WordTokenizer())
    result = zero("some text", ["red", "green", "blue"])
    assert sorted(result["labels"]) == ["blue", "green", "red"]
    assert sum(result["scores"]) == pytest.approx(1.0, rel=1e-5)
    assert result["scores"] == sorted(result["scores"], reverse=True)
    multi = zero("some text", candidate_labels="red, green", multi_label=True)
    assert all(0 < s < 1 for s in multi["scores"])
    with pytest.raises(InputError, match="candidate label"):
        zero("some text", candidate_labels=[])
    with pytest.raises(InputError, match="hypothesis_template"):
        zero("some text", ["red"], hypothesis_template="no slot")


def test_text_generation_greedy_through_forward() -> None:
    config = tiny_config(eos_token_id=None)
    runner = TableRunner("causal_lm", 200, config)
    tokenizer = WordTokenizer()
    for i in range(200):
        tokenizer.vocab.setdefault(f"w{i}", i) if i not in tokenizer.vocab.values() else None
    generate = make_pipeline("text-generation", runner, tokenizer)
    out = generate("w10 w11", max_new_tokens=3)
    assert len(out) == 1 and out[0]["generated_text"].startswith("w10 w11")
    ids = tokenizer("w10 w11")["input_ids"]
    expected = []
    for _ in range(3):
        nxt = int(np.argmax(runner.table[ids[-1]]))
        expected.append(nxt)
        ids.append(nxt)
    new = generate("w10 w11", max_new_tokens=3, return_full_text=False, return_tensors=True)
    assert new[0]["generated_token_ids"][-3:] == expected


# -- any backend: pipeline(task, model=directory, backend=...) ----------------------------------


class TableBackend(Backend):
    """A backend whose 'model' is the checkpoint's word embeddings: enough to prove the contract carries a pipeline."""

    name = "table"

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> Any:
        return {"task": task, "config": config}

    def load_tensors(self, model: Any, tensors: Mapping[str, np.ndarray]) -> None:
        (name,) = [n for n in tensors if n.endswith("word_embeddings.weight")]
        model["embeddings"] = np.asarray(tensors[name], dtype=np.float32)

    def export_tensors(self, model: Any) -> dict[str, np.ndarray]:
        return {}

    def forward(self, model: Any, inputs: Mapping[str, np.ndarray], **kwargs: Any) -> dict[str, Any]:
        hidden = model["embeddings"][inputs["input_ids"]]
        return {"last_hidden_state": hidden, "pooler_output": hidden[:, 0]}

    def gradients(self, model: Any, inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        raise NotImplementedError


def test_any_backend_runs_a_checkpoint(make_checkpoint: Callable[..., Path]) -> None:
    directory = make_checkpoint("masked_lm")
    features = pipeline("feature-extraction", model=str(directory), backend=TableBackend(), tokenizer=WordTokenizer())
    out = features("a b", return_tensors=True)
    assert out.shape == (1, 4, 20)  # [CLS] a b [SEP] x input_embedding_size
    with pytest.raises(InputError, match="no 'token_classification' head"):
        pipeline("ner", model=str(directory), backend=TableBackend(), tokenizer=WordTokenizer())
    with pytest.raises(InputError, match="needs model="):
        pipeline("fill-mask")


def test_progress_bar_for_long_inputs_only(capsys: pytest.CaptureFixture[str]) -> None:
    texts = ["a b"] * 300
    make_pipeline("feature-extraction", TableRunner("base", 4), WordTokenizer(), batch_size=64)(texts)
    assert "feature-extraction" in capsys.readouterr().err  # tqdm, on standard error
    quiet = make_pipeline("feature-extraction", TableRunner("base", 4), WordTokenizer(), progress=False)
    quiet(texts)
    make_pipeline("feature-extraction", TableRunner("base", 4), WordTokenizer())(texts[:10])
    assert capsys.readouterr().err == ""
