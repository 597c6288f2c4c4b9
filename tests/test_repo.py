"""Repository-level promises: CI runs the README's test command; the packages move in lockstep."""

from __future__ import annotations

import contextlib
import io
import tomllib
from pathlib import Path

import pytest

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
    """Every package is at the root VERSION and requires its siblings at the compatible range of it."""
    version = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    minor = ".".join(version.split(".")[:2])
    upper = f"0.{int(minor.split('.')[1]) + 1}" if version.startswith("0.") else f"{int(version.split('.')[0]) + 1}"
    for name in PACKAGES:
        data = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text(encoding="utf-8"))
        assert data["project"]["version"] == version, name
        assert data["project"]["requires-python"] == ">=3.11", name  # as rembert-core, which they all need
        if name != "rembert-core":
            assert f"rembert-core>={version},<{upper}" in data["project"]["dependencies"], name
        for extra in data["project"].get("optional-dependencies", {}).values():
            for requirement in extra:
                if requirement.startswith("rembert-"):
                    assert requirement.endswith(f">={version},<{upper}"), (name, requirement)


def test_installed_versions_agree() -> None:
    """``rembert --version`` and each installed package's ``__version__`` are the root VERSION."""
    import importlib

    from rembert_core.cli import main

    version = (ROOT / "VERSION").read_text(encoding="utf-8").strip()
    for name in PACKAGES:
        module = importlib.import_module(name.replace("-", "_"))
        assert module.__version__ == version, name
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(io.StringIO()) as out:
        main(["--version"])
    assert exit_info.value.code == 0
    assert out.getvalue().strip() == f"rembert {version}"


def test_every_package_ships_py_typed_and_license() -> None:
    for name in PACKAGES:
        module = name.replace("-", "_")
        assert (ROOT / "packages" / name / "src" / module / "py.typed").is_file(), name
        assert (ROOT / "packages" / name / "LICENSE").is_file(), name
