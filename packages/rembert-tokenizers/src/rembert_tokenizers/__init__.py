"""rembert-tokenizers: RemBERT tokenizers (sentencepiece and HF tokenizers)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("rembert-tokenizers")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
