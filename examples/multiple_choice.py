"""Multiple choice: score each (prompt, choice) pair and pick the best, with RemBertForMultipleChoice.

    python examples/multiple_choice.py
    python examples/multiple_choice.py --steps 100 --hidden-size 128

Inputs have shape (batch, num_choices, seq): every prompt is paired with each of its choices
(``[CLS] prompt [SEP] choice [SEP]``), padded to one length, and the model gives one logit per choice; the
loss is the cross-entropy over the choices. The example generates prompts ("the teacher was") with one
fitting ending (a word of the prompt's sentiment) among --choices endings, trains a tiny model for --steps
steps (or fine-tunes --model) and reports the accuracy on held-out questions.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import NEGATIVE, POSITIVE, add_model_flags, load_tokenizer, tiny_config

from rembert_torch import RemBertForMultipleChoice

SUBJECTS = ["the teacher", "the boy", "the day", "the town", "the school"]


def make_questions(count: int, choices: int, seed: int) -> list[tuple[str, list[str], int]]:
    """(prompt, endings, index of the right ending): a happy prompt wants a positive word, a sad one a negative."""
    rng = random.Random(seed)
    questions = []
    for _ in range(count):
        positive = rng.randrange(2) == 1
        mood = "happily" if positive else "sadly"
        right = rng.choice(POSITIVE if positive else NEGATIVE)
        wrong = rng.sample(NEGATIVE if positive else POSITIVE, choices - 1)
        endings = [*wrong, right]
        rng.shuffle(endings)
        questions.append((f"{rng.choice(SUBJECTS)} {mood} was", endings, endings.index(right)))
    return questions


def encode(tokenizer, questions: list[tuple[str, list[str], int]]) -> tuple[dict, torch.Tensor]:  # type: ignore[type-arg]
    """Flatten to (batch * choices) pairs, tokenize together, and reshape to (batch, choices, seq)."""
    choices = len(questions[0][1])
    prompts = [prompt for prompt, endings, _ in questions for _ in endings]
    endings = [ending for _, options, _ in questions for ending in options]
    flat = tokenizer(prompts, endings, padding=True, return_tensors="pt")
    batch = {key: value.view(len(questions), choices, -1) for key, value in flat.items()}  # (batch, choices, seq)
    return batch, torch.tensor([answer for _, _, answer in questions])


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--choices", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=64)
    parser.add_argument("--eval-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    if args.model:
        model = RemBertForMultipleChoice.from_pretrained(args.model)
    else:
        model = RemBertForMultipleChoice(tiny_config(tokenizer, args))

    batch, labels = encode(tokenizer, make_questions(args.train_size, args.choices, args.seed))
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

    held_out = make_questions(args.eval_size, args.choices, args.seed + 1)
    batch, labels = encode(tokenizer, held_out)
    with torch.no_grad():
        logits = model(**batch).logits  # (batch, choices)
    picked = logits.argmax(-1)
    for (prompt, endings, _), choice in list(zip(held_out, picked.tolist(), strict=True))[:3]:
        print(f"{prompt} ... {endings} -> {endings[choice]}")
    accuracy = float((picked == labels).float().mean())
    print(f"accuracy on {len(held_out)} held-out questions: {accuracy:.3f} (chance: {1 / args.choices:.2f})")
    return accuracy


if __name__ == "__main__":
    main()
