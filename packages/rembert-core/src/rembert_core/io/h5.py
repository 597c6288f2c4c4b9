"""Reading ``tf_model.h5`` as written by transformers' TensorFlow classes, without TensorFlow.

The file is read with h5py, one dataset at a time. Weight names map to the
canonical layout by a few declarative rules (:data:`SEGMENT_RULES`,
:data:`LEAF_RULES`): drop the Keras layer name and the model scope
(``rembert/tf_rem_bert_for_masked_lm/…``), ``layer_._N`` becomes ``layer.N``,
``mlm___cls`` becomes ``cls``, and the leaf (``kernel:0``, ``gamma:0``, …)
becomes ``weight``/``bias``; Keras dense kernels are ``[in, out]`` and are
transposed to the canonical ``[out, in]``. Names no rule maps are kept as they
are, so the schema check reports them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from rembert_core.errors import CheckpointError
from rembert_core.io.tensors import TensorInfo, TensorSource, dtype_code

__all__ = ["LEAF_RULES", "SEGMENT_RULES", "H5Checkpoint", "canonical_h5_name", "open_h5"]

#: Path segments renamed on the way to a canonical name.
SEGMENT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^layer_\._(\d+)$"), r"layer.\1"),
    (re.compile(r"^mlm___cls$"), "cls"),
)

#: Leaf name -> (canonical leaf, transpose a 2-D value).
LEAF_RULES: dict[str, tuple[str, bool]] = {
    "kernel:0": ("weight", True),  # Keras Dense kernel [in, out]
    "bias:0": ("bias", False),
    "gamma:0": ("weight", False),  # LayerNorm
    "beta:0": ("bias", False),
    "embeddings:0": ("weight", False),  # Keras Embedding
    "weight:0": ("weight", False),  # add_weight(name="weight"): word embeddings and the LM decoder [vocab, width]
}


def canonical_h5_name(path: str) -> tuple[str, bool]:
    """(canonical name, transpose?) of an h5 dataset path; unmapped paths come back unchanged."""
    parts = path.split("/")
    if len(parts) < 4 or parts[-1] not in LEAF_RULES:
        return path, False
    body = parts[2:-1]  # drop the Keras layer name and the model scope
    renamed = []
    for segment in body:
        for pattern, replacement in SEGMENT_RULES:
            if pattern.match(segment):
                segment = pattern.sub(replacement, segment)
                break
        renamed.append(segment)
    leaf, transpose = LEAF_RULES[parts[-1]]
    return ".".join([*renamed, leaf]), transpose


#: A compressed dataset may expand to at most this many times its stored size (plus
#: :data:`EXPANSION_SLACK` bytes): real weights compress by well under 2x, while a "decompression
#: bomb" (a few MB that expand to GBs of one repeated value) is refused before anything is allocated.
MAX_EXPANSION = 16
EXPANSION_SLACK = 2**20


def _check_dataset(dataset: Any, name: str, path: Path) -> None:
    """Refuse a dataset whose bytes live outside this file, or that expands far beyond its stored size."""
    if dataset.is_virtual:
        raise CheckpointError(f"{path}: dataset {name!r} is a virtual dataset (it maps other files): refused")
    if dataset.external:
        files = ", ".join(str(entry[0]) for entry in dataset.external)
        raise CheckpointError(f"{path}: dataset {name!r} stores its data in external file(s) {files}: refused")
    nbytes = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize if dataset.shape else 0
    stored = int(dataset.id.get_storage_size())
    if nbytes > MAX_EXPANSION * stored + EXPANSION_SLACK:
        raise CheckpointError(
            f"{path}: dataset {name!r} claims {nbytes} bytes from {stored} stored (more than {MAX_EXPANSION}x): "
            "refused as a decompression bomb"
        )


class H5Checkpoint(TensorSource):
    """The tensors of a transformers ``tf_model.h5`` under canonical names, read lazily."""

    format = "tf_h5"

    def __init__(self, path: Path) -> None:
        try:
            import h5py
        except ImportError:
            raise CheckpointError(
                f"reading {path} needs h5py: pip install rembert-core[h5] (rembert-tf installs it too)"
            ) from None
        self._path = path
        try:
            self._file = h5py.File(path, "r")
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint file not found: {path}") from None
        except (OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path} is not a valid HDF5 file: {exc}") from None
        try:
            self._index(h5py)
        except CheckpointError:
            self._file.close()
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:  # h5py on a corrupt file
            self._file.close()
            raise CheckpointError(f"{path} is not a readable tf_model.h5: {type(exc).__name__}: {exc}") from None

    def _index(self, h5py: Any) -> None:
        """Map every dataset to its canonical name, reading shapes and dtypes only."""
        path = self._path
        self.metadata = {k: str(v) for k, v in self._file.attrs.items() if k in ("backend", "keras_version")}
        self._datasets: dict[str, tuple[str, bool]] = {}
        self._infos: dict[str, TensorInfo] = {}
        names: list[str] = []
        self._file.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for h5_name in names:
            canonical, transpose = canonical_h5_name(h5_name)
            dataset = self._file[h5_name]
            _check_dataset(dataset, h5_name, path)
            shape = tuple(int(d) for d in dataset.shape)
            if transpose and len(shape) == 2:
                shape = (shape[1], shape[0])
            else:
                transpose = False
            if canonical in self._datasets:
                raise CheckpointError(
                    f"{path}: datasets {self._datasets[canonical][0]!r} and {h5_name!r} both map to {canonical}"
                )
            self._datasets[canonical] = (h5_name, transpose)
            dtype = dtype_code(dataset.dtype, strict=False)
            self._infos[canonical] = TensorInfo(canonical, shape, dtype, path)

    @property
    def files(self) -> list[Path]:
        return [self._path]

    def infos(self) -> dict[str, TensorInfo]:
        return dict(self._infos)

    def __getitem__(self, name: str) -> np.ndarray:
        h5_name, transpose = self._datasets[name]
        try:
            value = np.asarray(self._file[h5_name][()])
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"cannot read {h5_name!r} from {self._path}: {exc}") from None
        return np.ascontiguousarray(value.T) if transpose else value

    def close(self) -> None:
        self._file.close()


def open_h5(path: Path) -> H5Checkpoint:
    """Open a ``tf_model.h5`` (the opener of the ``tf_h5`` checkpoint format)."""
    return H5Checkpoint(Path(path))
