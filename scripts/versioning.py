"""One version for every rembert package: the root ``VERSION`` file.

The four packages (and the NumPy example plugin) are released together, at the same version. ``VERSION`` holds
it; this script writes it into each ``pyproject.toml`` (the ``version`` field, and the ``rembert-core`` /
``rembert-tokenizers`` requirement ranges of the packages that depend on them), so every sdist keeps plain,
static metadata and builds on its own from its package directory.

    python scripts/versioning.py check          # exit 1, naming each file, if anything disagrees with VERSION
    python scripts/versioning.py set 0.2.0      # write 0.2.0 to VERSION and every pyproject.toml
    python scripts/versioning.py show           # print the version

The range a package accepts for a sibling is ``>=VERSION,<next minor`` (``<next major`` from 1.0 on), e.g.
``rembert-core>=0.1.0,<0.2``: patch releases of one package work with the others of the same minor series.
``nox -s build`` runs ``check`` first; ``tests/test_repo.py`` runs it too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION_FILE = ROOT / "VERSION"
#: Every pyproject.toml released at VERSION.
PROJECTS = (
    "packages/rembert-core",
    "packages/rembert-torch",
    "packages/rembert-tf",
    "packages/rembert-tokenizers",
    "examples/rembert-numpy",
)
#: Sibling distributions other projects require, pinned to a compatible range of VERSION.
SIBLINGS = ("rembert-core", "rembert-tokenizers")

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)\d+)?$")
_PROJECT_VERSION_RE = re.compile(r'^version = "([^"]*)"$', re.MULTILINE)


def parse(version: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a release version such as ``0.1.0`` or ``1.2.0rc1``; ValueError otherwise."""
    match = _VERSION_RE.fullmatch(version)
    if match is None:
        raise ValueError(f"not a release version (X.Y.Z, optionally aN/bN/rcN): {version!r}")
    return int(match[1]), int(match[2]), int(match[3])


def compatible_range(version: str) -> str:
    """The requirement specifier a package uses for a sibling at ``version``: ``>=0.1.0,<0.2`` / ``>=1.2.0,<2``."""
    major, minor, _ = parse(version)
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={version},<{upper}"


def read_version() -> str:
    version = VERSION_FILE.read_text(encoding="utf-8").strip()
    parse(version)
    return version


def _sibling_re(name: str) -> re.Pattern[str]:
    # "rembert-core>=0.1.0,<0.2" (also with extras or ==), inside a TOML string.
    return re.compile(rf'(?<!name = )"{re.escape(name)}(\[[^\]]*\])?([<>=!~][^";]*)?(;[^"]*)?"')


def render(text: str, version: str) -> str:
    """``text`` (a pyproject.toml) with its version and sibling requirements set for ``version``."""
    text, count = _PROJECT_VERSION_RE.subn(f'version = "{version}"', text, count=1)
    if count != 1:
        raise ValueError('no `version = "..."` line in [project]')
    spec = compatible_range(version)
    for name in SIBLINGS:

        def pinned(match: re.Match[str], name: str = name) -> str:
            return f'"{name}{match[1] or ""}{spec}{match[3] or ""}"'

        text = _sibling_re(name).sub(pinned, text)
    return text


def mismatches(version: str) -> list[str]:
    """One line per project file that disagrees with ``version``."""
    problems = []
    for project in PROJECTS:
        path = ROOT / project / "pyproject.toml"
        text = path.read_text(encoding="utf-8")
        if render(text, version) != text:
            problems.append(f"{path.relative_to(ROOT)} does not match VERSION {version}")
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["show"] and len(argv) == 1:
        print(read_version())
        return 0
    if argv[:1] == ["check"] and len(argv) == 1:
        version = read_version()
        problems = mismatches(version)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run: python scripts/versioning.py set " + version, file=sys.stderr)
            return 1
        print(f"all packages at {version}")
        return 0
    if argv[:1] == ["set"] and len(argv) == 2:
        version = argv[1]
        parse(version)
        VERSION_FILE.write_text(version + "\n", encoding="utf-8")
        for project in PROJECTS:
            path = ROOT / project / "pyproject.toml"
            path.write_text(render(path.read_text(encoding="utf-8"), version), encoding="utf-8")
        print(f"set {len(PROJECTS)} projects to {version}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
