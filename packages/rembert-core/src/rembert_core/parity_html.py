"""The HTML view of a parity report: one self-contained file (no network, no dependency beyond the standard library).

It shows what the terminal summary shows (the header, the rule, one line per pair of runs with the worst
error per head as a fraction of its bound, the checks), a figure of those ratios on a log scale, and the
per-field table, sortable by any column (click a heading). ``rembert parity --report parity.html`` writes it;
the documentation publishes the one of its build.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from rembert_core.parity_format import HEAD_LABELS, RULE, format_ratio

if TYPE_CHECKING:
    from rembert_core.parity import ParityReport, SummaryRow

__all__ = ["render_html", "summary_figure"]

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.verdict { font-weight: 600; padding: .5em .8em; border-radius: 4px; }
.pass { background: #e6f4ea; } .fail { background: #fce8e6; }
pre.header { background: #f6f8fa; padding: .6em .8em; overflow-x: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; cursor: pointer; user-select: none; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
td.ok { background: #e6f4ea; } td.near { background: #fff4d6; } td.bad { background: #fce8e6; font-weight: 600; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
"""

_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var ascending = !th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var nx = parseFloat(x), ny = parseFloat(y), c;
        c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return ascending ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _number(value: float) -> str:
    """A sort key for data-value: inf sorts last."""
    return "1e308" if math.isinf(value) else repr(float(value))


def _cell_class(ratio: float, passed: bool) -> str:
    if not passed:
        return "bad"
    return "near" if ratio > 0.5 else "ok"


def summary_figure(rows: list[SummaryRow], tasks: list[str], *, width: int = 900) -> str:
    """An SVG dot plot: for each pair of runs (a line) the worst ratio of each head, log scale, the bound at 1."""
    if not rows:
        return ""
    label_w, right_pad, top, line_h = 330, 20, 34, 18
    height = top + line_h * len(rows) + 36
    lo, hi = -4.0, 1.0  # 1e-4 .. 10
    plot_w = width - label_w - right_pad

    def x(ratio: float) -> float:
        value = math.log10(min(max(ratio, 10**lo), 10**hi)) if ratio > 0 else lo
        return label_w + (value - lo) / (hi - lo) * plot_w

    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="11" role="img" '
        'aria-label="worst error as a fraction of its bound, per pair of runs and head">'
    ]
    for power in range(int(lo), int(hi) + 1):
        px = x(10.0**power)
        colour = "#c00" if power == 0 else "#ddd"
        parts.append(f'<line x1="{px:.1f}" y1="{top - 6}" x2="{px:.1f}" y2="{height - 30}" stroke="{colour}"/>')
        text = "1 (bound)" if power == 0 else f"1e{power}"
        parts.append(f'<text x="{px:.1f}" y="{height - 16}" text-anchor="middle">{text}</text>')
    step = min(95.0, (width - label_w - right_pad) / max(len(tasks), 1))
    for i, task in enumerate(tasks):
        lx = label_w + i * step
        parts.append(f'<circle cx="{lx + 4:.1f}" cy="12" r="4" fill="{palette[i % len(palette)]}"/>')
        parts.append(f'<text x="{lx + 11:.1f}" y="16">{_e(HEAD_LABELS.get(task, task))}</text>')
    for j, row in enumerate(rows):
        y = top + j * line_h + line_h / 2
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(row.left)} vs {_e(row.right)}</text>'
        )
        parts.append(f'<line x1="{label_w}" y1="{y:.1f}" x2="{width - right_pad}" y2="{y:.1f}" stroke="#f0f0f0"/>')
        for i, task in enumerate(tasks):
            if task not in row.cells:
                continue
            ratio, passed = row.cells[task]
            colour = palette[i % len(palette)]
            stroke = ' stroke="#c00" stroke-width="2"' if not passed else ""
            parts.append(
                f'<circle cx="{x(ratio):.1f}" cy="{y:.1f}" r="4" fill="{colour}" fill-opacity="0.8"{stroke}>'
                f"<title>{_e(task)}: {ratio:.3g} of the bound</title></circle>"
            )
    parts.append(
        f'<text x="{label_w + plot_w / 2:.0f}" y="{height - 2}" text-anchor="middle">'
        "worst |a - b| / (atol + rtol |b|) per head (log scale; right of the red line fails)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: ParityReport) -> str:
    """The whole report as one HTML document."""
    verdict = report.verdict()
    status = "PASS" if report.ok else "FAIL"
    rows = report.summary_rows()
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rembert parity: {status}</title><style>{_CSS}</style></head><body>",
        f"<h1>rembert parity: {status}</h1>",
        f'<p class="verdict {"pass" if report.ok else "fail"}">{_e(verdict)}</p>',
        f'<pre class="header">{_e(chr(10).join(report.header()))}</pre>',
        f"<p>{_e(RULE)}</p>",
        "<h2>Summary</h2>",
        '<div class="scroll"><table class="summary sortable"><thead><tr><th class="text">pair of runs</th>',
    ]
    out += [f'<th title="{_e(t)}">{_e(HEAD_LABELS.get(t, t))}</th>' for t in report.tasks]
    out.append('<th class="text">verdict</th></tr></thead><tbody>')
    for row in rows:
        cells = []
        for task in report.tasks:
            value = row.cells.get(task)
            if value is None:
                cells.append('<td data-value="-1">-</td>')
            else:
                cells.append(
                    f'<td class="{_cell_class(*value)}" data-value="{_number(value[0])}">{_e(format_ratio(value))}</td>'
                )
        label = f"{row.left} vs {row.right}"
        verdict_cell = "PASS" if row.passed else "FAIL"
        out.append(
            f'<tr><td class="text" data-value="{_e(label)}">{_e(label)}</td>{"".join(cells)}'
            f'<td class="text" data-value="{verdict_cell}">{verdict_cell}</td></tr>'
        )
    out.append("</tbody></table></div>")
    checks = report.checks()
    if checks:
        out.append("<h2>Checks</h2><ul>")
        out += [f"<li><b>{_e(name)}</b>: {_e(what)}: {'PASS' if ok else 'FAIL'}</li>" for name, what, _, ok in checks]
        out.append("</ul>")
    tails = report.remarks()
    if tails:
        out.append("<ul>" + "".join(f"<li>{_e(t)}</li>" for t in tails) + "</ul>")
    figure = summary_figure(rows, report.tasks)
    if figure:
        out += ["<h2>Figure</h2>", f'<div class="scroll">{figure}</div>']
    headers = [
        ("left", "text"),
        ("right", "text"),
        ("task", "text"),
        ("quantity", "text"),
        ("rows", "text"),
        ("max abs", ""),
        ("max rel", ""),
        ("atol", ""),
        ("rtol", ""),
        ("of bound", ""),
        ("verdict", "text"),
        ("worst element", "text"),
    ]
    out += [
        f"<h2>Every comparison ({len(report.comparisons):,})</h2>",
        "<p>Click a heading to sort. <i>of bound</i> is the worst |a - b| / (atol + rtol |b|) of the field.</p>",
        '<div class="scroll"><table class="fields sortable"><thead><tr>',
        *(f'<th class="{cls}">{_e(name)}</th>' for name, cls in headers),
        "</tr></thead><tbody>",
    ]
    for c in report.comparisons:
        values: list[tuple[str, str, str]] = [
            (c.left, c.left, "text"),
            (c.right, c.right, "text"),
            (c.task, c.task, "text"),
            (c.quantity, c.quantity, "text"),
            (c.rows or "all", c.rows or "all", "text"),
            (f"{c.max_abs:.2e}", _number(c.max_abs), ""),
            (f"{c.max_rel:.2e}", _number(c.max_rel), ""),
            (f"{c.atol:.0e}", _number(c.atol), ""),
            (f"{c.rtol:.0e}", _number(c.rtol), ""),
            (format_ratio((c.ratio, c.passed)), _number(c.ratio), _cell_class(c.ratio, c.passed)),
            ("ok" if c.passed else "FAIL", "ok" if c.passed else "FAIL", "text"),
            (c.worst + (f" ({c.detail})" if c.detail else ""), c.worst, "text"),
        ]
        out.append(
            "<tr>"
            + "".join(f'<td class="{cls}" data-value="{_e(key)}">{_e(text)}</td>' for text, key, cls in values)
            + "</tr>"
        )
    out += ["</tbody></table></div>", f"<script>{_JS}</script>", "</body></html>"]
    return "\n".join(out)
