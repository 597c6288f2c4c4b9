"""The built site shows tables as tables, never directive markup as text, and links the parity report.

``nox -s docs`` builds the site into docs/_build/html first and then runs these tests; they read that build
(or the directory named by REMBERT_DOCS_HTML). ``test_the_check_catches_a_directive_shown_as_text`` builds a
two-page site on purpose: one page with a directive that emits reStructuredText into a MyST page (how the
generated tables once showed as raw ``.. list-table::`` text), one with a table built the way the extension
builds them; the check must flag the first and pass the second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from doc_helpers import DOCS, directives_shown_as_text

SKIPPED_PAGES = {"genindex.html", "search.html", "py-modindex.html"}


def html_dir() -> Path:
    return Path(os.environ.get("REMBERT_DOCS_HTML", DOCS / "_build" / "html"))


def built_pages() -> list[Path]:
    root = html_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*.html") if p.name not in SKIPPED_PAGES)


@pytest.mark.parametrize("page", built_pages(), ids=lambda p: p.name)
def test_no_page_shows_a_directive_as_text(page: Path) -> None:
    found = directives_shown_as_text(page.read_text(encoding="utf-8"))
    assert not found, f"{page.name} shows markup as text: {found[:3]}"


def test_the_site_was_built() -> None:
    names = {p.name for p in built_pages()}
    assert {"index.html", "parity.html", "performance.html"} <= names, f"build the site first (nox -s docs): {names}"


class _Tables(HTMLParser):
    """For each <table>: its classes, whether a scrolling wrapper (furo's div.table-wrapper) holds it, its text."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[list[str]] = []
        self.tables: list[dict[str, object]] = []
        self._open: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table":
            wrapped = any("table-wrapper" in c for c in self.stack)
            table: dict[str, object] = {"classes": classes, "wrapped": wrapped, "text": []}
            self.tables.append(table)
            self._open.append(table)
        if tag in ("div", "table"):
            self.stack.append(classes)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("div", "table") and self.stack:
            self.stack.pop()
        if tag == "table" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for table in self._open:
            table["text"].append(data)  # type: ignore[attr-defined]


def tables(page: str) -> list[dict[str, object]]:
    path = html_dir() / page
    assert path.is_file(), f"{path} is missing: build the site first (nox -s docs)"
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tables


@pytest.mark.parametrize(("page", "kind"), [("parity.html", "parity-summary"), ("performance.html", "bench-table")])
def test_generated_tables_are_tables_that_scroll(page: str, kind: str) -> None:
    generated = [t for t in tables(page) if kind in t["classes"]]  # type: ignore[operator]
    assert len(generated) == 1, f"{page}: no <table class={kind}>"
    assert generated[0]["wrapped"], f"{page}: the {kind} table is not inside a scrolling table-wrapper"


def test_every_table_of_the_performance_page_scrolls() -> None:
    found = tables("performance.html")
    assert len(found) >= 3  # the bench table and the tables of the latest run
    assert all(t["wrapped"] for t in found)


def test_parity_page_shows_the_summary_and_links_the_report() -> None:
    import json

    report = json.loads(Path(os.environ.get("REMBERT_PARITY_REPORT", DOCS / "_build" / "parity.json")).read_text())
    (summary,) = [t for t in tables("parity.html") if "parity-summary" in t["classes"]]  # type: ignore[operator]
    text = "".join(summary["text"])  # type: ignore[arg-type]
    for row in report["summary"]:
        assert f"{row['left']} vs {row['right']}" in text
    markup = (html_dir() / "parity.html").read_text(encoding="utf-8")
    assert 'href="parity-report.html"' in markup
    assert "|a - b| &lt;= atol + rtol * |b|" in markup  # the rule, stated with the summary
    assert "transformers 4.57" in markup  # the verdict names the reference
    published = (html_dir() / "parity-report.html").read_text(encoding="utf-8")
    assert "<svg" in published and 'class="fields sortable"' in published
    assert published.count("<tr>") >= len(report["comparisons"])


def test_the_check_catches_a_directive_shown_as_text(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "html"
    src.mkdir()
    (src / "conf.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path[:0] = [{str(src)!r}, {str(DOCS / "_ext")!r}]
            extensions = ["myst_parser", "tables"]
            root_doc = "index"
            """
        )
    )
    (src / "tables.py").write_text(
        textwrap.dedent(
            '''
            from docutils import nodes
            from docutils.statemachine import StringList
            from sphinx.util.docutils import SphinxDirective

            from rembert_docs import table

            class RstTextTable(SphinxDirective):
                """The old way: reStructuredText lines parsed in place (read as Markdown on a MyST page)."""

                def run(self):
                    lines = [".. list-table:: a caption", "   :header-rows: 1", "", "   * - head", "     - cell"]
                    holder = nodes.container()
                    self.state.nested_parse(StringList(lines, source="old"), self.content_offset, holder)
                    return list(holder.children)

            class NodeTable(SphinxDirective):
                """The extension's way: docutils nodes."""

                def run(self):
                    return [table(["head"], [["cell"]], "a caption")]

            def setup(app):
                app.add_directive("rst-text-table", RstTextTable)
                app.add_directive("node-table", NodeTable)
            '''
        )
    )
    (src / "index.md").write_text("# Broken\n\n```{rst-text-table}\n```\n\n```{toctree}\ngood\n```\n")
    (src / "good.md").write_text("# Good\n\n```{node-table}\n```\n")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    broken = directives_shown_as_text((out / "index.html").read_text(encoding="utf-8"))
    assert any(".. list-table::" in found for found in broken), broken
    good = (out / "good.html").read_text(encoding="utf-8")
    assert directives_shown_as_text(good) == []
    assert "<table" in good and "a caption" in good
