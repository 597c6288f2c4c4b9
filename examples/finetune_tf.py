"""Fine-tune TFRemBertForSequenceClassification with Keras' model.fit, or reproduce a PyTorch fine-tune.

    python examples/finetune_tf.py --output-dir /tmp/rembert-sentiment-tf
    python examples/finetune_tf.py --from-torch /tmp/rembert-sentiment      # after examples/finetune_torch.py

The first command trains a tiny model on the generated sentiment dataset with ``model.fit`` (a tqdm progress
bar per epoch), evaluates it and writes it with save_pretrained. The second loads the checkpoint that
examples/finetune_torch.py wrote (PyTorch-trained, safetensors) into TensorFlow and checks that it gives the
same evaluation logits, within the float32 cross-framework bound of rembert_core.tolerances.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_model_flags, load_tokenizer, sentiment_dataset, tiny_config

from rembert_core.tolerances import get_tolerance
from rembert_tf import TFRemBertForSequenceClassification


class TqdmCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """A tqdm progress bar per epoch, showing the running loss."""

    def __init__(self, epochs: int, steps: int) -> None:
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.bar: Any = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.bar.update(1)
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.bar.close()


def reproduce(torch_dir: Path) -> float:
    """Load the PyTorch-trained checkpoint in TensorFlow; its logits must match the saved PyTorch ones."""
    saved = json.loads((torch_dir / "predictions.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(str(torch_dir))
    model = TFRemBertForSequenceClassification.from_pretrained(torch_dir)
    features = dict(tokenizer(saved["texts"], padding=True, return_tensors="np"))
    logits = model(features).logits.numpy()
    expected = np.asarray(saved["logits"], dtype=np.float32)
    bound = get_tolerance("float32", "activations")
    difference = float(np.abs(logits - expected).max())
    print(f"TensorFlow vs PyTorch logits on {len(expected)} sentences: max difference {difference:.2e}")
    if not np.allclose(logits, expected, atol=bound.atol, rtol=bound.rtol):
        raise SystemExit(f"the TensorFlow predictions differ from PyTorch's beyond atol={bound.atol}")
    same = bool((logits.argmax(-1) == expected.argmax(-1)).all())
    if not same:
        raise SystemExit("the TensorFlow model predicts other classes than the PyTorch model")
    accuracy = float((logits.argmax(-1) == np.asarray(saved["labels"])).mean())
    print(f"same predictions as PyTorch; evaluation accuracy {accuracy:.3f} (PyTorch: {saved['accuracy']:.3f})")
    return difference


def train(args: argparse.Namespace) -> float:
    keras.utils.set_random_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    if args.model:
        model = TFRemBertForSequenceClassification.from_pretrained(args.model, num_labels=2)
    else:
        model = TFRemBertForSequenceClassification(tiny_config(tokenizer, args, num_labels=2))
    train_texts, train_labels = sentiment_dataset(args.train_size, args.seed)
    eval_texts, eval_labels = sentiment_dataset(args.eval_size, args.seed + 1)
    features = dict(tokenizer(train_texts, padding=True, return_tensors="np"))
    model.compile(optimizer=keras.optimizers.Adam(args.lr))  # no loss: the model's own (labels in the inputs)
    steps = -(-len(train_texts) // args.batch_size)
    model.fit(
        {**features, "labels": np.asarray(train_labels)},
        epochs=args.epochs,
        batch_size=args.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[TqdmCallback(args.epochs, steps)],
    )
    logits = model(dict(tokenizer(eval_texts, padding=True, return_tensors="np"))).logits.numpy()
    accuracy = float((logits.argmax(-1) == np.asarray(eval_labels)).mean())
    print(f"evaluation accuracy: {accuracy:.3f} on {len(eval_texts)} sentences")
    out = Path(args.output_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"saved the model and the tokenizer to {out}")
    return accuracy


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--from-torch", type=Path, help="a directory written by examples/finetune_torch.py")
    parser.add_argument("--output-dir", help="where save_pretrained writes the model (training mode)")
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--eval-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    if args.from_torch is not None:
        return reproduce(args.from_torch)
    if not args.output_dir:
        parser.error("pass --output-dir to train, or --from-torch DIR to reproduce a PyTorch fine-tune")
    return train(args)


if __name__ == "__main__":
    main()
