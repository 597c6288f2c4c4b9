"""The ``rembert`` entry point of this distribution: registers the transformers reference backends.

Declared in ``pyproject.toml``::

    [project.entry-points.rembert]
    reference = "rembert_reference.plugin"

``transformers`` (the PyTorch classes) is always registered; ``transformers_tf`` (the TensorFlow classes) only
where tf-keras is installed, since transformers' TF classes need Keras 2. Registering imports nothing heavy:
``find_spec`` looks for tf-keras without importing it, and the backends import their frameworks when used.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from rembert_core import Backend, hookimpl
from rembert_reference.tf_backend import TransformersTFBackend
from rembert_reference.torch_backend import TransformersTorchBackend

__all__ = ["register_backends"]


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register ``transformers`` and, with tf-keras installed, ``transformers_tf``."""
    register(TransformersTorchBackend())
    if importlib.util.find_spec("tf_keras") is not None:
        register(TransformersTFBackend())
