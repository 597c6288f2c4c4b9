"""Text-classification pipeline throughput: ours (rembert_torch.pipeline) vs transformers 4.57's pipeline.

Run from the repository root, with rembert-torch, rembert-tokenizers and transformers installed (the
tests-cross environment has them)::

    python benchmarks/bench_pipelines.py [--lines 3000] [--batch-sizes 1,32] [--rounds 5] [--json out.json]

One seeded sequence-classification checkpoint (RemBERT's layout at small widths: hidden 256, 4 layers,
embeddings 128/256, the English fixture tokenizer's vocabulary) is written by transformers with its fast
tokenizer; both pipelines load that directory. The inputs are ``--lines`` non-empty lines of the two
fixture corpora (botchan.txt and wagahaiwa_nekodearu.txt, interleaved, so lengths vary), classified in
their file order at each batch size. Each round runs ours and the reference once each, alternating which
goes first; the figure is the median over ``--rounds`` rounds after one warm-up round, so machine load
hits both alike. Ours sorts the texts of each window by length before batching (less padding);
transformers' pipeline pads its batches in input order. Labels are also compared (they must agree).

It is a benchmark, not a test: numbers depend on the machine and its load; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "sentencepiece"


def corpus_lines(count: int) -> list[str]:
    """``count`` non-empty lines, alternating between the English and the Japanese corpus."""
    corpora = [
        [
            line.strip()
            for line in (FIXTURES / name).read_text(encoding="utf-8").lstrip("\ufeff").split("\n")
            if line.strip()
        ]
        for name in ("botchan.txt", "wagahaiwa_nekodearu.txt")
    ]
    lines: list[str] = []
    index = 0
    while len(lines) < count:
        for corpus in corpora:
            if index < len(corpus) and len(lines) < count:
                lines.append(corpus[index])
        index += 1
        if index > max(len(c) for c in corpora):
            break
    return lines


def write_checkpoint(folder: Path) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    tokenizer = transformers.RemBertTokenizerFast(vocab_file=str(FIXTURES / "test_model.model"))
    config = transformers.RemBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        input_embedding_size=128,
        output_embedding_size=256,
        intermediate_size=1024,
        max_position_embeddings=512,
        id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
    )
    torch.manual_seed(0)
    transformers.RemBertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def run(lines: list[str], batch_sizes: list[int], rounds: int) -> dict[str, Any]:
    import torch
    import transformers

    from rembert_torch import pipeline

    results: dict[str, Any] = {
        "lines": len(lines),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_checkpoint(folder)
        for batch_size in batch_sizes:
            ours = pipeline("text-classification", model=str(folder), batch_size=batch_size, progress=False)
            reference = transformers.pipeline(
                "text-classification", model=str(folder), framework="pt", batch_size=batch_size
            )
            candidates = {"ours": ours, "transformers": reference}
            times: dict[str, list[float]] = {name: [] for name in candidates}
            outputs: dict[str, Any] = {}
            for round_index in range(rounds + 1):  # round 0 warms up
                order = list(candidates) if round_index % 2 == 0 else list(reversed(candidates))
                for name in order:
                    start = time.perf_counter()
                    outputs[name] = candidates[name](lines)
                    elapsed = time.perf_counter() - start
                    if round_index:
                        times[name].append(elapsed)
            agree = sum(a["label"] == b["label"] for a, b in zip(outputs["ours"], outputs["transformers"], strict=True))
            medians = {name: statistics.median(t) for name, t in times.items()}
            row = {
                "batch_size": batch_size,
                "ours_s": medians["ours"],
                "transformers_s": medians["transformers"],
                "ours_lines_per_s": len(lines) / medians["ours"],
                "transformers_lines_per_s": len(lines) / medians["transformers"],
                "ratio": medians["transformers"] / medians["ours"],
                "labels_agree": f"{agree}/{len(lines)}",
                "times": times,
            }
            results["rows"].append(row)
            print(
                f"batch {batch_size:>3}: ours {row['ours_lines_per_s']:8.1f} lines/s, transformers "
                f"{row['transformers_lines_per_s']:8.1f} lines/s, ours/transformers throughput "
                f"{row['ratio']:.2f}x (labels agree {row['labels_agree']})",
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=3000, help="fixture lines to classify (default 3000)")
    parser.add_argument("--batch-sizes", default="1,32", help="comma-separated batch sizes (default 1,32)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up (default 5)")
    parser.add_argument("--json", help="also write the results (every round's time) to this file")
    args = parser.parse_args(argv)
    lines = corpus_lines(args.lines)
    print(f"{len(lines)} lines of botchan.txt and wagahaiwa_nekodearu.txt; median of {args.rounds} rounds", flush=True)
    results = run(lines, [int(b) for b in args.batch_sizes.split(",")], args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
