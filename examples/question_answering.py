"""Extractive question answering: from start/end logits to an answer span in the original context text.

    python examples/question_answering.py
    python examples/question_answering.py --model path/to/squad-finetuned-rembert \
        --question "Who wrote Botchan?" --context "Botchan is a novel by Natsume Soseki."

The decoding is what transformers' question-answering pipeline does: encode (question, context) as a pair
with ``return_offsets_mapping``; take the ``--top-k`` best start and end positions, keep the pairs that lie
inside the context (``sequence_ids() == 1``), end >= start and no longer than ``--max-answer-tokens``; score
each span by start logit + end logit; map the best span back to characters of the context with the offsets.

Without --model the example uses a tiny randomly initialised RemBertForQuestionAnswering: the decoding runs
and returns a valid span of the context, but which one is arbitrary. A checkpoint fine-tuned for
extractive QA gives real answers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_model_flags, load_tokenizer, tiny_config

from rembert_torch import RemBertForQuestionAnswering

QUESTION = "Where was the narrator laid up for a week?"
CONTEXT = (
    "During my grammar school days, I was once laid up for about a week by jumping from the second story "
    "of the school building."
)


def best_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    sequence_ids: list[int | None],
    *,
    top_k: int,
    max_answer_tokens: int,
) -> list[tuple[float, int, int]]:
    """(score, start, end) token spans inside the context, best first."""
    in_context = [s == 1 for s in sequence_ids]
    starts = start_logits.topk(min(top_k, len(start_logits))).indices.tolist()
    ends = end_logits.topk(min(top_k, len(end_logits))).indices.tolist()
    spans = []
    for s in starts:
        for e in ends:
            if in_context[s] and in_context[e] and s <= e < s + max_answer_tokens:
                spans.append((float(start_logits[s] + end_logits[e]), s, e))
    return sorted(spans, reverse=True)


def answer(model, tokenizer, question: str, context: str, *, top_k: int, max_answer_tokens: int) -> dict:  # type: ignore[no-untyped-def]
    encoding = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoding.pop("offset_mapping")[0].tolist()  # (seq, 2) character spans
    with torch.no_grad():
        out = model(**encoding)
    spans = best_spans(
        out.start_logits[0],
        out.end_logits[0],
        encoding.sequence_ids(0),
        top_k=top_k,
        max_answer_tokens=max_answer_tokens,
    )
    if not spans:
        return {"answer": "", "score": float("-inf"), "start": 0, "end": 0}
    score, s, e = spans[0]
    start_char, end_char = offsets[s][0], offsets[e][1]
    while start_char < end_char and context[start_char].isspace():  # a piece's offsets include its "▁" space
        start_char += 1
    return {"answer": context[start_char:end_char], "score": score, "start": start_char, "end": end_char}


def main(argv: list[str] | None = None) -> dict:  # type: ignore[type-arg]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--context", default=CONTEXT)
    parser.add_argument("--top-k", type=int, default=20, help="candidate start and end positions")
    parser.add_argument("--max-answer-tokens", type=int, default=15)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    if args.model:
        model = RemBertForQuestionAnswering.from_pretrained(args.model)
    else:
        print("a tiny randomly initialised model: the span is valid but arbitrary (pass --model for answers)")
        model = RemBertForQuestionAnswering(tiny_config(tokenizer, args)).eval()
    result = answer(
        model, tokenizer, args.question, args.context, top_k=args.top_k, max_answer_tokens=args.max_answer_tokens
    )
    print(f"question: {args.question}\ncontext:  {args.context}")
    print(f"answer:   {result['answer']!r} (characters {result['start']}-{result['end']}, score {result['score']:.3f})")
    return result


if __name__ == "__main__":
    main()
