"""Every hook spec is documented (docstring and docs/plugins.md, with its exact signature) and tested."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from rembert_core import hookspecs

DOCS = Path(__file__).resolve().parents[3] / "docs" / "plugins.md"
HOOKS = sorted(
    name for name, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, f"{hookspecs.PROJECT_NAME}_spec")
)
TESTED = {
    "register_backends": "test_core_plugins.py",
    "register_tokenizers": "test_core_plugins.py",
    "register_checkpoint_formats": "test_core_formats.py",
}


def test_there_are_hooks() -> None:
    assert HOOKS == ["register_backends", "register_checkpoint_formats", "register_tokenizers"]


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_contract_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "register(" in doc
    assert len(doc.split()) > 30


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_exact_signature(name: str) -> None:
    signature = inspect.signature(getattr(hookspecs, name), eval_str=False)
    text = DOCS.read_text(encoding="utf-8")
    assert f"### `{name}{signature}`".replace("'", "") in text


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name: str) -> None:
    source = (Path(__file__).parent / TESTED[name]).read_text(encoding="utf-8")
    assert f"def {name}(" in source
