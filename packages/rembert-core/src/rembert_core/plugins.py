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
    Bound each entry point's import by that many seconds (a number greater than 0, at most
    ``threading.TIMEOUT_MAX``; any other value, ``nan``, ``inf`` or a negative one included, is a
    :class:`~rembert_core.errors.PluginError` naming the variable and the value). The entry points are
    first imported in a child Python process, in order, each within the limit: one that does not
    finish (a ``sleep``, or a C call holding the GIL such as ``7 ** (10 ** 9)``, which no thread of
    the host could interrupt) or that ends the child (``os._exit``, a crash) is recorded as failed
    (or raises :class:`~rembert_core.errors.PluginError` in strict mode) and never imported here; the
    others are then imported in the host, each in a helper thread given up after the same time (a
    stuck thread is left behind as a daemon). Unset (the default), imports run in the calling thread
    without a limit, so a plugin that hangs at import hangs the host: set this in services, or
    restrict loading with ``REMBERT_PLUGINS``.

A plugin that raises at import or registration, including ``SystemExit``, is skipped as above. Two
plugins registering the same tokenizer name are a conflict, reported with a :class:`PluginWarning`
(or a :class:`~rembert_core.errors.PluginError` in strict mode) and kept in
:attr:`Registry.tokenizer_conflicts`: the tokenizer of a built-in distribution (``rembert-tokenizers``)
keeps its name, otherwise neither is used; the plugins' other registrations are kept.

Loading happens once, on first use (:func:`get_registry`), under a lock.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import subprocess
import sys
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
IMPORT_TIMEOUT_ENV = "REMBERT_PLUGIN_IMPORT_TIMEOUT"

#: The project's own distributions: a tokenizer name they register is kept when a third party claims it too.
BUILTIN_DISTRIBUTIONS = frozenset({"rembert-core", "rembert-torch", "rembert-tf", "rembert-tokenizers"})


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
    #: Tokenizer names claimed by more than one plugin -> the distributions claiming them (the first one's
    #: spec stays in ``tokenizers`` when it is a built-in distribution's; otherwise the name is unusable).
    tokenizer_conflicts: dict[str, list[str]] = field(default_factory=dict)


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

    def _call_hooks(self, plugin: object, record: PluginRecord, registry: Registry) -> list[str]:
        """Ask one plugin to register; on failure nothing it registered is kept. Returns the conflicts to report."""
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
        conflicts = []
        for spec in tokenizers:
            conflict = self._commit_tokenizer(
                dataclasses.replace(spec, distribution=record.distribution), record, registry
            )
            if conflict:
                conflicts.append(conflict)
            record.tokenizers.append(spec.name)
        for fmt in formats:
            registry.formats[fmt.name] = dataclasses.replace(fmt, distribution=record.distribution or record.name)
            record.formats.append(fmt.name)
        return conflicts

    @staticmethod
    def _commit_tokenizer(spec: TokenizerSpec, record: PluginRecord, registry: Registry) -> str | None:
        """Register ``spec``; a name already taken is a conflict (the built-in tokenizer keeps it, if any).

        Returns the conflict's message, None when there is none.
        """
        name, claimant = spec.name, record.distribution or record.name
        claimants = registry.tokenizer_conflicts.get(name)
        if claimants is None and name not in registry.tokenizers:
            registry.tokenizers[name] = spec
            return None
        if claimants is None:
            first = next((p for p in registry.plugins if name in p.tokenizers), None)
            claimants = registry.tokenizer_conflicts[name] = [(first.distribution or first.name) if first else "?"]
        claimants.append(claimant)
        kept = registry.tokenizers.get(name)
        if kept is not None and kept.distribution in BUILTIN_DISTRIBUTIONS:
            outcome = f"the tokenizer of {kept.distribution!r} is kept"
        elif spec.distribution in BUILTIN_DISTRIBUTIONS:
            registry.tokenizers[name] = spec
            outcome = f"the tokenizer of {spec.distribution!r} is kept"
        else:
            registry.tokenizers.pop(name, None)
            outcome = "neither is used"
        return f"tokenizer {name!r} is registered by several distributions ({', '.join(claimants)}): {outcome}"

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
        conflicts: list[str] = []
        try:
            conflicts = self._call_hooks(plugin, record, registry)
        except (Exception, SystemExit) as exc:
            record.backends.clear()
            record.tokenizers.clear()
            record.formats.clear()
            self._fail(record, exc, "register")
        registry.plugins.append(record)
        for message in conflicts:  # reported once committed: a warning turned into an error cannot undo half of it
            if _strict():
                raise PluginError(message)
            warnings.warn(message, PluginWarning, stacklevel=4)

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
            entry_points = list(_entry_points()) if autoload else []
            wanted = [ep for ep in entry_points if allowed is None or ep.name in allowed]
            # With a timeout, each import is tried in a child process first (see _probe_imports).
            probed = _probe_imports(wanted, timeout) if timeout is not None and wanted else {}
            for ep in entry_points:
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
                    if id(ep) in probed:
                        raise probed[id(ep)]
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
    """``REMBERT_PLUGIN_IMPORT_TIMEOUT`` in seconds, None when unset; :class:`PluginError` for a value that is no limit.

    ``float()`` accepts ``nan``, ``inf`` and negative values: they used to remove the limit silently
    (``nan``, ``-1``, ``0``) or make every plugin fail with ``OverflowError`` (``inf``, ``1e20``: more
    than a thread can wait).
    """
    raw = os.environ.get(IMPORT_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise PluginError(f"{IMPORT_TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not (math.isfinite(value) and 0 < value <= threading.TIMEOUT_MAX):
        raise PluginError(
            f"{IMPORT_TIMEOUT_ENV} must be a number of seconds greater than 0 and at most {threading.TIMEOUT_MAX:.0f}, "
            f"got {raw!r} (unset it for no limit)"
        )
    return value


#: The child process of _probe_imports: imports each entry point it is sent, answering one line after each.
_PROBE_SCRIPT = r"""
import json, os, sys
from importlib.metadata import EntryPoint

request = json.loads(sys.stdin.readline())
sys.path[:] = request["path"]
replies = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # what the plugins print goes to stderr, not into the replies
for module in request["preload"]:
    try:
        __import__(module)
    except BaseException:
        pass
replies.write("ready\n")
replies.flush()
for name, value in request["entry_points"]:
    try:
        EntryPoint(name=name, value=value, group=request["group"]).load()
    except BaseException:  # the host imports it again and reports the error itself
        pass
    replies.write("done\n")
    replies.flush()
"""

#: Seconds the probe's child may take to start (Python and rembert_core), on top of the import timeout.
_PROBE_START_SECONDS = 60.0


def _probe_imports(eps: list[metadata.EntryPoint], timeout: float) -> dict[int, BaseException]:
    """Import ``eps`` in a child Python process, in order, each within ``timeout`` seconds.

    A thread cannot bound an import that holds the GIL in a C call (``7 ** (10 ** 9)``, a catastrophic
    regular expression): the host's waiting thread never runs again. A child process can be killed.
    Returns, by ``id(ep)``, the error to record for each entry point whose import did not finish in
    time or ended the child; the child is restarted for the ones after it. The host imports the others
    itself (an import that raises raises there again, with its own message). If no child can be started
    (an embedded interpreter without a usable ``sys.executable``), a :class:`PluginWarning` says so and
    nothing is probed.
    """
    failures: dict[int, BaseException] = {}
    preload = sorted(m for m in sys.modules if m == "rembert_core" or m.startswith("rembert_core."))
    pending = list(eps)
    while pending:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _PROBE_SCRIPT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except (OSError, ValueError) as exc:
            warnings.warn(
                f"{IMPORT_TIMEOUT_ENV}: cannot start a Python process to probe plugin imports ({exc}); "
                "an import that holds the GIL is not bounded",
                PluginWarning,
                stacklevel=4,
            )
            return failures
        try:
            pending = _run_probe(proc, pending, preload, timeout, failures)
        finally:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
    return failures


def _run_probe(
    proc: subprocess.Popen[bytes],
    eps: list[metadata.EntryPoint],
    preload: list[str],
    timeout: float,
    failures: dict[int, BaseException],
) -> list[metadata.EntryPoint]:
    """Drive one probe child over ``eps``; return the entry points still to probe (after a failure), else []."""
    assert proc.stdin is not None and proc.stdout is not None
    lines: queue.Queue[bytes | None] = queue.Queue()
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name="rembert-plugin-probe-reader", daemon=True).start()
    request = {
        "path": list(sys.path),
        "preload": preload,
        "group": ENTRY_POINT_GROUP,
        "entry_points": [[ep.name, ep.value] for ep in eps],
    }
    try:
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        ready = lines.get(timeout=_PROBE_START_SECONDS + timeout)
    except (OSError, queue.Empty):
        ready = None
    if ready != b"ready\n":
        warnings.warn(
            f"{IMPORT_TIMEOUT_ENV}: the Python process probing plugin imports did not start "
            f"({sys.executable!r}); an import that holds the GIL is not bounded",
            PluginWarning,
            stacklevel=5,
        )
        return []
    for position, ep in enumerate(eps):
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            failures[id(ep)] = TimeoutError(
                f"import did not finish within {timeout:g} s ({IMPORT_TIMEOUT_ENV}; probed in a child process)"
            )
            return eps[position + 1 :]
        if line is None:
            code = proc.wait()
            failures[id(ep)] = RuntimeError(
                f"importing it ended a Python process (exit status {code}; probed in a child process, "
                f"{IMPORT_TIMEOUT_ENV})"
            )
            return eps[position + 1 :]
    return []


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
        raise TimeoutError(f"import did not finish within {timeout:g} s ({IMPORT_TIMEOUT_ENV})")
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
    """The tokenizer spec called ``name``; :class:`PluginError` says why when it is not available."""
    registry = get_registry()
    if name in registry.tokenizers:
        return registry.tokenizers[name]
    if name in registry.tokenizer_conflicts:
        raise PluginError(
            f"tokenizer {name!r} is registered by several distributions "
            f"({', '.join(registry.tokenizer_conflicts[name])}); uninstall one, or restrict loading with "
            "REMBERT_PLUGINS"
        )
    available = ", ".join(sorted(registry.tokenizers)) or "none"
    raise PluginError(f"no tokenizer named {name!r} (available: {available})")
