"""Safetensors checkpoint I/O through safetensors' NumPy API, and atomic file writes.

Reading is lazy and memory-mapped: :func:`open_checkpoint` returns a mapping
whose values are read from disk one tensor at a time, in the stored dtype
(``bfloat16`` arrives as ``ml_dtypes.bfloat16``, never silently widened).

Writing is atomic: every file is written under a temporary name, flushed,
``fsync``-ed and renamed over its target, and a sharded checkpoint's index is
replaced last, after all its shards are complete. A crash at any point leaves
either the previous complete checkpoint or the new complete one. When a new
sharded checkpoint would overwrite shards that the current index still points
at, the new shards get a unique infix instead (``model-<tag>-00001-of-00002``),
and the shards of the old index are deleted only after the new index is in place.
"""

from __future__ import annotations

import abc
import contextlib
import json
import mmap
import os
import re
import secrets
import stat
import tempfile
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from rembert_core.dtypes import by_code, by_name, dtype_code, numpy_dtype
from rembert_core.errors import CheckpointError

__all__ = [
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
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
    "open_checkpoint",
    "orphan_temp_files",
    "parse_size",
    "pending_save",
    "read_weight_map",
    "recover_interrupted_save",
    "safe_open_file",
    "save_safetensors",
    "save_transaction",
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


# -- atomic writes ---------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


_HELD_LOCKS = threading.local()  # .paths: the directories this thread holds locked


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike[str], *, shared: bool = False) -> Iterator[None]:
    """Hold an advisory lock (``fcntl.flock``) on ``directory`` itself; wait for it if another process has it.

    Saves hold it exclusively from the start of a save to the end of its commit, so two processes
    saving into one directory take turns instead of mixing their files; single-file writes
    (:func:`atomic_path`) hold it shared; a reader that finds an interrupted save's journal takes it
    exclusively before finishing that save. Where the directory cannot be locked (no ``fcntl``, a file
    system without locks) the body runs unlocked.
    """
    key = os.path.realpath(directory)
    held: set[str] = _HELD_LOCKS.__dict__.setdefault("paths", set())
    if key in held:  # this thread already holds it (a save writing its journal): nothing more to take
        yield
        return
    try:
        import fcntl

        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):  # no locking on this file system: run unlocked, as before
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        held.add(key)
        yield
    finally:
        held.discard(key)
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is fsync-ed and renamed onto ``target``.

    If the body raises, the temporary file is removed and ``target`` is untouched. The directory is
    locked shared meanwhile (:func:`directory_lock`), so no save's clean-up takes the file for an orphan.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(target.parent, shared=True):
        yield from _atomic_path(target)


def _atomic_path(target: Path) -> Iterator[Path]:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (temporary file, fsync, rename)."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


#: Written by :func:`atomic_write_files` once every new file is complete; its presence means "finish these renames".
SAVE_JOURNAL = ".rembert-save-journal.json"


class SaveTransaction:
    """Files of one directory that are replaced together, as one unit (see :func:`save_transaction`).

    Renaming one file over another is atomic, renaming several is not: a crash between two renames
    would leave some old and some new files. So every new file is first written completely under a
    temporary name beside its target (:meth:`path`, :meth:`write_bytes`); :meth:`commit` fsyncs them,
    writes a journal (:data:`SAVE_JOURNAL`) naming the renames and removals atomically (the commit
    point), then does the renames and removals and deletes the journal. A crash before the journal
    exists leaves the previous files; after, :func:`recover_interrupted_save` (which loaders call
    first) finishes the renames, giving the new files. Either way what loads is one complete save.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._staged: dict[str, Path] = {}
        self._remove: list[str] = []
        self._done = False

    def _name(self, name: str | os.PathLike[str]) -> str:
        """``name`` as a plain file name of the directory (a path into it is accepted too)."""
        path = Path(name)
        plain = len(path.parts) == 1 and path.name not in ("", ".", "..")
        if not plain and (path.name in ("", ".", "..") or path.parent.resolve() != self.directory.resolve()):
            raise CheckpointError(f"a save into {self.directory} cannot write {os.fspath(name)!r}: not a file of it")
        return path.name

    def path(self, name: str | os.PathLike[str]) -> Path:
        """A new temporary file that becomes ``directory/name`` at commit (write it completely)."""
        if self._done:
            raise CheckpointError(f"the save into {self.directory} is already finished")
        name = self._name(name)
        if name in self._staged:
            raise CheckpointError(f"{name!r} is written twice in one save into {self.directory}")
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
        os.close(fd)
        self._staged[name] = Path(tmp_name)
        return self._staged[name]

    def write_bytes(self, name: str | os.PathLike[str], data: bytes) -> None:
        """Stage ``data`` as the new ``directory/name``."""
        self.path(name).write_bytes(data)

    def remove(self, name: str | os.PathLike[str]) -> None:
        """Remove ``directory/name`` (if it exists) at commit."""
        self._remove.append(self._name(name))

    def commit(self) -> None:
        """Make every staged file and removal take effect, as one unit."""
        if self._done:
            return
        try:
            for tmp in self._staged.values():
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(self.directory)
            remove = [name for name in dict.fromkeys(self._remove) if name not in self._staged]
            journal = {
                "replace": {name: tmp.name for name, tmp in self._staged.items()},
                "remove": remove,
                "sizes": {name: tmp.stat().st_size for name, tmp in self._staged.items()},
            }
            atomic_write_bytes(self.directory / SAVE_JOURNAL, json.dumps(journal).encode("utf-8"))
        except BaseException:
            self.abort()  # before the commit point: the previous files stay
            raise
        self._done = True
        recover_interrupted_save(self.directory)  # (this thread holds the directory's lock: no wait)

    def abort(self) -> None:
        """Delete the staged files; the directory keeps its previous files."""
        for tmp in self._staged.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._staged.clear()
        self._done = True


@contextlib.contextmanager
def save_transaction(directory: str | os.PathLike[str]) -> Iterator[SaveTransaction]:
    """Stage files of ``directory`` in the body; they replace the previous ones together when it ends.

    If the body raises, nothing in ``directory`` changes. An earlier save that was interrupted after
    its commit point is finished first. Example::

        with save_transaction(path) as save:
            save.write_bytes("config.json", config_bytes)
            save_safetensors(tensors, path, transaction=save)
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"cannot save into {directory}: it exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    with directory_lock(directory):  # one writer at a time: a second save waits for this one
        _replay_journal(directory)
        for orphan in orphan_temp_files(directory):  # no save runs now: staged files left by killed saves
            with contextlib.suppress(OSError):
                orphan.unlink()
        transaction = SaveTransaction(directory)
        try:
            yield transaction
        except BaseException:
            transaction.abort()
            raise
        transaction.commit()


def atomic_write_files(
    files: Mapping[str, bytes] | Mapping[Path, bytes], *, remove: tuple[str | os.PathLike[str], ...] = ()
) -> None:
    """Replace several files of one directory that belong together (a tokenizer's) as one unit.

    The small-file form of :func:`save_transaction`: every file is staged, then the journal
    commits them and the removals together.
    """
    targets = [Path(t) for t in files]
    directories = {t.parent for t in targets} | {Path(p).parent for p in remove}
    if len(directories) > 1:
        raise CheckpointError(f"atomic_write_files writes into one directory, got {sorted(map(str, directories))}")
    if not targets:
        return
    with save_transaction(targets[0].parent) as save:
        for target, data in zip(targets, files.values(), strict=True):
            save.write_bytes(target.name, data)
        for path in remove:
            save.remove(Path(path).name)


#: Set to ``1`` to let the files of a checkpoint or tokenizer directory be symbolic links to anywhere.
FOLLOW_SYMLINKS_ENV = "REMBERT_FOLLOW_SYMLINKS"


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _hub_blob(target: Path, root: Path) -> bool:
    """Whether ``target`` is a blob of the Hugging Face cache repository whose snapshot ``root`` is."""
    return root.parent.name == "snapshots" and (root.parent.parent / "blobs") in target.parents


def check_file(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Path:
    """``path``, after checking that reading it reads a regular file of the checkpoint directory ``root``.

    The one policy for every file a checkpoint or tokenizer directory holds: the file must be a regular
    file (a FIFO would block the reader forever, a link to ``/dev/zero`` would read until memory runs
    out), and a symbolic link is followed only when its target lies inside ``root`` (or, for a Hugging
    Face cache snapshot, in that repository's ``blobs/``), unless :data:`FOLLOW_SYMLINKS_ENV` is ``1``.
    A file the user named directly (``root`` None) may be a link to anywhere. ``FileNotFoundError``
    propagates, so callers keep their own "not found" messages.
    """
    path = Path(path)
    info = os.stat(path)  # follows links; never opens (a FIFO does not block here)
    if root is not None and path.is_symlink() and os.environ.get(FOLLOW_SYMLINKS_ENV, "") != "1":
        target, base = path.resolve(), Path(root).resolve()
        if base not in target.parents and not _hub_blob(target, base):
            raise CheckpointError(
                f"{path} is a symbolic link to {target}, outside its directory {root}: refused "
                f"(set {FOLLOW_SYMLINKS_ENV}=1 to follow links anywhere)"
            )
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path} is {_file_kind(info.st_mode)}, not a regular file: refused")
    return path


#: Temporary files of :class:`SaveTransaction` and :func:`atomic_path`: ``.<name>.<8 random>.tmp``.
_TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def orphan_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Staged files in ``directory`` that no journal names: what saves killed before their commit left.

    Only meaningful while no save runs (under :func:`directory_lock`); ``rembert inspect`` reports them.
    """
    directory = Path(directory)
    named: set[str] = set()
    journal = directory / SAVE_JOURNAL
    if journal.is_file():
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, RecursionError):
            named = {str(v) for v in json.loads(journal.read_text(encoding="utf-8")).get("replace", {}).values()}
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if _TEMP_FILE.match(p.name) and p.name not in named and p.is_file())


def pending_save(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds the journal of a save interrupted after its commit point."""
    return os.path.lexists(Path(directory) / SAVE_JOURNAL)


def recover_interrupted_save(directory: str | os.PathLike[str]) -> None:
    """Finish a save of :func:`atomic_write_files` that was interrupted after its commit point.

    Does nothing when ``directory`` holds no journal. Otherwise the directory is locked (a save still
    running there finishes first) and the journal is replayed, once: it may only rename ``.NAME.*.tmp``
    files of the directory onto ``NAME`` and remove plain names in it, and every file it renames must
    be there, staged, or already renamed with the size the journal recorded. A journal that does not
    match its files (one shipped inside a downloaded checkpoint, say) is refused, not replayed.
    """
    directory = Path(directory)
    if not pending_save(directory):
        return
    with directory_lock(directory):
        _replay_journal(directory)


def _replay_journal(directory: Path) -> None:
    """Replay the journal of ``directory`` (the caller holds its lock); see :func:`recover_interrupted_save`."""
    path = directory / SAVE_JOURNAL
    if not os.path.lexists(path):
        return
    try:
        check_file(path, root=directory)
        journal = json.loads(path.read_text(encoding="utf-8"))
        replace, remove = dict(journal["replace"]), list(journal["remove"])
        sizes = journal.get("sizes")
        sizes = None if sizes is None else dict(sizes)
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: unreadable journal of an interrupted save: {exc}") from None
    for name, tmp in [*replace.items(), *((r, None) for r in remove)]:
        plain = isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
        if not plain or (tmp is not None and not re.fullmatch(re.escape(f".{name}.") + r"[^/\\]+\.tmp", str(tmp))):
            raise CheckpointError(f"{path}: invalid entry {name!r} -> {tmp!r} in the journal of an interrupted save")
    staged = [name for name, tmp in replace.items() if (directory / tmp).is_file()]
    for name, tmp in replace.items():
        if name in staged:
            continue
        done = (
            sizes is not None and (directory / name).is_file() and (directory / name).stat().st_size == sizes.get(name)
        )
        if not done:
            raise CheckpointError(
                f"{path}: the journal renames {tmp!r} onto {name!r}, but neither is there as the save left it; "
                "it was not written by an interrupted save of this directory: refusing to replay it "
                "(delete the journal if the directory is otherwise intact)"
            )
    if not replace:
        raise CheckpointError(
            f"{path}: a journal that only removes files is not one a save writes: refusing to replay it"
        )
    try:
        for name, tmp in replace.items():
            with contextlib.suppress(FileNotFoundError):  # already renamed (by the saver or another reader)
                os.replace(directory / tmp, directory / name)
        for name in remove:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        _fsync_dir(directory)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    except OSError as exc:
        raise CheckpointError(f"cannot finish the interrupted save recorded in {path}: {exc}") from None
    _fsync_dir(directory)


# -- reading ---------------------------------------------------------------------------------


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
