"""Repository-level promises: CI runs the README's test command; the packages move in lockstep."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rembert-core", "rembert-torch", "rembert-tf", "rembert-tokenizers")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = ci[ci.index("# README test command:") + 1]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert lines[1] == command  # the second quick-start command is the test suite


def test_package_versions_move_in_lockstep() -> None:
    versions = {}
    for name in PACKAGES:
        data = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text(encoding="utf-8"))
        versions[name] = data["project"]["version"]
        if name != "rembert-core":
            deps = data["project"]["dependencies"]
            assert f"rembert-core=={versions['rembert-core']}" in deps or any(
                re.fullmatch(r"rembert-core[<>=!~, .0-9]+", d) for d in deps
            ), name
    assert len(set(versions.values())) == 1, versions


def test_every_package_ships_py_typed_and_license() -> None:
    for name in PACKAGES:
        module = name.replace("-", "_")
        assert (ROOT / "packages" / name / "src" / module / "py.typed").is_file(), name
        assert (ROOT / "packages" / name / "LICENSE").is_file(), name
