"""Shared helpers of the documentation tests (run by ``nox -s docs``): pages, code blocks, API entries, HTML text."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent

# A fenced block: ``` or ~~~ (3+), an info string, the body, the same fence closing it.
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a Markdown page."""

    page: str
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string: "python", "console", "{code-block} python", ...
    body: str

    @property
    def runs(self) -> bool:
        """Blocks fenced as plain ``python`` are executed by the tests; nothing else is Python to run."""
        return self.info.strip() == "python"


def markdown_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def code_blocks(page: Path) -> list[CodeBlock]:
    text = page.read_text(encoding="utf-8")
    return [
        CodeBlock(page.name, text.count("\n", 0, m.start()) + 1, m.group("info").strip(), m.group("body"))
        for m in _FENCE.finditer(text)
    ]


_AUTOCLASS = re.compile(r"^\.\. autoclass:: (?P<path>\S+)\n(?P<options>(?:   .*\n|      .*\n)*)", re.M)


def api_entries() -> list[tuple[str, list[str]]]:
    """(dotted class path, documented members) for every autoclass on the API page."""
    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    entries = []
    for m in _AUTOCLASS.finditer(text):
        members = re.search(r":members:(.*?)(?=\n   :|\Z)", m.group("options"), re.S)
        names = [n.strip() for n in members.group(1).replace("\n", " ").split(",")] if members else []
        entries.append((m.group("path"), [n for n in names if n]))
    return entries


def resolve(path: str) -> object:
    """The object a dotted path names."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


# -- the built site ----------------------------------------------------------------------------------

#: Markup that only shows in a page's text when a directive or role was not parsed: a reStructuredText
#: directive (``.. list-table::``), its options (``:header-rows: 1``), a MyST directive fence or role.
_AS_TEXT = re.compile(
    r"(?:^|\s)\.\. [A-Za-z][\w:-]*::"  # .. list-table::  .. figure::
    r"|(?:^|\s):(?:header-rows|widths|align|alt|width|caption|name|class):\s"  # directive options
    r"|`{3,}\s*\{[\w-]+\}"  # ```{figure}
    r"|\{[\w:-]+\}`[^`]+`",  # {doc}`page`
    re.M,
)


class _VisibleText(HTMLParser):
    """The text a reader sees, outside code (``pre``/``code``: markup shown on purpose), scripts and styles."""

    SKIP = frozenset({"pre", "code", "script", "style", "title"})

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.depth += 1
        elif tag in ("p", "div", "li", "td", "th", "br", "dt", "dd", "h1", "h2", "h3", "h4"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def visible_text(markup: str) -> str:
    parser = _VisibleText()
    parser.feed(markup)
    return "".join(parser.parts)


def directives_shown_as_text(markup: str) -> list[str]:
    """Each piece of directive or role markup that an HTML page shows as text (empty when none)."""
    text = visible_text(markup)
    return [text[max(0, m.start() - 20) : m.end() + 40].strip() for m in _AS_TEXT.finditer(text)]
