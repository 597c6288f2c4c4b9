"""What the examples share: the tokenizer fixture, a tiny config, and a generated sentiment dataset.

Framework-free (no torch, no TensorFlow), so the PyTorch and the TensorFlow examples can both import it.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from rembert_core import RemBertConfig
from rembert_tokenizers import RemBertTokenizerFast

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "sentencepiece"
TOKENIZER_MODEL = FIXTURES / "test_model.model"  # SentencePiece model trained on botchan.txt (Apache-2.0)
CORPUS = FIXTURES / "botchan.txt"

POSITIVE = ["good", "happy", "kind", "bright", "pleasant", "fine", "glad", "merry", "warm", "honest"]
NEGATIVE = ["bad", "sad", "cruel", "dark", "angry", "poor", "tired", "cold", "sick", "foolish"]
FILLER = ["the", "teacher", "school", "was", "very", "a", "day", "in", "town", "and", "boy", "of", "it", "he"]


def load_tokenizer(model: str | None = None) -> RemBertTokenizerFast:
    """The checkpoint's tokenizer when ``model`` is given, else the repository's SentencePiece fixture."""
    if model is not None:
        return RemBertTokenizerFast.from_pretrained(model)
    return RemBertTokenizerFast(str(TOKENIZER_MODEL))


def tiny_config(tokenizer: RemBertTokenizerFast, args: argparse.Namespace, **fields: object) -> RemBertConfig:
    """A small RemBERT (decoupled embeddings included) sized by the common command-line flags."""
    return RemBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        input_embedding_size=max(8, args.hidden_size // 2),
        output_embedding_size=max(8, args.hidden_size // 2),
        intermediate_size=4 * args.hidden_size,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        **fields,  # type: ignore[arg-type]
    )


def add_model_flags(parser: argparse.ArgumentParser, *, hidden_size: int = 64, layers: int = 2) -> None:
    """--model (a checkpoint directory or Hub id) or the size of the tiny model built instead."""
    parser.add_argument("--model", help="checkpoint directory or Hub id (default: a tiny model built here)")
    parser.add_argument("--hidden-size", type=int, default=hidden_size, help="tiny model width")
    parser.add_argument("--layers", type=int, default=layers, help="tiny model depth")
    parser.add_argument("--heads", type=int, default=4, help="tiny model attention heads")
    parser.add_argument("--seed", type=int, default=0)


def sentiment_dataset(size: int, seed: int) -> tuple[list[str], list[int]]:
    """``size`` short sentences labelled 1 (positive) or 0 (negative) by the sentiment words they contain."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(size):
        label = rng.randrange(2)
        words = rng.sample(FILLER, rng.randint(3, 6)) + rng.sample(POSITIVE if label else NEGATIVE, 2)
        rng.shuffle(words)
        texts.append(" ".join(words) + ".")
        labels.append(label)
    return texts, labels


def corpus_lines(count: int, *, min_words: int = 6, max_words: int = 20) -> list[str]:
    """The first ``count`` lines of moderate length of the novel in the shipped corpus (botchan.txt)."""
    lines = []
    text = CORPUS.read_text(encoding="utf-8")
    for line in text[text.index("CHAPTER I\n") :].splitlines():
        words = line.split()
        if min_words <= len(words) <= max_words:
            lines.append(" ".join(words))
            if len(lines) == count:
                break
    return lines
