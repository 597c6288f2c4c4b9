"""One loading plan for every framework: a checkpoint on disk becomes a config, a schema match and tensors.

Every framework's ``from_pretrained`` runs the same plan::

    with plan_load(path, config=config, overrides=kwargs) as plan:   # each step below happens once
        model = build_without_memory(plan.config)                     # the framework's part
        plan.match(schema_of(model), ignore_mismatched_sizes=...)     # raises CheckpointError listing all
        for name, key in plan.matched():
            install(model, name, plan.weights[key])                   # the framework's part
        for name, spec in plan.to_initialize():
            initialise(model, name, spec.init)                        # the framework's part
        plan.log(logger, type(model).__name__)
        info = plan.loading_info()

:func:`plan_load` resolves a Hub id (:mod:`rembert_core.io.hub`), finishes a save interrupted after its
commit point (:func:`~rembert_core.io.atomic.recover_interrupted_save`), detects the format among
the registered ones (:func:`detect_format`), opens the weights (their headers parsed once, the files
kept open until the plan closes, so a load sees the save that was there when it started) and reads the
config. :meth:`LoadPlan.match` checks the tensors against the model's schema from the headers alone.
:meth:`LoadPlan.loading_info` has the same keys and meanings in every framework.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rembert_core.config import CONFIG_NAME, RemBertConfig
from rembert_core.errors import CheckpointError, ConfigError, RemBertError
from rembert_core.formats import KNOWN_FILES, CheckpointFormat, Detected
from rembert_core.io.atomic import check_file, pending_save, recover_interrupted_save
from rembert_core.io.dtypes import dtype_code, dtype_name
from rembert_core.io.hub import resolve_checkpoint
from rembert_core.io.tensors import TensorSource
from rembert_core.schema import CheckpointSchema, SchemaReport, TensorSpec, check_layer_count

__all__ = [
    "HUB_ARGUMENTS",
    "IGNORED_LOADING_ARGUMENTS",
    "LOAD_ATTEMPTS",
    "LoadPlan",
    "detect_format",
    "find_weights",
    "iter_matched",
    "match_weights",
    "open_source",
    "open_weights",
    "plan_load",
    "read_config",
]

#: ``from_pretrained`` keyword arguments that concern the Hugging Face Hub, not the config.
HUB_ARGUMENTS = ("local_files_only", "revision", "cache_dir", "token")
#: transformers' ``from_pretrained`` arguments about downloading, unpickling or placement that have nothing to say
#: about the config: accepted and dropped (rembert never unpickles code, reads safetensors first, and detects the
#: format itself, so ``use_safetensors``, ``weights_only``, ``from_tf`` are what it does anyway).
IGNORED_LOADING_ARGUMENTS = (
    "force_download",
    "resume_download",
    "proxies",
    "use_auth_token",
    "trust_remote_code",
    "mirror",
    "use_safetensors",
    "weights_only",
    "from_tf",
    "from_flax",
    "_fast_init",
    "_from_auto",
    "_from_pipeline",
    "_commit_hash",
    "offload_folder",
    "offload_state_dict",
    "offload_buffers",
    "key_mapping",
)


# -- finding and opening the weights -----------------------------------------------------------


def detect_format(
    path: str | os.PathLike[str], *, recover: bool = True, extra: Iterable[CheckpointFormat] = ()
) -> Detected:
    """The registered format that reads ``path`` (a directory, a file, or a TF checkpoint prefix).

    ``recover`` first finishes a save interrupted after its commit point (:func:`plan_load` does that
    itself, once, and passes False). ``extra`` formats take part as if registered (a framework's own
    format, readable even with plugin autoloading off); a registered format of the same name wins.
    """
    from rembert_core.plugins import PluginWarning, get_registry

    path = Path(path)
    if not path.exists() and not (path.parent.is_dir() and any(path.parent.glob(glob.escape(path.name) + ".*"))):
        raise CheckpointError(f"checkpoint not found: {path}")  # (a TF checkpoint prefix exists only as prefix.*)
    if recover:
        recover_interrupted_save(path if path.is_dir() else path.parent)  # a save killed after its commit point
    registered = {**{f.name: f for f in extra}, **get_registry().formats}
    formats = sorted(registered.values(), key=lambda f: (f.precedence, f.name))
    hits: list[tuple[CheckpointFormat, Path]] = []
    for fmt in formats:
        try:
            found = fmt.detect(path)
        except OSError:
            found = None
        except Exception as exc:  # a third-party detect() that crashes is skipped, not fatal to every load
            warnings.warn(
                f"checkpoint format {fmt.name!r} ({fmt._origin()}) failed to inspect {path} and was skipped "
                f"({type(exc).__name__}: {exc})",
                PluginWarning,
                stacklevel=2,
            )
            found = None
        if found is not None:
            hits.append((fmt, found))
    if hits:
        chosen, found = hits[0]
        if path.is_dir() and os.path.lexists(found) and not found.is_dir():
            try:
                check_file(found, root=path)  # a file the directory holds: regular, no link leaving it
            except FileNotFoundError:
                raise CheckpointError(f"{found} is a broken symbolic link") from None
        return Detected(chosen, found, tuple((f.name, p) for f, p in hits[1:]))
    candidates = [path / n for n in KNOWN_FILES] if path.is_dir() else [path]
    for candidate in candidates:
        known = KNOWN_FILES.get(candidate.name)
        if known and candidate.exists():
            raise CheckpointError(f"{candidate} is a {known[0]} checkpoint; reading it needs {known[1]}")
    if path.is_dir():
        present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
        names = ", ".join(f.name for f in formats)
        raise CheckpointError(f"no weights file in {path} that a registered format reads ({names}); found {present}")
    raise CheckpointError(f"{path} is not in a checkpoint format rembert can read")


def open_source(path: str | os.PathLike[str]) -> TensorSource:
    """Open the weights at ``path`` with the format :func:`detect_format` picks."""
    detected = detect_format(path)
    return detected.format.open(detected.path)


def find_weights(path: str | os.PathLike[str]) -> Path:
    """The weights file (or TF checkpoint prefix) a load of ``path`` reads: the detected format's file."""
    return detect_format(path).path


def open_weights(path: str | os.PathLike[str]) -> TensorSource:
    """Open the weights of a checkpoint directory or file, lazily, with canonical names.

    The reader is chosen among the registered checkpoint formats (:mod:`rembert_core.formats`):
    safetensors always; ``pytorch_model.bin`` with rembert-torch installed; ``tf_model.h5`` with h5py;
    original TensorFlow checkpoints with rembert-tf. A format whose reader is not installed is refused
    with a message naming the package to install.
    """
    return open_source(Path(path))


# -- matching against a schema -----------------------------------------------------------------


def match_weights(
    weights: TensorSource | Mapping[str, np.ndarray],
    schema: CheckpointSchema,
    *,
    source: str = "checkpoint",
    strict: bool = True,
) -> SchemaReport:
    """Validate ``weights`` against ``schema`` from shapes/dtypes alone (no tensor data read).

    With ``strict`` (the default) any missing backbone tensor, unknown key or mismatched shape raises
    :class:`CheckpointError` listing all of them.
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


# -- the plan ----------------------------------------------------------------------------------


def read_config(directory: Path, overrides: Mapping[str, Any]) -> RemBertConfig:
    """``config.json`` of ``directory`` with ``overrides`` applied, as transformers applies them.

    The file must be a regular file of ``directory`` (:func:`~rembert_core.io.atomic.check_file`).
    ``num_labels`` without ``id2label`` regenerates the label names (``LABEL_0``, ...) when it changes the
    count; with ``id2label`` it is checked against it.
    """
    overrides = dict(overrides)
    num_labels = overrides.pop("num_labels", None)
    path = Path(directory) / CONFIG_NAME
    with contextlib.suppress(FileNotFoundError):  # (from_json_file names a missing file)
        check_file(path, root=directory)
    config = RemBertConfig.from_json_file(path, **overrides)
    if num_labels is not None and "id2label" not in overrides and num_labels != config.num_labels:
        config.num_labels = num_labels  # regenerates id2label/label2id (transformers semantics)
    elif num_labels is not None and "id2label" in overrides:
        config = config.copy(num_labels=num_labels)
    return config


@dataclass
class LoadPlan:
    """A checkpoint opened for loading: its files, format, weights (headers read) and config.

    Made by :func:`plan_load`; close it (or use it as a context manager) when the tensors are installed.
    """

    path: Path  # the local directory, file or TF checkpoint prefix the name resolved to
    directory: Path  # the directory holding the checkpoint (its config.json)
    detected: Detected  # the format chosen, and formats also present but ignored
    weights: TensorSource  # open, headers read; tensors are read on access
    config: RemBertConfig
    schema: CheckpointSchema | None = None  # set by match()
    report: SchemaReport | None = None  # set by match()
    #: (name, checkpoint shape, model shape) of tensors re-initialised under ignore_mismatched_sizes
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def source(self) -> str:
        """The checkpoint as error messages name it (its first files)."""
        return ", ".join(str(f) for f in self.weights.files[:3]) or str(self.path)

    def match(self, schema: CheckpointSchema, *, ignore_mismatched_sizes: bool = False) -> SchemaReport:
        """Check the weights against ``schema``; raise :class:`CheckpointError` listing every problem.

        Head or pooler tensors the checkpoint lacks are to be initialised (:meth:`to_initialize`). With
        ``ignore_mismatched_sizes``, tensors of another shape are re-initialised instead of refused (a
        classifier with another ``num_labels``), as in transformers.
        """
        report = match_weights(self.weights, schema, source=self.source, strict=False)
        if ignore_mismatched_sizes and report.mismatched:
            order = {name: i for i, name in enumerate(schema)}
            for name, expected, found in sorted(report.mismatched, key=lambda m: order[m[0]]):
                del report.matched[name]
                self.mismatched.append((name, found, expected))
            report.newly_initialized = sorted(
                [*report.newly_initialized, *(m[0] for m in self.mismatched)], key=order.__getitem__
            )
            report.mismatched.clear()
        report.raise_for_errors(self.source)
        self.schema, self.report = schema, report
        return report

    def _report(self) -> SchemaReport:
        if self.report is None:
            raise RemBertError("LoadPlan.match() must be called first")
        return self.report

    def matched(self) -> Iterator[tuple[str, str]]:
        """``(schema name, checkpoint key)`` of every tensor to read, in schema order."""
        yield from self._report().matched.items()

    def to_initialize(self) -> list[tuple[str, TensorSpec]]:
        """``(schema name, spec)`` of every tensor to initialise (absent, or re-initialised); see ``spec.init``."""
        report = self._report()
        return [(name, report.schema[name]) for name in report.newly_initialized]

    def checkpoint_dtype(self) -> str | None:
        """The dtype ``"auto"`` picks: the config's ``dtype``/``torch_dtype``, else the first float tensor's."""
        for key in ("dtype", "torch_dtype"):
            value = self.config.extra.get(key)
            if isinstance(value, str) and dtype_name(value.removeprefix("torch.")):
                return value.removeprefix("torch.")
        for info in self.weights.infos().values():
            name = dtype_name(info.dtype)
            if name in ("float32", "bfloat16", "float16", "float64"):
                return name
        return None

    def log(self, logger: logging.Logger, model_name: str) -> None:
        """Warn, as transformers does, about initialised, re-initialised and unused tensors."""
        report = self._report()
        fresh = [n for n in report.newly_initialized if n not in {m[0] for m in self.mismatched}]
        if fresh:
            logger.warning(
                "Some weights of %s were not in the checkpoint at %s and are newly initialized: %s. "
                "You should probably train this model on a downstream task before using it.",
                model_name,
                self.path,
                ", ".join(fresh),
            )
        if self.mismatched:
            logger.warning(
                "Some weights of %s had other shapes in the checkpoint at %s and are newly initialized: %s",
                model_name,
                self.path,
                ", ".join(f"{name} (checkpoint {ckpt}, model {model})" for name, ckpt, model in self.mismatched),
            )
        if report.unused:
            logger.warning(
                "Some weights of the checkpoint at %s were not used when initializing %s: %s",
                self.path,
                model_name,
                ", ".join(report.unused),
            )

    def loading_info(self) -> dict[str, Any]:
        """What ``output_loading_info=True`` returns, the same in every framework.

        ``missing_keys``: tensors the model has and the checkpoint did not provide (initialised, as in
        transformers; mis-shaped ones re-initialised under ``ignore_mismatched_sizes`` included);
        ``unexpected_keys``: checkpoint tensors the model did not use; ``mismatched_keys``:
        ``(name, checkpoint shape, model shape)`` of re-initialised mis-shaped tensors; ``error_msgs``:
        always empty (errors raise); ``newly_initialized`` and ``unused``: the same lists as
        ``missing_keys`` and ``unexpected_keys`` under the schema's names; ``report``: the
        :class:`~rembert_core.schema.SchemaReport`.
        """
        report = self._report()
        return {
            "missing_keys": list(report.newly_initialized),
            "unexpected_keys": list(report.unused),
            "mismatched_keys": list(self.mismatched),
            "error_msgs": [],
            "newly_initialized": list(report.newly_initialized),
            "unused": list(report.unused),
            "report": report,
        }

    def close(self) -> None:
        """Release the checkpoint's files."""
        self.weights.close()

    def __enter__(self) -> LoadPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: How often :func:`plan_load` reopens a checkpoint that a concurrent save changed while it was read.
LOAD_ATTEMPTS = 20


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def plan_load(
    path: str | os.PathLike[str],
    *,
    config: RemBertConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    formats: Iterable[CheckpointFormat] = (),
) -> LoadPlan:
    """Open the checkpoint at ``path`` (a directory, weights file, TF prefix or Hub id) for loading.

    Each step runs once: resolve a Hub id (``overrides`` may hold :data:`HUB_ARGUMENTS`), finish an
    interrupted save, detect the format (``formats``: a framework's own, readable with plugin
    autoloading off), open the weights, read ``config.json`` with the remaining ``overrides`` (unless
    ``config`` is given: then the overrides are applied to a copy of it).

    The plan holds one committed save, whole: once everything is open it checks that no save is in
    progress and that ``config.json`` and every weights file are still the files it read (saves
    replace files by rename, so a new save means new files). If another process committed a save
    meanwhile, the checkpoint is opened again (up to :data:`LOAD_ATTEMPTS` times).
    """
    overrides = dict(overrides or {})
    hub = {k: overrides.pop(k) for k in HUB_ARGUMENTS if k in overrides}
    for name in IGNORED_LOADING_ARGUMENTS:  # how transformers finds or unpickles files: nothing for the config
        overrides.pop(name, None)
    variant = overrides.pop("variant", None)
    if variant is not None:
        raise CheckpointError(
            f"variant={variant!r}: weight variants (model.{variant}.safetensors) are not read; save the variant "
            "as a checkpoint of its own (or load it with torch_dtype=) and pass its directory"
        )
    subfolder = overrides.pop("subfolder", None) or ""
    resolved = resolve_checkpoint(path, **hub)
    if subfolder:
        resolved = resolved / subfolder
        if not resolved.exists():
            raise CheckpointError(f"{path}: no subfolder {subfolder!r} there")
    directory = resolved if resolved.is_dir() else resolved.parent
    config_path = directory / CONFIG_NAME
    for attempt in range(LOAD_ATTEMPTS):
        last = attempt + 1 == LOAD_ATTEMPTS
        recover_interrupted_save(directory)
        seen_config = _identity(config_path)
        try:
            detected = detect_format(resolved, recover=False, extra=formats)
            seen_index = _identity(detected.path)
            weights = detected.format.open(detected.path)  # headers only: a missing or unreadable file fails first
        except CheckpointError:
            if last or (not pending_save(directory) and _identity(config_path) == seen_config):
                raise  # the directory did not change: the error is the checkpoint's
            time.sleep(0.005 * (attempt + 1))
            continue
        try:
            plan_config = read_config(directory, overrides) if config is None else config
            if config is not None and overrides:
                plan_config = config.copy(**overrides)
            check_layer_count(plan_config, weights.infos(), str(detected.path))
        except (CheckpointError, ConfigError):
            weights.close()
            if last or (not pending_save(directory) and _identity(config_path) == seen_config):
                raise
            time.sleep(0.005 * (attempt + 1))
            continue
        except BaseException:
            weights.close()
            raise
        unchanged = (
            not pending_save(directory)
            and (config is not None or _identity(config_path) == seen_config)
            and _identity(detected.path) == seen_index
            and all(_identity(p) == ident for p, ident in weights.identities().items())
        )
        if unchanged:
            return LoadPlan(resolved, directory, detected, weights, plan_config)
        weights.close()  # a save was committed while the files were opened: read the new one
        time.sleep(0.005 * (attempt + 1))
    raise CheckpointError(
        f"{directory} kept changing while it was read ({LOAD_ATTEMPTS} attempts): another process keeps saving into it"
    )
