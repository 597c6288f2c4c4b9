"""Safetensors checkpoints through NumPy: lazy reading with the header parsed once, atomic sharded writing.

Reading is lazy: :func:`open_checkpoint` returns a mapping whose values are read from disk one
tensor at a time, in the stored dtype (``bfloat16`` arrives as ``ml_dtypes.bfloat16``, never
silently widened). Every checkpoint reader returns a :class:`TensorSource`.

Writing goes through a :class:`~rembert_core.io.atomic.SaveTransaction`: a crash at any point
leaves either the previous complete checkpoint or the new complete one. When a new sharded
checkpoint would overwrite shards that the current index still points at, the new shards get a
unique infix instead (``model-<tag>-00001-of-00002``), and the shards of the old index are deleted
only after the new index is in place.
"""

from __future__ import annotations

import abc
import contextlib
import json
import mmap
import os
import re
import secrets
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from rembert_core.errors import CheckpointError
from rembert_core.io.atomic import SaveTransaction, save_transaction
from rembert_core.io.dtypes import by_code, by_name, dtype_code, numpy_dtype

__all__ = [
    "DEFAULT_METADATA",
    "MAX_HEADER_BYTES",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "SafetensorsCheckpoint",
    "SafetensorsHeader",
    "TensorInfo",
    "TensorSource",
    "dtype_code",
    "find_safetensors",
    "open_checkpoint",
    "parse_size",
    "read_safetensors_header",
    "read_weight_map",
    "safe_open_file",
    "save_safetensors",
]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
DEFAULT_METADATA = {"format": "pt"}  # transformers refuses safetensors files without it

_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(size: int | str) -> int:
    """Bytes in ``size``: an int, or a string like ``"2GB"`` (10**9) or ``"500MiB"`` (2**20)."""
    if isinstance(size, bool):
        raise ValueError(f"invalid size {size!r}")
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", str(size).upper())
    if not match:
        raise ValueError(f"invalid size {size!r}: use bytes or a number with KB/MB/GB/KiB/MiB/GiB")
    value = int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or ""])
    if value <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return value


def safe_open_file(path: str | os.PathLike[str]) -> Any:
    """``safetensors.safe_open(path, framework="np")`` reading with ``pread`` where safetensors offers it.

    For callers that want safetensors' own reader; :class:`SafetensorsCheckpoint` reads through its
    parsed header instead (:func:`read_safetensors_header`).
    """
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="np", backend="pread")
    except TypeError:  # safetensors < 0.8: no backend argument
        return safe_open(str(path), framework="np")


class TensorInfo:
    """Name, shape and dtype of a stored tensor, read from the header only.

    ``dtype`` is always a safetensors dtype code ("F32", "BF16", "F16", "F64", "I64", ...), whatever the
    format the tensor is stored in; :func:`dtype_code` converts a NumPy dtype.
    """

    __slots__ = ("dtype", "file", "name", "shape")

    def __init__(self, name: str, shape: tuple[int, ...], dtype: str, file: Path) -> None:
        self.name = name
        self.shape = shape
        self.dtype = dtype  # safetensors dtype string: "F32", "BF16", ...
        self.file = file

    @property
    def nbytes(self) -> int:
        size = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        row = by_code(self.dtype)
        return size * (row.itemsize if row else 4)

    def __repr__(self) -> str:
        return f"TensorInfo({self.name!r}, shape={self.shape}, dtype={self.dtype})"


class TensorSource(Mapping[str, np.ndarray], abc.ABC):
    """A read-only, lazy mapping of tensor name to NumPy array, with shapes and dtypes known up front.

    Every checkpoint reader (safetensors here, ``pytorch_model.bin`` in rembert-torch, ``tf_model.h5``,
    original TensorFlow checkpoints, third-party formats) returns one. :meth:`infos` must not read
    tensor data; ``source[name]`` reads one tensor. Use as a context manager to release files.
    """

    #: Name of the format that produced this source ("safetensors", "pytorch", ...).
    format: str = ""
    #: Free-form metadata of the checkpoint (safetensors ``__metadata__``, ...).
    metadata: dict[str, str]

    @abc.abstractmethod
    def infos(self) -> dict[str, TensorInfo]:
        """Shape and dtype of every tensor, without reading tensor data."""

    @abc.abstractmethod
    def __getitem__(self, name: str) -> np.ndarray:
        """Read one tensor."""

    @property
    def files(self) -> list[Path]:
        """The files this source reads from."""
        return []

    def info(self, name: str) -> TensorInfo:
        """Shape and dtype of ``name`` without reading its data."""
        try:
            return self.infos()[name]
        except KeyError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos())

    def __len__(self) -> int:
        return len(self.infos())

    def close(self) -> None:
        """Release open files (reading again may re-open them)."""

    def identities(self) -> dict[Path, tuple[int, int]]:
        """``(st_dev, st_ino)`` of each file this source read, for telling whether a save replaced them since.

        The default stats the paths now (right after opening, that is what was opened); readers that keep
        the files open report what they hold.
        """
        out = {}
        for path in self.files:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                out[path] = (info.st_dev, info.st_ino)
        return out

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Largest safetensors header read (the format's own limit).
MAX_HEADER_BYTES = 100_000_000


class SafetensorsHeader:
    """One parsed and validated safetensors header: tensor infos, absolute data offsets, metadata."""

    __slots__ = ("data_start", "infos", "metadata", "offsets")

    def __init__(
        self, infos: dict[str, TensorInfo], offsets: dict[str, int], metadata: dict[str, str], data_start: int
    ) -> None:
        self.infos = infos
        self.offsets = offsets  # tensor name -> absolute byte offset of its data in the file
        self.metadata = metadata
        self.data_start = data_start


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_safetensors_header(fd: int, path: Path) -> SafetensorsHeader:
    """Parse and validate the header of the safetensors file open as ``fd`` (at ``path``): the one place it is read.

    The checks are those of the safetensors library: an 8-byte little-endian length, a JSON object of
    at most :data:`MAX_HEADER_BYTES`, known dtypes, non-negative integer shapes, data offsets that
    match each shape and tile the data buffer from 0 to the end of the file without gaps or overlaps.
    Errors are :class:`CheckpointError` naming the file and the tensor.
    """

    def bad(detail: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a valid safetensors file: {detail}")

    size = os.fstat(fd).st_size
    prefix = os.pread(fd, 8, 0)
    if len(prefix) < 8:
        raise bad(f"{size} bytes, shorter than the 8-byte header length")
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise bad(f"header length {length} does not fit the file ({size} bytes)")
    raw = os.pread(fd, length, 8)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad(f"the header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map strings to strings")
    data_start = 8 + length
    spans: list[tuple[int, int, str]] = []
    infos: dict[str, TensorInfo] = {}
    offsets: dict[str, int] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise bad(f"tensor {name!r}: entry is not an object")
        dtype, shape, span = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        row = by_code(dtype) if isinstance(dtype, str) else None
        if row is None:
            raise bad(f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_count(d) for d in shape):
            raise bad(f"tensor {name!r}: invalid shape {shape!r}")
        if not isinstance(span, list) or len(span) != 2 or not all(_count(o) for o in span):
            raise bad(f"tensor {name!r}: invalid data_offsets {span!r}")
        begin, end = span
        expected = row.itemsize
        for d in shape:
            expected *= d
        if end - begin != expected:
            raise bad(f"tensor {name!r}: data_offsets {span} hold {end - begin} bytes, its shape needs {expected}")
        spans.append((begin, end, name))
        infos[name] = TensorInfo(name, tuple(shape), row.code, path)
        offsets[name] = data_start + begin
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise bad(f"tensor {name!r}: data_offsets start at {begin}, expected {position} (gap or overlap)")
        position = end
    if data_start + position != size:
        raise bad(f"the data buffer ends at byte {data_start + position}, the file has {size}")
    return SafetensorsHeader(infos, offsets, {str(k): v for k, v in metadata.items()}, data_start)


def _close_fds(handles: dict[Path, int]) -> None:
    for fd in handles.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    handles.clear()


class SafetensorsCheckpoint(TensorSource):
    """A read-only mapping of tensor name to NumPy array over one or more safetensors files.

    Each file is opened once and its header parsed once (:func:`read_safetensors_header`), when the
    checkpoint is opened; every later read uses that open file, so what is read is the save that was
    there when the checkpoint was opened, even if another save replaces the files meanwhile. Tensors
    are read on access, one at a time (``pread``: only that tensor's bytes); :meth:`mapped` gives a
    copy-on-write memory map instead, for frameworks that adopt the file's pages as parameters.
    Use as a context manager (or call :meth:`close`) to release the files.
    """

    format = "safetensors"

    def __init__(self, files: Mapping[str, Path] | None, sources: list[Path]) -> None:
        # tensor name -> file (an index's weight map); None: every tensor of the single source file
        self._where = dict(files) if files is not None else None
        self._sources = sources
        self._handles: dict[Path, int] = {}  # open file descriptors, closed by close() or when collected
        self._maps: dict[Path, mmap.mmap] = {}
        self._finalizer = weakref.finalize(self, _close_fds, self._handles)
        self._info: dict[str, TensorInfo] = {}
        self._offsets: dict[str, int] = {}
        self.metadata: dict[str, str] = {}
        try:
            for path in sources:
                header = read_safetensors_header(self._open(path), path)
                self.metadata.update(header.metadata)
                for name, info in header.infos.items():
                    if self._where is not None and self._where.get(name) != path:
                        continue
                    self._info[name] = info
                    self._offsets[name] = header.offsets[name]
        except BaseException:
            self.close()
            raise
        missing = sorted(set(self._where or ()) - set(self._info))
        if missing and self._where is not None:
            self.close()
            detail = ", ".join(f"{n} (in {self._where[n].name})" for n in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise CheckpointError(f"the index lists tensors that their shard does not contain: {detail}{more}")

    def _open(self, path: Path) -> int:
        handle = self._handles.get(path)
        if handle is None:
            try:
                handle = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise CheckpointError(f"checkpoint file not found: {path}") from None
            except OSError as exc:
                raise CheckpointError(f"cannot open {path}: {exc}") from None
            self._handles[path] = handle
        return handle

    @property
    def files(self) -> list[Path]:
        """The files this checkpoint reads from."""
        return list(self._sources)

    def info(self, name: str) -> TensorInfo:
        """Shape and dtype of ``name`` without reading its data."""
        try:
            return self._info[name]
        except KeyError:
            raise KeyError(name) from None

    def _pread(self, info: TensorInfo, offset: int, count: int, shape: tuple[int, ...]) -> np.ndarray:
        dtype = numpy_dtype(info.dtype)
        out = np.empty(shape, dtype=dtype)
        nbytes = count * dtype.itemsize
        try:
            data = os.pread(self._open(info.file), nbytes, offset) if nbytes else b""
        except OSError as exc:
            raise CheckpointError(f"cannot read tensor {info.name!r} from {info.file}: {exc}") from None
        if len(data) != nbytes:
            raise CheckpointError(f"{info.file} is truncated: tensor {info.name!r} is missing bytes")
        out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)
        return out

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of a tensor (along its first axis), reading only those bytes from the file."""
        info = self.info(name)
        if not info.shape:
            raise CheckpointError(f"tensor {name!r} is a scalar: it has no rows")
        start, stop = max(0, start), min(info.shape[0], stop)
        row_items = int(np.prod(info.shape[1:], dtype=np.int64))
        itemsize = numpy_dtype(info.dtype).itemsize
        rows = max(0, stop - start)
        offset = self._offsets[name] + start * row_items * itemsize
        return self._pread(info, offset, rows * row_items, (rows, *info.shape[1:]))

    def mapped(self, name: str) -> np.ndarray:
        """``name`` as a writable array over a private (copy-on-write) memory map of its file: no copy now.

        Pages are read from disk on first use; writes stay private to this process. The map lives as
        long as any array from it does. Tensors whose offset is not a multiple of their item size are
        copied instead (an unaligned view is not usable by every framework).
        """
        info = self.info(name)
        dtype = numpy_dtype(info.dtype)
        offset = self._offsets[name]
        count = int(np.prod(info.shape, dtype=np.int64)) if info.shape else 1
        if offset % dtype.itemsize or count == 0:
            return self[name]
        mapping = self._maps.get(info.file)
        if mapping is None:
            try:
                mapping = mmap.mmap(self._open(info.file), 0, access=mmap.ACCESS_COPY)
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"cannot map {info.file}: {exc}") from None
            self._maps[info.file] = mapping
        return np.frombuffer(mapping, dtype=dtype, count=count, offset=offset).reshape(info.shape)

    def infos(self) -> dict[str, TensorInfo]:
        """Shape and dtype of every tensor, read from the headers only."""
        return dict(self._info)

    def __getitem__(self, name: str) -> np.ndarray:
        info = self.info(name)
        count = int(np.prod(info.shape, dtype=np.int64)) if info.shape else 1
        return self._pread(info, self._offsets[name], count, info.shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._info)

    def __len__(self) -> int:
        return len(self._info)

    def identities(self) -> dict[Path, tuple[int, int]]:
        """``(st_dev, st_ino)`` of the files this checkpoint holds open (what every read reads)."""
        out = {}
        for path, fd in self._handles.items():
            info = os.fstat(fd)
            out[path] = (info.st_dev, info.st_ino)
        return out

    def close(self) -> None:
        """Release the files (arrays from :meth:`mapped` keep their map alive; reading again re-opens)."""
        self._maps.clear()
        _close_fds(self._handles)

    def __enter__(self) -> SafetensorsCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_weight_map(index_path: Path) -> dict[str, Path]:
    """The ``weight_map`` of a shard index (safetensors or ``pytorch_model.bin``) as tensor name -> shard path.

    Every shard path is checked: relative, inside the index's directory (no ``..`` escape, no absolute
    path), existing; a tensor listed twice is an error. Errors name the index file.
    """

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise CheckpointError(f"{index_path}: tensor {key!r} is listed twice")
            seen[key] = value
        return seen

    try:
        data = json.loads(index_path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot read checkpoint index {index_path}: {exc}") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path} has no 'weight_map' object")
    root = index_path.parent.resolve()
    out: dict[str, Path] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or os.path.isabs(shard) or "\\" in shard:
            raise CheckpointError(f"{index_path}: tensor {name!r} points at an invalid shard path {shard!r}")
        path = (root / shard).resolve()
        if root not in path.parents:
            raise CheckpointError(f"{index_path}: shard path {shard!r} of {name!r} escapes the checkpoint directory")
        if not path.is_file():
            raise CheckpointError(f"{index_path}: shard {shard!r} (holding {name!r}) does not exist")
        out[name] = path
    return out


def find_safetensors(path: str | os.PathLike[str]) -> Path | None:
    """The safetensors file or index that :func:`open_checkpoint` would read in ``path``, if any.

    In a directory, ``model.safetensors`` takes precedence over ``model.safetensors.index.json``
    (a save that switched layouts writes the new file before removing the old one).
    """
    path = Path(path)
    if path.is_file():
        return path
    for name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME):
        if (path / name).is_file():
            return path / name
    return None


def open_checkpoint(path: str | os.PathLike[str]) -> SafetensorsCheckpoint:
    """Open a safetensors checkpoint: a directory, a ``.safetensors`` file, or an index JSON."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    found = find_safetensors(path)
    if found is None:
        raise CheckpointError(
            f"no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME} in {path}"
            + (f" (it holds: {', '.join(sorted(p.name for p in path.iterdir())[:8])})" if path.is_dir() else "")
        )
    if found.name.endswith(".json"):
        where = read_weight_map(found)
        sources = sorted(set(where.values()))
        return SafetensorsCheckpoint(where, sources)
    return SafetensorsCheckpoint(None, [found])


# -- writing ---------------------------------------------------------------------------------


def _shard_plan(sizes: Mapping[str, int], max_bytes: int | None) -> list[list[str]]:
    if max_bytes is None:
        return [list(sizes)]
    shards: list[list[str]] = [[]]
    size = 0
    for name, nbytes in sizes.items():
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def _live_shards(directory: Path) -> set[str]:
    index = directory / SAFE_WEIGHTS_INDEX_NAME
    if not index.is_file():
        return set()
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        names = {str(v) for v in data.get("weight_map", {}).values()}
    except (OSError, ValueError, AttributeError):
        return set()
    return {n for n in names if n == Path(n).name and n not in ("", ".", "..")}  # only this directory's files


def _write_shard_streaming(
    path: Path, names: list[str], infos: Mapping[str, tuple[tuple[int, ...], str]], fetch: Any, meta: Mapping[str, str]
) -> None:
    """Write one safetensors file tensor by tensor, holding one tensor in memory at a time.

    safetensors' own writers take every tensor of a file at once; a checkpoint
    converter streaming a 2 GB shard cannot afford that. The layout written is
    the format's specification: an 8-byte little-endian header length, a JSON
    header (names, dtypes, shapes, byte offsets, ``__metadata__``) padded with
    spaces to 8 bytes, then the tensors' bytes in header order. Files are read
    back with safetensors itself in the tests.
    """
    header: dict[str, Any] = {"__metadata__": dict(meta)}
    offset = 0
    for name in names:
        shape, dtype = infos[name]
        nbytes = (int(np.prod(shape, dtype=np.int64)) if shape else 1) * numpy_dtype(dtype).itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        for name in names:
            shape, dtype = infos[name]
            array = np.ascontiguousarray(fetch(name))
            if dtype_code(array.dtype, strict=False) != dtype or tuple(array.shape) != tuple(shape):
                raise CheckpointError(
                    f"tensor {name!r} arrived as {array.dtype.name} {tuple(array.shape)}, "
                    f"announced as {dtype} {tuple(shape)}"
                )
            fh.write(array.reshape(-1).view(np.uint8).data)


def save_safetensors(
    tensors: Mapping[str, np.ndarray],
    directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = None,
    metadata: Mapping[str, str] | None = None,
    progress: Any = None,
    transaction: SaveTransaction | None = None,
) -> list[Path]:
    """Write ``tensors`` into ``directory`` as ``model.safetensors`` or as shards plus an index.

    ``tensors`` may be any mapping, including a lazy :class:`TensorSource`: when
    it is one, tensors are read and written one at a time (peak memory is about
    the largest tensor, not the checkpoint). The dtype of each array is kept.
    ``max_shard_size`` (bytes or ``"2GB"``) splits the tensors, in order, into
    shards no larger than that (a single larger tensor gets a shard of its own).
    Every file is written atomically and the files of a previous checkpoint in
    ``directory`` that the new one replaces are removed only once the new one is
    complete. ``progress``, if given, is called with each tensor name as it is
    written. With ``transaction`` (a :class:`SaveTransaction` of ``directory``) the files
    are staged into it and take effect, with the caller's other files such as
    ``config.json``, when it commits; otherwise they take effect together on return.
    Returns the written files.
    """
    directory = Path(directory)
    if transaction is None:
        with save_transaction(directory) as own:
            return save_safetensors(
                tensors, directory, max_shard_size=max_shard_size, metadata=metadata, progress=progress, transaction=own
            )
    if transaction.directory.resolve() != directory.resolve():
        raise CheckpointError(f"save_safetensors into {directory} was given a save of {transaction.directory}")
    meta = {**DEFAULT_METADATA, **(metadata or {})}
    streaming = isinstance(tensors, TensorSource)
    infos: dict[str, tuple[tuple[int, ...], str]] = {}
    if isinstance(tensors, TensorSource):
        for name, info in tensors.infos().items():
            infos[name] = (info.shape, info.dtype)
    else:
        arrays = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
        for name, array in arrays.items():
            row = by_name(array.dtype.name)
            if row is None:
                raise CheckpointError(f"tensor {name!r} has dtype {array.dtype}, which cannot be saved as safetensors")
            infos[name] = (tuple(array.shape), row.code)
    for name in infos:
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"tensor names must be non-empty strings, got {name!r}")
    sizes = {
        name: (int(np.prod(shape, dtype=np.int64)) if shape else 1) * numpy_dtype(dtype).itemsize
        for name, (shape, dtype) in infos.items()
    }
    limit = parse_size(max_shard_size) if max_shard_size is not None else None
    plan = _shard_plan(sizes, limit)
    old_live = _live_shards(directory)
    single = directory / SAFE_WEIGHTS_NAME
    index_path = directory / SAFE_WEIGHTS_INDEX_NAME

    def fetch(name: str) -> np.ndarray:
        if progress is not None:
            progress(name)
        return tensors[name] if streaming else arrays[name]

    def write(path: Path, names: list[str]) -> None:
        if streaming:
            _write_shard_streaming(path, names, infos, fetch, meta)
        else:
            save_file({k: fetch(k) for k in names}, str(path), metadata=meta)

    if len(plan) == 1:
        write(transaction.path(single.name), plan[0])
        for name in [*old_live, index_path.name]:  # the old sharded layout goes with the commit
            transaction.remove(name)
        return [single]

    n = len(plan)
    names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    if old_live & set(names):
        tag = secrets.token_hex(4)
        names = [f"model-{tag}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    written: list[Path] = []
    weight_map: dict[str, str] = {}
    for shard_names, file_name in zip(plan, names, strict=True):
        write(transaction.path(file_name), shard_names)
        written.append(directory / file_name)
        weight_map.update(dict.fromkeys(shard_names, file_name))
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
    transaction.write_bytes(index_path.name, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    # A previous single file shadows the index (see find_safetensors): it goes with the commit.
    for name in [single.name, *(old_live - set(names))]:
        transaction.remove(name)
    return [*written, index_path]
