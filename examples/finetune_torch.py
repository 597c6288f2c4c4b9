"""Fine-tune RemBertForSequenceClassification in PyTorch on a generated sentiment dataset.

    python examples/finetune_torch.py --output-dir /tmp/rembert-sentiment

A tiny model by default (a few seconds on a CPU); scale with --train-size, --epochs, --hidden-size,
--layers, or start from a checkpoint with --model google/rembert. Prints the evaluation accuracy, writes
the fine-tuned model and tokenizer with save_pretrained, and the evaluation logits to
OUTPUT_DIR/predictions.json (examples/finetune_tf.py --from-torch OUTPUT_DIR reproduces them in TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_model_flags, load_tokenizer, sentiment_dataset, tiny_config

from rembert_torch import RemBertForSequenceClassification


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--output-dir", required=True, help="where save_pretrained writes the model")
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--eval-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    if args.model:
        model = RemBertForSequenceClassification.from_pretrained(args.model, num_labels=2)
    else:
        model = RemBertForSequenceClassification(tiny_config(tokenizer, args, num_labels=2))
    train_texts, train_labels = sentiment_dataset(args.train_size, args.seed)
    eval_texts, eval_labels = sentiment_dataset(args.eval_size, args.seed + 1)

    # fused=True: one kernel over all parameters instead of a loop of elementwise ops (docs/finetuning.md)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, fused=True)
    steps = range(0, len(train_texts), args.batch_size)
    for epoch in range(args.epochs):
        model.train()
        bar = tqdm(steps, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch")
        for start in bar:
            batch = tokenizer(train_texts[start : start + args.batch_size], padding=True, return_tensors="pt")
            labels = torch.tensor(train_labels[start : start + args.batch_size])
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            bar.set_postfix(loss=f"{loss.item():.3f}")

    model.eval()
    batch = tokenizer(eval_texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits  # (eval_size, 2)
    accuracy = float((logits.argmax(-1) == torch.tensor(eval_labels)).float().mean())
    print(f"evaluation accuracy: {accuracy:.3f} on {len(eval_texts)} sentences")

    out = Path(args.output_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    predictions = {"texts": eval_texts, "labels": eval_labels, "logits": logits.tolist(), "accuracy": accuracy}
    (out / "predictions.json").write_text(json.dumps(predictions), encoding="utf-8")
    print(f"saved the model, the tokenizer and predictions.json to {out}")
    return accuracy


if __name__ == "__main__":
    main()
