"""Batch-encoding throughput of rembert-tokenizers vs transformers' RemBertTokenizerFast, side by side.

Run from the repository root::

    python benchmarks/bench_tokenizers.py [--repeat 7] [--batch-size 256] [--json out.json]

For each fixture corpus (English botchan.txt, Japanese wagahaiwa_nekodearu.txt) and
its SentencePiece model, the script times, on the same lines and in the same process:

* the plain batch call ``tok(batch)`` (lists out);
* the padded batch as NumPy ``tok(batch, padding=True, return_tensors="np")``;

for our ``RemBertTokenizerFast`` and for the reference ``transformers.RemBertTokenizerFast``
built from the same model with matched options (``do_lower_case=False``,
``keep_accents=True``, our special tokens), and prints lines per second and the
ratio ours / reference (higher is better). It also prints how often each fast
tokenizer agrees with the reference slow tokenizer (the ids to reproduce), with
the reference's default options and with matched options. It is a benchmark,
not a test: numbers depend on the machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "sentencepiece"
CORPORA = {
    "en (botchan)": ("test_model.model", "botchan.txt"),
    "ja (wagahai)": ("test_ja_model.model", "wagahaiwa_nekodearu.txt"),
}


def _time_pair(ours: Callable[[], Any], reference: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` seconds of each, the two interleaved so that machine load drifts hit both alike."""
    ours()  # warm-up (caches, thread pools)
    reference()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((ours, samples[0]), (reference, samples[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return min(samples[0]), min(samples[1])


def _batched(tok: Any, lines: list[str], batch_size: int, **kwargs: Any) -> Callable[[], None]:
    batches = [lines[i : i + batch_size] for i in range(0, len(lines), batch_size)]

    def run() -> None:
        for batch in batches:
            tok(batch, **kwargs)

    return run


def _agreement(tok: Any, reference_ids: list[list[int]], lines: list[str]) -> float:
    ids = tok(lines)["input_ids"]
    return sum(a == b for a, b in zip(ids, reference_ids, strict=True)) / len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed repetitions (best reported)")
    parser.add_argument("--batch-size", type=int, default=256, help="lines per tokenizer call")
    parser.add_argument("--json", help="write the results here as JSON (seconds per pass over the corpus)")
    args = parser.parse_args()

    import transformers

    from rembert_tokenizers import RemBertTokenizerFast

    transformers.logging.set_verbosity_error()
    print(
        f"transformers {transformers.__version__}; batch size {args.batch_size}; best of {args.repeat}, interleaved\n"
    )
    header = f"{'corpus':14} {'call':22} {'ours lines/s':>13} {'ref lines/s':>12} {'ours/ref':>9}"
    print(header)
    print("-" * len(header))
    notes = []
    rows: list[dict[str, Any]] = []
    for name, (model_file, corpus_file) in CORPORA.items():
        model = str(FIXTURES / model_file)
        lines = (FIXTURES / corpus_file).read_text(encoding="utf-8").split("\n")
        ours = RemBertTokenizerFast(model)
        reference = transformers.RemBertTokenizerFast(
            model, do_lower_case=False, keep_accents=True, unk_token="[UNK]", pad_token="[PAD]"
        )
        for label, kwargs in (("plain batch", {}), ("padded, numpy", {"padding": True, "return_tensors": "np"})):
            t_ours, t_ref = _time_pair(
                _batched(ours, lines, args.batch_size, **kwargs),
                _batched(reference, lines, args.batch_size, **kwargs),
                args.repeat,
            )
            rows.append({"corpus": name, "call": label, "lines": len(lines), "ours_s": t_ours, "reference_s": t_ref})
            print(f"{name:14} {label:22} {len(lines) / t_ours:13.0f} {len(lines) / t_ref:12.0f} {t_ref / t_ours:8.2f}x")
        whole_ours, whole_ref = _time_pair(
            _batched(ours, lines, len(lines), padding=True, return_tensors="np"),
            _batched(reference, lines, len(lines), padding=True, return_tensors="np"),
            args.repeat,
        )
        rows.append(
            {
                "corpus": name,
                "call": "whole corpus, np",
                "lines": len(lines),
                "ours_s": whole_ours,
                "reference_s": whole_ref,
            }
        )
        print(
            f"{name:14} {'whole corpus, np':22} {len(lines) / whole_ours:13.0f} {len(lines) / whole_ref:12.0f} "
            f"{whole_ref / whole_ours:8.2f}x"
        )
        slow_ids = transformers.RemBertTokenizer(model)(lines)["input_ids"]
        default_reference = transformers.RemBertTokenizerFast(model)
        notes.append(
            f"{name}: agreement with the reference slow tokenizer's ids: ours {_agreement(ours, slow_ids, lines):.2%}, "
            f"reference fast (default options) {_agreement(default_reference, slow_ids, lines):.2%}, "
            f"reference fast (matched options) {_agreement(reference, slow_ids, lines):.2%}"
        )
    print()
    for note in notes:
        print(note)
    if args.json:
        Path(args.json).write_text(json.dumps({"repeat": args.repeat, "results": rows, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()
