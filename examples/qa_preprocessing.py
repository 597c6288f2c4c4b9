"""Extractive-QA preprocessing and post-processing with windows: long contexts, stride, both frameworks.

    python examples/qa_preprocessing.py
    python examples/qa_preprocessing.py --max-length 64 --stride 16 --model path/to/squad-finetuned-rembert

The standard recipe (transformers' ``run_qa.py``) with RemBertTokenizerFast:

1. preprocessing: encode (question, context) pairs with ``truncation="only_second"``, ``max_length``,
   ``stride``, ``return_overflowing_tokens=True`` and ``return_offsets_mapping=True``: a context longer than
   ``max_length`` becomes several overlapping windows, ``overflow_to_sample_mapping`` says which example each
   window comes from, and ``sequence_ids()`` which tokens are the context;
2. training labels: the answer's character span becomes start/end token positions in every window that
   holds it (position 0, the ``[CLS]`` token, in the others); the example checks that these positions map
   back to exactly the answer text through the offsets;
3. the QA head (``RemBertForQuestionAnswering`` in PyTorch, ``TFRemBertForQuestionAnswering`` in TensorFlow,
   the same weights through one checkpoint) gives start/end logits per window;
4. post-processing: per example, the best-scoring valid span over all its windows (inside the context,
   end >= start, at most ``--max-answer-tokens``), mapped back to characters of the context.

Without --model the model is tiny and randomly initialised (rembert_core.testing.tiny_config): the plumbing
runs and both frameworks agree, but the answers are arbitrary spans of the context. TensorFlow is optional:
without it the TensorFlow half is skipped with a note.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CORPUS, load_tokenizer

from rembert_core.testing import tiny_config

# Two examples whose contexts are longer than one window: lines of the corpus, the answer inside them.
QUESTIONS = ["How long was the narrator laid up?", "What did the narrator jump from?"]
ANSWERS = ["about a week", "the second story"]


def make_examples() -> list[dict[str, Any]]:
    """(question, context, answer text, answer start character) from the shipped corpus."""
    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = []
    for question, answer in zip(QUESTIONS, ANSWERS, strict=True):
        found = next(i for i, line in enumerate(lines) if answer in line)
        context = " ".join(lines[max(0, found - 3) : found + 3])  # several lines around the answer
        examples.append(
            {"question": question, "context": context, "answer": answer, "answer_start": context.index(answer)}
        )
    return examples


def preprocess(tokenizer: Any, examples: list[dict[str, Any]], *, max_length: int, stride: int) -> Any:
    """Windows of every (question, context) pair, with training labels and offsets limited to the context."""
    features = tokenizer(
        [e["question"] for e in examples],
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    starts, ends, offsets = [], [], []
    for row, example_index in enumerate(features["overflow_to_sample_mapping"]):
        example = examples[example_index]
        sequence_ids = features.sequence_ids(row)
        row_offsets = features["offset_mapping"][row]
        first = sequence_ids.index(1)  # the context's tokens in this window
        last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        answer_start = example["answer_start"]
        answer_end = answer_start + len(example["answer"])
        if row_offsets[first][0] > answer_start or row_offsets[last][1] < answer_end:
            starts.append(0)  # the answer is not (entirely) in this window: point at [CLS]
            ends.append(0)
        else:
            start = first
            while start <= last and row_offsets[start][1] <= answer_start:
                start += 1
            end = last
            while end >= first and row_offsets[end][0] >= answer_end:
                end -= 1
            starts.append(start)
            ends.append(end)
        # For post-processing: offsets of the context's tokens only.
        offsets.append([span if s == 1 else None for span, s in zip(row_offsets, sequence_ids, strict=True)])
    features["start_positions"] = starts
    features["end_positions"] = ends
    return features, offsets


def check_labels(features: Any, offsets: list[Any], examples: list[dict[str, Any]]) -> int:
    """The labelled start/end positions give back exactly the answer text (through the offsets)."""
    holding = 0
    for row, example_index in enumerate(features["overflow_to_sample_mapping"]):
        start, end = features["start_positions"][row], features["end_positions"][row]
        if start == 0:
            continue
        context = examples[example_index]["context"]
        text = context[offsets[row][start][0] : offsets[row][end][1]].strip()
        assert text == examples[example_index]["answer"], (text, examples[example_index]["answer"])
        holding += 1
    return holding


def postprocess(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: list[Any],
    sample_mapping: list[int],
    examples: list[dict[str, Any]],
    *,
    top_k: int,
    max_answer_tokens: int,
) -> list[dict[str, Any]]:
    """Per example, the best span over all its windows: (batch, seq) logits -> answer text in the context."""
    windows: dict[int, list[int]] = defaultdict(list)
    for row, example_index in enumerate(sample_mapping):
        windows[example_index].append(row)
    answers = []
    for example_index, example in enumerate(examples):
        best = {"answer": "", "score": float("-inf"), "start": 0, "end": 0, "window": -1}
        for row in windows[example_index]:
            row_offsets = offsets[row]
            for s in np.argsort(start_logits[row])[::-1][:top_k]:
                for e in np.argsort(end_logits[row])[::-1][:top_k]:
                    if row_offsets[s] is None or row_offsets[e] is None or not s <= e < s + max_answer_tokens:
                        continue
                    score = float(start_logits[row][s] + end_logits[row][e])
                    if score > best["score"]:
                        start_char, end_char = row_offsets[s][0], row_offsets[e][1]
                        text = example["context"][start_char:end_char]
                        best = {"answer": text.strip(), "score": score, "start": start_char, "end": end_char}
                        best["window"] = row
        answers.append(best)
    return answers


def run_torch(model_dir: Path, features: Any) -> tuple[np.ndarray, np.ndarray, float]:
    import torch

    from rembert_torch import RemBertForQuestionAnswering

    model = RemBertForQuestionAnswering.from_pretrained(model_dir).eval()
    inputs = {k: torch.tensor(features[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    labels = {k: torch.tensor(features[k]) for k in ("start_positions", "end_positions")}
    with torch.no_grad():
        out = model(**inputs, **labels)  # the training loss, as a trainer would compute it
    return out.start_logits.numpy(), out.end_logits.numpy(), float(out.loss)


def run_tf(model_dir: Path, features: Any) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        from rembert_tf import TFRemBertForQuestionAnswering
    except ImportError as exc:
        print(f"TensorFlow half skipped: {exc}")
        return None
    model = TFRemBertForQuestionAnswering.from_pretrained(model_dir)
    inputs = {k: np.asarray(features[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    out = model(inputs, training=False)
    return np.asarray(out.start_logits), np.asarray(out.end_logits)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory or Hub id (default: a tiny random model)")
    parser.add_argument("--max-length", type=int, default=48, help="tokens per window, special tokens included")
    parser.add_argument("--stride", type=int, default=12, help="tokens two consecutive windows share")
    parser.add_argument("--top-k", type=int, default=20, help="candidate start and end positions per window")
    parser.add_argument("--max-answer-tokens", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(args.model)
    examples = make_examples()

    features, offsets = preprocess(tokenizer, examples, max_length=args.max_length, stride=args.stride)
    mapping = list(features["overflow_to_sample_mapping"])
    counts = [mapping.count(i) for i in range(len(examples))]
    print(f"{len(examples)} examples -> {len(mapping)} windows of {args.max_length} tokens {counts}")
    print(f"training labels hold the answer in {check_labels(features, offsets, examples)} windows and map back to it")

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model_dir = Path(args.model)
        else:
            import torch

            from rembert_torch import RemBertForQuestionAnswering

            print("a tiny randomly initialised model: the spans are valid but arbitrary (pass --model for answers)")
            torch.manual_seed(args.seed)
            config = tiny_config(
                vocab_size=len(tokenizer),
                pad_token_id=tokenizer.pad_token_id,
                num_labels=2,
                max_position_embeddings=512,
            )
            model_dir = Path(tmp) / "tiny-qa"
            RemBertForQuestionAnswering(config).save_pretrained(model_dir)  # one checkpoint for both frameworks
        start, end, loss = run_torch(model_dir, features)
        print(f"PyTorch: start/end logits {tuple(start.shape)}, training loss {loss:.3f}")
        answers = postprocess(
            start, end, offsets, mapping, examples, top_k=args.top_k, max_answer_tokens=args.max_answer_tokens
        )
        tf_logits = run_tf(model_dir, features)
    for example, found in zip(examples, answers, strict=True):
        print(f"question: {example['question']}")
        print(
            f"answer:   {found['answer']!r} (characters {found['start']}-{found['end']} of the context, "
            f"window {found['window']}, score {found['score']:.3f}; expected {example['answer']!r})"
        )
    result: dict[str, Any] = {"answers": answers, "windows": len(mapping)}
    if tf_logits is not None:
        tf_answers = postprocess(
            *tf_logits, offsets, mapping, examples, top_k=args.top_k, max_answer_tokens=args.max_answer_tokens
        )
        difference = float(max(np.abs(tf_logits[0] - start).max(), np.abs(tf_logits[1] - end).max()))
        same = [a["answer"] for a in tf_answers] == [a["answer"] for a in answers]
        print(f"TensorFlow: largest logit difference {difference:.2e}; same answers as PyTorch: {same}")
        result["tf_same_answers"] = same
    return result


if __name__ == "__main__":
    main()
