"""Token classification with word alignment: labels per word, predictions per word, through word_ids().

    python examples/token_classification.py
    python examples/token_classification.py --steps 300 --hidden-size 128

SentencePiece splits words into several pieces, but labels belong to words. This example tags the words of
generated sentences as POS (a positive word), NEG (a negative word) or O, and uses the fast tokenizer's
``word_ids()`` both ways, as with transformers:

* training: each word's label goes to its first piece; the other pieces and the special tokens get -100,
  which the loss ignores;
* inference: each word's prediction is read from its first piece, and mapped back onto the original words.

A tiny RemBertForTokenClassification is trained for --steps steps (or --model fine-tunes a checkpoint), then
evaluated per word on held-out sentences.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import NEGATIVE, POSITIVE, add_model_flags, load_tokenizer, sentiment_dataset, tiny_config

from rembert_torch import RemBertForTokenClassification

LABELS = ["O", "POS", "NEG"]


def word_labels(words: list[str]) -> list[int]:
    """The gold label id of each word (punctuation stripped)."""
    ids = []
    for word in words:
        bare = word.strip(".,")
        ids.append(1 if bare in POSITIVE else 2 if bare in NEGATIVE else 0)
    return ids


def align(word_ids: list[int | None], labels: list[int]) -> list[int]:
    """Per-token labels: the word's label on its first piece, -100 on later pieces and special tokens."""
    aligned, previous = [], None
    for word in word_ids:
        aligned.append(-100 if word is None or word == previous else labels[word])
        previous = word
    return aligned


def encode(tokenizer, sentences: list[list[str]]):  # type: ignore[no-untyped-def]
    """Tokenize pre-split words (is_split_into_words) and align the labels with word_ids()."""
    batch = tokenizer(sentences, is_split_into_words=True, padding=True, return_tensors="pt")
    labels = [align(batch.word_ids(i), word_labels(words)) for i, words in enumerate(sentences)]
    return batch, torch.tensor(labels)


def predict_words(model, tokenizer, sentences: list[list[str]]) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The predicted label of every word, read from the word's first piece."""
    batch = tokenizer(sentences, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1)  # (batch, seq)
    results = []
    for i, words in enumerate(sentences):
        per_word: dict[int, str] = {}
        for position, word in enumerate(batch.word_ids(i)):
            if word is not None and word not in per_word:
                per_word[word] = LABELS[int(predicted[i, position])]
        results.append([per_word[w] for w in range(len(words))])
    return results


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--train-size", type=int, default=64)
    parser.add_argument("--eval-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    id2label = dict(enumerate(LABELS))
    if args.model:
        model = RemBertForTokenClassification.from_pretrained(args.model, num_labels=3, id2label=id2label)
    else:
        model = RemBertForTokenClassification(tiny_config(tokenizer, args, num_labels=3, id2label=id2label))

    train = [text.split() for text in sentiment_dataset(args.train_size, args.seed)[0]]
    held_out = [text.split() for text in sentiment_dataset(args.eval_size, args.seed + 1)[0]]
    batch, labels = encode(tokenizer, train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model.train()
    bar = tqdm(range(args.steps), desc="training", unit="step")
    for _ in bar:
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()

    predictions = predict_words(model, tokenizer, held_out)
    gold = [[LABELS[i] for i in word_labels(words)] for words in held_out]
    correct = sum(p == g for ps, gs in zip(predictions, gold, strict=True) for p, g in zip(ps, gs, strict=True))
    total = sum(len(words) for words in held_out)
    for words, tags in list(zip(held_out, predictions, strict=True))[:3]:
        print(" ".join(f"{w}/{t}" for w, t in zip(words, tags, strict=True)))
    accuracy = correct / total
    print(f"word accuracy on {len(held_out)} held-out sentences: {accuracy:.3f} ({correct}/{total} words)")
    return accuracy


if __name__ == "__main__":
    main()
