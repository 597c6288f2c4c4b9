"""Sequence-classification fine-tuning of RemBERT (Keras 3) with model.fit under tf.distribute.

One process (default strategy, or ``--strategy mirrored`` over the GPUs, or over
``--cpu-replicas N`` logical CPU devices)::

    python examples/distributed/train_tf.py --output-dir runs/tf-final

Several workers (one process each, on one or several machines): set ``TF_CONFIG`` in each
worker's environment and start the same command in all of them; ``--strategy auto`` then
picks ``MultiWorkerMirroredStrategy``. Worker 0 (or the ``chief`` task) writes the checkpoint::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        python examples/distributed/train_tf.py --output-dir runs/tf-final

The default model is a tiny random RemBERT so a run takes seconds on a CPU; ``--model PATH``
fine-tunes a real checkpoint (any format rembert-tf reads). The data are synthetic: rows of
token ids labelled 1 when most tokens lie in the upper half of the vocabulary. Every worker
builds the same global batches; :func:`rembert_tf.distributed.distribute_global_batches` gives
each replica its slice, so N replicas see the batches of a one-replica run.

Each epoch is one optimizer step (``steps_per_epoch=1``), so Keras reports every step's loss;
with ``--log-json`` the chief writes them as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from rembert_core import RemBertConfig
from rembert_tf import TFRemBertForSequenceClassification
from rembert_tf.distributed import (
    distribute_global_batches,
    is_chief,
    limit_threads,
    make_strategy,
    save_pretrained_on_chief,
)

#: The tiny default model: RemBERT's structure (decoupled input/output embeddings) at toy widths.
TINY = dict(
    vocab_size=256,
    hidden_size=64,
    num_attention_heads=4,
    num_hidden_layers=2,
    input_embedding_size=32,
    output_embedding_size=48,
    intermediate_size=128,
    max_position_embeddings=64,
    type_vocab_size=2,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    num_labels=2,
)
FIRST_WORD_ID = 5  # ids below are special


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strategy", choices=("auto", "default", "mirrored", "multi_worker"), default="auto")
    p.add_argument("--cpu-replicas", type=int, default=0, help="mirrored on CPU: split the CPU into N devices")
    p.add_argument("--communication", choices=("auto", "ring", "nccl"), default="auto", help="multi_worker")
    p.add_argument("--model", help="fine-tune this checkpoint (directory, file or Hub id)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--global-batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dropout", type=float, help="override every dropout probability of the config")
    p.add_argument("--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads per process")
    p.add_argument("--output-dir", type=Path, help="the chief writes the final model here (canonical safetensors)")
    p.add_argument("--log-json", type=Path, help="the chief appends {'step', 'loss'} lines")
    args = p.parse_args(argv)
    if args.steps < 1 or args.global_batch_size < 1 or args.seq_len < 2:
        p.error("--steps, --global-batch-size must be positive and --seq-len at least 2")
    return args


def synthetic_data(args: argparse.Namespace, vocab_size: int) -> dict[str, np.ndarray]:
    """All global batches: the same arrays on every worker."""
    rng = np.random.default_rng(args.seed)
    rows = args.steps * args.global_batch_size
    ids = rng.integers(FIRST_WORD_ID, vocab_size, size=(rows, args.seq_len), dtype=np.int32)
    labels = ((ids >= (vocab_size + FIRST_WORD_ID) // 2).mean(axis=1) > 0.5).astype(np.int32)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": labels}


class StepLog(keras.callbacks.Callback):
    """Collects each epoch's (= step's) loss and appends it to a JSON-lines file on the chief."""

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        self.path = path
        self.losses: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        loss = float((logs or {})["loss"])
        self.losses.append(loss)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": epoch + 1, "loss": loss}) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads, args.threads)
    if args.cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_replicas)
    strategy = make_strategy(args.strategy, communication=args.communication)
    chief = is_chief(strategy)
    keras.utils.set_random_seed(args.seed)  # the same seed everywhere: weights missing from a checkpoint match
    overrides: dict[str, Any] = {}
    if args.dropout is not None:
        overrides = dict.fromkeys(
            ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"), args.dropout
        )
    with strategy.scope():  # variables (weights and optimizer slots) must be created in the scope
        if args.model:
            model = TFRemBertForSequenceClassification.from_pretrained(args.model, **overrides)
        else:
            model = TFRemBertForSequenceClassification(RemBertConfig(**{**TINY, **overrides}))
        model.compile(optimizer=keras.optimizers.AdamW(learning_rate=args.lr, weight_decay=0.01))
    features = synthetic_data(args, model.config.vocab_size)
    dataset = distribute_global_batches(strategy, features, args.global_batch_size, repeat=True)
    log = StepLog(args.log_json if chief else None)
    began = time.perf_counter()
    verbose = 2 if chief else 0
    model.fit(dataset, epochs=args.steps, steps_per_epoch=1, callbacks=[log], verbose=verbose, shuffle=False)
    if args.output_dir is not None:
        save_pretrained_on_chief(model, args.output_dir, strategy)
    if chief:
        kind = type(strategy).__name__
        elapsed = time.perf_counter() - began
        print(f"done: {args.steps} steps in {elapsed:.1f}s ({kind}, {strategy.num_replicas_in_sync} replica(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
