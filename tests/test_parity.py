"""The parity engine on the real backends: torch, tf and the NumPy example plugin (installed like a third party).

Run by ``nox -s parity`` (and ``tests-cross``), where all of them are installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from rembert_core import get_backend, get_backends
from rembert_core.parity import run_parity
from rembert_core.testing import BackendConformance

pytest.importorskip("rembert_numpy", reason="the NumPy example plugin is installed by the parity session")
torch_plugin = pytest.importorskip("rembert_torch.plugin")
tf_plugin = pytest.importorskip("rembert_tf.plugin")

PERTURBED = "rembert.encoder.layer.1.attention.self.value.weight"


class PerturbedWeightTorch(torch_plugin.TorchBackend):  # type: ignore[misc, name-defined]
    """The torch backend with a tiny error in one weight, as a buggy loader would make."""

    name = "torch_perturbed"

    def load_tensors(self, model: Any, tensors: Mapping[str, np.ndarray]) -> None:
        tensors = dict(tensors)
        if PERTURBED in tensors:
            tensors[PERTURBED] = tensors[PERTURBED] + np.float32(1e-3)
        super().load_tensors(model, tensors)


class PerturbedOpTF(tf_plugin.TFBackend):  # type: ignore[misc, name-defined]
    """The tf backend with a tiny error in one op's output (the pooler), as a buggy kernel would make."""

    name = "tf_perturbed"

    def forward(self, model: Any, inputs: Mapping[str, np.ndarray], **kwargs: Any) -> dict[str, Any]:
        out = super().forward(model, inputs, **kwargs)
        if "pooler_output" in out:
            out["pooler_output"] = out["pooler_output"] + np.float32(1e-3)
        return out


def test_every_backend_is_installed_through_entry_points() -> None:
    backends = get_backends()
    assert {"torch", "tf", "numpy"} <= set(backends)
    assert backends["numpy"].distribution == "rembert-numpy"


def test_a_perturbed_weight_fails_and_names_pair_head_and_tensor() -> None:
    report = run_parity(
        [get_backend("torch"), PerturbedWeightTorch()],
        reference=get_backend("numpy"),
        tasks=["sequence_classification"],
        dtypes=["float32"],
    )
    assert not report.ok
    failures = report.failures
    assert ("torch_perturbed:float32", "torch:float32") in {(f.left, f.right) for f in failures}
    assert {f.task for f in failures} == {"sequence_classification"}
    assert any(f.quantity == "roundtrip" and f.worst == PERTURBED for f in failures)
    assert any(f.quantity == "grad" for f in failures)
    table = report.render(only_failures=True)
    assert "torch_perturbed:float32" in table
    assert "FAIL" in table


def test_a_perturbed_op_fails_and_names_the_output() -> None:
    report = run_parity(
        [get_backend("tf"), PerturbedOpTF()], reference=get_backend("numpy"), tasks=["base"], dtypes=["float32"]
    )
    assert not report.ok
    names = {(f.left, f.quantity) for f in report.failures}
    assert ("tf_perturbed:float32", "pooler_output") in names
    assert all(f.quantity == "pooler_output" for f in report.failures)


class TestTorchConformance(BackendConformance):
    backend = torch_plugin.TorchBackend()


class TestTFConformance(BackendConformance):
    backend = tf_plugin.TFBackend()
