"""The parity engine: every backend, every task head, every output and gradient, against each other and a reference.

For each task and dtype, every selected backend builds the same model from the
same canonical tensors, runs the same padded batch (token type ids, labels; a
key/value cache step for decoders) and returns every output field and the
gradient of the loss with respect to every canonical tensor. The engine then
compares

* each backend against the reference backend (by default the float64 NumPy
  backend, when installed), and
* every pair of backends computing in the same dtype,

with bounds from the one tolerance table (:mod:`rembert_core.tolerances`), and
checks that canonical tensors survive a save in one backend, a load in another
and a save again bit for bit. The result is a :class:`ParityReport`: a table for
the terminal, a JSON document, and ``ok`` for the exit code.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rembert_core.backend import Backend
from rembert_core.config import RemBertConfig
from rembert_core.errors import RemBertError
from rembert_core.io.tensors import open_checkpoint, save_safetensors
from rembert_core.schema import TASKS, Init, build_schema
from rembert_core.testing.configs import tiny_config
from rembert_core.tolerances import Tolerance, get_tolerance, max_diffs

__all__ = [
    "TOKENIZER_FIXTURES",
    "Comparison",
    "ParityReport",
    "default_config",
    "make_inputs",
    "run_parity",
    "seeded_tensors",
]

#: Output fields compared, and the tolerance quantity each is compared under.
_FIELD_QUANTITY = {
    "last_hidden_state": "activations",
    "pooler_output": "activations",
    "hidden_states": "activations",
    "logits": "activations",
    "start_logits": "activations",
    "end_logits": "activations",
    "attentions": "attentions",
    "cross_attentions": "attentions",
    "loss": "loss",
    "cache_step_logits": "activations",
}

NUM_CHOICES = 2

#: The SentencePiece models shipped with the project and the corpora they were trained on.
TOKENIZER_FIXTURES = (("test_model.model", "botchan.txt"), ("test_ja_model.model", "wagahaiwa_nekodearu.txt"))


# -- the embedded default ----------------------------------------------------------------------


def default_config(name: str = "tiny", *, layers: int | None = None) -> RemBertConfig:
    """The embedded parity configs.

    ``"tiny"``: odd sizes that catch transposes and head-splitting bugs (hidden 48
    with 6 heads of 8, decoupled embeddings 20/36, vocab 301, 3 token types,
    3 labels). ``"full"``: RemBERT's real widths (hidden 1152, 18 heads,
    embeddings 256/1664, intermediate 4608) with a small vocabulary and 2 layers
    unless ``layers`` says otherwise, so parity is shown at the real scale.
    """
    if name == "tiny":
        config = tiny_config()
    elif name == "full":
        config = RemBertConfig(vocab_size=4096, num_hidden_layers=2, num_labels=3, bos_token_id=1, eos_token_id=2)
    else:
        raise RemBertError(f"unknown parity config {name!r}; choose 'tiny' or 'full'")
    if layers is not None:
        config.num_hidden_layers = int(layers)
        config.validate()
    return config


def task_config(config: RemBertConfig, task: str) -> RemBertConfig:
    """The config a task is checked with: causal LM runs as a decoder with cross-attention; QA has 2 labels."""
    if task == "causal_lm":
        return config.copy(is_decoder=True, add_cross_attention=True)
    if task == "question_answering" and config.num_labels != 2:
        return config.copy(num_labels=2)  # start and end logits
    return config


def seeded_tensors(config: RemBertConfig, task: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic float32 canonical tensors for ``task``.

    Weights are normal with a spread large enough that attention is far from
    uniform; LayerNorm gains are near one; the padding row of the word embeddings
    is zero, as in a trained model.
    """
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for name, spec in build_schema(config, task).items():
        if spec.init is Init.ONES:
            value = 1.0 + 0.1 * rng.standard_normal(spec.shape)
        elif spec.init is Init.ZEROS:
            value = 0.05 * rng.standard_normal(spec.shape)
        else:
            fan_in = spec.shape[-1]
            value = rng.standard_normal(spec.shape) / np.sqrt(fan_in)
            if spec.init is Init.NORMAL_PADDED and config.pad_token_id is not None:
                value[config.pad_token_id] = 0.0
        tensors[name] = value.astype(np.float32)
    return tensors


def make_inputs(
    config: RemBertConfig, task: str, *, batch: int = 2, seq_len: int = 8, seed: int = 0
) -> dict[str, np.ndarray]:
    """A deterministic padded batch for ``task``: ids, attention mask, token types and labels.

    Row 0 is full length; every other row is padded over its last third, and with
    three rows or more the last one is padding only. Multiple
    choice inputs are (batch, 2 choices, seq_len); causal LM also gets
    ``encoder_hidden_states`` for its cross-attention.
    """
    if batch < 1 or seq_len < 2:
        raise RemBertError(f"parity needs batch >= 1 and seq_len >= 2, got batch={batch}, seq_len={seq_len}")
    if seq_len > config.max_position_embeddings:
        raise RemBertError(f"seq_len {seq_len} exceeds max_position_embeddings {config.max_position_embeddings}")
    rng = np.random.default_rng(seed + 1)
    shape: tuple[int, ...] = (batch, NUM_CHOICES, seq_len) if task == "multiple_choice" else (batch, seq_len)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    low = min(3, config.vocab_size - 1)
    input_ids = rng.integers(low, config.vocab_size, size=shape)
    mask = np.ones(shape, dtype=np.int64)
    keep = max(1, seq_len - max(1, seq_len // 3))
    mask[1:, ..., keep:] = 0
    if batch >= 3:
        mask[-1] = 0  # a fully padded row: every score masked, a classic source of NaN and backend drift
    input_ids = np.where(mask == 1, input_ids, pad)
    token_type_ids = rng.integers(0, config.type_vocab_size, size=shape) * mask
    inputs: dict[str, np.ndarray] = {
        "input_ids": input_ids.astype(np.int64),
        "attention_mask": mask,
        "token_type_ids": token_type_ids.astype(np.int64),
    }
    if task == "masked_lm":
        chosen = (rng.random(shape) < 0.4) & (mask == 1)
        chosen[0, 0] = True
        inputs["labels"] = np.where(chosen, rng.integers(low, config.vocab_size, size=shape), -100)
    elif task == "causal_lm":
        inputs["labels"] = np.where(mask == 1, input_ids, -100)
        enc_len = max(2, seq_len // 2 + 1)
        inputs["encoder_hidden_states"] = rng.standard_normal((batch, enc_len, config.hidden_size)).astype(np.float32)
        enc_mask = np.ones((batch, enc_len), dtype=np.int64)
        enc_mask[1:, enc_len - 1 :] = 0
        inputs["encoder_attention_mask"] = enc_mask
    elif task == "sequence_classification":
        inputs["labels"] = rng.integers(0, config.num_labels, size=(batch,))
    elif task == "multiple_choice":
        inputs["labels"] = rng.integers(0, NUM_CHOICES, size=(batch,))
    elif task == "token_classification":
        inputs["labels"] = np.where(mask == 1, rng.integers(0, config.num_labels, size=shape), -100)
    elif task == "question_answering":
        inputs["start_positions"] = rng.integers(0, keep, size=(batch,))
        inputs["end_positions"] = rng.integers(0, keep, size=(batch,))
    return {k: (v.astype(np.int64) if v.dtype.kind in "iu" else v) for k, v in inputs.items()}


# -- results -----------------------------------------------------------------------------------


@dataclass
class Comparison:
    """One compared quantity between two runs."""

    left: str  # "torch:float32"
    right: str  # "numpy:float64" or another backend
    task: str
    quantity: str  # output field, "grad", "cache", or "roundtrip"
    kind: str  # tolerance quantity: activations, attentions, loss, gradients
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    passed: bool
    worst: str = ""  # which element: "hidden_states[2]", a tensor name, ...
    detail: str = ""


@dataclass
class ParityReport:
    """Everything a parity run found."""

    config: dict[str, Any]
    backends: list[str]
    tasks: list[str]
    dtypes: list[str]
    reference: str | None
    comparisons: list[Comparison] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a backend failing to run a case
    skipped: list[str] = field(default_factory=list)  # cases a backend does not support
    tokenizers: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every comparison passed and no backend failed."""
        return (
            not self.errors
            and all(c.passed for c in self.comparisons)
            and all(t.get("passed", True) for t in self.tokenizers)
        )

    @property
    def failures(self) -> list[Comparison]:
        """The comparisons out of bounds."""
        return [c for c in self.comparisons if not c.passed]

    def to_json(self) -> str:
        """The whole report as JSON."""
        payload = asdict(self)
        payload["ok"] = self.ok
        return json.dumps(payload, indent=2, default=float)

    def render(self, *, only_failures: bool = False) -> str:
        """A table for the terminal: pair x task x quantity, max abs/rel diff, tolerance, verdict."""
        headers = ["left", "right", "task", "quantity", "max abs", "max rel", "atol", "rtol", "verdict", "worst"]
        rows = [
            [
                c.left,
                c.right,
                c.task,
                c.quantity,
                f"{c.max_abs:.2e}",
                f"{c.max_rel:.2e}",
                f"{c.atol:.0e}",
                f"{c.rtol:.0e}",
                "ok" if c.passed else "FAIL",
                c.worst if not c.passed or c.quantity == "grad" else "",
            ]
            for c in self.comparisons
            if c.passed is False or not only_failures
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        for tok in self.tokenizers:
            lines.append(
                f"tokenizers {tok['model']}: slow vs fast agree on {tok['agreed']}/{tok['lines']} lines"
                + ("" if tok["passed"] else f"; first differences at lines {tok['first_differences']}")
            )
        lines += [f"skipped: {s}" for s in self.skipped]
        lines += [f"ERROR: {e}" for e in self.errors]
        failed = len(self.failures)
        lines.append(
            f"{len(self.comparisons)} comparisons, {failed} failed, {len(self.errors)} errors "
            f"in {self.seconds:.1f} s: {'PASS' if self.ok else 'FAIL'}"
        )
        return "\n".join(lines)


# -- running -----------------------------------------------------------------------------------


@dataclass
class _Run:
    backend: str
    dtype: str
    outputs: dict[str, Any]
    loss: float
    grads: dict[str, np.ndarray]
    cache_logits: np.ndarray | None = None
    full_last_logits: np.ndarray | None = None
    valid_rows: np.ndarray | None = None  # rows with at least one real token

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.dtype}"


def _as_list(value: Any) -> list[np.ndarray]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [np.asarray(v) for v in value]
    return [np.asarray(value)]


def _cache_step(backend: Backend, model: Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Logits of the last position computed from a cache of the others (decoders)."""
    prefix = {
        k: (v[:, :-1] if k in ("input_ids", "attention_mask", "token_type_ids") else v)
        for k, v in inputs.items()
        if k != "labels"
    }
    first = backend.forward(model, prefix, use_cache=True)
    past = first.get("past_key_values")
    if not past:
        raise RemBertError(f"backend {backend.name!r} returned no past_key_values with use_cache=True")
    step = {
        "input_ids": inputs["input_ids"][:, -1:],
        "token_type_ids": inputs["token_type_ids"][:, -1:],
        "attention_mask": inputs["attention_mask"],
    }
    for key in ("encoder_hidden_states", "encoder_attention_mask"):
        if key in inputs:
            step[key] = inputs[key]
    out = backend.forward(model, step, past_key_values=past, use_cache=True)
    return np.asarray(out["logits"])[:, -1]


def _run_case(
    backend: Backend,
    config: RemBertConfig,
    task: str,
    dtype: str,
    tensors: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
) -> _Run:
    model = backend.build_model(config, task, dtype=dtype)
    backend.load_tensors(model, tensors)
    outputs = backend.forward(model, inputs, output_hidden_states=True, output_attentions=True)
    # The bare model has no loss, hence no gradients; every head has both.
    loss, grads = backend.gradients(model, inputs) if task != "base" else (float("nan"), {})
    run = _Run(backend.name, dtype, dict(outputs), float(loss), dict(grads))
    if task == "causal_lm":
        run.cache_logits = _cache_step(backend, model, inputs)
        run.full_last_logits = np.asarray(outputs["logits"])[:, -1]
        mask = np.asarray(inputs["attention_mask"])
        run.valid_rows = np.asarray(mask.reshape(mask.shape[0], -1).any(axis=-1))
    return run


def _compare_arrays(
    left: Sequence[np.ndarray], right: Sequence[np.ndarray], names: Sequence[str], tol: Tolerance
) -> tuple[float, float, bool, str, str]:
    worst_abs, worst_rel, passed, worst, detail = 0.0, 0.0, True, "", ""
    if len(left) != len(right):
        return float("inf"), float("inf"), False, "", f"{len(left)} vs {len(right)} entries"
    for a, b, name in zip(left, right, names, strict=True):
        a64 = np.asarray(a, dtype=np.float64)
        b64 = np.asarray(b, dtype=np.float64)
        if a64.shape != b64.shape:
            return float("inf"), float("inf"), False, name, f"shape {a64.shape} vs {b64.shape}"
        if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
            same = np.array_equal(np.isfinite(a64), np.isfinite(b64))
            if not same:
                return float("inf"), float("inf"), False, name, "non-finite values differ"
            a64, b64 = np.nan_to_num(a64), np.nan_to_num(b64)
        abs_d, rel_d = max_diffs(a64, b64, floor=tol.atol)
        ok = bool(np.all(np.abs(a64 - b64) <= tol.atol + tol.rtol * np.abs(b64)))
        if abs_d >= worst_abs:
            worst_abs, worst = abs_d, name
        worst_rel = max(worst_rel, rel_d)
        if not ok and passed:
            passed, detail = False, f"first out of bounds: {name}"
    return worst_abs, worst_rel, passed, worst, detail


def _compare_runs(left: _Run, right: _Run, task: str, tol_dtype: str, *, two_sided: bool) -> list[Comparison]:
    """Compare every output field, the gradients and the cache step of two runs.

    ``two_sided``: both runs carry rounding error (two backends), rather than one
    against the float64 reference.
    """
    out: list[Comparison] = []

    def add(quantity: str, kind: str, a: Sequence[np.ndarray], b: Sequence[np.ndarray], names: Sequence[str]) -> None:
        tol = get_tolerance(tol_dtype, kind, cross_framework=True, two_sided=two_sided)
        abs_d, rel_d, ok, worst, detail = _compare_arrays(a, b, names, tol)
        out.append(
            Comparison(
                left.label, right.label, task, quantity, kind, abs_d, rel_d, tol.atol, tol.rtol, ok, worst, detail
            )
        )

    for name, kind in _FIELD_QUANTITY.items():
        if name == "cache_step_logits":
            continue
        a, b = _as_list(left.outputs.get(name)), _as_list(right.outputs.get(name))
        if not a and not b:
            continue
        add(name, kind, a, b, [f"{name}[{i}]" if len(a) > 1 else name for i in range(len(a))])
    if task == "base":
        return out
    add("loss(grad)", "loss", [np.asarray(left.loss)], [np.asarray(right.loss)], ["loss"])
    names = sorted(set(left.grads) | set(right.grads))
    missing = [n for n in names if n not in left.grads or n not in right.grads]
    if missing:
        tol = get_tolerance(tol_dtype, "gradients", cross_framework=True, two_sided=two_sided)
        out.append(
            Comparison(
                left.label,
                right.label,
                task,
                "grad",
                "gradients",
                float("inf"),
                float("inf"),
                tol.atol,
                tol.rtol,
                False,
                missing[0],
                f"gradients missing for {len(missing)} tensors, e.g. {missing[0]}",
            )
        )
    else:
        add("grad", "gradients", [left.grads[n] for n in names], [right.grads[n] for n in names], names)
    if left.cache_logits is not None and right.cache_logits is not None:
        rows = left.valid_rows if left.valid_rows is not None else np.ones(len(left.cache_logits), dtype=bool)
        add(
            "cache_step_logits",
            "activations",
            [left.cache_logits[rows]],
            [right.cache_logits[rows]],
            ["cache_step_logits"],
        )
    return out


def _self_checks(run: _Run, task: str) -> list[Comparison]:
    """Within one backend: a cache step must reproduce the full forward's last logits.

    Rows that are padding only are left out: with every key masked, the reference's mask lets each
    position attend to all positions, later ones included, so such a row's full forward depends on
    tokens a cache has not seen yet (its values are meaningless either way).
    """
    if run.cache_logits is None or run.full_last_logits is None:
        return []
    rows = run.valid_rows if run.valid_rows is not None else np.ones(len(run.cache_logits), dtype=bool)
    tol = get_tolerance(run.dtype, "activations", cross_framework=False)
    abs_d, rel_d, ok, worst, detail = _compare_arrays(
        [run.cache_logits[rows]], [run.full_last_logits[rows]], ["cache_step_logits"], tol
    )
    return [
        Comparison(
            run.label,
            run.label + "(no cache)",
            task,
            "cache",
            "activations",
            abs_d,
            rel_d,
            tol.atol,
            tol.rtol,
            ok,
            worst,
            detail,
        )
    ]


def _roundtrip(
    backends: Sequence[Backend], config: RemBertConfig, task: str, tensors: Mapping[str, np.ndarray]
) -> list[Comparison]:
    """Save from each backend, load in the next, save again: tensors must come back bit for bit."""
    out: list[Comparison] = []
    if not backends:
        return out
    chain = [*backends, backends[0]]
    with tempfile.TemporaryDirectory(prefix="rembert-parity-") as tmp:
        current: Mapping[str, np.ndarray] = tensors
        for i, (src, dst) in enumerate(itertools.pairwise(chain)):
            model = src.build_model(config, task, dtype="float32")
            src.load_tensors(model, current)
            exported = src.export_tensors(model)
            path = Path(tmp) / f"step{i}"
            save_safetensors(exported, path)
            with open_checkpoint(path) as ckpt:
                reloaded = {k: np.array(ckpt[k]) for k in ckpt}
            target = dst.build_model(config, task, dtype="float32")
            dst.load_tensors(target, reloaded)
            current = dst.export_tensors(target)
            bad = sorted(
                name
                for name in tensors
                if name not in current or np.asarray(current[name]).tobytes() != np.asarray(tensors[name]).tobytes()
            )
            out.append(
                Comparison(
                    f"{src.name}:float32",
                    f"{dst.name}:float32",
                    task,
                    "roundtrip",
                    "activations",
                    0.0 if not bad else float("inf"),
                    0.0 if not bad else float("inf"),
                    0.0,
                    0.0,
                    not bad,
                    bad[0] if bad else "",
                    f"{len(bad)} tensors changed" if bad else "",
                )
            )
    return out


def run_parity(
    backends: Sequence[Backend],
    *,
    tasks: Iterable[str] = TASKS,
    dtypes: Iterable[str] = ("float32", "bfloat16"),
    config: RemBertConfig | None = None,
    tensors: Mapping[str, np.ndarray] | None = None,
    reference: Backend | None = None,
    reference_dtype: str = "float64",
    batch: int = 3,
    seq_len: int = 8,
    seed: int = 0,
    roundtrip: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ParityReport:
    """Run every backend on every task and dtype and compare; see the module docstring.

    ``tensors`` (canonical, e.g. read from a checkpoint) replace the seeded
    weights; tensors a task needs that it lacks (another head) are seeded.
    ``progress`` is called with a short label before each case.
    """
    start = time.perf_counter()
    base = config or default_config()
    tasks = list(tasks)
    dtypes = list(dtypes)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise RemBertError(f"unknown tasks {unknown}; choose from {TASKS}")
    report = ParityReport(
        config=base.to_dict(),
        backends=[b.name for b in backends],
        tasks=tasks,
        dtypes=dtypes,
        reference=f"{reference.name}:{reference_dtype}" if reference is not None else None,
    )
    for task in tasks:
        cfg = task_config(base, task)
        weights = seeded_tensors(cfg, task, seed)
        if tensors is not None:
            schema = build_schema(cfg, task)
            for key, value in tensors.items():
                name = schema.canonical_name(key)
                if name is not None and tuple(np.shape(value)) == schema[name].shape:
                    weights[name] = np.asarray(value, dtype=np.float32)
        inputs = make_inputs(cfg, task, batch=batch, seq_len=seq_len, seed=seed)
        ref_run: _Run | None = None
        if reference is not None:
            if progress:
                progress(f"{task} {reference.name}:{reference_dtype}")
            try:
                ref_run = _run_case(reference, cfg, task, reference_dtype, weights, inputs)
                report.comparisons += _self_checks(ref_run, task)
            except Exception as exc:  # a broken backend is a finding, not a crash
                report.errors.append(f"{reference.name}:{reference_dtype} {task}: {type(exc).__name__}: {exc}")
        for dtype in dtypes:
            runs: list[_Run] = []
            for backend in backends:
                if task not in backend.tasks or dtype not in backend.dtypes:
                    report.skipped.append(f"{backend.name}:{dtype} {task} (not supported by the backend)")
                    continue
                if progress:
                    progress(f"{task} {backend.name}:{dtype}")
                try:
                    run = _run_case(backend, cfg, task, dtype, weights, inputs)
                except Exception as exc:
                    report.errors.append(f"{backend.name}:{dtype} {task}: {type(exc).__name__}: {exc}")
                    continue
                report.comparisons += _self_checks(run, task)
                if ref_run is not None:
                    report.comparisons += _compare_runs(run, ref_run, task, dtype, two_sided=False)
                for other in runs:
                    report.comparisons += _compare_runs(run, other, task, dtype, two_sided=True)
                runs.append(run)
        if roundtrip:
            able = [b for b in backends if task in b.tasks and "float32" in b.dtypes]
            if reference is not None and reference not in able:
                able.append(reference)
            if progress:
                progress(f"{task} round trip")
            try:
                report.comparisons += _roundtrip(able, cfg, task, weights)
            except Exception as exc:
                report.errors.append(f"round trip {task}: {type(exc).__name__}: {exc}")
    report.seconds = time.perf_counter() - start
    return report


def tokenizer_parity(model_file: str | os.PathLike[str], corpus: str | os.PathLike[str]) -> dict[str, Any]:
    """Slow vs fast tokenizer agreement over every line of ``corpus`` (ids, and decode)."""
    from rembert_core.plugins import get_tokenizer

    slow_cls = get_tokenizer("sentencepiece").load()
    fast_cls = get_tokenizer("fast").load()
    slow = slow_cls(vocab_file=str(model_file))
    fast = fast_cls(vocab_file=str(model_file))
    lines = Path(corpus).read_text(encoding="utf-8").splitlines()
    differing: list[int] = []
    for number, line in enumerate(lines, start=1):
        a = slow(line)["input_ids"]
        b = fast(line)["input_ids"]
        if a != b or slow.decode(a) != fast.decode(b):
            differing.append(number)
    return {
        "model": Path(model_file).name,
        "corpus": Path(corpus).name,
        "lines": len(lines),
        "agreed": len(lines) - len(differing),
        "first_differences": differing[:5],
        "passed": not differing,
    }
