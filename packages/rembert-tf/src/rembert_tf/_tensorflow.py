"""TensorFlow and Keras 3, imported once, with the install fix when TensorFlow is missing.

rembert-tf leaves the TensorFlow build to the user (PyPI's ``tensorflow`` and ``tensorflow-cpu`` install the
same module under different names, so one base requirement cannot serve both); its extras pick one:
``pip install "rembert-tf[cpu]"`` (tensorflow-cpu), ``"rembert-tf[tensorflow]"`` (the standard build) or
``"rembert-tf[gpu]"`` (the standard build with NVIDIA's CUDA libraries). Without any of them, importing the
model classes raises the ImportError below instead of Keras' bare ``No module named 'tensorflow'``.
"""

from __future__ import annotations

import importlib.util

NO_TENSORFLOW = (
    "rembert-tf needs TensorFlow (>= 2.16.1), which is not installed. Install one build: "
    "pip install 'rembert-tf[cpu]' (tensorflow-cpu, Linux/Windows x86-64), "
    "pip install 'rembert-tf[tensorflow]' (the standard build, every platform) or "
    "pip install 'rembert-tf[gpu]' (with NVIDIA's CUDA libraries, Linux)"
)

if importlib.util.find_spec("tensorflow") is None:
    raise ImportError(NO_TENSORFLOW, name="tensorflow")

import keras  # noqa: E402 - Keras 3 imports TensorFlow (its default backend): checked above
import tensorflow as tf  # noqa: E402

__all__ = ["NO_TENSORFLOW", "keras", "tf"]
