"""rembert-numpy: RemBERT in pure NumPy, a third-party backend plugin for rembert.

It implements the whole :class:`rembert_core.Backend` contract (every task,
float32 and float64, all output fields, losses, key/value caches and gradients
through a small reverse-mode autodiff) and registers through the ``rembert``
entry-point group like any third-party plugin. In float64 it is the reference
the parity engine compares every other backend with.

Example:
    >>> import rembert_core
    >>> backend = rembert_core.get_backend("numpy")  # found through the entry point
    >>> backend.dtypes
    ('float32', 'float64')
"""

from __future__ import annotations

from importlib import metadata

from rembert_numpy.backend import NumpyBackend, NumpyModel, random_tensors

try:
    __version__ = metadata.version("rembert-numpy")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["NumpyBackend", "NumpyModel", "__version__", "random_tensors"]
