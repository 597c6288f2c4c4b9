"""Guarded, lazy discovery of plugins in the ``rembert`` entry-point group.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that raises;
here each entry point is loaded and asked to register in its own ``try`` block:
a plugin that fails to import or to register is skipped with a warning naming
the entry point and its distribution, whatever it registered before failing is
rolled back, and the rest keep working. The failure is recorded and shown by
``rembert backends``.

Environment variables:

``REMBERT_STRICT_PLUGINS=1``
    Raise :class:`~rembert_core.errors.PluginError` on the first failure instead of warning.
``REMBERT_PLUGINS=name,name``
    Load only the entry points with these names (empty string: load none).
``REMBERT_DISABLE_PLUGIN_AUTOLOAD=1``
    Load no entry point at all; plugins registered in code still work.
``REMBERT_PLUGIN_IMPORT_TIMEOUT=seconds``
    Import each entry point in a helper thread and give up on it (recorded as failed, or
    :class:`~rembert_core.errors.PluginError` in strict mode) if its import has not finished in that
    time. Unset (the default), imports run in the calling thread without a limit, so a plugin that
    hangs at import hangs the host: set this in services, or restrict loading with ``REMBERT_PLUGINS``.
    A timed-out import cannot be cancelled; its thread is left behind (as a daemon thread).

A plugin that raises at import or registration, including ``SystemExit``, is skipped as above.

Loading happens once, on first use (:func:`get_registry`), under a lock.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from rembert_core import hookspecs
from rembert_core.backend import DTYPES, Backend, TokenizerSpec
from rembert_core.errors import PluginError
from rembert_core.formats import CheckpointFormat
from rembert_core.schema import TASKS

__all__ = [
    "PluginRecord",
    "Registry",
    "get_backend",
    "get_backends",
    "get_registry",
    "get_tokenizer",
    "register_plugin",
    "reset_plugins",
]

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME


class PluginWarning(UserWarning):
    """A plugin failed to load or register and was skipped."""


@dataclass
class PluginRecord:
    """What happened to one plugin."""

    name: str  # entry-point name (or the name given to register_plugin)
    distribution: str  # distribution that declared it ("" for plugins registered in code)
    version: str
    status: str = "loaded"  # "loaded", "failed", "disabled"
    error: str | None = None
    backends: list[str] = field(default_factory=list)
    tokenizers: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)


@dataclass
class Registry:
    """Everything the plugins registered."""

    plugins: list[PluginRecord] = field(default_factory=list)
    backends: dict[str, Backend] = field(default_factory=dict)
    tokenizers: dict[str, TokenizerSpec] = field(default_factory=dict)
    formats: dict[str, CheckpointFormat] = field(default_factory=dict)
    #: Backend names claimed by more than one plugin -> the distributions claiming them.
    conflicts: dict[str, list[str]] = field(default_factory=dict)


def _core_version() -> str:
    try:
        return metadata.version("rembert-core")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return ""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _strict() -> bool:
    return _env_flag("REMBERT_STRICT_PLUGINS")


def _allowed_names() -> set[str] | None:
    raw = os.environ.get("REMBERT_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _check_backend(backend: Any) -> None:
    if not isinstance(backend, Backend):
        raise PluginError(f"register() expects a rembert_core.Backend instance, got {type(backend).__name__}")
    if not isinstance(backend.name, str) or not backend.name.isidentifier():
        raise PluginError(f"backend name {backend.name!r} must be a non-empty identifier")
    unknown_tasks = set(backend.tasks) - set(TASKS)
    if unknown_tasks or not backend.tasks:
        raise PluginError(f"backend {backend.name!r} declares unknown tasks {sorted(unknown_tasks)} (known: {TASKS})")
    unknown_dtypes = set(backend.dtypes) - set(DTYPES)
    if unknown_dtypes or not backend.dtypes:
        raise PluginError(
            f"backend {backend.name!r} declares unknown dtypes {sorted(unknown_dtypes)} (known: {DTYPES})"
        )


def _check_tokenizer(spec: Any) -> None:
    if not isinstance(spec, TokenizerSpec):
        raise PluginError(f"register() expects a rembert_core.TokenizerSpec, got {type(spec).__name__}")
    if not spec.name or ":" not in spec.import_path:
        raise PluginError(f"tokenizer spec {spec!r} needs a name and an import_path 'module:attribute'")


class _Loader:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.registry: Registry | None = None
        self.manual: list[tuple[str, object]] = []
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)

    def _call_hooks(self, plugin: object, record: PluginRecord, registry: Registry) -> None:
        """Ask one plugin to register; on failure nothing it registered is kept."""
        backends: list[Backend] = []
        tokenizers: list[TokenizerSpec] = []
        formats: list[CheckpointFormat] = []

        def register_backend(backend: Backend) -> None:
            _check_backend(backend)
            backends.append(backend)

        def register_tokenizer(spec: TokenizerSpec) -> None:
            _check_tokenizer(spec)
            tokenizers.append(spec)

        def register_format(fmt: CheckpointFormat) -> None:
            if not isinstance(fmt, CheckpointFormat):
                raise PluginError(
                    f"register() expects a rembert_core.formats.CheckpointFormat, got {type(fmt).__name__}"
                )
            if not fmt.name or ":" not in fmt.opener or not callable(fmt.detect):
                raise PluginError(f"checkpoint format {fmt.name!r} needs a name, a detect function and an opener")
            formats.append(fmt)

        callbacks: dict[str, Callable[[Any], None]] = {
            "register_backends": register_backend,
            "register_tokenizers": register_tokenizer,
            "register_checkpoint_formats": register_format,
        }
        plugin_name = self.pm.register(plugin, name=f"{record.name}#{id(plugin)}")
        try:
            for hook_name, callback in callbacks.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin is plugin:
                        kwargs = {"register": callback}
                        impl.function(*[kwargs[arg] for arg in impl.argnames])
        finally:
            self.pm.unregister(name=plugin_name)
        # Validate everything before committing anything, so that a failure leaves no trace.
        for backend in backends:
            if not backend.distribution:
                backend.distribution = record.distribution
            if not backend.version:
                backend.version = record.version
        for kind, names in (
            ("backend", [b.name for b in backends]),
            ("tokenizer", [t.name for t in tokenizers]),
            ("checkpoint format", [f.name for f in formats]),
        ):
            for name in set(names):
                if names.count(name) > 1:
                    raise PluginError(f"plugin {record.name!r} registered {kind} {name!r} twice")
        for spec in tokenizers:
            if spec.name in registry.tokenizers:
                raise PluginError(
                    f"tokenizer {spec.name!r} is registered by both {registry.tokenizers[spec.name].distribution!r} "
                    f"and {record.distribution!r}"
                )
        for fmt in formats:
            if fmt.name in registry.formats:
                raise PluginError(
                    f"checkpoint format {fmt.name!r} is registered by both "
                    f"{registry.formats[fmt.name].distribution!r} and {record.distribution or record.name!r}"
                )
        # Commit. A backend name claimed twice is a conflict: neither is usable (see get_backend).
        for backend in backends:
            if backend.name in registry.conflicts:
                registry.conflicts[backend.name].append(backend.distribution or record.name)
            elif backend.name in registry.backends:
                other = registry.backends.pop(backend.name)
                registry.conflicts[backend.name] = [other.distribution or "?", backend.distribution or record.name]
            else:
                registry.backends[backend.name] = backend
            record.backends.append(backend.name)
        for spec in tokenizers:
            registry.tokenizers[spec.name] = dataclasses.replace(spec, distribution=record.distribution)
            record.tokenizers.append(spec.name)
        for fmt in formats:
            registry.formats[fmt.name] = dataclasses.replace(fmt, distribution=record.distribution or record.name)
            record.formats.append(fmt.name)

    def _fail(self, record: PluginRecord, exc: BaseException, stage: str) -> None:
        record.status = "failed"
        record.error = f"{stage}: {type(exc).__name__}: {exc}"
        if record.distribution:
            where = f"entry point {record.name!r} of distribution {record.distribution!r}"
        else:
            where = f"{record.name!r} (registered in code)"
        reason = f"({type(exc).__name__}: {exc})"
        if _strict():
            raise PluginError(f"rembert plugin {where} failed to {stage} {reason}") from exc
        warnings.warn(f"rembert plugin {where} failed to {stage} and was skipped {reason}", PluginWarning, stacklevel=4)

    def _add(self, plugin: object, record: PluginRecord, registry: Registry) -> None:
        try:
            self._call_hooks(plugin, record, registry)
        except (Exception, SystemExit) as exc:
            record.backends.clear()
            record.tokenizers.clear()
            record.formats.clear()
            self._fail(record, exc, "register")
        registry.plugins.append(record)

    def load(self) -> Registry:
        with self.lock:
            if self.registry is not None:
                return self.registry
            registry = Registry()
            # Built-in plugins load first, always (like pytest's), whatever the environment says.
            from rembert_core import formats as builtin_formats

            self._add(builtin_formats, PluginRecord("core", "rembert-core", _core_version()), registry)
            allowed = _allowed_names()
            autoload = not _env_flag("REMBERT_DISABLE_PLUGIN_AUTOLOAD")
            timeout = _import_timeout() if autoload else None
            for ep in _entry_points() if autoload else []:
                dist = getattr(ep, "dist", None)
                record = PluginRecord(
                    name=ep.name,
                    distribution=dist.metadata["Name"] if dist is not None else "",
                    version=dist.version if dist is not None else "",
                )
                if allowed is not None and ep.name not in allowed:
                    record.status = "disabled"
                    registry.plugins.append(record)
                    continue
                try:
                    plugin = _load_entry_point(ep, timeout)
                except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() must not end the host
                    self._fail(record, exc, "import")
                    registry.plugins.append(record)
                    continue
                self._add(plugin, record, registry)
            for name, plugin in self.manual:
                self._add(plugin, PluginRecord(name=name, distribution="", version=""), registry)
            if registry.conflicts and _strict():
                name, dists = next(iter(registry.conflicts.items()))
                raise PluginError(f"backend {name!r} is registered by several distributions: {', '.join(dists)}")
            self.registry = registry
            return registry


def _import_timeout() -> float | None:
    raw = os.environ.get("REMBERT_PLUGIN_IMPORT_TIMEOUT", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise PluginError(f"REMBERT_PLUGIN_IMPORT_TIMEOUT must be a number of seconds, got {raw!r}") from None
    return value if value > 0 else None


def _load_entry_point(ep: metadata.EntryPoint, timeout: float | None) -> Any:
    """``ep.load()``, given up after ``timeout`` seconds (``REMBERT_PLUGIN_IMPORT_TIMEOUT``) unless None."""
    if timeout is None:
        return ep.load()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["plugin"] = ep.load()
        except BaseException as exc:  # handed to the loading thread, which decides
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"rembert-plugin-import-{ep.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"import did not finish within {timeout:g} s (REMBERT_PLUGIN_IMPORT_TIMEOUT)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["plugin"]


def _entry_points() -> Iterable[metadata.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = (ep.name, ep.value)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        yield ep


_LOADER = _Loader()


def get_registry() -> Registry:
    """Load the plugins (once) and return what they registered."""
    return _LOADER.load()


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object or module in code (in addition to entry points).

    Takes effect at once if plugins were already loaded.
    """
    plugin_name = name or str(getattr(plugin, "__name__", type(plugin).__name__))
    with _LOADER.lock:
        _LOADER.manual.append((plugin_name, plugin))
        if _LOADER.registry is not None:
            _LOADER._add(plugin, PluginRecord(name=plugin_name, distribution="", version=""), _LOADER.registry)


def reset_plugins() -> None:
    """Forget what was loaded and the plugins registered in code (for tests)."""
    with _LOADER.lock:
        _LOADER.registry = None
        _LOADER.manual.clear()


def get_backends() -> dict[str, Backend]:
    """Every usable backend by name (conflicting names excluded)."""
    return dict(get_registry().backends)


def get_backend(name: str) -> Backend:
    """The backend called ``name``; :class:`PluginError` says why when it is not available."""
    registry = get_registry()
    if name in registry.backends:
        return registry.backends[name]
    if name in registry.conflicts:
        raise PluginError(
            f"backend {name!r} is registered by several distributions ({', '.join(registry.conflicts[name])}); "
            "uninstall one, or restrict loading with REMBERT_PLUGINS"
        )
    failed = [p for p in registry.plugins if p.status == "failed"]
    hint = "".join(f"\n  plugin {p.name!r} ({p.distribution or 'in code'}) failed: {p.error}" for p in failed)
    available = ", ".join(sorted(registry.backends)) or "none"
    raise PluginError(f"no backend named {name!r} (available: {available}){hint}")


def get_tokenizer(name: str) -> TokenizerSpec:
    """The tokenizer spec called ``name``."""
    registry = get_registry()
    try:
        return registry.tokenizers[name]
    except KeyError:
        available = ", ".join(sorted(registry.tokenizers)) or "none"
        raise PluginError(f"no tokenizer named {name!r} (available: {available})") from None
