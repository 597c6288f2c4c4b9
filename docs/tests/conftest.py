"""Shared helpers of the documentation tests (run by ``nox -s docs``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
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
