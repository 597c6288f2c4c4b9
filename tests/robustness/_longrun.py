"""Concurrency and leak checks, run inside a worker process (so RSS is this workload's alone)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from _util import SP_MODEL, SP_MODEL_JA, TINY

THREADS = 8
TEXTS = [
    "Hello world! This is RemBERT.",
    "吾輩は猫である。名前はまだ無い。",
    "  leading and trailing spaces  ",
    "Ünïcödé ţëxţ with àccents and emoji 😀👍",
    "a" * 300,
    "[CLS] special [SEP] tokens [MASK] inside",
    "mixed 日本語 and English and العربية",
    "",
]


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _tokenizers() -> dict[str, Any]:
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    return {
        "slow": RemBertTokenizer(str(SP_MODEL)),
        "fast": RemBertTokenizerFast(str(SP_MODEL)),
        "slow_ja": RemBertTokenizer(str(SP_MODEL_JA)),
        "fast_ja": RemBertTokenizerFast(str(SP_MODEL_JA)),
    }


def _tokenizer_work(tok: Any) -> Callable[[int], Any]:
    def work(i: int) -> Any:
        texts = TEXTS[i % len(TEXTS) :] + TEXTS[: i % len(TEXTS)]
        batch = tok(texts, padding=True, truncation=True, max_length=32)["input_ids"]
        singles = [tok(t, TEXTS[0])["input_ids"] for t in texts]
        decoded = [tok.decode(ids, skip_special_tokens=True) for ids in batch]
        return batch, singles, decoded, tok.tokenize(texts[0])

    return work


def _inputs(i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    batch, seq = 1 + i % 3, 4 + i % 9
    ids = rng.integers(0, TINY["vocab_size"], (batch, seq))
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq - 1 - i % 3 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": rng.integers(0, 2, (batch, seq))}


def _torch_work() -> Callable[[int], Any]:
    import torch

    from rembert_core import RemBertConfig
    from rembert_torch import RemBertForMaskedLM

    torch.set_num_threads(1)  # 8 Python threads x N intra-op threads would only oversubscribe 2 cores
    torch.manual_seed(0)
    model = RemBertForMaskedLM(RemBertConfig(**TINY)).eval()

    def work(i: int) -> Any:
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in _inputs(i).items()})
        return out.logits.numpy()

    return work


def _tf_work() -> Callable[[int], Any]:
    import tensorflow as tf

    from rembert_core import RemBertConfig
    from rembert_tf import TFRemBertForMaskedLM

    tf.keras.utils.set_random_seed(0)
    model = TFRemBertForMaskedLM(RemBertConfig(**TINY))

    def work(i: int) -> Any:
        return model(**{k: tf.constant(v) for k, v in _inputs(i).items()}).logits.numpy()

    return work


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def threads(kind: str, calls: int) -> dict[str, Any]:
    """``calls`` calls per thread from THREADS threads at once (started together) vs. the same calls serially."""
    works = {"torch": _torch_work, "tf": _tf_work}
    work = works[kind]() if kind in works else _tokenizer_work(_tokenizers()[kind])
    jobs = [(t, c) for t in range(THREADS) for c in range(calls)]
    serial = {job: work(job[0] * calls + job[1]) for job in jobs}
    results: dict[tuple[int, int], Any] = {}
    errors: list[str] = []
    barrier = threading.Barrier(THREADS)

    def run(t: int) -> None:
        try:
            barrier.wait()
            for c in range(calls):
                results[(t, c)] = work(t * calls + c)
        except Exception as exc:
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(600)
    mismatched = [job for job in jobs if job not in results or not _same(results[job], serial[job])]
    return {"calls": len(jobs), "errors": errors, "mismatched": [list(j) for j in mismatched[:10]]}


def leak(kind: str, iterations: int, warmup: int) -> dict[str, Any]:
    """RSS growth over ``iterations`` calls after ``warmup`` calls."""
    works = {"torch": _torch_work, "tf": _tf_work}
    work = works[kind]() if kind in works else _tokenizer_work(_tokenizers()[kind])
    for i in range(warmup):
        work(i)
    gc.collect()
    before = rss_bytes()
    samples = []
    for i in range(iterations):
        work(i % 64)  # the same shapes as in the warm-up: caches keyed by shape are already full
        if i % (iterations // 10) == 0:
            samples.append(rss_bytes())
    gc.collect()
    after = rss_bytes()
    return {"before": before, "after": after, "growth": after - before, "samples": samples}
