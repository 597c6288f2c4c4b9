"""``rembert convert``: any readable checkpoint to a canonical safetensors directory, one tensor at a time.

The source is read through the registered checkpoint formats
(:mod:`rembert_core.formats`), validated against the schema of its task before
anything is written (every missing, unknown or mis-shaped tensor listed at
once), and streamed into ``model.safetensors`` (sharded when larger than
``max_shard_size``): peak memory is about the largest tensor, not the model.

The output is written into a hidden sibling directory and renamed into place
only when complete, so an interrupted or failed conversion leaves no
valid-looking output and never touches a previous one.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rembert_core.config import CONFIG_NAME, RemBertConfig
from rembert_core.errors import CheckpointError
from rembert_core.formats import Detected
from rembert_core.io.atomic import _fsync_dir, check_file
from rembert_core.io.dtypes import COMPUTE_DTYPES, by_name
from rembert_core.io.tensors import TensorInfo, TensorSource, save_safetensors
from rembert_core.loading import detect_format, read_config
from rembert_core.schema import ARCHITECTURES, build_schema, check_layer_count, infer_task

__all__ = ["ConvertResult", "convert_checkpoint"]


def _code_of(dtype: str) -> str:
    row = by_name(dtype)
    assert row is not None  # checked against COMPUTE_DTYPES by convert_checkpoint
    return row.code


class _CanonicalView(TensorSource):
    """The matched tensors of a source under their canonical names, optionally cast to one dtype."""

    def __init__(self, source: TensorSource, names: dict[str, str], dtype: str | None) -> None:
        self._source = source
        self._names = names  # canonical -> source key
        self._dtype = dtype
        infos = source.infos()
        self._infos = {
            canonical: TensorInfo(
                canonical, infos[key].shape, _code_of(dtype) if dtype else infos[key].dtype, infos[key].file
            )
            for canonical, key in names.items()
        }

    def infos(self) -> dict[str, TensorInfo]:
        return dict(self._infos)

    def __getitem__(self, name: str) -> np.ndarray:
        array = np.asarray(self._source[self._names[name]])
        if self._dtype is not None and array.dtype.name != self._dtype:
            import ml_dtypes

            target = ml_dtypes.bfloat16 if self._dtype == "bfloat16" else np.dtype(self._dtype)
            array = array.astype(np.float32).astype(target) if array.dtype.name == "bfloat16" else array.astype(target)
        return array


@dataclass
class ConvertResult:
    """What a conversion wrote."""

    destination: Path
    format: str
    task: str
    tensors: int
    bytes: int
    files: list[Path] = field(default_factory=list)
    ignored_formats: list[str] = field(default_factory=list)  # other formats present in the source directory
    unused: list[str] = field(default_factory=list)  # source tensors of other heads, not written


def convert_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    dtype: str | None = None,
    max_shard_size: int | str | None = "2GB",
    task: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ConvertResult:
    """Convert the checkpoint at ``src`` into a canonical directory ``dst``.

    Args:
        src: a checkpoint directory, weights file, or TensorFlow checkpoint prefix.
        dst: the directory to create (must not exist, or be empty, unless ``overwrite``).
        dtype: cast every tensor to "float32", "bfloat16" or "float16" (default: keep each tensor's dtype).
        max_shard_size: shard size ("2GB", bytes) or None for one file.
        task: the task schema to check and write (default: inferred from the config and tensor names).
        config_file: a RemBERT ``config.json`` when ``src`` has none (original TF checkpoints).
        overwrite: replace an existing non-empty ``dst``.
        progress: called with each tensor name as it is written.
    """
    src, dst = Path(src), Path(dst)
    if dtype is not None and dtype not in COMPUTE_DTYPES:
        raise CheckpointError(f"--dtype {dtype!r} is not supported; choose one of {sorted(COMPUTE_DTYPES)}")
    _check_destination(src, dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not overwrite:
        raise CheckpointError(f"{dst} exists and is not empty; pass --overwrite to replace it")
    remove_orphan_staging(dst)
    detected = detect_format(src)
    if config_file is not None:
        config = RemBertConfig.from_json_file(config_file)
    else:
        base = src if src.is_dir() else src.parent
        if not os.path.lexists(base / CONFIG_NAME):
            raise CheckpointError(f"no {CONFIG_NAME} beside {src}; pass --config with the model's RemBERT config")
        config = read_config(base, {})
    with detected.format.open(detected.path) as source:
        infos = source.infos()
        check_layer_count(config, infos, str(detected.path))
        chosen = task or infer_task(config, infos)
        schema = build_schema(config, chosen)
        report = schema.validate({k: i.shape for k, i in infos.items()}, {k: i.dtype for k, i in infos.items()})
        report.raise_for_errors(str(detected.path))
        view = _CanonicalView(source, dict(report.matched), dtype)
        tmp = dst.parent / f".{dst.name}{STAGING_INFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            files = save_safetensors(view, tmp, max_shard_size=max_shard_size, progress=progress)
            out_config = config.copy(architectures=[ARCHITECTURES[chosen]])
            if dtype is not None:
                out_config.dtype = dtype
            out_config.save_pretrained(tmp)
            carried = _carry_files(src if src.is_dir() else src.parent, detected, tmp)
            _publish(tmp, dst, overwrite=overwrite)
        except MemoryError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointError(
                f"not enough memory to convert {detected.path} (tensors are converted one at a time; the largest "
                f"is {max((i.nbytes for i in infos.values()), default=0)} bytes)"
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return ConvertResult(
        destination=dst,
        format=detected.format.name,
        task=chosen,
        tensors=len(view),
        bytes=sum(f.stat().st_size for f in dst.iterdir() if f.is_file()),
        files=[dst / f.name for f in files] + [dst / CONFIG_NAME] + [dst / name for name in carried],
        ignored_formats=[f"{name} ({path.name})" for name, path in detected.ignored],
        unused=list(report.unused),
    )


#: Staging directories of a convert are named ``.<dst>`` + this + ``<pid>-<random>`` beside ``dst``.
STAGING_INFIX = ".rembert-convert-"
_OLD_INFIX = ".rembert-old-"

#: Files of a source directory that are weights or bookkeeping, never carried to the destination.
_NOT_CARRIED = re.compile(
    r"(\.safetensors|\.safetensors\.index\.json|\.bin|\.bin\.index\.json|\.pt|\.pth|\.h5|\.index|\.data-\d+-of-\d+"
    r"|\.msgpack|\.ckpt.*)$|^(config\.json|checkpoint)$|^\."
)


def _check_destination(src: Path, dst: Path) -> None:
    """Refuse a destination whose replacement would delete the source (itself, or a directory holding it)."""
    source = (src if src.exists() else src.parent).resolve()
    target = dst.resolve()
    if target == source or target in source.parents:
        raise CheckpointError(
            f"the destination {dst} is the source {src} or a directory holding it: converting into it would "
            "delete the source; choose another destination"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def orphan_staging(dst: Path) -> list[Path]:
    """Staging and replaced-output directories of converts into ``dst`` whose process is gone."""
    out = []
    for infix in (STAGING_INFIX, _OLD_INFIX):
        for path in dst.parent.glob(glob.escape(f".{dst.name}{infix}") + "*"):
            pid = path.name[len(f".{dst.name}{infix}") :].partition("-")[0]
            if not pid.isdigit() or not _pid_alive(int(pid)):
                out.append(path)
    return out


def remove_orphan_staging(dst: Path) -> None:
    """Delete what converts into ``dst`` killed mid-way left behind (their owner's pid is not running)."""
    for path in orphan_staging(dst):
        shutil.rmtree(path, ignore_errors=True)


def _carry_files(base: Path, detected: Detected, tmp: Path) -> list[str]:
    """Copy the files of the source directory that are neither weights nor config (tokenizer files,
    ``generation_config.json``, README, LICENSE, ...) into the staging directory; return their names."""
    if not base.is_dir() or detected.path.parent != base:
        return []
    carried = []
    for path in sorted(base.iterdir()):
        if _NOT_CARRIED.search(path.name) or not (path.is_file() or path.is_symlink()):
            continue
        try:
            check_file(path, root=base)
        except (CheckpointError, OSError):
            continue  # a link leaving the directory or a special file is not copied
        shutil.copyfile(path, tmp / path.name)
        carried.append(path.name)
    return carried


def _publish(tmp: Path, dst: Path, *, overwrite: bool) -> None:
    """Move the complete ``tmp`` directory to ``dst``; a previous ``dst`` is removed only afterwards.

    Without ``overwrite`` the rename itself is the emptiness check: renaming a directory onto a non-empty
    one fails, so of two converts racing to one destination exactly one publishes and the other fails.
    """
    old: Path | None = None
    if not overwrite:
        try:
            os.rename(tmp, dst)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise CheckpointError(f"{dst} exists and is not empty; pass --overwrite to replace it") from None
            raise
        _fsync_dir(dst.parent)
        return
    if dst.exists():
        old = dst.parent / f".{dst.name}{_OLD_INFIX}{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(dst, old)
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
