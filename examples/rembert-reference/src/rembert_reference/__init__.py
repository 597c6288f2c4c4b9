"""rembert-reference: transformers 4.57's RemBERT, wrapped as a rembert backend plugin.

``rembert parity`` compares every installed backend with the reference the project promises parity with:
transformers' PyTorch classes (backend ``transformers``) and, where tf-keras is installed, its TensorFlow classes
(backend ``transformers_tf``). The plugin registers through the ``rembert`` entry-point group like any third
party; nothing in the four rembert packages imports it, and they never depend on transformers.

Example:
    >>> import rembert_core
    >>> backend = rembert_core.get_backend("transformers")  # found through the entry point
    >>> backend.reference.startswith("transformers 4.57")
    True
"""

from __future__ import annotations

from importlib import metadata

from rembert_reference.tf_backend import TransformersTFBackend, TransformersTFModel
from rembert_reference.torch_backend import TransformersTorchBackend, TransformersTorchModel

try:
    __version__ = metadata.version("rembert-reference")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "TransformersTFBackend",
    "TransformersTFModel",
    "TransformersTorchBackend",
    "TransformersTorchModel",
    "__version__",
]
