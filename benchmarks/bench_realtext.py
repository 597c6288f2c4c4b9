"""Real-text batches (issue 22): ours vs transformers 4.57 on padded batches of fixture-corpus sentences.

A section of ``bench_models.py`` (``nox -s bench``), also runnable alone from the repository root::

    python benchmarks/bench_realtext.py [--layers 4] [--repeat 3] [--only NAME,...]

Inputs: lines of ``tests/fixtures/sentencepiece/botchan.txt`` (as the tokenizer benchmark reads them)
tokenised with its SentencePiece model (``test_model.model``) and wrapped in [CLS] ... [SEP]: a batch of 32
consecutive lines padded to the longest (``real text``, about 70 % real tokens), and a wide-spread batch of
16 rows whose lengths run evenly from 16 to 512 tokens (``wide spread``), cut from the same token stream.
Every row reports the share of real tokens.

Rows (4 layers at RemBERT's full widths by default, ours and the reference loaded from one checkpoint):

* sequence-classification inference, float32 and bfloat16 (real text and wide spread);
* sequence-classification forward + backward, float32 and under CPU autocast bfloat16;
* a whole training step (forward, backward, fused AdamW for both);
* masked-LM forward + backward at 15 % labels of the real tokens, on the real-text batch (ours with
  ``return_logits=False``; the reference has no such switch and computes the 250300-wide logits at every
  position, about 25 s a call here);
* int8 dynamic quantisation (``rembert_torch.quantization.quantize``) vs our own float32 model, with the
  cosine of the pooled outputs and the worst per-token cosine of the last hidden states.

Timings are medians of ``--repeat`` interleaved rounds after a warm-up round (``bench_models.interleaved``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CORPUS = ROOT / "tests" / "fixtures" / "sentencepiece"

BATCH = 32  # sentences per real-text batch
WIDE = 16  # rows of the wide-spread batch, lengths 16 .. 512
NUM_LABELS = 3

#: Targets of issue 22 (ratios to transformers 4.57 in the same run; 4 layers; real-text batch 32).
TARGETS = {
    ("seq. classification inference", "float32", "real text"): 1.5,
    ("seq. classification inference", "bfloat16", "real text"): 1.35,
    ("seq. classification inference", "float32", "wide spread"): 2.0,
    ("seq. classification forward+backward", "float32", "real text"): 1.3,
    ("seq. classification forward+backward", "autocast bfloat16", "real text"): 1.15,
    ("training step, fused AdamW both", "float32", "real text"): 1.5,
    ("masked-LM forward+backward, 15% labels", "float32", "real text"): 4.0,
    ("int8 inference vs our float32", "int8", "real text"): 2.5,
}
TF_TARGET = 1.3  # TensorFlow float32 inference on the real-text batch vs the reference TF classes


def lines() -> list[str]:
    """The corpus's non-empty lines, past the Project Gutenberg front matter (the tokenizer bench's inputs)."""
    text = (CORPUS / "botchan.txt").read_text(encoding="utf-8-sig")
    body = text.split("*** START OF", 1)[-1].split("*** END OF", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


def batches() -> dict[str, tuple[Any, Any]]:
    """name -> (ids, mask) as int64 NumPy arrays: 'real text' (32 lines) and 'wide spread'."""
    import numpy as np

    from rembert_tokenizers import RemBertTokenizerFast

    tok = RemBertTokenizerFast(str(CORPUS / "test_model.model"))
    text = lines()
    start = len(text) // 3  # mid-novel
    encoded = [tok(line)["input_ids"][:512] for line in text[start : start + BATCH]]
    stream = [i for line in text[start : start + 2000] for i in tok(line, add_special_tokens=False)["input_ids"]]
    wide = [stream[k * 600 : k * 600 + 16 + (496 * k) // (WIDE - 1)] for k in range(WIDE)]

    def pad(rows: list[list[int]]) -> tuple[Any, Any]:
        seq = max(len(r) for r in rows)
        ids = np.zeros((len(rows), seq), dtype=np.int64)
        mask = np.zeros((len(rows), seq), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    return {"real text": pad(encoded), "wide spread": pad(wide)}


def describe(mask: Any) -> str:
    """'32x58, 61% real' for a (batch, seq) mask."""
    return f"{mask.shape[0]}x{mask.shape[1]}, {mask.mean():.0%} real"


def realtext_section(
    st_dir: Path,
    repeat: int,
    results: list[dict[str, Any]],
    extra: dict[str, Any],
    add_result: Callable[..., None],
    interleaved: Callable[[dict[str, Callable[[], Any]], int], dict[str, float]],
    print_last: Callable[[list[dict[str, Any]]], None],
    only: set[str] | None = None,
) -> None:
    """Append the real-text rows to ``results`` (bench_models' helpers passed in, so both runs share them)."""
    os.environ["USE_TF"] = "0"
    import torch
    import transformers

    import rembert_torch
    from rembert_torch.quantization import quantize

    transformers.logging.set_verbosity_error()
    data = {name: (torch.from_numpy(ids), torch.from_numpy(mask)) for name, (ids, mask) in batches().items()}
    shares = {name: describe(mask.numpy()) for name, (_, mask) in data.items()}
    extra["realtext"] = {"batches": shares, "corpus": "tests/fixtures/sentencepiece/botchan.txt"}
    print("real-text batches:", shares, flush=True)

    def wanted(name: str) -> bool:
        return only is None or any(key in name for key in only)

    def row(name: str, dtype: str, batch: str, t: dict[str, float], base: str = "reference") -> None:
        target = TARGETS.get((name, dtype, batch))
        add_result(results, name, "torch", dtype, f"{batch} ({shares[batch]})", t["ours"], t[base], target)
        print_last(results)

    torch.manual_seed(0)
    ref = transformers.RemBertForSequenceClassification.from_pretrained(st_dir, num_labels=NUM_LABELS).eval()
    ours = rembert_torch.RemBertForSequenceClassification.from_pretrained(st_dir, num_labels=NUM_LABELS).eval()
    ours.load_state_dict(ref.state_dict())  # the classifier is not in the checkpoint: share the reference's init

    def infer(model: Any, batch: str) -> Callable[[], Any]:
        ids, mask = data[batch]

        def call() -> Any:
            with torch.inference_mode():
                return model(input_ids=ids, attention_mask=mask).logits

        return call

    name = "seq. classification inference"
    for dtype in (torch.float32, torch.bfloat16):
        dname = str(dtype).removeprefix("torch.")
        ours, ref = ours.to(dtype), ref.to(dtype)
        for batch in ("real text", "wide spread"):
            if wanted(name):
                row(
                    name,
                    dname,
                    batch,
                    interleaved({"ours": infer(ours, batch), "reference": infer(ref, batch)}, repeat),
                )
    ours, ref = ours.float(), ref.float()

    labels = torch.arange(BATCH) % NUM_LABELS
    ids, mask = data["real text"]

    def fwd_bwd(model: Any, autocast: bool) -> Callable[[], None]:
        def call() -> None:
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()

        return call

    ours.train()
    ref.train()
    name = "seq. classification forward+backward"
    for autocast in (False, True):
        if wanted(name):
            t = interleaved({"ours": fwd_bwd(ours, autocast), "reference": fwd_bwd(ref, autocast)}, repeat)
            row(name, "autocast bfloat16" if autocast else "float32", "real text", t)

    def step(model: Any) -> Callable[[], None]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)

        def call() -> None:
            optimizer.zero_grad(set_to_none=True)
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            optimizer.step()

        return call

    name = "training step, fused AdamW both"
    if wanted(name):
        row(name, "float32", "real text", interleaved({"ours": step(ours), "reference": step(ref)}, repeat))
    ours.eval()
    ref.eval()

    name = "int8 inference vs our float32"
    if wanted(name):
        quantized = quantize(ours)
        with torch.inference_mode():
            full = ours.rembert(input_ids=ids, attention_mask=mask)
            low = quantized.rembert(input_ids=ids, attention_mask=mask)
        real = mask.bool()
        pooled_cos = torch.nn.functional.cosine_similarity(full.pooler_output, low.pooler_output, dim=-1)
        token_cos = torch.nn.functional.cosine_similarity(
            full.last_hidden_state[real], low.last_hidden_state[real], dim=-1
        )
        t = interleaved({"ours": infer(quantized, "real text"), "float32": infer(ours, "real text")}, repeat)
        row(name, "int8", "real text", t, base="float32")
        for key, values in (("pooled", pooled_cos), ("token", token_cos)):
            results[-1][f"cosine_{key}_min"] = round(float(values.min()), 6)
            results[-1][f"cosine_{key}_mean"] = round(float(values.mean()), 6)
        print(
            f"  int8 cosine to float32: pooled min/mean {pooled_cos.min():.6f}/{pooled_cos.mean():.6f}, "
            f"per-token min/mean {token_cos.min():.6f}/{token_cos.mean():.6f}",
            flush=True,
        )
        del quantized
    del ours, ref

    name = "masked-LM forward+backward, 15% labels"
    if wanted(name):
        torch.manual_seed(0)
        ref_mlm = transformers.RemBertForMaskedLM.from_pretrained(st_dir).train()
        ours_mlm = rembert_torch.RemBertForMaskedLM.from_pretrained(st_dir).train()
        ours_mlm.load_state_dict(ref_mlm.state_dict())
        mids, mmask = data["real text"]
        gen = torch.Generator().manual_seed(0)
        chosen = (torch.rand(mids.shape, generator=gen) < 0.15) & mmask.bool()
        mlm_labels = mids.masked_fill(~chosen, -100)

        def mlm(model: Any, lean: bool) -> Callable[[], None]:
            kwargs = {"return_logits": False} if lean else {}

            def call() -> None:
                model.zero_grad(set_to_none=True)
                model(input_ids=mids, attention_mask=mmask, labels=mlm_labels, **kwargs).loss.backward()

            return call

        t = interleaved({"ours": mlm(ours_mlm, True), "reference": mlm(ref_mlm, False)}, repeat)
        row(name, "float32", "real text", t)
        del ref_mlm, ours_mlm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated substrings of row names to run")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import tempfile

    from bench_checkpoints import make_checkpoints
    from bench_models import add_result, interleaved, print_last

    directory = Path(tempfile.gettempdir()) / f"rembert-bench-{args.layers}-layers"
    directory.mkdir(parents=True, exist_ok=True)
    make_checkpoints(directory, args.layers)
    results: list[dict[str, Any]] = []
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    realtext_section(directory / "st", args.repeat, results, {}, add_result, interleaved, print_last, only)


if __name__ == "__main__":
    main()
