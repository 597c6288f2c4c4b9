"""The robustness suite's counting plugin: cases tried and failures per category, as a table and JSON.

Every test belongs to one category (its module's ``CATEGORY``, or a ``category`` marker). A test
counts the cases it tries with the ``cases`` fixture (``cases.add()`` per hypothesis example,
SIGKILL trial, mutated file, ...). A failing test adds one failure to its category (hypothesis
stops at the first failing example, shrinks it and reports it). At the end the table is printed
(pytest's terminal summary) and written as JSON to ``reports/robustness.json`` (or
``--robustness-report PATH``). The session-scoped ``worker`` and ``tf_worker`` fixtures are the
subprocesses that run risky cases (see ``_worker.py``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the suite's helpers: _worker, _util


@dataclass
class Tally:
    cases: int = 0
    failures: int = 0
    tests: int = 0
    details: dict[str, int] = field(default_factory=dict)


TALLIES: dict[str, Tally] = {}


class Cases:
    """Counts the cases one test tries, under its category (and optionally a finer kind)."""

    def __init__(self, category: str) -> None:
        self.category = category
        self.count = 0

    def note(self, kind: str, n: int) -> None:
        """Record a detail (e.g. an outcome count) shown under the table, without counting cases."""
        tally = TALLIES.setdefault(self.category, Tally())
        tally.details[kind] = tally.details.get(kind, 0) + n

    def add(self, n: int = 1, kind: str | None = None) -> None:
        tally = TALLIES.setdefault(self.category, Tally())
        tally.cases += n
        self.count += n
        if kind:
            tally.details[kind] = tally.details.get(kind, 0) + n


def _category(item: pytest.Item) -> str:
    marker = item.get_closest_marker("category")
    if marker is not None:
        return str(marker.args[0])
    return str(getattr(item.module, "CATEGORY", item.module.__name__.rsplit(".", 1)[-1]))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--robustness-report", default=str(ROOT / "reports" / "robustness.json"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "category(name): the robustness category a test counts under")


@pytest.fixture(scope="session")
def worker() -> Iterator[Any]:
    """A worker process (rembert-core, rembert-torch, tokenizers) with its address space capped at 8 GiB."""
    from _worker import Worker

    w = Worker(address_space=8 * 2**30)
    yield w
    w.close()


@pytest.fixture(scope="session")
def tf_worker() -> Iterator[Any]:
    """A worker process for TensorFlow (uncapped: TensorFlow reserves more address space than a cap allows)."""
    from _worker import Worker

    w = Worker(address_space=None)
    yield w
    w.close()


@pytest.fixture
def cases(request: pytest.FixtureRequest) -> Cases:
    counter = Cases(_category(request.node))
    request.node._robustness_cases = counter
    return counter


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        tally = TALLIES.setdefault(_category(item), Tally())
        tally.tests += 1
        counter = getattr(item, "_robustness_cases", None)
        if report.failed:  # one failure per failing test (hypothesis reports the one shrunk example)
            tally.failures += 1
            if counter is None or counter.count == 0:
                tally.cases += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not TALLIES:
        return
    rows = [(name, t.tests, t.cases, t.failures) for name, t in sorted(TALLIES.items())]
    total = ("total", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows))
    headers = ("category", "tests", "cases tried", "failures")
    widths = [max(len(str(r[i])) for r in [headers, *rows, total]) for i in range(4)]

    def line(row: tuple[object, ...]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(cells))

    terminalreporter.section("robustness: cases tried and failures per category")
    terminalreporter.write_line(line(headers))
    terminalreporter.write_line(line(tuple("-" * w for w in widths)))
    for row in rows:
        terminalreporter.write_line(line(row))
    terminalreporter.write_line(line(tuple("-" * w for w in widths)))
    terminalreporter.write_line(line(total))
    for name, tally in sorted(TALLIES.items()):
        if tally.details:
            parts = ", ".join(f"{k} {v}" for k, v in sorted(tally.details.items()))
            terminalreporter.write_line(f"  {name}: {parts}")
    path = Path(config.getoption("--robustness-report"))
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "categories": {
            name: {"tests": t.tests, "cases": t.cases, "failures": t.failures, "details": t.details}
            for name, t in sorted(TALLIES.items())
        },
        "total": {"tests": total[1], "cases": total[2], "failures": total[3]},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    terminalreporter.write_line(f"robustness report written to {path}")
