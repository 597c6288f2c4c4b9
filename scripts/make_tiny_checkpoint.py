"""Write a small random RemBERT checkpoint in the canonical layout, with NumPy only.

    python scripts/make_tiny_checkpoint.py OUT_DIR [--task masked_lm] [--seed 0]

Used by ``nox -s demo``; handy for trying ``rembert inspect`` without downloading anything.
"""

from __future__ import annotations

import argparse

import numpy as np

from rembert_core import TASKS, RemBertConfig, build_schema, save_safetensors
from rembert_core.schema import ARCHITECTURES, Init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--task", default="masked_lm", choices=TASKS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = RemBertConfig(
        vocab_size=301,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=6,
        input_embedding_size=20,
        output_embedding_size=36,
        intermediate_size=64,
        max_position_embeddings=64,
        architectures=[ARCHITECTURES[args.task]],
    )
    rng = np.random.default_rng(args.seed)
    tensors = {}
    for name, spec in build_schema(config, args.task).items():
        if spec.init is Init.ONES:
            tensors[name] = np.ones(spec.shape, np.float32)
        elif spec.init is Init.ZEROS:
            tensors[name] = np.zeros(spec.shape, np.float32)
        else:
            tensors[name] = rng.normal(0.0, config.initializer_range, spec.shape).astype(np.float32)
    config.save_pretrained(args.out_dir)
    save_safetensors(tensors, args.out_dir)
    print(f"wrote a {ARCHITECTURES[args.task]} checkpoint to {args.out_dir}")


if __name__ == "__main__":
    main()
