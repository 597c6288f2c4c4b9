"""The distribution is a rembert plugin: its entry point registers ``numpy``; nothing in packages/ needs it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

import rembert_core
from rembert_core.plugins import reset_plugins
from rembert_numpy import NumpyBackend

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Plugins reloaded from entry points, only ours (other installed plugins may warn about missing frameworks)."""
    monkeypatch.setenv("REMBERT_PLUGINS", "numpy")
    monkeypatch.delenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("REMBERT_STRICT_PLUGINS", "1")
    reset_plugins()
    yield
    reset_plugins()


def test_entry_point_is_declared() -> None:
    eps = [ep for ep in metadata.entry_points(group="rembert") if ep.name == "numpy"]
    assert eps, "rembert-numpy is not installed (pip install -e examples/rembert-numpy)"
    assert eps[0].value == "rembert_numpy.plugin"
    assert eps[0].dist is not None and eps[0].dist.metadata["Name"] == "rembert-numpy"


def test_get_backend_loads_through_the_entry_point(fresh_plugins: None) -> None:
    backend = rembert_core.get_backend("numpy")
    assert isinstance(backend, NumpyBackend)
    assert backend.describe() == {
        "name": "numpy",
        "version": metadata.version("rembert-numpy"),
        "distribution": "rembert-numpy",
        "tasks": list(rembert_core.TASKS),
        "dtypes": ["float32", "float64"],
    }
    record = next(p for p in rembert_core.get_registry().plugins if p.name == "numpy")
    assert record.status == "loaded" and record.backends == ["numpy"]


def test_plugin_loads_in_a_fresh_interpreter() -> None:
    """What a user gets after ``pip install rembert-numpy``: the backend, listed and usable, in a new process."""
    code = (
        "import numpy as np, rembert_core\n"
        "from rembert_numpy import random_tensors\n"
        "b = rembert_core.get_backend('numpy')\n"
        "c = rembert_core.RemBertConfig(vocab_size=9, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,"
        " input_embedding_size=3, output_embedding_size=5, intermediate_size=6, num_labels=2)\n"
        "m = b.build_model(c, 'sequence_classification', dtype='float32')\n"
        "b.load_tensors(m, random_tensors(c, 'sequence_classification'))\n"
        "print(b.forward(m, {'input_ids': np.array([[1, 2, 3]])})['logits'].shape)\n"
    )
    env = {"REMBERT_PLUGINS": "numpy", "PATH": "", "PYTHONWARNINGS": "error"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 2)"


def test_nothing_in_packages_imports_the_example() -> None:
    importing = re.compile(r"^\s*(from|import)\s+rembert_numpy\b|import_module\(\s*[\"']rembert_numpy", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "packages").rglob("*.py")
        if importing.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


def test_distribution_ships_typed_marker_license_and_readme() -> None:
    here = ROOT / "examples" / "rembert-numpy"
    assert (here / "src" / "rembert_numpy" / "py.typed").is_file()
    assert (here / "LICENSE").read_text(encoding="utf-8") == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "template" in (here / "README.md").read_text(encoding="utf-8")


def test_readme_example_runs(fresh_plugins: None) -> None:
    readme = (ROOT / "examples" / "rembert-numpy" / "README.md").read_text(encoding="utf-8")
    code = readme.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert set(namespace["grads"]) == set(rembert_core.build_schema(namespace["config"], "masked_lm"))  # type: ignore[arg-type]
