"""Sphinx extension of the rembert docs: figures and tables generated from real runs at build time.

* ``parity.png``: the worst error of every run against the references (transformers' classes and the float64
  run) as a fraction of its bound, per task head, from a ``rembert parity`` JSON report. The report is the
  file named by the environment variable ``REMBERT_PARITY_REPORT`` (``nox -s docs`` runs ``rembert parity`` on
  the embedded tiny config and sets it); without the variable the extension runs that command itself.
* the ``parity-summary`` directive: the verdict, the rule, the summary table of that report (one line per pair
  of runs, a column per head), the checks, and a link to ``parity-report.html``: the report's HTML view
  (every compared field in a sortable table, and its figure), written into the site by this extension.
* ``bench.png`` and the ``bench-table`` directive: speed-up over the reference per benchmark configuration,
  from ``docs/_data/bench.json`` (config value ``rembert_bench_json``), schema::

      {"command": str, "machine": str, "date": str,
       "results": [{"name": str, "framework": "torch" | "tf" | "tokenizers", "dtype": str, "shape": str,
                    "ours_ms": float, "reference_ms": float, "speedup": float,
                    "target": float | null, "met": bool | null}]}

The directives build docutils nodes (tables, paragraphs, lists), never markup text: text parsed inside a MyST
page would be read as Markdown, and a reStructuredText ``list-table`` would show as a paragraph. Sphinx's
theme (furo) wraps every table in a horizontally scrolling container, so wide tables scroll.

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
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

GENERATED = "_generated"
#: The HTML view of the build's parity report, at the root of the site.
PARITY_HTML = "parity-report.html"
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


def parity_object(report: dict[str, Any]) -> Any:
    """The JSON report as a :class:`rembert_core.parity.ParityReport` (its summary and HTML views)."""
    from rembert_core.parity import ParityReport

    return ParityReport.from_dict(report)


def reference_rows(report: dict[str, Any]) -> list[Any]:
    """The summary rows against a reference: transformers' classes or the float64 run (not pairs of ours)."""
    rows = [r for r in parity_object(report).summary_rows() if r.group in ("reference", "exact")]
    if not rows:
        raise ExtensionError("the parity report has no comparisons against a reference")
    return rows


def bench_label(row: dict[str, Any]) -> str:
    return f"{row['name']} ({row['framework']}, {row['dtype']}, {row['shape']})"


# -- figures -------------------------------------------------------------------------------------


def plot_parity(report: dict[str, Any], out: Path) -> None:
    """Grouped bars: per task head, the worst error of each run against each reference as a fraction of its bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = reference_rows(report)
    tasks = list(report["tasks"])
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    colours = plt.get_cmap("tab20").colors
    for i, row in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(tasks))]
        ys = [row.cells[t][0] if t in row.cells else 0.0 for t in tasks]
        label = f"{row.left} vs {row.right}"
        ax.bar(xs, [max(y, 1e-4) for y in ys], width=width, label=label, color=colours[i % len(colours)])
    ax.axhline(1.0, linestyle="--", linewidth=1.0, color="tab:red")
    ax.annotate("bound", (len(tasks) - 0.5, 1.0), ha="right", va="bottom", color="tab:red")
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 2.0)
    ax.set_xticks(range(len(tasks)), [t.replace("_", "\n") for t in tasks], fontsize=8)
    ax.set_ylabel("worst |a - b| / (atol + rtol |b|)\n(any output, loss or gradient)")
    layers = report["config"].get("num_hidden_layers")
    ax.set_title(f"rembert parity, embedded tiny config ({layers} layers): worst error as a fraction of its bound")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="run vs reference")
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


def paragraph(*parts: str | nodes.Node) -> nodes.paragraph:
    """A paragraph of plain text and inline nodes."""
    para = nodes.paragraph()
    for part in parts:
        para += nodes.Text(part) if isinstance(part, str) else part
    return para


def table(header: list[str], rows: list[list[str]], caption: str, *, classes: tuple[str, ...] = ()) -> nodes.table:
    """A docutils table (a real one: Sphinx renders it, and the theme makes it scroll when it is wide)."""
    node = nodes.table(classes=["rembert-generated", *classes])
    node += nodes.title(text=caption)
    group = nodes.tgroup(cols=len(header))
    node += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    for target, cells in [(head, header), *((body, row) for row in rows)]:
        line = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=cell)
            line += entry
        target += line
    return node


class BenchTable(SphinxDirective):
    """``bench-table``: the bench results as a table (from ``rembert_bench_json``)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
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
        caption = f"Measured on {data['machine']} ({data['date']}) with {data['command']}"
        return [table(header, rows, caption, classes=("bench-table",))]


class ParitySummary(SphinxDirective):
    """``parity-summary``: the verdict, the rule, the summary table and the checks of this build's parity run."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from rembert_core.parity import HEAD_LABELS, RULE, format_ratio

        report = parity_object(self.env.app.rembert_parity)  # type: ignore[attr-defined]
        rows = report.summary_rows()
        tasks = list(report.tasks)
        header = ["pair of runs", *(HEAD_LABELS.get(t, t) for t in tasks), "verdict"]
        body = [
            [f"{r.left} vs {r.right}", *(format_ratio(r.cells.get(t)) for t in tasks), "PASS" if r.passed else "FAIL"]
            for r in rows
        ]
        caption = "Worst error as a fraction of its bound, per pair of runs and head"
        out: list[nodes.Node] = [
            paragraph(nodes.strong(text=report.verdict())),
            paragraph(RULE),
            table(header, body, caption, classes=("parity-summary",)),
        ]
        items = nodes.bullet_list()
        for name, what, _, ok in report.checks():
            items += nodes.list_item("", paragraph(nodes.strong(text=name), f": {what}: {'PASS' if ok else 'FAIL'}"))
        for remark in report.remarks():
            items += nodes.list_item("", paragraph(remark))
        if len(items):
            out.append(items)
        link = nodes.reference("", PARITY_HTML, refuri=PARITY_HTML, internal=False)
        out.append(
            paragraph(
                "Every compared field of this run, in a table you can sort, with the figure of the summary: ",
                link,
                " (the same page rembert parity --report parity.html writes).",
            )
        )
        return out


# -- wiring --------------------------------------------------------------------------------------


def generate(app: Sphinx) -> None:
    """builder-inited: run/read the parity report and the bench results, write the figures."""
    out = Path(app.srcdir) / GENERATED
    report = parity_report(app)
    app.rembert_parity = report  # type: ignore[attr-defined]
    plot_parity(report, out / "parity.png")
    plot_bench(load_bench(Path(app.srcdir) / app.config.rembert_bench_json), out / "bench.png")


def write_parity_html(app: Sphinx, exception: Exception | None) -> None:
    """build-finished: the HTML view of the parity report at the root of the site."""
    report = getattr(app, "rembert_parity", None)
    if exception is not None or report is None or app.builder.format != "html":
        return
    (Path(app.outdir) / PARITY_HTML).write_text(parity_object(report).to_html(), encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("rembert_bench_json", "_data/bench.json", "env")
    app.add_directive("bench-table", BenchTable)
    app.add_directive("parity-summary", ParitySummary)
    app.connect("builder-inited", generate)
    app.connect("build-finished", write_parity_html)
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
