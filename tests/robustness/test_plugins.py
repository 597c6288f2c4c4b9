"""Hostile plugins: raising on import, on registration, at call time; malformed; hanging; duplicated.

Plugins are installed as real distributions (a module plus a ``.dist-info`` with an entry point in
the ``rembert`` group) in a temporary site directory, and the host is the real ``rembert`` CLI in
a fresh process: it must keep working, ``rembert backends`` must report every plugin, and strict
mode (``REMBERT_STRICT_PLUGINS=1``) must fail naming the plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _util import make_safetensors

from rembert_core import CheckpointError, hookimpl
from rembert_core.plugins import register_plugin, reset_plugins

CATEGORY = "plugins"

BACKEND = """
from rembert_core import Backend, hookimpl

class {cls}(Backend):
    name = {name!r}
    tasks = ("base",)
    def build_model(self, config, task, *, dtype="float32"): return None
    def load_tensors(self, model, tensors): pass
    def export_tensors(self, model): return {{}}
    def forward(self, model, inputs, **kwargs): raise RuntimeError("{name} fails at call time")
    def gradients(self, model, inputs): return 0.0, {{}}

@hookimpl
def register_backends(register):
    register({cls}())
"""

PLUGINS: dict[str, tuple[str, str]] = {
    # key: (entry-point name, module source)
    "good": ("fake_good", BACKEND.format(cls="Good", name="fakegood")),
    "raises_on_import": ("fake_import", "raise ImportError('optional dependency missing')"),
    "raises_runtime_on_import": ("fake_import_runtime", "raise RuntimeError('module-level code crashed')"),
    "exits_on_import": ("fake_exit", "import sys\nsys.exit(3)"),
    "raises_on_registration": (
        "fake_register",
        "from rembert_core import hookimpl\n@hookimpl\ndef register_backends(register):\n    raise ValueError('no')",
    ),
    "registers_malformed": (
        "fake_malformed",
        "from rembert_core import hookimpl\n@hookimpl\ndef register_backends(register):\n    register(object())",
    ),
    "registers_bad_name": ("fake_badname", BACKEND.format(cls="Bad", name="not an identifier")),
    "duplicate_backend_a": ("fake_dup_a", BACKEND.format(cls="DupA", name="fakedup")),
    "duplicate_backend_b": ("fake_dup_b", BACKEND.format(cls="DupB", name="fakedup")),
    "same_entry_point_name_1": ("fake_same", BACKEND.format(cls="Same1", name="fakesame1")),
    "same_entry_point_name_2": ("fake_same", BACKEND.format(cls="Same2", name="fakesame2")),
    "missing_attribute": ("fake_missing", ""),  # entry point names an attribute the module lacks
    "hangs_on_import": ("fake_hang", "import time\ntime.sleep(3600)"),
}


def install(site: Path, key: str) -> None:
    ep_name, source = PLUGINS[key]
    module = f"rembert_fake_{key}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist = f"rembert-fake-{key.replace('_', '-')}"
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    target = f"{module}:does_not_exist" if key == "missing_attribute" else module
    (info / "entry_points.txt").write_text(f"[rembert]\n{ep_name} = {target}\n")


def rembert(
    site: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REMBERT_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rembert_core.cli", *args], capture_output=True, text=True, env=environ, timeout=timeout
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every hostile plugin but the hanging one, installed together."""
    path = tmp_path_factory.mktemp("site")
    for key in PLUGINS:
        if key != "hangs_on_import":
            install(path, key)
    return path


def test_rembert_backends_reports_each_plugin_and_keeps_working(site: Path, tmp_path: Path, cases: Any) -> None:
    result = rembert(site, "backends", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plugins = {}
    for p in report["plugins"]:
        plugins.setdefault(p["distribution"], p)
    status = {dist.removeprefix("rembert-fake-"): p for dist, p in plugins.items() if dist.startswith("rembert-fake-")}
    expected_failures = {
        "raises-on-import": "import: ImportError: optional dependency missing",
        "raises-runtime-on-import": "import: RuntimeError: module-level code crashed",
        "exits-on-import": "import: SystemExit",
        "raises-on-registration": "register: ValueError: no",
        "registers-malformed": "register: PluginError: register() expects a rembert_core.Backend instance",
        "registers-bad-name": "register: PluginError: backend name 'not an identifier'",
        "missing-attribute": "import: AttributeError",
    }
    for key, error in expected_failures.items():
        assert status[key]["status"] == "failed" and status[key]["error"].startswith(error), (key, status[key])
        cases.add(kind="reported as failed")
    assert status["good"]["status"] == "loaded"
    assert {b["name"] for b in report["backends"]} >= {"fakegood", "fakesame1", "fakesame2"}
    assert "fakedup" not in {b["name"] for b in report["backends"]}
    assert sorted(report["conflicts"]["fakedup"]) == [
        "rembert-fake-duplicate-backend-a",
        "rembert-fake-duplicate-backend-b",
    ]
    same = [p for p in report["plugins"] if p["name"] == "fake_same"]
    assert sorted(p["distribution"] for p in same) == [
        "rembert-fake-same-entry-point-name-1",
        "rembert-fake-same-entry-point-name-2",
    ]
    cases.add(4, kind="good, duplicates and same entry-point names reported")
    # The host keeps working: the built-in formats read a checkpoint with every hostile plugin installed.
    checkpoint = make_safetensors(tmp_path / "ckpt")
    inspected = rembert(site, "inspect", str(checkpoint), "--json")
    assert inspected.returncode == 0 and json.loads(inspected.stdout)["valid"], inspected.stderr
    table = rembert(site, "backends")
    assert table.returncode == 0 and "conflict (" in table.stdout and "failed: import: ImportError" in table.stdout
    cases.add(2, kind="host keeps working")


@pytest.mark.parametrize(
    ("key", "stage"),
    [
        ("raises_on_import", "import"),
        ("exits_on_import", "import"),
        ("raises_on_registration", "register"),
        ("registers_malformed", "register"),
        ("missing_attribute", "import"),
    ],
)
def test_strict_mode_fails_naming_the_plugin(key: str, stage: str, tmp_path: Path, cases: Any) -> None:
    install(tmp_path, key)
    install(tmp_path, "good")
    dist = f"rembert-fake-{key.replace('_', '-')}"
    for env, args in (({"REMBERT_STRICT_PLUGINS": "1"}, ["backends"]), ({}, ["backends", "--strict"])):
        result = rembert(tmp_path, *args, env=env)
        assert result.returncode != 0, result
        if env:
            assert f"entry point {PLUGINS[key][0]!r} of distribution {dist!r} failed to {stage}" in result.stderr
        else:
            assert dist in result.stdout and "failed" in result.stdout
        cases.add(kind="strict mode")


def test_strict_mode_fails_on_duplicate_backends(tmp_path: Path, cases: Any) -> None:
    install(tmp_path, "duplicate_backend_a")
    install(tmp_path, "duplicate_backend_b")
    result = rembert(tmp_path, "backends", env={"REMBERT_STRICT_PLUGINS": "1"})
    assert result.returncode != 0 and "'fakedup' is registered by several distributions" in result.stderr
    assert "rembert-fake-duplicate-backend-a" in result.stderr and "rembert-fake-duplicate-backend-b" in result.stderr
    cases.add(kind="strict mode")


def test_a_plugin_hanging_at_import_is_bounded_by_the_timeout(tmp_path: Path, cases: Any) -> None:
    install(tmp_path, "hangs_on_import")
    install(tmp_path, "good")
    start = time.monotonic()
    result = rembert(tmp_path, "backends", env={"REMBERT_PLUGIN_IMPORT_TIMEOUT": "2"}, timeout=60)
    assert time.monotonic() - start < 30
    assert result.returncode == 0, result.stderr
    assert "fakegood" in result.stdout and "did not finish within 2" in result.stdout, result.stdout
    strict = rembert(tmp_path, "backends", env={"REMBERT_PLUGIN_IMPORT_TIMEOUT": "2", "REMBERT_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and "'fake_hang' of distribution 'rembert-fake-hangs-on-import'" in strict.stderr
    # Without the timeout, REMBERT_PLUGINS (or REMBERT_DISABLE_PLUGIN_AUTOLOAD) keeps the host out of it.
    skipped = rembert(tmp_path, "backends", env={"REMBERT_PLUGINS": "fake_good"}, timeout=60)
    assert skipped.returncode == 0 and "fakegood" in skipped.stdout
    cases.add(3, kind="hang at import")


# -- call time ------------------------------------------------------------------------------------------


class _Formats:
    """A checkpoint-format plugin whose detect or opener misbehaves."""

    def __init__(self, detect: Callable[[Path], Any], opener: str) -> None:
        self.detect, self.opener = detect, opener

    @hookimpl
    def register_checkpoint_formats(self, register: Callable[[Any], None]) -> None:
        from rembert_core.formats import CheckpointFormat

        register(CheckpointFormat(name="hostile", detect=self.detect, opener=self.opener, precedence=-1))


def _raise(exc: BaseException) -> Callable[..., Any]:
    def f(*args: Any) -> Any:
        raise exc

    return f


def hostile_opener(path: Path) -> Any:
    raise ZeroDivisionError("opener crashed")


def not_a_source(path: Path) -> Any:
    return {"a": np.zeros(2)}


@pytest.fixture
def in_code_plugins(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("REMBERT_STRICT_PLUGINS", raising=False)
    reset_plugins()
    yield register_plugin
    reset_plugins()


@pytest.mark.parametrize(
    ("detect", "opener", "expect"),
    [
        (_raise(ValueError("detect crashed")), "rembert_core.formats:_open_safetensors", None),
        (_raise(KeyError("detect crashed")), "rembert_core.formats:_open_safetensors", None),
        (lambda p: p, f"{__name__}:hostile_opener", "format 'hostile' .* failed: ZeroDivisionError: opener crashed"),
        (lambda p: p, f"{__name__}:not_a_source", "opener returned dict, not a TensorSource"),
        (lambda p: p, "no_such_module_anywhere:open", "needs no_such_module_anywhere"),
        (lambda p: p, f"{__name__}:no_such_function", "names opener .* which does not exist"),
    ],
)
def test_a_format_plugin_failing_at_call_time(
    detect: Any, opener: str, expect: str | None, in_code_plugins: Any, tmp_path: Path, cases: Any
) -> None:
    from rembert_core.loading import open_weights

    in_code_plugins(_Formats(detect, opener), name="hostile-formats")
    checkpoint = make_safetensors(tmp_path / "ckpt")
    with pytest.warns(UserWarning, match="hostile") if expect is None else _no_warning():
        if expect is None:  # a crashing detect() is skipped with a warning: the built-in formats still read
            with open_weights(checkpoint) as weights:
                assert len(weights) > 0
        else:
            with pytest.raises(CheckpointError, match=expect):
                open_weights(checkpoint)
    cases.add(kind="format plugin failing at call time")


def _no_warning() -> Any:
    import contextlib

    return contextlib.nullcontext()


def test_a_backend_failing_at_call_time_leaves_the_others_usable(
    in_code_plugins: Any, tmp_path: Path, cases: Any
) -> None:
    from rembert_core.plugins import get_backend

    namespace: dict[str, Any] = {}
    for cls, name in (("Bad", "callbad"), ("Good", "callgood")):
        exec(BACKEND.format(cls=cls, name=name), namespace)
        in_code_plugins(type("P", (), {"register_backends": staticmethod(namespace["register_backends"])})(), name=name)
    with pytest.raises(RuntimeError, match="callbad fails at call time"):
        get_backend("callbad").forward(None, {})
    assert get_backend("callgood").build_model(None, "base") is None  # type: ignore[arg-type]
    cases.add(kind="backend failing at call time")
