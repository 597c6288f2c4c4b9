"""Every code example in the documentation runs, so the docs cannot rot.

* each ``python`` block of each Markdown page runs, in page order, in one namespace per page, from the
  repository root (pages refer to ``tests/fixtures/...`` and ``examples/...``);
* every ``>>>`` example in the docstrings of the classes and members on the API page runs as a doctest;
* nothing in a page is Python that escapes the runner: other code blocks are console sessions, TOML or
  output, and a ``{code-block} python`` that cannot run offline says why in its first line.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from doc_helpers import ROOT, api_entries, code_blocks, markdown_pages, resolve

PAGES = [p for p in markdown_pages() if any(b.runs for b in code_blocks(p))]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_of_page_run(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in code_blocks(page):
        if not block.runs:
            continue
        code = compile(block.body, f"{page.name}:{block.line}", "exec")
        try:
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"the python block at {page.name}:{block.line} failed: {exc!r}") from exc


ALLOWED_INFOS = {"python", "console", "toml", "text", "bash", "json"}


@pytest.mark.parametrize("page", markdown_pages(), ids=[p.name for p in markdown_pages()])
def test_no_python_escapes_the_runner(page: Path) -> None:
    for block in code_blocks(page):
        info = block.info.split()[0] if block.info else ""
        if info.startswith("{"):
            directive = info
            if directive in ("{toctree}", "{figure}", "{bench-table}", "{parity-summary}", "{note}", "{warning}"):
                continue
            if directive == "{include}":  # an included page (the bench output) must not carry Python either
                included = page.parent / block.info.split()[1]
                assert included.is_file(), f"{page.name}:{block.line}: {included} does not exist"
                assert "```python" not in included.read_text(encoding="utf-8"), f"{included} has Python blocks"
                continue
            assert directive == "{code-block}", f"{page.name}:{block.line}: unexpected directive {directive}"
            body = [line for line in block.body.splitlines() if line.strip() and not line.startswith(":")]
            assert body and body[0].lstrip().startswith("# not run:"), (
                f"{page.name}:{block.line}: a Python block that does not run must say why ('# not run: ...')"
            )
            continue
        assert info in ALLOWED_INFOS, f"{page.name}:{block.line}: unknown code block language {info!r}"


# -- docstrings of the API page --------------------------------------------------------------------


def docstring_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(recurse=False)
    tests = []
    for path, members in api_entries():
        cls = resolve(path)
        objects = [(path, cls)] + [(f"{path}.{m}", inspect_member(cls, m)) for m in members]
        for name, obj in objects:
            for test in finder.find(obj, name, globs={}):
                if test.examples:
                    tests.append(test)
    return tests


def inspect_member(cls: object, name: str) -> object:
    member = vars(cls).get(name) if name in vars(cls) else getattr(cls, name)
    if isinstance(member, (classmethod, staticmethod)):
        member = member.__func__
    if isinstance(member, property):
        member = member.fget
    return member


DOCTESTS = docstring_tests()


def test_api_page_has_docstring_examples() -> None:
    assert len(DOCTESTS) >= 16, [t.name for t in DOCTESTS]


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_examples_run(test: doctest.DocTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # examples name the repository's SentencePiece fixture; they write into tempdirs
    for example in test.examples:
        assert not example.options.get(doctest.SKIP), f"{test.name}: examples must run, not be skipped"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    messages: list[str] = []
    results = runner.run(test, out=messages.append)
    assert results.failed == 0, "".join(messages)
