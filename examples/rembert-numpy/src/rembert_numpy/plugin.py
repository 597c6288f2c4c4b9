"""The ``rembert`` entry point of this distribution: registers :class:`~rembert_numpy.backend.NumpyBackend`.

Declared in ``pyproject.toml``::

    [project.entry-points.rembert]
    numpy = "rembert_numpy.plugin"

Registering only constructs the backend object; nothing heavy is imported
(NumPy is imported by rembert-core anyway).
"""

from __future__ import annotations

from collections.abc import Callable

from rembert_core import Backend, hookimpl
from rembert_numpy.backend import NumpyBackend

__all__ = ["register_backends"]


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register the ``numpy`` backend (float32 and float64, every task)."""
    register(NumpyBackend())
