"""The parity engine: every backend, every task head, every output and gradient, against each other and references.

For each task and dtype, every selected backend builds the same model from the
same canonical tensors, runs the same padded batch (token type ids, labels; a
key/value cache step for decoders) and returns every output field and the
gradient of the loss with respect to every canonical tensor. The engine then
compares

* each backend against the exact float64 run (by default the NumPy example
  backend in float64, when installed),
* every pair of backends computing in the same dtype, the reference
  implementations among them (backends that declare ``Backend.reference``:
  transformers' PyTorch and TF classes, through the reference plugin) on the
  right of each pair,

with bounds from the one tolerance table (:mod:`rembert_core.tolerances`), and
checks that canonical tensors survive a save in one backend, a load in another
and a save again bit for bit. The result is a :class:`ParityReport`: a summary
(one line per pair of runs, the worst error per head as a fraction of its
bound), the per-field table, a JSON document, an HTML report, and ``ok`` for the
exit code.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rembert_core.backend import Backend
from rembert_core.config import RemBertConfig
from rembert_core.errors import RemBertError
from rembert_core.io.tensors import open_checkpoint, save_safetensors
from rembert_core.parity_cases import default_config, make_inputs, seeded_tensors, task_config
from rembert_core.parity_format import HEAD_LABELS, HEADER_WIDTH, RULE, _join, _wrap, format_ratio
from rembert_core.schema import TASKS, build_schema
from rembert_core.tolerances import Tolerance, get_tolerance

__all__ = [
    "HEAD_LABELS",
    "RULE",
    "TOKENIZER_FIXTURES",
    "Comparison",
    "ParityReport",
    "SummaryRow",
    "default_config",
    "format_ratio",
    "make_inputs",
    "run_parity",
    "seeded_tensors",
    "task_config",
    "tokenizer_parity",
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


#: The SentencePiece models shipped with the project and the corpora they were trained on.
TOKENIZER_FIXTURES = (("test_model.model", "botchan.txt"), ("test_ja_model.model", "wagahaiwa_nekodearu.txt"))


# -- results -----------------------------------------------------------------------------------

#: Comparisons within one backend, and across all of them: summarised as checks, not as pairs.
CHECK_QUANTITIES = ("cache", "roundtrip")


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
    #: The worst |a - b| / (atol + rtol * |b|): the error as a fraction of its bound (<= 1 passes).
    ratio: float = 0.0
    #: "" for the whole batch; "rows with a real token" when a backend leaves out rows that are padding only.
    rows: str = ""


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary: a pair of runs, and per head the worst ratio and whether all passed."""

    left: str
    right: str
    group: str  # "reference" (right is a reference implementation), "exact" (the float64 run), "pair"
    cells: dict[str, tuple[float, bool]]  # task -> (worst ratio, every comparison passed)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.cells.values())

    @property
    def worst(self) -> float:
        return max((ratio for ratio, _ in self.cells.values()), default=0.0)


@dataclass
class ParityReport:
    """Everything a parity run found."""

    config: dict[str, Any]
    backends: list[str]
    tasks: list[str]
    dtypes: list[str]
    reference: str | None  # the float64 run every backend is compared with ("numpy:float64"), if any
    comparisons: list[Comparison] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a backend failing to run a case
    skipped: list[str] = field(default_factory=list)  # cases a backend does not support
    tokenizers: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: Reference implementations among the backends: name -> what it is ("transformers 4.57.6 (PyTorch classes)").
    references: dict[str, str] = field(default_factory=dict)
    #: Backends that could not take part, with the reason (a framework that cannot be imported, ...).
    unavailable: dict[str, str] = field(default_factory=dict)
    #: Versions and distributions of the backends: name -> "0.1.0 (rembert-torch)".
    versions: dict[str, str] = field(default_factory=dict)
    #: What was run: "embedded tiny config" or the checkpoint, batch, seq_len, seed.
    setup: dict[str, Any] = field(default_factory=dict)
    #: Remarks shown under the summary (a backend compared on part of the batch, ...).
    notes: list[str] = field(default_factory=list)

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

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ParityReport:
        """The report a :meth:`to_json` document describes."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in payload.items() if k in known}
        data["comparisons"] = [
            Comparison(**{k: v for k, v in c.items() if k in _COMPARISON_FIELDS})
            for c in payload.get("comparisons", [])
        ]
        return cls(**data)

    def to_json(self) -> str:
        """The whole report as JSON."""
        payload = asdict(self)
        payload["ok"] = self.ok
        payload["rule"] = RULE
        payload["summary"] = [
            {**asdict(row), "cells": {t: {"ratio": r, "passed": ok} for t, (r, ok) in row.cells.items()}}
            for row in self.summary_rows()
        ]
        return json.dumps(payload, indent=2, default=float)

    # -- the summary ---------------------------------------------------------------------------------

    def summary_rows(self) -> list[SummaryRow]:
        """Per pair of runs, the worst ratio per head: references first, then the float64 run, then pairs."""
        cells: dict[tuple[str, str], dict[str, tuple[float, bool]]] = {}
        for c in self.comparisons:
            if c.quantity in CHECK_QUANTITIES:
                continue
            row = cells.setdefault((c.left, c.right), {})
            ratio, ok = row.get(c.task, (0.0, True))
            row[c.task] = (max(ratio, c.ratio), ok and c.passed)
        rows = [SummaryRow(left, right, self._group(right), found) for (left, right), found in cells.items()]
        group = {"reference": 0, "exact": 1, "pair": 2}
        dtypes = {d: i for i, d in enumerate(self.dtypes)}
        backends = {b: i for i, b in enumerate(self.backends)}

        def key(row: SummaryRow) -> tuple[int, ...]:
            left, _, dtype = row.left.partition(":")
            right = row.right.partition(":")[0]
            others = len(backends)
            # Within a dtype: against a reference (ours before the other reference), then float64, then pairs.
            return (
                dtypes.get(dtype, len(dtypes)),
                group[row.group],
                backends.get(right, others),
                left in self.references,
                backends.get(left, others),
            )

        return sorted(rows, key=key)

    def _group(self, right: str) -> str:
        if right == self.reference:
            return "exact"
        return "reference" if right.partition(":")[0] in self.references else "pair"

    def checks(self) -> list[tuple[str, str, float, bool]]:
        """(name, what, worst ratio, passed) of the cache-step, round-trip and tokenizer checks."""
        out: list[tuple[str, str, float, bool]] = []
        cache = [c for c in self.comparisons if c.quantity == "cache"]
        if cache:
            out.append(
                (
                    "cache",
                    f"key/value cache step = full forward at the last position, {len(cache)} decoder runs "
                    f"(worst {max(c.ratio for c in cache):.2f} of the bound)",
                    max(c.ratio for c in cache),
                    all(c.passed for c in cache),
                )
            )
        trips = [c for c in self.comparisons if c.quantity == "roundtrip"]
        if trips:
            first = [c for c in trips if c.task == trips[0].task]
            chain = [c.left.partition(":")[0] for c in first] + [first[-1].right.partition(":")[0]]
            heads = len({c.task for c in trips})
            bad = [c for c in trips if not c.passed]
            what = f"bit for bit through {' > '.join(chain)}, {heads} head{'s' if heads != 1 else ''}"
            if bad:
                what += f" (not {bad[0].left} > {bad[0].right}, {bad[0].task}: {bad[0].worst} changed)"
            out.append(("roundtrip", what, 0.0 if not bad else float("inf"), not bad))
        if self.tokenizers:
            parts = []
            for tok in self.tokenizers:
                part = f"{tok['agreed']:,}/{tok['lines']:,} lines of {tok['corpus']}"
                if not tok["passed"]:
                    part += f" (first differences at lines {tok['first_differences']})"
                parts.append(part)
            passed = all(t["passed"] for t in self.tokenizers)
            what = f"slow = fast on {_join(parts)}"
            out.append(("tokenizers", what, 0.0 if passed else float("inf"), passed))
        return out

    def header(self) -> list[str]:
        """What ran: the config, the backends found, those unavailable and why, the references in use."""
        setup, cfg = self.setup, self.config
        source = setup.get("source", "embedded config")
        config = (
            f"{source}: {cfg.get('num_hidden_layers')} layers, hidden {cfg.get('hidden_size')}, "
            f"{cfg.get('num_attention_heads')} heads, embeddings {cfg.get('input_embedding_size')}/"
            f"{cfg.get('output_embedding_size')}, vocab {cfg.get('vocab_size')}"
        )
        if set(self.tasks) == set(TASKS):
            cases = f"all {len(TASKS)} heads (the columns below) x {', '.join(self.dtypes)}"
        else:
            cases = f"{', '.join(self.tasks)} x {', '.join(self.dtypes)}"
        if "batch" in setup:
            cases += f"; batch {setup['batch']}x{setup['seq_len']}, seed {setup.get('seed', 0)}"
        ours = [b for b in self.backends if b not in self.references]
        refs = [(name, desc) for name, desc in self.references.items()]
        if self.reference:
            refs.append((self.reference, "the exact run: every backend against float64"))
        width = max([len(name) for name, _ in refs] + [0]) + 2
        entries = [
            ("config", [config]),
            ("backends", [", ".join(self._named(b) for b in ours) or "none"]),
            ("references", [f"{name:<{width}}{desc}" for name, desc in refs] or ["none"]),
            ("unavailable", [f"{name}: {why}" for name, why in self.unavailable.items()] or ["none"]),
            ("cases", [cases]),
        ]
        lines = []
        for title, values in entries:
            for i, value in enumerate(values):
                wrapped = textwrap.wrap(value, HEADER_WIDTH - 13, break_on_hyphens=False) or [""]
                lines += [f"{title if i == 0 and j == 0 else '':<13}{part}" for j, part in enumerate(wrapped)]
        return lines

    def _named(self, name: str) -> str:
        version = self.versions.get(name)
        return f"{name} {version}" if version else name

    def verdict(self) -> str:
        """The last line: PASS or FAIL, against what, how many comparisons, the worst one."""
        count = len(self.comparisons)
        failed = len(self.failures)
        worst = max(
            (c for c in self.comparisons if c.quantity not in CHECK_QUANTITIES), key=lambda c: c.ratio, default=None
        )
        ours = [b for b in self.backends if b not in self.references]
        against = _against(self.references, self.reference)
        heads = f"{len(self.tasks)} head{'s' if len(self.tasks) != 1 else ''}"
        dtypes = " and ".join(self.dtypes)
        if self.ok:
            verb = "agrees" if len(ours) == 1 else "agree"
            text = f"PASS: {_join(ours) or 'the references'} {verb} with {against} on {heads} in {dtypes}"
            text += f" ({count:,} comparisons, none out of bounds"
            if worst is not None:
                text += f"; worst {worst.ratio:.2f} of its bound: {worst.left} vs {worst.right}, "
                text += f"{worst.task} {worst.quantity}"
            text += ")"
        else:
            parts = []
            if failed:
                parts.append(f"{failed:,} of {count:,} comparisons out of bounds (cells above 1.00)")
            if self.errors:
                parts.append(f"{len(self.errors)} cases failed to run")
            bad_tok = [t for t in self.tokenizers if not t.get("passed", True)]
            if bad_tok:
                parts.append(f"{len(bad_tok)} tokenizer checks differ")
            text = f"FAIL against {against}: " + "; ".join(parts)
        return f"{text} in {self.seconds:.1f} s"

    def summary(self, *, header: bool = True) -> str:
        """The terminal view: the header, the rule, one line per pair of runs with a column per head, the checks."""
        lines = [*(self.header() if header else []), "", *_wrap(RULE), ""]
        rows = self.summary_rows()
        tasks = list(self.tasks)
        pair_labels = [f"{r.left} vs {r.right}" for r in rows]
        width = max([len(p) for p in pair_labels] + [len("pair of runs")])
        heads = [HEAD_LABELS.get(t, t) for t in tasks]
        col = max([5, *(len(h) for h in heads)]) + 2
        lines.append(f"{'pair of runs':<{width}}" + "".join(f"{h:>{col}}" for h in heads) + "  verdict")
        for label, row in zip(pair_labels, rows, strict=True):
            cells = "".join(f"{format_ratio(row.cells.get(t)):>{col}}" for t in tasks)
            lines.append(f"{label:<{width}}{cells}  {'PASS' if row.passed else 'FAIL'}")
        if not rows:
            lines.append("(no two runs to compare)")
        for name, what, _, ok in self.checks():
            text = f"{what}: {'PASS' if ok else 'FAIL'}"
            wrapped = _wrap(text, width=HEADER_WIDTH - 12)
            lines += [f"{name if i == 0 else '':<12}{part}" for i, part in enumerate(wrapped)]
        for remark in self.remarks():
            lines += _wrap(remark, indent="  ")
        lines += ["", *_wrap(self.verdict())]
        return "\n".join(lines)

    def remarks(self) -> list[str]:
        """Notes, unsupported cases, skipped checks and errors, one line each."""
        lines = [f"note: {n}" for n in self.notes]
        unsupported: dict[str, list[str]] = {}
        for entry in self.skipped:
            label, _, rest = entry.partition(" ")
            if rest.endswith("(not supported by the backend)"):
                unsupported.setdefault(label, []).append(rest.split(" ")[0])
            else:
                lines.append(f"skipped: {entry}")
        if unsupported:
            runs = [
                f"{label} ({'all heads' if len(t) == len(self.tasks) else ', '.join(t)})"
                for label, t in unsupported.items()
            ]
            lines.append(f"not supported, not run: {', '.join(runs)}")
        lines += [f"ERROR: {e}" for e in self.errors]
        return lines

    def render(self, *, only_failures: bool = False) -> str:
        """The per-field table: pair x task x quantity, max abs/rel diff, bounds, ratio, verdict, worst element."""
        headers = [
            "left",
            "right",
            "task",
            "quantity",
            "max abs",
            "max rel",
            "atol",
            "rtol",
            "ratio",
            "verdict",
            "worst",
        ]
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
                format_ratio((c.ratio, c.passed)),
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

    def to_html(self) -> str:
        """A self-contained HTML report: header, rule, summary, a figure and the sortable per-field table."""
        from rembert_core.parity_html import render_html

        return render_html(self)


_COMPARISON_FIELDS = {f.name for f in fields(Comparison)}


def _against(references: Mapping[str, str], exact: str | None) -> str:
    """ "transformers 4.57.6 (PyTorch and TensorFlow classes) and the float64 run numpy:float64" """
    described: dict[str, list[str]] = {}
    for desc in references.values():
        base, _, kind = desc.partition(" (")
        described.setdefault(base, []).append(kind.rstrip(")").split(",")[0].removesuffix(" classes"))
    parts = [f"{base} ({' and '.join(kinds)} classes)" if all(kinds) else base for base, kinds in described.items()]
    if exact:
        parts.append(f"the float64 reference ({exact})")
    return _join(parts) or "each other (no reference)"


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
    rows: str = ""  # "" for the whole batch, else which rows it ran on

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


def _diffs(a: np.ndarray, b: np.ndarray, tol: Tolerance) -> tuple[float, float, bool, float]:
    """(max abs diff, max rel diff, within bounds, worst ratio to the bound) of two float64 arrays, in few passes.

    The same numbers as :func:`rembert_core.tolerances.max_diffs` (relative differences over elements whose
    magnitude is at least ``atol``) and as the rule ``|a - b| <= atol + rtol * |b|``, computed once each:
    the gradients of RemBERT's real widths are tens of millions of elements per comparison.
    """
    if a.size == 0:
        return 0.0, 0.0, True, 0.0
    a, b = np.atleast_1d(a), np.atleast_1d(b)  # a loss is a 0-d array; buffers below are reused in place
    diff = np.subtract(a, b)
    np.abs(diff, out=diff)
    magnitude = np.abs(b)
    bound = np.multiply(magnitude, tol.rtol)
    bound += tol.atol
    ok = bool(np.all(diff <= bound))
    max_abs = float(diff.max())
    if tol.atol > 0:
        ratio = float(np.divide(diff, bound, out=bound).max())
    else:  # a bit-for-bit bound: any difference is infinitely far out
        positive = bound > 0
        ratio = float(np.max(diff[positive] / bound[positive], initial=0.0))
        ratio = float("inf") if bool(np.any(diff[~positive] > 0)) else ratio
    small = magnitude < max(tol.atol, np.finfo(np.float64).tiny)
    np.divide(diff, magnitude, out=magnitude, where=~small)
    magnitude[small] = 0.0
    return max_abs, float(magnitude.max()), ok, ratio


def _compare_arrays(
    left: Sequence[np.ndarray], right: Sequence[np.ndarray], names: Sequence[str], tol: Tolerance
) -> tuple[float, float, bool, str, str, float]:
    """(max abs, max rel, passed, worst element, detail, worst ratio to the bound) over paired arrays."""
    worst_abs, worst_rel, passed, worst, detail, worst_ratio = 0.0, 0.0, True, "", "", 0.0
    inf = float("inf")
    if len(left) != len(right):
        return inf, inf, False, "", f"{len(left)} vs {len(right)} entries", inf
    for a, b, name in zip(left, right, names, strict=True):
        a64 = np.asarray(a, dtype=np.float64)
        b64 = np.asarray(b, dtype=np.float64)
        if a64.shape != b64.shape:
            return inf, inf, False, name, f"shape {a64.shape} vs {b64.shape}", inf
        if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
            same = np.array_equal(np.isfinite(a64), np.isfinite(b64))
            if not same:
                return inf, inf, False, name, "non-finite values differ", inf
            a64, b64 = np.nan_to_num(a64), np.nan_to_num(b64)
        abs_d, rel_d, ok, ratio = _diffs(a64, b64, tol)
        worst_ratio = max(worst_ratio, ratio)
        if abs_d >= worst_abs:
            worst_abs, worst = abs_d, name
        worst_rel = max(worst_rel, rel_d)
        if not ok and passed:
            passed, detail = False, f"first out of bounds: {name}"
    return worst_abs, worst_rel, passed, worst, detail, worst_ratio


def _compare_runs(left: _Run, right: _Run, task: str, tol_dtype: str, *, two_sided: bool) -> list[Comparison]:
    """Compare every output field, the gradients and the cache step of two runs.

    ``two_sided``: both runs carry rounding error (two backends), rather than one
    against the float64 reference.
    """
    out: list[Comparison] = []
    rows = left.rows or right.rows

    def add(quantity: str, kind: str, a: Sequence[np.ndarray], b: Sequence[np.ndarray], names: Sequence[str]) -> None:
        tol = get_tolerance(tol_dtype, kind, cross_framework=True, two_sided=two_sided)
        abs_d, rel_d, ok, worst, detail, ratio = _compare_arrays(a, b, names, tol)
        out.append(
            Comparison(
                left.label,
                right.label,
                task,
                quantity,
                kind,
                abs_d,
                rel_d,
                tol.atol,
                tol.rtol,
                ok,
                worst,
                detail,
                ratio,
                rows,
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
        inf = float("inf")
        detail = f"gradients missing for {len(missing)} tensors, e.g. {missing[0]}"
        out.append(
            Comparison(
                left.label, right.label, task, "grad", "gradients", inf, inf, tol.atol, tol.rtol, False, missing[0],
                detail, inf, rows,
            )
        )  # fmt: skip
    else:
        add("grad", "gradients", [left.grads[n] for n in names], [right.grads[n] for n in names], names)
    if left.cache_logits is not None and right.cache_logits is not None:
        valid = left.valid_rows if left.valid_rows is not None else np.ones(len(left.cache_logits), dtype=bool)
        add(
            "cache_step_logits",
            "activations",
            [left.cache_logits[valid]],
            [right.cache_logits[valid]],
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
    abs_d, rel_d, ok, worst, detail, ratio = _compare_arrays(
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
            ratio,
            run.rows,
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
            lost = float("inf") if bad else 0.0
            out.append(
                Comparison(
                    f"{src.name}:float32",
                    f"{dst.name}:float32",
                    task,
                    "roundtrip",
                    "activations",
                    lost,
                    lost,
                    0.0,
                    0.0,
                    not bad,
                    bad[0] if bad else "",
                    f"{len(bad)} tensors changed" if bad else "",
                    lost,
                )
            )
    return out


#: The rows a backend that leaves out rows of padding only is compared on (see Backend.padding_only_rows).
REAL_ROWS = "rows with a real token"


def _real_rows(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """``inputs`` without the rows that are padding only, or None when every row holds a real token."""
    mask = np.asarray(inputs["attention_mask"])
    keep = mask.reshape(mask.shape[0], -1).any(axis=-1)
    if keep.all() or not keep.any():
        return None
    return {k: np.asarray(v)[keep] for k, v in inputs.items()}


class _Case:
    """One task's runs: each (backend, dtype, batch) runs once, however many comparisons use it."""

    def __init__(
        self,
        task: str,
        config: RemBertConfig,
        weights: Mapping[str, np.ndarray],
        inputs: Mapping[str, np.ndarray],
        report: ParityReport,
        lost: set[str],
        progress: Callable[[str], None] | None,
    ) -> None:
        self.task, self.config, self.weights, self.inputs = task, config, weights, inputs
        self.trimmed = _real_rows(inputs)
        self.report, self.lost, self.progress = report, lost, progress
        self.runs: dict[tuple[str, str, bool], _Run | None] = {}

    def run(self, backend: Backend, dtype: str, real_rows_only: bool) -> _Run | None:
        """The run of ``backend`` in ``dtype`` (on the rows with a real token only, if asked and some are not)."""
        real_rows_only = real_rows_only and self.trimmed is not None
        key = (backend.name, dtype, real_rows_only)
        if backend.name in self.lost:
            return None
        if key in self.runs:
            return self.runs[key]
        if self.progress:
            self.progress(f"{self.task} {backend.name}:{dtype}" + (" (real rows)" if real_rows_only else ""))
        batch = self.trimmed if self.trimmed is not None and real_rows_only else self.inputs
        run: _Run | None
        try:
            run = _run_case(backend, self.config, self.task, dtype, self.weights, batch)
            run.rows = REAL_ROWS if real_rows_only else ""
        except ImportError as exc:  # its framework is missing or broken: said once, not once per case
            self.lost.add(backend.name)
            self.report.errors.append(f"{backend.name}: cannot import its framework ({type(exc).__name__}: {exc})")
            return None
        except Exception as exc:  # a broken backend is a finding, not a crash
            self.report.errors.append(f"{backend.name}:{dtype} {self.task}: {type(exc).__name__}: {exc}")
            run = None
        self.runs[key] = run
        own_batch = not backend.padding_only_rows and self.trimmed is not None
        if run is not None and real_rows_only == own_batch:
            self.report.comparisons += _self_checks(run, self.task)  # once, on the backend's own batch
        return run


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

    Backends that declare a ``reference`` (transformers' classes, through the reference plugin) run
    first, so that every pair involving one has it on the right: "torch:float32 vs transformers:float32".
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
    ordered = sorted(backends, key=lambda b: not b.reference)  # stable: references first
    report = ParityReport(
        config=base.to_dict(),
        backends=[b.name for b in ordered],
        tasks=tasks,
        dtypes=dtypes,
        reference=f"{reference.name}:{reference_dtype}" if reference is not None else None,
        references={b.name: b.reference for b in ordered if b.reference},
        versions={
            b.name: f"{b.version or '?'} ({b.distribution})" if b.distribution else (b.version or "")
            for b in [*ordered, *([reference] if reference is not None else [])]
        },
        setup={"batch": batch, "seq_len": seq_len, "seed": seed},
    )
    partial = [b.name for b in [*ordered, *([reference] if reference else [])] if not b.padding_only_rows]
    if partial and batch >= 3:
        one = len(partial) == 1
        who, verb, whose = ("it", "computes", "its") if one else ("they", "compute", "their")
        report.notes.append(
            f"{_join(partial)} {'is' if one else 'are'} compared on the {REAL_ROWS} ({who} {verb} rows of padding "
            f"only {whose} own way)"
        )
    lost: set[str] = set()  # backends whose framework failed to import: not tried again
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
        case = _Case(task, cfg, weights, inputs, report, lost, progress)
        get = case.run
        if reference is not None:
            get(reference, reference_dtype, not reference.padding_only_rows)
        for dtype in dtypes:
            done: list[Backend] = []
            for backend in ordered:
                if task not in backend.tasks or dtype not in backend.dtypes:
                    report.skipped.append(f"{backend.name}:{dtype} {task} (not supported by the backend)")
                    continue
                if get(backend, dtype, not backend.padding_only_rows) is None:
                    continue
                if reference is not None:
                    partial_pair = not (backend.padding_only_rows and reference.padding_only_rows)
                    mine, ref_run = get(backend, dtype, partial_pair), get(reference, reference_dtype, partial_pair)
                    if mine is not None and ref_run is not None:
                        report.comparisons += _compare_runs(mine, ref_run, task, dtype, two_sided=False)
                for other in done:
                    partial_pair = not (backend.padding_only_rows and other.padding_only_rows)
                    mine, theirs = get(backend, dtype, partial_pair), get(other, dtype, partial_pair)
                    if mine is not None and theirs is not None:
                        report.comparisons += _compare_runs(mine, theirs, task, dtype, two_sided=True)
                done.append(backend)
        if roundtrip:
            able = [b for b in ordered if task in b.tasks and "float32" in b.dtypes and b.name not in lost]
            if reference is not None and reference not in able and reference.name not in lost:
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
