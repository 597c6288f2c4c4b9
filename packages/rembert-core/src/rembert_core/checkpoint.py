"""Finding a checkpoint's files and matching its tensors to a schema, shared by every backend.

A backend's ``from_pretrained`` does::

    config = RemBertConfig.from_pretrained(path)
    schema = build_schema(config, task)
    with open_weights(path) as weights:            # lazy, memory-mapped
        report = match_weights(weights, schema)   # raises CheckpointError listing every problem
        for name, array in iter_matched(weights, report):
            ...copy array into the parameter called `name`...

so that every backend accepts exactly the same checkpoints and reports problems
in the same words.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from rembert_core.errors import CheckpointError
from rembert_core.schema import CheckpointSchema, SchemaReport
from rembert_core.serialization import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, TensorSource, dtype_code

__all__ = [
    "PT_WEIGHTS_INDEX_NAME",
    "PT_WEIGHTS_NAME",
    "TF_WEIGHTS_NAME",
    "WEIGHT_FILE_PRECEDENCE",
    "find_weights",
    "iter_matched",
    "match_weights",
    "open_weights",
]

PT_WEIGHTS_NAME = "pytorch_model.bin"
PT_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
TF_WEIGHTS_NAME = "tf_model.h5"

#: Files looked for in a checkpoint directory, first found wins.
WEIGHT_FILE_PRECEDENCE = (
    SAFE_WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    PT_WEIGHTS_NAME,
    PT_WEIGHTS_INDEX_NAME,
    TF_WEIGHTS_NAME,
)


def find_weights(path: str | os.PathLike[str]) -> Path:
    """The weights file of a checkpoint directory (by :data:`WEIGHT_FILE_PRECEDENCE`), or ``path`` if a file."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    for name in WEIGHT_FILE_PRECEDENCE:
        if (path / name).is_file():
            return path / name
    present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
    raise CheckpointError(
        f"no weights file in {path} (looked for {', '.join(WEIGHT_FILE_PRECEDENCE)}; found {present})"
    )


def open_weights(path: str | os.PathLike[str]) -> TensorSource:
    """Open the weights of a checkpoint directory or file, lazily, with canonical names.

    The reader is chosen among the registered checkpoint formats
    (:mod:`rembert_core.formats`): safetensors always; ``pytorch_model.bin``
    with rembert-torch installed; ``tf_model.h5`` and original TensorFlow
    checkpoints with rembert-tf. A format whose reader is not installed is
    refused with a message naming the package to install.
    """
    from rembert_core.formats import open_source

    return open_source(Path(path))


def match_weights(
    weights: TensorSource | Mapping[str, np.ndarray],
    schema: CheckpointSchema,
    *,
    source: str = "checkpoint",
    strict: bool = True,
) -> SchemaReport:
    """Validate ``weights`` against ``schema`` from shapes/dtypes alone (no tensor data read).

    With ``strict`` (the default) any missing backbone tensor, unknown key or
    mismatched shape raises :class:`CheckpointError` listing all of them.
    """
    if isinstance(weights, TensorSource):
        infos = weights.infos()
        shapes = {k: i.shape for k, i in infos.items()}
        dtypes = {k: i.dtype for k, i in infos.items()}
    else:
        shapes = {k: tuple(np.shape(v)) for k, v in weights.items()}
        dtypes = {k: dtype_code(np.asarray(v).dtype, strict=False) for k, v in weights.items()}
    report = schema.validate(shapes, dtypes)
    if strict:
        report.raise_for_errors(source)
    return report


def iter_matched(
    weights: TensorSource | Mapping[str, np.ndarray], report: SchemaReport
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(canonical name, array)`` for each matched tensor, reading one tensor at a time."""
    mismatched = {name for name, _, _ in report.mismatched}
    for name, key in report.matched.items():
        if name not in mismatched:
            yield name, weights[key]
