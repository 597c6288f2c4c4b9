"""Fill in [MASK] tokens with RemBertForMaskedLM.

    python examples/masked_lm.py
    python examples/masked_lm.py --model path/to/checkpoint --text "The capital of France is [MASK]."

With --model, a masked-LM checkpoint (one that keeps RemBERT's output embedding, ``cls.predictions``) fills
the masks of --text. Without it, the example first trains a tiny masked LM for --steps steps on --lines lines
of the shipped corpus (botchan.txt), so that the fill-in has something to recall, then masks one word of
each of those lines and prints the top --top-k candidates for it. It reports how many masked words were
recovered.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_model_flags, corpus_lines, load_tokenizer, tiny_config

from rembert_torch import RemBertForMaskedLM


def fill(model: RemBertForMaskedLM, tokenizer, texts: list[str], top_k: int) -> list[list[list[str]]]:  # type: ignore[no-untyped-def]
    """For each text, for each [MASK] in it, the ``top_k`` most likely tokens."""
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits  # (batch, seq, vocab)
    results = []
    for row, ids in enumerate(batch["input_ids"]):
        positions = (ids == tokenizer.mask_token_id).nonzero().flatten().tolist()
        top = [logits[row, p].topk(top_k).indices.tolist() for p in positions]
        results.append([tokenizer.convert_ids_to_tokens(ids) for ids in top])
    return results


def train_tiny(tokenizer, lines: list[str], args: argparse.Namespace) -> RemBertForMaskedLM:  # type: ignore[no-untyped-def]
    """A tiny masked LM trained on ``lines`` with BERT's 15 % masking."""
    model = RemBertForMaskedLM(tiny_config(tokenizer, args))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    batch = tokenizer(lines, padding=True, return_tensors="pt")
    special = torch.tensor(
        [tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True) for ids in batch["input_ids"].tolist()]
    ).bool() | (batch["attention_mask"] == 0)
    model.train()
    bar = tqdm(range(args.steps), desc="training a tiny masked LM", unit="step")
    for _ in bar:
        chosen = (torch.rand(batch["input_ids"].shape) < 0.15) & ~special
        inputs = batch["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
        labels = batch["input_ids"].masked_fill(~chosen, -100)
        loss = model(inputs, attention_mask=batch["attention_mask"], labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--text", action="append", help="text with [MASK] tokens (repeatable; with --model)")
    parser.add_argument("--lines", type=int, default=4, help="corpus lines to train on (tiny model)")
    parser.add_argument("--steps", type=int, default=120, help="training steps (tiny model)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)

    if args.model:
        model = RemBertForMaskedLM.from_pretrained(args.model)
        texts = args.text or [f"Paris is the capital of {tokenizer.mask_token}."]
        for text, masks in zip(texts, fill(model, tokenizer, texts, args.top_k), strict=True):
            print(text, "->", masks)
        return 0

    lines = corpus_lines(args.lines)
    model = train_tiny(tokenizer, lines, args)
    rng = random.Random(args.seed)
    texts, answers = [], []
    for line in lines:
        words = line.split()
        # Hide a word that is one SentencePiece piece (longer words would need one [MASK] per piece).
        single = [i for i, word in enumerate(words) if len(tokenizer.tokenize(word)) == 1] or [0]
        i = rng.choice(single)
        pieces = tokenizer.tokenize(words[i])
        texts.append(" ".join([*words[:i], tokenizer.mask_token * len(pieces), *words[i + 1 :]]))
        answers.append(pieces)
    recovered = 0
    for text, pieces, masks in zip(texts, answers, fill(model, tokenizer, texts, args.top_k), strict=True):
        best = [candidates[0] for candidates in masks]
        recovered += best == pieces
        print(f"{text}\n  expected {pieces}, top-{args.top_k} per mask: {masks}")
    print(f"recovered {recovered} of {len(texts)} masked words")
    return recovered


if __name__ == "__main__":
    main()
