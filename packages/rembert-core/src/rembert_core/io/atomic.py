"""Atomic saves: files replaced whole, several files replaced as one unit, and the file policy of a directory.

Every file is written under a temporary name, flushed, ``fsync``-ed and renamed over its target
(:func:`atomic_path`). Several files of a directory are replaced together by a
:class:`SaveTransaction`: staged files, then a journal written atomically at the commit point, then
the renames (:func:`recover_interrupted_save` finishes them after a crash). Writers into one
directory take turns (:func:`directory_lock`). :func:`check_file` is the one policy for every file
a checkpoint or tokenizer directory holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from rembert_core.errors import CheckpointError

__all__ = [
    "FOLLOW_SYMLINKS_ENV",
    "SAVE_JOURNAL",
    "SaveTransaction",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_files",
    "check_file",
    "directory_lock",
    "orphan_temp_files",
    "pending_save",
    "recover_interrupted_save",
    "save_transaction",
]


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


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (else set and restored, locked)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _open_mode(fd: int) -> None:
    """Give a temporary file (``mkstemp`` makes it 0600) the mode a plain ``open()`` would: 0666 less the umask.

    A saved checkpoint or tokenizer must be readable by whoever could read a file the user wrote
    themselves (a serving process running as another user, say).
    """
    os.fchmod(fd, 0o666 & ~_umask())


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
    _open_mode(fd)
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
        _open_mode(fd)
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
                    _open_mode(fh.fileno())  # however the file was written (some writers replace it)
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
