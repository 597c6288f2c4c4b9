"""Checkpoint formats: how a checkpoint on disk becomes canonical tensors.

A :class:`CheckpointFormat` says which files it reads (``detect``) and how to
open them (``opener``, imported only when used) as a
:class:`~rembert_core.serialization.TensorSource` whose names and layouts are
already canonical. Formats register through the ``register_checkpoint_formats``
hook, so a third party can add one. This module registers the format every
installation has (safetensors, single or sharded); rembert-torch adds
``pytorch_model.bin``, rembert-tf adds ``tf_model.h5`` and Google's original
TensorFlow checkpoints.

In a directory holding several formats, the one with the lowest ``precedence``
wins (:data:`PRECEDENCE` documents the built-in order) and the others are
reported as ignored. Detection itself (:func:`rembert_core.loading.detect_format`) lives with the
loading plan, which asks the plugin registry for the formats.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rembert_core.errors import CheckpointError, RemBertError
from rembert_core.hookspecs import hookimpl
from rembert_core.io.tensors import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    TensorSource,
    open_checkpoint,
)

__all__ = [
    "PRECEDENCE",
    "PT_WEIGHTS_INDEX_NAME",
    "PT_WEIGHTS_NAME",
    "TF_WEIGHTS_NAME",
    "CheckpointFormat",
    "Detected",
    "detect_files",
]

PT_WEIGHTS_NAME = "pytorch_model.bin"
PT_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
TF_WEIGHTS_NAME = "tf_model.h5"

#: Built-in precedence: the first present wins.
PRECEDENCE = {"safetensors": 0, "pytorch": 10, "tf_h5": 20, "tf_checkpoint": 30}

#: Files of well-known formats, so that a missing reader gives a useful message.
KNOWN_FILES = {
    PT_WEIGHTS_NAME: ("pytorch", "rembert-torch (pip install rembert-torch)"),
    PT_WEIGHTS_INDEX_NAME: ("pytorch", "rembert-torch (pip install rembert-torch)"),
    TF_WEIGHTS_NAME: ("tf_h5", "h5py (pip install rembert-core[h5] or rembert-tf)"),
    "checkpoint": ("tf_checkpoint", "rembert-tf (pip install rembert-tf)"),
}


def detect_files(*names: str, suffixes: tuple[str, ...] = ()) -> Callable[[Path], Path | None]:
    """A ``detect`` function: in a directory, the first of ``names`` present; a file matching a name or suffix."""

    def detect(path: Path) -> Path | None:
        if path.is_dir():
            for name in names:
                if os.path.lexists(path / name):  # a link or special file too: the loading plan refuses it by name
                    return path / name
            return None
        if path.is_file() and (path.name in names or path.name.endswith(suffixes)):
            return path
        return None

    return detect


@dataclass(frozen=True)
class CheckpointFormat:
    """A checkpoint format a reader can open."""

    name: str  # unique: "safetensors", "pytorch", "tf_h5", "tf_checkpoint", ...
    detect: Callable[[Path], Path | None]  # cheap (no framework import): the file/prefix to open, or None
    opener: str  # "module:function" taking that path, returning a TensorSource; imported when used
    precedence: int = 100  # lower wins when a directory holds several formats
    description: str = ""
    distribution: str = ""  # filled in by the plugin loader

    def open(self, path: Path) -> TensorSource:
        """Import the opener and open ``path``."""
        module_name, _, attr = self.opener.partition(":")
        try:
            function: Any = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            raise CheckpointError(
                f"reading {path} as {self.name} needs {module_name}, which fails to import: {exc}"
            ) from exc
        except AttributeError:
            raise CheckpointError(
                f"format {self.name!r} ({self._origin()}) names opener {self.opener!r}, which does not exist"
            ) from None
        try:
            source = function(path)
        except RemBertError:
            raise
        except Exception as exc:  # a third-party reader's own bug must not escape as a bare exception
            raise CheckpointError(
                f"reading {path}: format {self.name!r} ({self._origin()}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(source, TensorSource):
            raise CheckpointError(f"format {self.name!r} opener returned {type(source).__name__}, not a TensorSource")
        source.format = self.name
        return source

    def _origin(self) -> str:
        return f"from {self.distribution}" if self.distribution else "registered in code"


@dataclass(frozen=True)
class Detected:
    """The format chosen for a path, the file it will read, and formats also present but ignored."""

    format: CheckpointFormat
    path: Path
    ignored: tuple[tuple[str, Path], ...] = ()


# -- built-in formats --------------------------------------------------------------------------


def _open_safetensors(path: Path) -> TensorSource:
    return open_checkpoint(path)


SAFETENSORS = CheckpointFormat(
    name="safetensors",
    detect=detect_files(
        SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, suffixes=(".safetensors", ".safetensors.index.json")
    ),
    opener="rembert_core.formats:_open_safetensors",
    precedence=PRECEDENCE["safetensors"],
    description="safetensors, single file or sharded with model.safetensors.index.json",
)


#: ``pytorch_model.bin`` (single or sharded; ``.pt``/``.pth`` files too), read by rembert-torch with
#: ``torch.load(weights_only=True, mmap=True)``. Defined here, the one rule that recognises these files;
#: registered by rembert-torch's plugin, and passed to the loading plan by rembert-torch itself so that
#: it reads them with plugin autoloading off.
PYTORCH = CheckpointFormat(
    name="pytorch",
    detect=detect_files(PT_WEIGHTS_NAME, PT_WEIGHTS_INDEX_NAME, suffixes=(".bin", ".bin.index.json", ".pt", ".pth")),
    opener="rembert_torch.loading:open_torch_bin",
    precedence=PRECEDENCE["pytorch"],
    description="pytorch_model.bin (or sharded with pytorch_model.bin.index.json), read without unpickling code",
)


TF_H5 = CheckpointFormat(
    name="tf_h5",
    detect=detect_files(TF_WEIGHTS_NAME, suffixes=(".h5",)),
    opener="rembert_core.io.h5:open_h5",
    precedence=PRECEDENCE["tf_h5"],
    description="tf_model.h5 written by transformers' TensorFlow classes (needs h5py)",
)


@hookimpl
def register_checkpoint_formats(register: Callable[[CheckpointFormat], None]) -> None:
    """The formats rembert-core reads itself: safetensors, and tf_model.h5 when h5py is installed."""
    register(SAFETENSORS)
    register(TF_H5)
