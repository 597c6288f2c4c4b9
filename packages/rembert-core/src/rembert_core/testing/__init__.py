"""Test helpers: the small configs every test suite and docstring uses, and the backend conformance kit.

:func:`tiny_config` builds the embedded tiny config (odd sizes that catch transposes and
head-splitting bugs); :data:`TEST_CONFIGS` holds the other small configs the test suites draw
from, written once (:mod:`rembert_core.testing.configs`). Plugin authors subclass
:class:`BackendConformance` (:mod:`rembert_core.testing.conformance`) in their own tests; it is
imported on first use, because it needs pytest, which rembert-core does not depend on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rembert_core.testing.configs import TEST_CONFIGS, tiny_config

if TYPE_CHECKING:
    from rembert_core.testing.conformance import BackendConformance

__all__ = ["TEST_CONFIGS", "BackendConformance", "tiny_config"]


def __getattr__(name: str) -> Any:
    if name == "BackendConformance":
        from rembert_core.testing.conformance import BackendConformance

        return BackendConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
