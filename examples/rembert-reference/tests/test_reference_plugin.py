"""The reference plugin: registered through its entry point, cheap to register, and true to the Backend contract.

Run by ``nox -s parity`` (where it is installed with torch, TensorFlow and tf-keras).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from rembert_core.parity import default_config, make_inputs, run_parity, seeded_tensors, task_config
from rembert_core.plugins import get_backend, get_backends, reset_plugins
from rembert_core.testing import BackendConformance
from rembert_reference import TransformersTFBackend, TransformersTorchBackend

ROOT = Path(__file__).resolve().parents[3]
HAS_TF_KERAS = importlib.util.find_spec("tf_keras") is not None
needs_tf_keras = pytest.mark.skipif(not HAS_TF_KERAS, reason="transformers' TF classes need tf-keras")


@pytest.fixture(autouse=True)
def _entry_points_only(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("REMBERT_PLUGINS", raising=False)
    reset_plugins()
    yield
    reset_plugins()


def test_registered_through_the_entry_point() -> None:
    (ep,) = [ep for ep in metadata.entry_points(group="rembert") if ep.name == "reference"]
    assert ep.value == "rembert_reference.plugin"
    backend = get_backend("transformers")
    assert isinstance(backend, TransformersTorchBackend)
    assert backend.distribution == "rembert-reference"
    assert backend.version == metadata.version("transformers")
    assert re.fullmatch(r"transformers 4\.57\.\d+ \(PyTorch classes\)", backend.reference)
    assert ("transformers_tf" in get_backends()) == HAS_TF_KERAS


def test_registering_imports_no_framework() -> None:
    code = (
        "import sys\n"
        "from rembert_reference import plugin\n"
        "found = []\n"
        "plugin.register_backends(found.append)\n"
        "heavy = sorted(m for m in ('torch', 'tensorflow', 'tf_keras', 'transformers') if m in sys.modules)\n"
        "print([b.name for b in found], heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    names, heavy = result.stdout.strip().rsplit("] ", 1)
    assert heavy == "[]"
    assert "'transformers'" in names


def test_nothing_in_packages_imports_the_reference() -> None:
    importing = re.compile(r"^\s*(from|import)\s+rembert_reference\b|import_module\(\s*[\"']rembert_reference", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "packages").rglob("*.py")
        if importing.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


def test_torch_reference_is_transformers_itself() -> None:
    """The backend's numbers are the transformers module's own, called directly."""
    import torch

    backend = TransformersTorchBackend()
    config = task_config(default_config(), "masked_lm")
    tensors = seeded_tensors(config, "masked_lm")
    model = backend.build_model(config, "masked_lm")
    backend.load_tensors(model, tensors)
    inputs = make_inputs(config, "masked_lm")
    out = backend.forward(model, inputs)
    with torch.no_grad():
        expected = model.module(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    np.testing.assert_array_equal(out["logits"], expected.logits.numpy())
    assert float(out["loss"]) == float(expected.loss)


@needs_tf_keras
def test_tf_reference_maps_every_variable_and_averages_per_example_losses() -> None:
    backend = TransformersTFBackend()
    config = task_config(default_config(), "sequence_classification")
    tensors = seeded_tensors(config, "sequence_classification")
    model = backend.build_model(config, "sequence_classification")
    assert set(model.variables) == set(tensors)
    backend.load_tensors(model, tensors)
    exported = backend.export_tensors(model)
    assert all(np.array_equal(exported[k], tensors[k]) for k in tensors)
    inputs = make_inputs(config, "sequence_classification", batch=2)
    out = backend.forward(model, inputs)
    assert np.shape(out["loss"]) == ()
    raw = model.module(**{k: v for k, v in inputs.items()}, training=False).loss.numpy()
    assert raw.shape == (2,)  # transformers' TF head: one loss per example
    np.testing.assert_allclose(out["loss"], raw.mean(), rtol=1e-6)


@needs_tf_keras
def test_tf_reference_matches_the_pytorch_reference() -> None:
    report = run_parity(
        [TransformersTorchBackend(), TransformersTFBackend()],
        tasks=["base", "causal_lm", "question_answering"],
        dtypes=["float32"],
    )
    assert report.ok, report.render(only_failures=True)
    pairs = [c for c in report.comparisons if c.quantity not in ("roundtrip", "cache")]
    assert {c.rows for c in pairs} == {"rows with a real token"}


class TestTorchReferenceConformance(BackendConformance):
    backend = TransformersTorchBackend()


@needs_tf_keras
class TestTFReferenceConformance(BackendConformance):
    backend = TransformersTFBackend()
