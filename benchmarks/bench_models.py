"""Model speed vs transformers 4.57 on the same weights and inputs, in one run, plus the machine's GEMM peak.

Run from the repository root (``nox -s bench`` does, with every package and the reference installed)::

    python benchmarks/bench_models.py [--layers 8] [--repeat 3] [--json reports/bench-models.json] [--docs]

RemBERT at its real widths (hidden 1152, 18 heads, intermediate 4608, input/output embeddings 256/1664,
vocabulary 250300) with ``--layers`` layers (8 by default, 32 is the full model). One checkpoint is written
by transformers (``benchmarks/bench_checkpoints.py`` writes it in safetensors, ``pytorch_model.bin`` and
``tf_model.h5``); every model below loads it, so ours and the reference run the same weights on the same
padded batches (rows of decreasing length, down to half the sequence).

* PyTorch (this process): forward of the bare model at batch 8 x seq 128 and batch 2 x seq 512 in
  float32 and bfloat16, the masked-LM head forward, and a sequence-classification training step
  (forward + backward + AdamW). Ours and the reference are timed alternately, with the float32/bfloat16
  GEMM peak at the model's shapes (the faster of ``torch.mm`` and the oneDNN linear op on the model's
  1024-token activations and weights) timed in the same rounds, so machine load hits all alike.
  MFU = the model's matmul FLOPs / time / measured GEMM peak.
* TensorFlow: ours (Keras 3) and the reference TF classes (tf-keras, ``TF_USE_LEGACY_KERAS=1``) cannot
  share a process, so two worker processes load their models and the parent asks them in turn for one
  timed call each (eager, ``tf.function``, ``tf.function(jit_compile=True)`` (XLA), ours also under the
  ``mixed_bfloat16`` policy).
* Peak RSS (fresh process per measurement): inference at batch 8 x seq 512, and forward + backward of
  the classifier with and without gradient checkpointing.
* Checkpoint load time/RSS (its loading cases) and tokenizer throughput come from
  ``bench_checkpoints.py`` and ``bench_tokenizers.py``, run as sub-steps of the same run.

Times are medians of ``--repeat`` interleaved rounds after one warm-up round. ``--docs`` also writes
``docs/_data/bench.json`` and ``docs/bench/latest.md``. It is a benchmark, not a test: numbers depend on
the machine and its load; nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

# RemBERT's real widths (transformers.RemBertConfig defaults).
HIDDEN, HEADS, INTERMEDIATE, EMB_IN, EMB_OUT, VOCAB = 1152, 18, 4608, 256, 1664, 250300
SHAPES = ((8, 128), (2, 512))  # (batch, seq): both 1024 tokens
MLM_SHAPE = (1, 128)  # the 250300 x 1664 decoder alone is 0.1 TFLOP per 128 tokens
TRAIN_SHAPE = (2, 128)
MEMORY_SHAPE = (8, 512)
GEMM_LAYERS = 4  # the GEMM peak is timed over this many layers' matmuls (seconds, like the model's own rounds)
CHECKPOINT_CASES = (  # of bench_checkpoints.py (its conversion cases are left to a run of that script)
    "torch: ours from safetensors",
    "torch: reference from safetensors",
    "tf: ours from safetensors",
    "tf: reference from tf_model.h5",
)

# Targets from the performance issue: speedup over the reference (or over the named baseline), MFU.
TARGETS = {
    ("torch", "float32", "8x128"): 1.15,
    ("torch", "float32", "2x512"): 1.3,
    ("torch", "bfloat16", "8x128"): 1.2,
    ("torch", "bfloat16", "2x512"): 1.45,
}
MFU_TARGETS = {("torch", "float32", "8x128"): 0.88, ("torch", "bfloat16", "8x128"): 0.70}
TF_FUNCTION_TARGET = 1.2  # ours under tf.function vs the reference TF classes under tf.function
TRAIN_TARGET = 1.1


# -- inputs and FLOPs --------------------------------------------------------------------------------


def make_inputs(batch: int, seq: int) -> tuple[Any, Any]:
    """Padded batch as NumPy int32: ids (batch, seq) and mask; row i keeps seq - i * seq / (2 * batch) tokens."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(5, VOCAB, size=(batch, seq), dtype=np.int64)
    mask = np.zeros((batch, seq), dtype=np.int64)
    for i in range(batch):
        length = seq - (i * seq) // (2 * batch)
        mask[i, :length] = 1
    ids[mask == 0] = 0  # pad_token_id
    return ids, mask


def linear_shapes(tokens: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of one layer's matmuls on ``tokens`` rows: query, key, value, attention output, FFN in/out."""
    return [(tokens, HIDDEN, HIDDEN)] * 4 + [(tokens, HIDDEN, INTERMEDIATE), (tokens, INTERMEDIATE, HIDDEN)]


def forward_flops(batch: int, seq: int, layers: int, mlm: bool = False) -> float:
    """Matmul FLOPs of one forward (bare model with pooler, or the masked-LM model)."""
    tokens = batch * seq
    flops = 2.0 * tokens * EMB_IN * HIDDEN  # embedding_hidden_mapping_in
    per_layer = sum(2.0 * m * k * n for m, k, n in linear_shapes(tokens)) + 4.0 * batch * seq * seq * HIDDEN
    flops += layers * per_layer
    if mlm:
        flops += 2.0 * tokens * (HIDDEN * EMB_OUT + EMB_OUT * VOCAB)
    else:
        flops += 2.0 * batch * HIDDEN * HIDDEN  # pooler
    return flops


# -- timing ------------------------------------------------------------------------------------------


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of each callable over ``repeat`` rounds after a warm-up round; order alternates per round."""
    names = list(fns)
    for name in names:
        fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB: VmHWM, which (unlike ru_maxrss) does not inherit the parent's RSS."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- PyTorch -----------------------------------------------------------------------------------------


def gemm_callables(dtype: Any, layers: int) -> tuple[dict[str, Callable[[], None]], float]:
    """The model's layer matmuls alone (no bias, no epilogue) at 1024 tokens in ``dtype``, and their FLOPs.

    ``layers`` times one layer's six matmuls, so the peak is measured over seconds, in the same rounds
    (and under the same machine load) as the model itself. Timed with each GEMM PyTorch offers on CPU:
    ``F.linear``'s ``torch.mm`` (MKL in float32) and, where present, the oneDNN op our float32 inference uses; the peak
    is the faster of the two, so MFU is against the best GEMM this machine gives, not the one we happen
    to call. (The oneDNN op allocates its output; ``torch.mm`` writes into preallocated ones.)
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    pairs = [
        (torch.randn(m, k, generator=gen).to(dtype), torch.randn(n, k, generator=gen).to(dtype) * 0.02)
        for m, k, n in linear_shapes(1024)
    ]
    flops = sum(2.0 * m * k * n for m, k, n in linear_shapes(1024))

    def run(linear: Callable[[Any, Any, int], Any]) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                for _ in range(layers):
                    for i, (x, w) in enumerate(pairs):
                        linear(x, w, i)

        return call

    # F.linear's kernel (MKL in float32) writing into preallocated outputs: fresh output pages cost page
    # faults that can take a third of the time of a (1024, 4608) GEMM on a VM, and are not the GEMM's.
    outs = [torch.empty(m, n, dtype=dtype) for m, _, n in linear_shapes(1024)]
    kernels = {"gemm torch.mm": run(lambda x, w, i: torch.mm(x, w.t(), out=outs[i]))}
    try:
        onednn = torch.ops.mkldnn._linear_pointwise
        with torch.inference_mode():
            onednn(pairs[0][0], pairs[0][1], None, "none", [], "")
    except (AttributeError, RuntimeError, TypeError):
        pass
    else:
        kernels["gemm oneDNN"] = run(lambda x, w, i: onednn(x, w, None, "none", [], ""))
    return kernels, flops * layers


def torch_section(st_dir: Path, layers: int, repeat: int, results: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    os.environ["USE_TF"] = "0"  # this process's transformers must not import TensorFlow (workers unset it)
    import torch
    import transformers

    import rembert_torch

    transformers.logging.set_verbosity_error()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    ours = rembert_torch.RemBertModel.from_pretrained(st_dir)
    ref = transformers.RemBertModel.from_pretrained(st_dir).eval()
    gemm_peak: dict[str, float] = {}
    mfu: list[dict[str, Any]] = []
    gemm_kernels: dict[str, dict[str, float]] = {}
    for dtype in (torch.float32, torch.bfloat16):
        dname = str(dtype).removeprefix("torch.")
        ours, ref = ours.to(dtype), ref.to(dtype)
        gemm, gemm_flops = gemm_callables(dtype, min(layers, GEMM_LAYERS))
        for batch, seq in SHAPES:
            ids, mask = (torch.from_numpy(a) for a in make_inputs(batch, seq))

            def run(model: Any, ids: Any = ids, mask: Any = mask) -> Callable[[], None]:
                def call() -> None:
                    with torch.inference_mode():
                        model(input_ids=ids, attention_mask=mask)

                return call

            fns = {"ours": run(ours), "reference": run(ref)}
            if dname not in gemm_peak:  # measured in the rounds of the first shape, used for both
                fns.update(gemm)
            t = interleaved(fns, repeat)
            if dname not in gemm_peak:
                gemm_peak[dname] = gemm_flops / min(t[name] for name in gemm)
                gemm_kernels[dname] = {name: gemm_flops / t[name] / 1e9 for name in gemm}
            peak = gemm_peak[dname]
            shape = f"{batch}x{seq}"
            add_result(results, "forward (bare model)", "torch", dname, shape, t["ours"], t["reference"])
            flops = forward_flops(batch, seq, layers)
            mfu.append(
                {
                    "name": "forward (bare model)",
                    "framework": "torch",
                    "dtype": dname,
                    "shape": shape,
                    "gemm_peak_gflops": peak / 1e9,
                    "ours": flops / t["ours"] / peak,
                    "reference": flops / t["reference"] / peak,
                    "target": MFU_TARGETS.get(("torch", dname, shape)),
                }
            )
            print_last(results, mfu[-1])
    del ours, ref

    # Masked-LM head (the 250300 x 1664 decoder is the largest matmul), float32.
    torch.manual_seed(0)
    ref_mlm = transformers.RemBertForMaskedLM.from_pretrained(st_dir).eval()
    ours_mlm = rembert_torch.RemBertForMaskedLM.from_pretrained(st_dir)
    ours_mlm.load_state_dict(ref_mlm.state_dict())  # the checkpoint has no LM head: share the reference's init
    ids, mask = (torch.from_numpy(a) for a in make_inputs(*MLM_SHAPE))

    def mlm(model: Any) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask)

        return call

    t = interleaved({"ours": mlm(ours_mlm), "reference": mlm(ref_mlm)}, repeat)
    shape = "{}x{}".format(*MLM_SHAPE)
    add_result(results, "masked-LM forward", "torch", "float32", shape, t["ours"], t["reference"])
    peak = gemm_peak["float32"]
    flops = forward_flops(*MLM_SHAPE, layers, mlm=True)
    mfu.append(
        {
            "name": "masked-LM forward",
            "framework": "torch",
            "dtype": "float32",
            "shape": shape,
            "gemm_peak_gflops": peak / 1e9,
            "ours": flops / t["ours"] / peak,
            "reference": flops / t["reference"] / peak,
            "target": None,
        }
    )
    print_last(results, mfu[-1])
    del ref_mlm, ours_mlm

    # Training step of the sequence classifier: forward + backward + AdamW.
    torch.manual_seed(0)
    ref_cls = transformers.RemBertForSequenceClassification.from_pretrained(st_dir, num_labels=3).train()
    ours_cls = rembert_torch.RemBertForSequenceClassification.from_pretrained(st_dir, num_labels=3).train()
    ours_cls.load_state_dict(ref_cls.state_dict())
    ids, mask = (torch.from_numpy(a) for a in make_inputs(*TRAIN_SHAPE))
    labels = torch.arange(TRAIN_SHAPE[0]) % 3

    def step(model: Any) -> Callable[[], None]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

        def call() -> None:
            optimizer.zero_grad(set_to_none=True)
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            optimizer.step()

        return call

    t = interleaved({"ours": step(ours_cls), "reference": step(ref_cls)}, repeat)
    shape = "{}x{}".format(*TRAIN_SHAPE)
    add_result(
        results,
        "training step (seq. classification)",
        "torch",
        "float32",
        shape,
        t["ours"],
        t["reference"],
        TRAIN_TARGET,
    )
    print_last(results)
    del ref_cls, ours_cls
    extra["gemm_peak"] = {
        "gflops": {k: v / 1e9 for k, v in gemm_peak.items()},
        "kernels_gflops": gemm_kernels,
        "shapes": f"{min(layers, GEMM_LAYERS)} x one layer's matmuls at 1024 tokens: [(1024x1152)x(1152x1152) x4, "
        "x(1152x4608), (1024x4608)x(4608x1152)], timed in the same rounds as the batch 8 x seq 128 forward",
    }
    extra["mfu"] = mfu


# -- TensorFlow (worker processes) -------------------------------------------------------------------

TF_MODES = ("eager", "tf.function", "XLA")


def tf_worker(kind: str, directory: Path) -> None:
    """Serve timing requests on stdin: one JSON object per line, {"case": [mode, dtype, batch, seq]}."""
    import numpy as np
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # two shapes: retracing warnings are expected
    if kind == "ours":
        import rembert_tf

        models = {
            "float32": rembert_tf.TFRemBertModel.from_pretrained(directory / "st"),
            "mixed_bfloat16": rembert_tf.TFRemBertModel.from_pretrained(directory / "st", dtype="mixed_bfloat16"),
        }
    else:
        import transformers

        transformers.logging.set_verbosity_error()
        models = {"float32": transformers.TFRemBertModel.from_pretrained(directory / "h5")}
    fns: dict[tuple[str, str], Callable[..., Any]] = {}

    def add(dtype: str, model: Any) -> None:
        def call(ids: Any, mask: Any) -> Any:
            return model(input_ids=ids, attention_mask=mask, training=False)[0]

        fns["eager", dtype] = call
        fns["tf.function", dtype] = tf.function(call)
        fns["XLA", dtype] = tf.function(call, jit_compile=True)

    for dtype, model in models.items():
        add(dtype, model)
    inputs: dict[tuple[int, int], tuple[Any, Any]] = {}
    print("READY", flush=True)
    for line in sys.stdin:
        mode, dtype, batch, seq = json.loads(line)["case"]
        if (batch, seq) not in inputs and isinstance(batch, str):  # a real-text batch of bench_realtext.py
            from bench_realtext import batches

            inputs[batch, seq] = tuple(tf.constant(a.astype(np.int32)) for a in batches()[batch])
        elif (batch, seq) not in inputs:
            inputs[batch, seq] = tuple(tf.constant(a.astype(np.int32)) for a in make_inputs(batch, seq))
        ids, mask = inputs[batch, seq]
        if dtype == "seqcls" and (mode, dtype) not in fns:  # sequence classification (float32), loaded on demand
            if kind == "ours":
                cls, path = rembert_tf.TFRemBertForSequenceClassification, directory / "st"
            else:
                cls, path = transformers.TFRemBertForSequenceClassification, directory / "h5"
            add(dtype, cls.from_pretrained(path, num_labels=3))
        start = time.perf_counter()
        out = fns[mode, dtype](ids, mask)
        _ = out.numpy()
        print("RESULT " + json.dumps({"seconds": time.perf_counter() - start}), flush=True)


class Worker:
    """A TF worker process driven line by line."""

    def __init__(self, kind: str, directory: Path, legacy_keras: bool) -> None:
        env = {**without_use_tf(), "TF_CPP_MIN_LOG_LEVEL": "3"}
        if legacy_keras:
            env["TF_USE_LEGACY_KERAS"] = "1"  # transformers' TF classes need tf-keras
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--tf-worker", kind, "--workdir", str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._expect("READY")

    def _expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"TF worker exited with {self.proc.wait()}")

    def time(self, mode: str, dtype: str, batch: int | str, seq: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"case": [mode, dtype, batch, seq]}) + "\n")
        self.proc.stdin.flush()
        return float(json.loads(self._expect("RESULT"))["seconds"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def tf_section(directory: Path, layers: int, repeat: int, results: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    ours = Worker("ours", directory, legacy_keras=False)
    ref = Worker("reference", directory, legacy_keras=True)
    compile_s: dict[str, float] = {}
    # No MFU here: the GEMM peak is measured in the PyTorch rounds, minutes earlier, under another machine load.
    try:
        for batch, seq in SHAPES:
            shape = f"{batch}x{seq}"
            cases: dict[str, Callable[[], float]] = {}
            first = (batch, seq) == SHAPES[0]  # eager and XLA-bf16 at the first shape only (time budget)
            for mode in TF_MODES:
                if mode == "eager" and not first:
                    continue
                cases[f"ours {mode}"] = lambda m=mode, b=batch, s=seq: ours.time(m, "float32", b, s)
                if mode != "eager" and (mode != "XLA" or first):
                    cases[f"ours {mode} bf16"] = lambda m=mode, b=batch, s=seq: ours.time(m, "mixed_bfloat16", b, s)
                if mode != "XLA":  # the reference's XLA compile of the whole model takes minutes on 2 cores
                    cases[f"reference {mode}"] = lambda m=mode, b=batch, s=seq: ref.time(m, "float32", b, s)
            for name, fn in cases.items():  # warm-up: tracing and XLA compilation
                compile_s[f"{name} {shape}"] = fn()
            samples: dict[str, list[float]] = {name: [] for name in cases}
            names = list(cases)
            for r in range(repeat):
                for name in names if r % 2 == 0 else reversed(names):
                    samples[name].append(cases[name]())
            t = {name: statistics.median(v) for name, v in samples.items()}
            rows: list[tuple[str, str, float | None, float | None, float | None]] = [
                ("forward eager", "float32", t.get("ours eager"), t.get("reference eager"), None),
                (
                    "forward tf.function",
                    "float32",
                    t["ours tf.function"],
                    t["reference tf.function"],
                    TF_FUNCTION_TARGET,
                ),
                ("forward XLA vs reference tf.function", "float32", t["ours XLA"], t["reference tf.function"], None),
                ("forward XLA vs our tf.function", "float32", t["ours XLA"], t["ours tf.function"], 1.0),
                (
                    "forward tf.function, mixed_bfloat16 vs our float32",
                    "mixed_bfloat16",
                    t["ours tf.function bf16"],
                    t["ours tf.function"],
                    1.0,
                ),
                (
                    "forward XLA, mixed_bfloat16 vs our float32 XLA",
                    "mixed_bfloat16",
                    t.get("ours XLA bf16"),
                    t["ours XLA"],
                    None,
                ),
            ]
            for name, dtype, mine, base, target in rows:
                if mine is None or base is None:
                    continue
                add_result(results, name, "tf", dtype, shape, mine, base, target)
                print_last(results)
        # Real-text batches (issue 22), ours vs the reference TF classes: sequence classification (whose
        # backbone runs on the kept tokens) under tf.function and eagerly, and the bare model under tf.function
        # (whose output includes the padded positions: the padded path).
        from bench_realtext import TF_TARGET, batches, describe

        tf_cases = [
            ("seq. classification inference tf.function", "tf.function", "seqcls", True),
            ("seq. classification inference eager", "eager", "seqcls", False),
            ("forward tf.function (bare model)", "tf.function", "float32", False),
        ]
        for batch_name, (_, mask) in batches().items():
            for name, mode, kind, targeted in tf_cases:
                cases = {
                    "ours": lambda b=batch_name, m=mode, k=kind: ours.time(m, k, b, 0),
                    "reference": lambda b=batch_name, m=mode, k=kind: ref.time(m, k, b, 0),
                }
                for fn in cases.values():
                    fn()  # tracing, warm-up
                samples: dict[str, list[float]] = {case: [] for case in cases}
                for r in range(repeat):
                    for case in list(cases) if r % 2 == 0 else reversed(list(cases)):
                        samples[case].append(cases[case]())
                t = {case: statistics.median(v) for case, v in samples.items()}
                target = TF_TARGET if targeted and batch_name == "real text" else None
                label = f"{batch_name} ({describe(mask)})"
                add_result(results, name, "tf", "float32", label, t["ours"], t["reference"], target)
                print_last(results)
    finally:
        ours.close()
        ref.close()
    extra["tf_first_call_s"] = compile_s


# -- peak memory (fresh process per measurement) -----------------------------------------------------

MEMORY_CASES = {
    # name: (framework module, class, inference?, gradient checkpointing?)
    "inference, ours": ("rembert_torch", "RemBertModel", True, False),
    "inference, reference": ("transformers", "RemBertModel", True, False),
    "forward+backward, ours": ("rembert_torch", "RemBertForSequenceClassification", False, False),
    "forward+backward + checkpointing, ours": ("rembert_torch", "RemBertForSequenceClassification", False, True),
}


def memory_worker(name: str, directory: Path) -> None:
    import torch

    module_name, cls_name, inference, checkpointing = MEMORY_CASES[name]
    module = __import__(module_name)
    model = getattr(module, cls_name).from_pretrained(directory / "st")
    base = peak_rss_mb()
    if inference:
        ids, mask = (torch.from_numpy(a) for a in make_inputs(*MEMORY_SHAPE))
        model.eval()
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask)
    else:
        ids, mask = (torch.from_numpy(a) for a in make_inputs(*TRAIN_SHAPE))
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        labels = torch.zeros(TRAIN_SHAPE[0], dtype=torch.long)
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    print("RESULT " + json.dumps({"baseline_mb": base, "peak_mb": peak_rss_mb()}), flush=True)


def memory_section(directory: Path, extra: dict[str, Any], results: list[dict[str, Any]]) -> None:
    rows = []
    for name in MEMORY_CASES:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-worker", name, "--workdir", str(directory)],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "USE_TF": "0"},  # transformers must not import TensorFlow into the measurement
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
        if line is None:
            rows.append({"case": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]})
        else:
            rows.append({"case": name, **json.loads(line.removeprefix("RESULT "))})
        print(f"memory: {rows[-1]}", flush=True)
    extra["memory"] = {
        "shapes": {"inference": "{}x{}".format(*MEMORY_SHAPE), "forward+backward": "{}x{}".format(*TRAIN_SHAPE)},
        "unit": "MiB peak RSS of a fresh process (baseline: after loading the model)",
        "results": rows,
    }


# -- results -----------------------------------------------------------------------------------------


def add_result(
    results: list[dict[str, Any]],
    name: str,
    framework: str,
    dtype: str,
    shape: str,
    ours_s: float,
    reference_s: float,
    target: float | None = None,
) -> None:
    if target is None:
        target = TARGETS.get((framework, dtype, shape)) if name == "forward (bare model)" else None
    speedup = reference_s / ours_s
    results.append(
        {
            "name": name,
            "framework": framework,
            "dtype": dtype,
            "shape": shape,
            "ours_ms": round(ours_s * 1e3, 2),
            "reference_ms": round(reference_s * 1e3, 2),
            "speedup": round(speedup, 3),
            "target": target,
            "met": None if target is None else bool(speedup >= target),
        }
    )


def print_last(results: list[dict[str, Any]], mfu: dict[str, Any] | None = None) -> None:
    r = results[-1]
    line = (
        f"{r['framework']:5} {r['dtype']:14} {r['shape']:6} {r['name']:52} ours {r['ours_ms']:9.1f} ms  "
        f"baseline {r['reference_ms']:9.1f} ms  x{r['speedup']:.2f}"
    )
    if mfu is not None:
        line += f"  MFU ours {mfu['ours']:.0%} ref {mfu['reference']:.0%}"
    print(line, flush=True)


def without_use_tf() -> dict[str, str]:
    """This process's environment minus ``USE_TF`` (set for the parent's own transformers import)."""
    return {k: v for k, v in os.environ.items() if k != "USE_TF"}


def sub_benchmarks(
    args: argparse.Namespace, directory: Path, results: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    out = reports / "bench-checkpoints.json"
    subprocess.run(
        [
            sys.executable,
            str(HERE / "bench_checkpoints.py"),
            "--layers",
            str(args.layers),
            "--workdir",
            str(directory),
            "--json",
            str(out),
            "--cases",
            ",".join(CHECKPOINT_CASES),
        ],
        check=True,
        env=without_use_tf(),
    )
    data = json.loads(out.read_text())
    extra["checkpoints"] = data
    by_case = {r["case"]: r for r in data["results"] if "error" not in r}
    for framework, mine, base in (
        ("torch", "torch: ours from safetensors", "torch: reference from safetensors"),
        ("tf", "tf: ours from safetensors", "tf: reference from tf_model.h5"),
    ):
        if mine in by_case and base in by_case:
            add_result(
                results,
                f"checkpoint load ({mine.split(' from ')[1]} vs {base.split(' from ')[1]})",
                framework,
                "float32",
                f"{args.layers} layers",
                by_case[mine]["seconds"],
                by_case[base]["seconds"],
            )
    out = reports / "bench-tokenizers.json"
    subprocess.run(
        [sys.executable, str(HERE / "bench_tokenizers.py"), "--repeat", str(args.repeat), "--json", str(out)],
        check=True,
        env=without_use_tf(),
    )
    tok = json.loads(out.read_text())
    extra["tokenizers"] = tok
    for r in tok["results"]:
        add_result(results, f"tokenizer: {r['call']}", "tokenizers", "-", r["corpus"], r["ours_s"], r["reference_s"])


def markdown(command: str, data: dict[str, Any]) -> str:
    lines = [
        "| case | framework | dtype | shape | ours (ms) | baseline (ms) | speedup | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        target = "" if r["target"] is None else f">= {r['target']:g}x"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(
            f"| {r['name']} | {r['framework']} | {r['dtype']} | {r['shape']} | {r['ours_ms']:.1f} | "
            f"{r['reference_ms']:.1f} | {r['speedup']:.2f}x | {target} | {met} |"
        )
    if data.get("mfu"):
        lines += [
            "",
            "Model-FLOPs utilisation (matmul FLOPs / time / measured GEMM peak at the model's shapes):",
            "",
            "| case | framework | dtype | shape | GEMM peak (GFLOP/s) | ours | reference | target |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in data["mfu"]:
            target = "" if m["target"] is None else f">= {m['target']:.0%}"
            lines.append(
                f"| {m['name']} | {m['framework']} | {m['dtype']} | {m['shape']} | {m['gemm_peak_gflops']:.0f} | "
                f"{m['ours']:.0%} | {m['reference']:.0%} | {target} |"
            )
    if data.get("realtext"):
        rt = data["realtext"]
        lines += ["", f"Real-text batches (`benchmarks/bench_realtext.py`, {rt['corpus']}): "]
        lines += ["; ".join(f"{name}: {shape}" for name, shape in rt["batches"].items()) + "."]
        for r in data["results"]:
            if "cosine_token_mean" in r:
                lines += [
                    "",
                    f"int8 vs our float32 on the real-text batch: cosine of the pooled outputs min "
                    f"{r['cosine_pooled_min']:.5f} / mean {r['cosine_pooled_mean']:.5f}; of the last hidden states "
                    f"per real token min {r['cosine_token_min']:.5f} / mean {r['cosine_token_mean']:.5f}.",
                ]
    if data.get("memory"):
        lines += ["", "Peak RSS (MiB, fresh process; " + data["memory"]["unit"] + "):", ""]
        lines += ["| case | peak | after load | peak - after load |", "|---|---|---|---|"]
        for m in data["memory"]["results"]:
            if "error" in m:
                lines.append(f"| {m['case']} | error: {m['error']} | | |")
            else:
                grown = m["peak_mb"] - m["baseline_mb"]
                lines.append(f"| {m['case']} | {m['peak_mb']:.0f} | {m['baseline_mb']:.0f} | {grown:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8, help="encoder layers (32 = the full model)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds after the warm-up (median reported)")
    parser.add_argument("--workdir", help="checkpoint directory (default: a per-layer-count folder under /tmp)")
    parser.add_argument("--json", default=str(ROOT / "reports" / "bench-models.json"), help="write results here")
    parser.add_argument("--docs", action="store_true", help="also write docs/_data/bench.json and docs/bench/latest.md")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: torch, realtext, tf, memory, sub")
    parser.add_argument("--tf-worker", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    directory = Path(args.workdir or Path(tempfile.gettempdir()) / f"rembert-bench-{args.layers}-layers")
    if args.tf_worker:
        tf_worker(args.tf_worker, directory)
        return
    if args.memory_worker:
        memory_worker(args.memory_worker, directory)
        return

    sys.path.insert(0, str(HERE))
    from bench_checkpoints import make_checkpoints

    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    size = make_checkpoints(directory, args.layers)
    print(f"checkpoint: {args.layers} layers, {size:.2f} GB ({time.perf_counter() - started:.0f} s)", flush=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    results: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if "torch" not in skip:
        torch_section(directory / "st", args.layers, args.repeat, results, extra)
    if "realtext" not in skip:
        from bench_realtext import realtext_section

        realtext_section(directory / "st", args.repeat, results, extra, add_result, interleaved, print_last)
    if "tf" not in skip:
        tf_section(directory, args.layers, args.repeat, results, extra)
    if "memory" not in skip:
        memory_section(directory, extra, results)
    if "sub" not in skip:
        sub_benchmarks(args, directory, results, extra)

    command = "nox -s bench" + (f" -- --layers {args.layers}" if args.layers != 8 else "")
    data: dict[str, Any] = {
        "command": command,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}; "
        "shared with other jobs (noisy)",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "results": results,
        "layers": args.layers,
        "repeat": args.repeat,
        "wall_s": round(time.perf_counter() - started, 1),
        **extra,
    }
    table = markdown(command, data)
    print()
    print(table)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    if args.docs:
        (ROOT / "docs" / "_data").mkdir(parents=True, exist_ok=True)
        (ROOT / "docs" / "_data" / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
        (ROOT / "docs" / "bench").mkdir(parents=True, exist_ok=True)
        header = (
            "# Latest benchmark\n\n"
            f"Produced by `{command}` on {data['date']} ({data['machine']}); {args.layers} layers at RemBERT's "
            f"full widths, medians of {args.repeat} interleaved rounds. Speedup = baseline / ours (higher is "
            "better); the baseline is transformers 4.57 unless the case names another. The machine is shared, "
            "so single figures move by 10-30 % between runs.\n\n"
        )
        (ROOT / "docs" / "bench" / "latest.md").write_text(header + table)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
