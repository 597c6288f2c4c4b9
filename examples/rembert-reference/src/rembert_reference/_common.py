"""What both reference backends share: transformers' version, its config, quiet logging, NumPy conversions."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any

import numpy as np

from rembert_core import ARCHITECTURES, InputError, RemBertConfig

__all__ = ["architecture", "check_ids", "quiet_transformers", "reference_config", "transformers_version"]


def transformers_version() -> str:
    """The installed transformers version, read from its metadata (nothing is imported)."""
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return ""


def architecture(task: str) -> str:
    """transformers' class name for ``task`` (``"RemBertForMaskedLM"``)."""
    try:
        return ARCHITECTURES[task]
    except KeyError:
        raise InputError(f"unknown task {task!r}; choose one of {tuple(ARCHITECTURES)}") from None


def reference_config(config: RemBertConfig) -> Any:
    """``config`` as a ``transformers.RemBertConfig`` (the same ``config.json`` keys, so the same model)."""
    import transformers

    return transformers.RemBertConfig.from_dict(config.to_dict())


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' loggers at ERROR for the duration (its TF classes announce their deprecation on every build)."""
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_ids(inputs: Mapping[str, Any], config: Any) -> None:
    """The contract's input check: ids within the vocabularies, as an :class:`InputError` naming the input.

    transformers' classes would raise an IndexError (PyTorch) or a TensorFlow error instead, or read another
    row; the backends of the contract all say which input is wrong.
    """
    for key, size in (("input_ids", config.vocab_size), ("token_type_ids", config.type_vocab_size)):
        value = inputs.get(key)
        if value is None:
            continue
        ids = np.asarray(value)
        if ids.size and (ids.min() < 0 or ids.max() >= size):
            raise InputError(f"{key} must lie in [0, {size}); got values from {ids.min()} to {ids.max()}")
