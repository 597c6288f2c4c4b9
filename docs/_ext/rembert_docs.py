"""Sphinx extension of the rembert docs: figures and tables generated from real runs at build time.

* ``parity.png``: the maximum error of every backend against the float64 reference, per task head and
  dtype, from a ``rembert parity`` JSON report. The report is the file named by the environment variable
  ``REMBERT_PARITY_REPORT`` (``nox -s docs`` runs ``rembert parity`` on the embedded tiny config and sets
  it); without the variable the extension runs that command itself.
* ``bench.png`` and the ``bench-table`` directive: speed-up over the reference per benchmark configuration,
  from ``docs/_data/bench.json`` (config value ``rembert_bench_json``), schema::

      {"command": str, "machine": str, "date": str,
       "results": [{"name": str, "framework": "torch" | "tf" | "tokenizers", "dtype": str, "shape": str,
                    "ours_ms": float, "reference_ms": float, "speedup": float,
                    "target": float | null, "met": bool | null}]}

* the ``parity-summary`` directive: a table of the same parity report, worst error per head and dtype.

Figures are written into ``_generated/`` under the source directory (git-ignored) and copied into the
site by the ``figure`` directives that use them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

GENERATED = "_generated"
PARITY_COMMAND = ["parity", "--config", "tiny", "--no-tokenizers", "--no-progress"]
BENCH_KEYS = {"command", "machine", "date", "results"}
FRAMEWORKS = ("torch", "tf", "tokenizers")
RESULT_KEYS = {"name", "framework", "dtype", "shape", "ours_ms", "reference_ms", "speedup", "target", "met"}


# -- data ----------------------------------------------------------------------------------------


def load_bench(path: Path) -> dict[str, Any]:
    """Read and validate a bench JSON file (schema in the module docstring)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExtensionError(f"cannot read the bench results {path}: {exc}") from exc
    missing = BENCH_KEYS - set(data)
    if missing:
        raise ExtensionError(f"{path}: missing keys {sorted(missing)}")
    if not data["results"]:
        raise ExtensionError(f"{path}: 'results' is empty")
    for i, row in enumerate(data["results"]):
        absent = RESULT_KEYS - set(row)
        if absent:
            raise ExtensionError(f"{path}: results[{i}] lacks {sorted(absent)}")
        if row["framework"] not in FRAMEWORKS:
            raise ExtensionError(
                f"{path}: results[{i}].framework must be one of {FRAMEWORKS}, got {row['framework']!r}"
            )
    return data


def parity_report(app: Sphinx) -> dict[str, Any]:
    """The parity report of this build: the file from REMBERT_PARITY_REPORT, else a fresh run."""
    env_path = os.environ.get("REMBERT_PARITY_REPORT")
    if env_path:
        path = Path(env_path)
    else:
        path = Path(app.srcdir) / GENERATED / "parity.json"
        command = [sys.executable, "-m", "rembert_core.cli", *PARITY_COMMAND, "--report", str(path)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.is_file():
            raise ExtensionError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    try:
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExtensionError(f"cannot read the parity report {path}: {exc}") from exc
    if not report.get("comparisons"):
        raise ExtensionError(f"the parity report {path} holds no comparisons")
    return report


def worst_against_reference(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(task, 'backend:dtype') -> the comparison with the largest max_abs against the float64 reference."""
    reference = report.get("reference")
    worst: dict[tuple[str, str], dict[str, Any]] = {}
    for c in report["comparisons"]:
        # "reference" is a run label ("numpy:float64"), or a backend name in older reports.
        right = c["right"]
        against_reference = reference is not None and (right == reference or right.startswith(f"{reference}:"))
        if not against_reference or c["quantity"] == "roundtrip":
            continue
        key = (c["task"], c["left"])
        if key not in worst or c["max_abs"] > worst[key]["max_abs"]:
            worst[key] = c
    if not worst:
        raise ExtensionError("the parity report has no comparisons against a reference backend")
    return worst


def bench_label(row: dict[str, Any]) -> str:
    return f"{row['name']} ({row['framework']}, {row['dtype']}, {row['shape']})"


# -- figures -------------------------------------------------------------------------------------


def plot_parity(report: dict[str, Any], out: Path) -> None:
    """Grouped bars: max |error| vs the float64 reference per task head, one bar per backend:dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worst = worst_against_reference(report)
    tasks = [t for t in report["tasks"] if any(k[0] == t for k in worst)]
    runs = sorted({k[1] for k in worst}, key=lambda s: (s.split(":")[1], s.split(":")[0]))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    for i, run in enumerate(runs):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(tasks))]
        ys = [worst[(t, run)]["max_abs"] if (t, run) in worst else 0.0 for t in tasks]
        ax.bar(xs, [max(y, 1e-12) for y in ys], width=width, label=run)
    for dtype in sorted({r.split(":")[1] for r in runs}):
        bounds = [c["atol"] for c in worst.values() if c["left"].endswith(f":{dtype}") and c["kind"] == "activations"]
        if bounds:
            ax.axhline(max(bounds), linestyle="--", linewidth=0.8, color="grey")
            ax.annotate(f"{dtype} activation bound", (len(tasks) - 0.5, max(bounds)), ha="right", va="bottom")
    ax.set_yscale("log")
    ax.set_xticks(range(len(tasks)), [t.replace("_", "\n") for t in tasks], fontsize=8)
    ax.set_ylabel("max |backend - float64 reference|\n(any output or gradient)")
    layers = report["config"].get("num_hidden_layers")
    ax.set_title(f"rembert parity, embedded tiny config ({layers} layers): worst error per head and dtype")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="backend:dtype")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def plot_bench(data: dict[str, Any], out: Path) -> None:
    """Horizontal bars: speed-up over the reference per configuration, targets marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["results"]
    labels = [bench_label(r) for r in rows]
    colors = ["tab:green" if r["met"] else ("tab:red" if r["met"] is False else "tab:blue") for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.6), dpi=110)
    ys = range(len(rows))
    speedups = [r["speedup"] for r in rows]
    # A log axis when the ratios span a decade (tokenizers reach 60x, models 1-2x): 1x stays in the middle.
    log = max(speedups) / max(min(speedups), 1e-9) > 10
    # On the log axis bars start at 1x (a bar left of it: slower than the reference).
    ax.barh(list(ys), [s - 1.0 for s in speedups] if log else speedups, left=1.0 if log else 0.0, color=colors)
    if log:
        ax.set_xscale("log")
    for y, r in zip(ys, rows, strict=True):
        if r["target"] is not None:
            ax.plot([r["target"], r["target"]], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        ax.annotate(f"{r['speedup']:.2f}x", (r["speedup"], y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.margins(x=0.12)
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(
        "speed-up = reference time / our time (> 1: faster; black tick: target" + ("; log scale)" if log else ")")
    )
    ax.set_title(f"{data['machine']}, {data['date']}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


# -- directives ----------------------------------------------------------------------------------


def list_table(header: list[str], rows: list[list[str]], caption: str) -> list[str]:
    """reStructuredText lines of a list-table."""
    lines = [f".. list-table:: {caption}", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return lines


class _TableDirective(SphinxDirective):
    has_content = False

    def table_lines(self) -> list[str]:
        raise ExtensionError(f"{type(self).__name__} must define table_lines")

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.table_lines(), source="rembert_docs"), self.content_offset, container)
        return list(container.children)


class BenchTable(_TableDirective):
    """``.. bench-table::`` the bench results as a table (from ``rembert_bench_json``)."""

    def table_lines(self) -> list[str]:
        path = Path(self.env.srcdir) / self.config.rembert_bench_json
        self.env.note_dependency(str(path))
        data = load_bench(path)
        rows = [
            [
                r["name"],
                r["framework"],
                r["dtype"],
                r["shape"],
                f"{r['ours_ms']:.2f}",
                f"{r['reference_ms']:.2f}",
                f"{r['speedup']:.2f}x",
                "-" if r["target"] is None else f"{r['target']:.2f}x",
                {True: "yes", False: "no", None: "-"}[r["met"]],
            ]
            for r in data["results"]
        ]
        header = ["benchmark", "framework", "dtype", "shape", "ours (ms)", "reference (ms)", "speed-up", "target"]
        header.append("met")
        caption = f"Measured on {data['machine']} ({data['date']}) with ``{data['command']}``"
        return list_table(header, rows, caption)


class ParitySummary(_TableDirective):
    """``.. parity-summary::`` worst error against the float64 reference per head and backend:dtype."""

    def table_lines(self) -> list[str]:
        report = self.env.app.rembert_parity  # type: ignore[attr-defined]
        worst = worst_against_reference(report)
        runs = sorted({k[1] for k in worst}, key=lambda s: (s.split(":")[1], s.split(":")[0]))
        rows = []
        for task in report["tasks"]:
            cells = []
            for run in runs:
                c = worst.get((task, run))
                verdict = "" if c is None or c["passed"] else " FAIL"
                cells.append("-" if c is None else f"{c['max_abs']:.1e} ({c['quantity']}){verdict}")
            rows.append([task, *cells])
        verdict = "PASS" if report.get("ok") else "FAIL"
        count = len(report["comparisons"])
        caption = f"Worst max abs error against the float64 reference ({count} comparisons: {verdict})"
        return list_table(["head", *runs], rows, caption)


# -- wiring --------------------------------------------------------------------------------------


def generate(app: Sphinx) -> None:
    """builder-inited: run/read the parity report and the bench results, write the figures."""
    out = Path(app.srcdir) / GENERATED
    report = parity_report(app)
    app.rembert_parity = report  # type: ignore[attr-defined]
    plot_parity(report, out / "parity.png")
    plot_bench(load_bench(Path(app.srcdir) / app.config.rembert_bench_json), out / "bench.png")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("rembert_bench_json", "_data/bench.json", "env")
    app.add_directive("bench-table", BenchTable)
    app.add_directive("parity-summary", ParitySummary)
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
