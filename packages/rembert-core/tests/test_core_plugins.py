"""Guarded plugin loading: real entry points from fake installed distributions, and plugins in code."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rembert_core import Backend, PluginError, RemBertConfig, TokenizerSpec, hookimpl
from rembert_core.plugins import PluginWarning, get_backend, get_backends, get_registry, register_plugin, reset_plugins


class DummyBackend(Backend):
    """A minimal valid backend for registration tests (its methods are never called here)."""

    dtypes = ("float32",)

    def __init__(self, name: str = "dummy") -> None:
        self.name = name

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> Any:
        return {"config": config, "task": task}

    def load_tensors(self, model: Any, tensors: Mapping[str, np.ndarray]) -> None:
        model["tensors"] = dict(tensors)

    def export_tensors(self, model: Any) -> dict[str, np.ndarray]:
        return dict(model["tensors"])

    def forward(
        self,
        model: Any,
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        return {}

    def gradients(self, model: Any, inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        return 0.0, {}


def make_plugin(register_names: Sequence[str], fail_after: bool = False) -> object:
    class Plugin:
        @hookimpl
        def register_backends(self, register: Callable[[Backend], None]) -> None:
            for name in register_names:
                register(DummyBackend(name))
            if fail_after:
                raise RuntimeError("plugin bug after registering")

    return Plugin()


def test_plugin_in_code_registers_backends() -> None:
    register_plugin(make_plugin(["alpha", "beta"]), name="ab")
    assert set(get_backends()) == {"alpha", "beta"}
    assert get_backend("alpha").name == "alpha"
    record = get_registry().plugins[-1]
    assert record.name == "ab" and record.status == "loaded" and record.backends == ["alpha", "beta"]


def test_failing_registration_is_rolled_back_and_others_keep_working() -> None:
    register_plugin(make_plugin(["good"]), name="good-plugin")
    register_plugin(make_plugin(["half"], fail_after=True), name="bad-plugin")
    with pytest.warns(PluginWarning, match="'bad-plugin' \\(registered in code\\) failed to register"):
        registry = get_registry()
    assert "good" in registry.backends
    assert "half" not in registry.backends  # rolled back
    bad = next(p for p in registry.plugins if p.name == "bad-plugin")
    assert bad.status == "failed" and "plugin bug after registering" in (bad.error or "")
    with pytest.raises(PluginError, match="(?s)no backend named 'half'.*bad-plugin"):
        get_backend("half")


def test_malformed_backend_is_rejected() -> None:
    class Plugin:
        @hookimpl
        def register_backends(self, register: Callable[[object], None]) -> None:
            register("not a backend")

    register_plugin(Plugin(), name="malformed")
    with pytest.warns(PluginWarning, match="expects a rembert_core.Backend instance, got str"):
        get_registry()


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": "has space"}, "must be a non-empty identifier"),
        ({"tasks": ("base", "translation")}, "unknown tasks"),
        ({"dtypes": ("float8",)}, "unknown dtypes"),
    ],
)
def test_backend_declarations_are_checked(attrs: dict[str, Any], message: str) -> None:
    backend = DummyBackend()
    for key, value in attrs.items():
        setattr(backend, key, value)

    class Plugin:
        @hookimpl
        def register_backends(self, register: Callable[[Backend], None]) -> None:
            register(backend)

    register_plugin(Plugin(), name="declares")
    with pytest.warns(PluginWarning, match=message):
        get_registry()


def test_conflicting_backend_names() -> None:
    register_plugin(make_plugin(["same"]), name="one")
    register_plugin(make_plugin(["same"]), name="two")
    registry = get_registry()
    assert "same" not in registry.backends
    assert "same" in registry.conflicts
    with pytest.raises(PluginError, match="registered by several distributions"):
        get_backend("same")


def test_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMBERT_STRICT_PLUGINS", "1")
    register_plugin(make_plugin(["x"], fail_after=True), name="strict-bad")
    with pytest.raises(PluginError, match="'strict-bad' \\(registered in code\\) failed to register \\(RuntimeError"):
        get_registry()


def test_tokenizer_registration() -> None:
    class Plugin:
        @hookimpl
        def register_tokenizers(self, register: Callable[[TokenizerSpec], None]) -> None:
            register(TokenizerSpec("json", "json:JSONDecoder", kind="slow"))

    register_plugin(Plugin(), name="tok")
    spec = get_registry().tokenizers["json"]
    import json

    assert spec.load() is json.JSONDecoder


def test_loading_happens_once() -> None:
    calls = {"n": 0}

    class Plugin:
        @hookimpl
        def register_backends(self, register: Callable[[Backend], None]) -> None:
            calls["n"] += 1
            register(DummyBackend("once"))

    register_plugin(Plugin(), name="once")
    for _ in range(3):
        get_backends()
    assert calls["n"] == 1


# -- real entry points -----------------------------------------------------------------------

PLUGIN_SOURCES = {
    "good": """
        from rembert_core import Backend, hookimpl

        class GoodBackend(Backend):
            name = "fakegood"
            tasks = ("base",)
            def build_model(self, config, task, *, dtype="float32"): return None
            def load_tensors(self, model, tensors): pass
            def export_tensors(self, model): return {}
            def forward(self, model, inputs, **kwargs): return {}
            def gradients(self, model, inputs): return 0.0, {}

        @hookimpl
        def register_backends(register):
            register(GoodBackend())
    """,
    "broken_import": """
        raise ImportError("this plugin's optional dependency is missing")
    """,
    "broken_register": """
        from rembert_core import hookimpl

        @hookimpl
        def register_backends(register):
            raise ValueError("cannot register today")
    """,
}


def install_fake_distribution(site: Path, dist: str, ep_name: str, module: str, source: str) -> None:
    """Write a module and a .dist-info with an entry point, as pip would install them."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[rembert]\n{ep_name} = {module}\n")


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for key, source in PLUGIN_SOURCES.items():
        install_fake_distribution(
            site, f"rembert-fake-{key.replace('_', '-')}", f"fake_{key}", f"fake_{key}_mod", source
        )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD")
    return site


def test_entry_points_are_loaded_guarded(fake_site: Path) -> None:
    with pytest.warns(PluginWarning) as caught:
        registry = get_registry()
    messages = "\n".join(str(w.message) for w in caught)
    assert "entry point 'fake_broken_import' of distribution 'rembert-fake-broken-import' failed to import" in messages
    assert "'fake_broken_register' of distribution 'rembert-fake-broken-register' failed to register" in messages
    assert registry.backends["fakegood"].distribution == "rembert-fake-good"
    assert registry.backends["fakegood"].version == "1.2.3"
    status = {p.name: p.status for p in registry.plugins}
    assert status["fake_good"] == "loaded"
    assert status["fake_broken_import"] == "failed"


def test_rembert_plugins_restricts_loading(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMBERT_PLUGINS", "fake_good")
    registry = get_registry()  # the broken ones are not even imported: no warning
    status = {p.name: p.status for p in registry.plugins}
    assert status["fake_good"] == "loaded"
    assert status["fake_broken_import"] == "disabled"


def test_autoload_can_be_disabled(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert not [p for p in get_registry().plugins if p.name.startswith("fake_")]


def run_cli(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environ = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    for var in ("REMBERT_STRICT_PLUGINS", "REMBERT_PLUGINS", "REMBERT_DISABLE_PLUGIN_AUTOLOAD"):
        if env is None or var not in env:
            environ.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "rembert_core.cli", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def test_cli_backends_survives_broken_plugins(fake_site: Path) -> None:
    result = run_cli(fake_site, "backends")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "fakegood" in out and "rembert-fake-good" in out and "loaded" in out
    assert "failed: import: ImportError: this plugin's optional dependency is missing" in out
    assert "failed: register: ValueError: cannot register today" in out
    strict = run_cli(fake_site, "backends", "--strict")
    assert strict.returncode == 1
    env_strict = run_cli(fake_site, "backends", env={"REMBERT_STRICT_PLUGINS": "1"})
    assert env_strict.returncode == 2
    assert env_strict.stderr.count("\n") == 1 and "failed to import" in env_strict.stderr


# -- found by the robustness suite (tests/robustness/test_plugins.py) ------------------------------


def _site_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, source: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site, f"rembert-fake-{key}", f"fake_{key}", f"fake_{key}_mod", source)
    install_fake_distribution(site, "rembert-fake-good", "fake_good", "fake_good_mod", PLUGIN_SOURCES["good"])
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD")


def test_a_plugin_calling_sys_exit_at_import_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SystemExit is not an Exception: it used to end the host process."""
    _site_with(tmp_path, monkeypatch, "exit", "import sys\nsys.exit(3)\n")
    with pytest.warns(PluginWarning, match="'fake_exit' of distribution 'rembert-fake-exit' failed to import"):
        registry = get_registry()
    assert "fakegood" in registry.backends


def test_a_plugin_hanging_at_import_is_given_up_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a bound, a plugin sleeping at import hung the host; REMBERT_PLUGIN_IMPORT_TIMEOUT bounds it."""
    import time

    _site_with(tmp_path, monkeypatch, "slow", "import time\ntime.sleep(30)\n")
    monkeypatch.setenv("REMBERT_PLUGIN_IMPORT_TIMEOUT", "0.5")
    start = time.monotonic()
    with pytest.warns(PluginWarning, match=r"failed to import .*did not finish within 0.5 s"):
        registry = get_registry()
    assert time.monotonic() - start < 10
    assert "fakegood" in registry.backends
    monkeypatch.setenv("REMBERT_PLUGIN_IMPORT_TIMEOUT", "soon")
    reset_plugins()
    with pytest.raises(PluginError, match="REMBERT_PLUGIN_IMPORT_TIMEOUT must be a number"):
        get_registry()


# -- guards of issue 23: the import timeout's values, imports holding the GIL, tokenizer name clashes ------


@pytest.mark.parametrize("raw", ["inf", "-inf", "1e20", "nan", "-1", "0"])
def test_an_import_timeout_that_sets_no_limit_is_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """inf and 1e20 made every plugin fail with OverflowError; nan, 0 and negative values removed the limit."""
    import re

    monkeypatch.delenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("REMBERT_PLUGIN_IMPORT_TIMEOUT", raw)
    expected = f"REMBERT_PLUGIN_IMPORT_TIMEOUT must be a number of seconds greater than 0 .*got '{re.escape(raw)}'"
    with pytest.raises(PluginError, match=expected):
        get_registry()


def test_an_import_timeout_is_a_positive_number_of_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from rembert_core.plugins import _import_timeout

    for raw, expected in (("", None), (" 2.5 ", 2.5), ("1e3", 1000.0), ("9223372036", 9223372036.0)):
        monkeypatch.setenv("REMBERT_PLUGIN_IMPORT_TIMEOUT", raw)
        assert _import_timeout() == expected


def test_the_import_probe_gives_up_on_imports_a_thread_cannot_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import holding the GIL in a C call never lets the host's waiting thread run again; one ending the
    process would end the host. Both happen in the probe's child process only."""
    import time
    from importlib.metadata import EntryPoint

    from rembert_core.plugins import _probe_imports

    (tmp_path / "fake_gil_hog.py").write_text("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')\n")
    (tmp_path / "fake_ender.py").write_text("import os\nos._exit(7)\n")
    (tmp_path / "fake_quick.py").write_text("from rembert_core import hookimpl\n")
    (tmp_path / "fake_raises.py").write_text("raise ImportError('missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint(name, f"fake_{name}", "rembert") for name in ("gil_hog", "ender", "quick", "raises")]
    start = time.monotonic()
    failures = _probe_imports(eps, 1.0)
    assert time.monotonic() - start < 60
    hog, ender = failures.pop(id(eps[0])), failures.pop(id(eps[1]))
    assert isinstance(hog, TimeoutError) and "did not finish within 1 s" in str(hog)
    assert isinstance(ender, RuntimeError) and "exit status 7" in str(ender)
    assert failures == {}  # the quick one passed; the raising one raises again in the host, with its own message


def _tokenizer_plugin(*names: str) -> object:
    class Plugin:
        @hookimpl
        def register_tokenizers(self, register: Callable[[TokenizerSpec], None]) -> None:
            for name in names:
                register(TokenizerSpec(name, "json:JSONDecoder", kind="slow"))

        @hookimpl
        def register_backends(self, register: Callable[[Backend], None]) -> None:
            register(DummyBackend(f"backend_{names[-1]}"))

    return Plugin()


def test_a_tokenizer_name_claimed_twice_is_a_conflict_and_the_rest_is_kept() -> None:
    """A clash used to fail the second plugin wholly (its other tokenizers and backends were dropped)."""
    from rembert_core.plugins import get_tokenizer

    register_plugin(_tokenizer_plugin("shared", "only_a"), name="a")
    register_plugin(_tokenizer_plugin("shared", "only_b"), name="b")
    with pytest.warns(
        PluginWarning, match=r"tokenizer 'shared' is registered by several distributions \(a, b\): neither"
    ):
        registry = get_registry()
    assert {"only_a", "only_b"} <= set(registry.tokenizers) and "shared" not in registry.tokenizers
    assert {"backend_only_a", "backend_only_b"} <= set(registry.backends)
    assert registry.tokenizer_conflicts == {"shared": ["a", "b"]}
    assert [p.status for p in registry.plugins if p.name in "ab"] == ["loaded", "loaded"]
    with pytest.raises(PluginError, match=r"tokenizer 'shared' is registered by several distributions \(a, b\)"):
        get_tokenizer("shared")
    assert get_tokenizer("only_b").name == "only_b"


def test_a_tokenizer_name_clash_in_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMBERT_STRICT_PLUGINS", "1")
    register_plugin(_tokenizer_plugin("shared"), name="a")
    register_plugin(_tokenizer_plugin("shared"), name="b")
    with pytest.raises(PluginError, match="tokenizer 'shared' is registered by several distributions"):
        get_registry()


TOKENIZER_PLUGIN = """
    from rembert_core import TokenizerSpec, hookimpl

    @hookimpl
    def register_tokenizers(register):
        register(TokenizerSpec("fast", "{path}", kind="fast"))
        register(TokenizerSpec("{other}", "json:JSONDecoder", kind="slow"))
"""


@pytest.mark.parametrize("builtin_first", [True, False])
def test_a_builtin_tokenizer_keeps_its_name_whoever_registers_first(
    builtin_first: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin registering 'fast' before rembert-tokenizers made the real plugin fail wholly."""
    from rembert_core import plugins

    monkeypatch.setattr(plugins, "BUILTIN_DISTRIBUTIONS", frozenset({"rembert-fake-builtin"}))
    sites = {}
    for key, path, other in (
        ("builtin", "rembert_tokenizers:RemBertTokenizerFast", "sentencepiece"),
        ("thief", "json:JSONDecoder", "thief_extra"),
    ):
        sites[key] = tmp_path / key
        sites[key].mkdir()
        source = TOKENIZER_PLUGIN.format(path=path, other=other)
        install_fake_distribution(sites[key], f"rembert-fake-{key}", f"fake_{key}", f"fake_{key}_mod", source)
    # entry points are found in sys.path order: the site prepended last comes first
    for key in ("thief", "builtin") if builtin_first else ("builtin", "thief"):
        monkeypatch.syspath_prepend(str(sites[key]))
    monkeypatch.delenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("REMBERT_PLUGINS", "fake_builtin,fake_thief")
    with pytest.warns(
        PluginWarning,
        match="tokenizer 'fast' is registered by several distributions .*: the tokenizer "
        "of 'rembert-fake-builtin' is kept",
    ):
        registry = get_registry()
    assert registry.tokenizers["fast"].distribution == "rembert-fake-builtin"
    assert registry.tokenizers["fast"].import_path == "rembert_tokenizers:RemBertTokenizerFast"
    assert {"sentencepiece", "thief_extra"} <= set(registry.tokenizers)
    assert sorted(registry.tokenizer_conflicts["fast"]) == ["rembert-fake-builtin", "rembert-fake-thief"]
    assert {p.name: p.status for p in registry.plugins if p.name.startswith("fake_")} == {
        "fake_builtin": "loaded",
        "fake_thief": "loaded",
    }
