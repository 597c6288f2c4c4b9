"""A small side-by-side measurement that writes docs/_data/bench.json in the bench schema.

It stands in until ``nox -s bench`` writes the project's real benchmark table here: forward passes of
``rembert_torch.RemBertModel`` and ``transformers.RemBertModel`` (4.57) with the same weights, in one
process, alternating, median of ``--repeats`` runs. Needs rembert-torch and transformers installed.

    python docs/_data/bench_smoke.py --out docs/_data/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import transformers

from rembert_core import RemBertConfig
from rembert_torch import RemBertModel

SHAPES = ((1, 32), (4, 128))  # (batch, seq)


def median_ms(ours, reference, repeats: int) -> tuple[float, float]:
    """Median milliseconds of ``ours()`` and ``reference()``, alternating them so load affects both alike."""
    ours()  # warm-up
    reference()
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    for _ in range(repeats):
        for name, fn in (("ours", ours), ("reference", reference)):
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return statistics.median(times["ours"]), statistics.median(times["reference"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("bench.json")))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = RemBertConfig(
        vocab_size=1000,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        input_embedding_size=64,
        output_embedding_size=128,
        intermediate_size=1024,
    )
    ours = RemBertModel(config).eval()
    reference = transformers.RemBertModel(transformers.RemBertConfig(**config.to_dict())).eval()
    reference.load_state_dict(ours.state_dict())
    results = []
    for batch, seq in SHAPES:
        ids = torch.randint(5, config.vocab_size, (batch, seq))
        with torch.inference_mode():
            ours_ms, ref_ms = median_ms(lambda ids=ids: ours(ids), lambda ids=ids: reference(ids), args.repeats)
        results.append(
            {
                "name": "forward, 4-layer hidden-256 model",
                "framework": "torch",
                "dtype": "float32",
                "shape": f"{batch}x{seq}",
                "ours_ms": round(ours_ms, 3),
                "reference_ms": round(ref_ms, 3),
                "speedup": round(ref_ms / ours_ms, 3),
                "target": None,
                "met": None,
            }
        )
    payload = {
        "command": "python docs/_data/bench_smoke.py (stand-in until nox -s bench writes this file)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
        "date": date.today().isoformat(),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
