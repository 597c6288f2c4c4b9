"""rembert-core's conformance kit (:mod:`rembert_core.testing`), run on this backend as a third party would."""

from __future__ import annotations

from rembert_core.testing import BackendConformance
from rembert_numpy import NumpyBackend


class TestNumpyConformance(BackendConformance):
    backend = NumpyBackend()
    reference = NumpyBackend()  # the same code in float64; explicit, so no other installed plugin is loaded
