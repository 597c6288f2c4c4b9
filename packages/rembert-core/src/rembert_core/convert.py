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
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rembert_core.config import CONFIG_NAME, RemBertConfig
from rembert_core.dtypes import COMPUTE_DTYPES, by_name
from rembert_core.errors import CheckpointError
from rembert_core.loading import detect_format, read_config
from rembert_core.schema import ARCHITECTURES, build_schema, check_layer_count, infer_task
from rembert_core.serialization import TensorInfo, TensorSource, _fsync_dir, save_safetensors

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
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not overwrite:
        raise CheckpointError(f"{dst} exists and is not empty; pass --overwrite to replace it")
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
        tmp = dst.parent / f".{dst.name}.rembert-convert-{secrets.token_hex(4)}"
        try:
            files = save_safetensors(view, tmp, max_shard_size=max_shard_size, progress=progress)
            out_config = config.copy(architectures=[ARCHITECTURES[chosen]])
            if dtype is not None:
                out_config.extra["dtype"] = dtype
            out_config.save_pretrained(tmp)
            _publish(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return ConvertResult(
        destination=dst,
        format=detected.format.name,
        task=chosen,
        tensors=len(view),
        bytes=sum(f.stat().st_size for f in dst.iterdir() if f.is_file()),
        files=[dst / f.name for f in files] + [dst / CONFIG_NAME],
        ignored_formats=[f"{name} ({path.name})" for name, path in detected.ignored],
        unused=list(report.unused),
    )


def _publish(tmp: Path, dst: Path) -> None:
    """Move the complete ``tmp`` directory to ``dst``; a previous ``dst`` is removed only afterwards."""
    old: Path | None = None
    if dst.exists():
        old = dst.parent / f".{dst.name}.rembert-old-{secrets.token_hex(4)}"
        os.replace(dst, old)
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
