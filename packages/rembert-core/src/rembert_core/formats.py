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
reported as ignored.
"""

from __future__ import annotations

import glob
import importlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rembert_core.errors import CheckpointError, RemBertError
from rembert_core.hookspecs import hookimpl
from rembert_core.serialization import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    TensorSource,
    open_checkpoint,
)

__all__ = ["PRECEDENCE", "CheckpointFormat", "Detected", "detect_files", "detect_format", "open_source"]

#: Built-in precedence: the first present wins.
PRECEDENCE = {"safetensors": 0, "pytorch": 10, "tf_h5": 20, "tf_checkpoint": 30}

#: Files of well-known formats, so that a missing reader gives a useful message.
KNOWN_FILES = {
    "pytorch_model.bin": ("pytorch", "rembert-torch (pip install rembert-torch)"),
    "pytorch_model.bin.index.json": ("pytorch", "rembert-torch (pip install rembert-torch)"),
    "tf_model.h5": ("tf_h5", "h5py (pip install rembert-core[h5] or rembert-tf)"),
    "checkpoint": ("tf_checkpoint", "rembert-tf (pip install rembert-tf)"),
}


def detect_files(*names: str, suffixes: tuple[str, ...] = ()) -> Callable[[Path], Path | None]:
    """A ``detect`` function: in a directory, the first of ``names`` present; a file matching a name or suffix."""

    def detect(path: Path) -> Path | None:
        if path.is_dir():
            for name in names:
                if (path / name).is_file():
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


def detect_format(path: str | os.PathLike[str]) -> Detected:
    """The registered format that reads ``path`` (a directory, a file, or a TF checkpoint prefix)."""
    from rembert_core.plugins import get_registry
    from rembert_core.serialization import recover_interrupted_save

    path = Path(path)
    if not path.exists() and not (path.parent.is_dir() and any(path.parent.glob(glob.escape(path.name) + ".*"))):
        raise CheckpointError(f"checkpoint not found: {path}")  # (a TF checkpoint prefix exists only as prefix.*)
    recover_interrupted_save(path if path.is_dir() else path.parent)  # a save killed after its commit point
    formats = sorted(get_registry().formats.values(), key=lambda f: (f.precedence, f.name))
    hits: list[tuple[CheckpointFormat, Path]] = []
    for fmt in formats:
        try:
            found = fmt.detect(path)
        except OSError:
            found = None
        except Exception as exc:  # a third-party detect() that crashes is skipped, not fatal to every load
            from rembert_core.plugins import PluginWarning

            warnings.warn(
                f"checkpoint format {fmt.name!r} ({fmt._origin()}) failed to inspect {path} and was skipped "
                f"({type(exc).__name__}: {exc})",
                PluginWarning,
                stacklevel=2,
            )
            found = None
        if found is not None:
            hits.append((fmt, found))
    if hits:
        chosen, found = hits[0]
        return Detected(chosen, found, tuple((f.name, p) for f, p in hits[1:]))
    candidates = [path / n for n in KNOWN_FILES] if path.is_dir() else [path]
    for candidate in candidates:
        known = KNOWN_FILES.get(candidate.name)
        if known and candidate.exists():
            raise CheckpointError(f"{candidate} is a {known[0]} checkpoint; reading it needs {known[1]}")
    if path.is_dir():
        present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
        names = ", ".join(f.name for f in formats)
        raise CheckpointError(f"no weights file in {path} that a registered format reads ({names}); found {present}")
    raise CheckpointError(f"{path} is not in a checkpoint format rembert can read")


def open_source(path: str | os.PathLike[str]) -> TensorSource:
    """Open the weights at ``path`` with the format :func:`detect_format` picks."""
    detected = detect_format(path)
    return detected.format.open(detected.path)


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


TF_H5 = CheckpointFormat(
    name="tf_h5",
    detect=detect_files("tf_model.h5", suffixes=(".h5",)),
    opener="rembert_core.h5:open_h5",
    precedence=PRECEDENCE["tf_h5"],
    description="tf_model.h5 written by transformers' TensorFlow classes (needs h5py)",
)


@hookimpl
def register_checkpoint_formats(register: Callable[[CheckpointFormat], None]) -> None:
    """The formats rembert-core reads itself: safetensors, and tf_model.h5 when h5py is installed."""
    register(SAFETENSORS)
    register(TF_H5)
