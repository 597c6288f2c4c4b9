"""The one table of dtype names: NumPy/framework name, safetensors code, size, and whether it is a float.

Every module that names a dtype (the safetensors reader and writer, ``rembert convert``, the schema's
float check, the backends' compute dtypes, rembert-torch's dtype resolution) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rembert_core.errors import CheckpointError

__all__ = [
    "COMPUTE_DTYPES",
    "DTYPES",
    "DType",
    "by_code",
    "by_name",
    "dtype_code",
    "dtype_name",
    "numpy_dtype",
]


@dataclass(frozen=True)
class DType:
    """One dtype as every format and framework we read spells it."""

    name: str  # NumPy / PyTorch / TensorFlow name: "float32", "bfloat16", ...
    code: str  # safetensors header code: "F32", "BF16", ...
    itemsize: int  # bytes per element
    floating: bool  # a floating-point dtype (weights must be one)


#: Every dtype a checkpoint may hold, floats first.
DTYPES: tuple[DType, ...] = (
    DType("float64", "F64", 8, True),
    DType("float32", "F32", 4, True),
    DType("float16", "F16", 2, True),
    DType("bfloat16", "BF16", 2, True),
    DType("int64", "I64", 8, False),
    DType("int32", "I32", 4, False),
    DType("int16", "I16", 2, False),
    DType("int8", "I8", 1, False),
    DType("uint8", "U8", 1, False),
    DType("uint16", "U16", 2, False),
    DType("uint32", "U32", 4, False),
    DType("uint64", "U64", 8, False),
    DType("bool", "BOOL", 1, False),
)

#: The dtypes a model computes in (a backend declares a subset), in the order backends list them.
COMPUTE_DTYPES = ("float32", "bfloat16", "float16", "float64")

_BY_NAME = {d.name: d for d in DTYPES}
_BY_CODE = {d.code: d for d in DTYPES}


def by_name(name: str) -> DType | None:
    """The row of a NumPy/framework dtype name ("float32"; "torch.float32" also accepted), or None."""
    return _BY_NAME.get(str(name).removeprefix("torch."))


def by_code(code: str) -> DType | None:
    """The row of a safetensors code ("F32"), or None."""
    return _BY_CODE.get(code)


def dtype_name(value: str) -> str | None:
    """The dtype name of a safetensors code or a name (``"BF16"`` and ``"bfloat16"`` give ``"bfloat16"``)."""
    row = _BY_CODE.get(value) or by_name(value)
    return row.name if row else None


def numpy_dtype(code: str) -> Any:
    """The NumPy dtype of a safetensors code (``BF16`` is ``ml_dtypes.bfloat16``); KeyError if unknown."""
    row = _BY_CODE[code]
    if row.name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(row.name)


def dtype_code(dtype: Any, *, strict: bool = True) -> str:
    """The safetensors dtype code of a NumPy dtype (``ml_dtypes.bfloat16`` included), e.g. "F32".

    A dtype safetensors cannot store raises :class:`~rembert_core.errors.CheckpointError`, or with
    ``strict=False`` comes back as its NumPy name (so a schema check can report it as the wrong dtype).
    """
    name = np.dtype(dtype).name
    row = _BY_NAME.get(name)
    if row is not None:
        return row.code
    if not strict:
        return str(name)
    raise CheckpointError(f"dtype {name} has no safetensors equivalent")
