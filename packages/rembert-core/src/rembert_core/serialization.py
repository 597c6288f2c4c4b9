"""Checkpoint I/O, by its public import path: the names of :mod:`rembert_core.io.tensors` and
:mod:`rembert_core.io.atomic`, which hold the implementation.

Plugin authors and the framework packages import these names from here (``TensorSource``,
``TensorInfo``, ``save_safetensors``, ``open_checkpoint``, ``save_transaction``, ...), so the engine
can move inside :mod:`rembert_core.io` without breaking them.
"""

from __future__ import annotations

from rembert_core.io.atomic import (
    FOLLOW_SYMLINKS_ENV,
    SAVE_JOURNAL,
    SaveTransaction,
    atomic_path,
    atomic_write_bytes,
    atomic_write_files,
    check_file,
    directory_lock,
    orphan_temp_files,
    pending_save,
    recover_interrupted_save,
    save_transaction,
)
from rembert_core.io.tensors import (
    DEFAULT_METADATA,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    SafetensorsCheckpoint,
    TensorInfo,
    TensorSource,
    dtype_code,
    find_safetensors,
    open_checkpoint,
    parse_size,
    read_safetensors_header,
    read_weight_map,
    safe_open_file,
    save_safetensors,
)

__all__ = [
    "DEFAULT_METADATA",
    "FOLLOW_SYMLINKS_ENV",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "SAVE_JOURNAL",
    "SafetensorsCheckpoint",
    "SaveTransaction",
    "TensorInfo",
    "TensorSource",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_files",
    "check_file",
    "directory_lock",
    "dtype_code",
    "find_safetensors",
    "open_checkpoint",
    "orphan_temp_files",
    "parse_size",
    "pending_save",
    "read_safetensors_header",
    "read_weight_map",
    "recover_interrupted_save",
    "safe_open_file",
    "save_safetensors",
    "save_transaction",
]
