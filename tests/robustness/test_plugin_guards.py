"""Plugin guards: the import timeout's values, imports no thread can bound, tokenizer name clashes.

Plugins are installed as real distributions (a module and a ``.dist-info`` with an entry point in the
``rembert`` group) in a temporary site directory; the host is a fresh Python process (the ``rembert``
CLI, or a short script reading the registry) with a time limit, so a host that hangs fails the test
instead of hanging the suite. The invariants:

* ``REMBERT_PLUGIN_IMPORT_TIMEOUT`` bounds every import, including one that holds the GIL in a C call
  (``7 ** (10 ** 9)``, a catastrophic regular expression) or ends the process (``os._exit``): the
  host finishes, reports the plugin as failed, and the other plugins work;
* a value of ``REMBERT_PLUGIN_IMPORT_TIMEOUT`` that sets no usable limit (``inf``, ``1e20``, ``nan``,
  ``0``, a negative number) is an error naming the variable and the value;
* a third-party plugin registering a tokenizer named ``fast`` (or ``sentencepiece``) is a reported
  conflict: rembert-tokenizers keeps both its tokenizers, and the third party's other registrations stay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

CATEGORY = "plugin guards"

GOOD = """
from rembert_core import Backend, hookimpl

class Good(Backend):
    name = "guardgood"
    tasks = ("base",)
    def build_model(self, config, task, *, dtype="float32"): return None
    def load_tensors(self, model, tensors): pass
    def export_tensors(self, model): return {}
    def forward(self, model, inputs, **kwargs): return {}
    def gradients(self, model, inputs): return 0.0, {}

@hookimpl
def register_backends(register):
    register(Good())
"""

#: Imports no thread of the host can interrupt (they hold the GIL in one C call), or that end the process.
UNBOUNDED: dict[str, tuple[str, str]] = {
    "7 ** (10 ** 9)": ("x = 7 ** (10 ** 9)", "did not finish within 2 s"),
    "catastrophic regex": ("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')", "did not finish within 2 s"),
    "sum over 10**13 integers": ("sum(range(10 ** 13))", "did not finish within 2 s"),
    "os._exit at import": ("import os\nos._exit(7)", "exit status 7"),
    "sleep at import": ("import time\ntime.sleep(3600)", "did not finish within 2 s"),
}

THIEF = """
from rembert_core import Backend, TokenizerSpec, hookimpl

class Thief(Backend):
    name = "thiefbackend"
    tasks = ("base",)
    def build_model(self, config, task, *, dtype="float32"): return None
    def load_tensors(self, model, tensors): pass
    def export_tensors(self, model): return {}
    def forward(self, model, inputs, **kwargs): return {}
    def gradients(self, model, inputs): return 0.0, {}

@hookimpl
def register_tokenizers(register):
    register(TokenizerSpec("fast", "json:JSONDecoder", kind="fast"))
    register(TokenizerSpec("sentencepiece", "json:JSONDecoder", kind="slow"))
    register(TokenizerSpec("thief_own", "json:JSONDecoder", kind="slow"))

@hookimpl
def register_backends(register):
    register(Thief())
"""


def install(site: Path, key: str, source: str) -> str:
    """Install a distribution ``rembert-guard-<key>`` whose entry point ``guard_<key>`` is the module ``source``."""
    module = f"rembert_guard_{key}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist = f"rembert-guard-{key.replace('_', '-')}"
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[rembert]\nguard_{key} = {module}\n")
    return dist


def host(site: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Any:
    """Run ``python *args`` with ``site`` on the path; a host that does not finish in ``timeout`` fails the test."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REMBERT_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ.update(env or {})
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environ, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the host hung for {timeout} s: python {' '.join(args)} with {env}")


def backends(site: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return host(site, "-m", "rembert_core.cli", "backends", *extra, env=env)


# -- REMBERT_PLUGIN_IMPORT_TIMEOUT bounds every import ---------------------------------------------------


@pytest.mark.parametrize("what", sorted(UNBOUNDED))
def test_an_import_no_thread_can_bound_is_given_up(what: str, tmp_path: Path, cases: Any) -> None:
    source, error = UNBOUNDED[what]
    dist = install(tmp_path, "hostile", source)
    install(tmp_path, "good", GOOD)
    start = time.monotonic()
    result = backends(tmp_path, "--json", env={"REMBERT_PLUGIN_IMPORT_TIMEOUT": "2"})
    elapsed = time.monotonic() - start
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    report = json.loads(result.stdout)
    record = next(p for p in report["plugins"] if p["distribution"] == dist)
    assert record["status"] == "failed" and error in record["error"], record
    assert "guardgood" in {b["name"] for b in report["backends"]}
    assert {t["name"] for t in report["tokenizers"]} >= {"fast", "sentencepiece"}
    assert elapsed < 60, elapsed
    cases.add(kind=f"import: {what}")
    strict = backends(tmp_path, env={"REMBERT_PLUGIN_IMPORT_TIMEOUT": "2", "REMBERT_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and f"of distribution {dist!r} failed to import" in strict.stderr, strict.stderr
    cases.add(kind=f"import: {what}")


# -- REMBERT_PLUGIN_IMPORT_TIMEOUT values that set no limit -----------------------------------------------


@pytest.mark.parametrize("raw", ["inf", "-inf", "1e20", "nan", "-1", "0"])
def test_an_import_timeout_that_sets_no_limit_is_an_error(raw: str, tmp_path: Path, cases: Any) -> None:
    """inf and 1e20 made every plugin fail with OverflowError; nan, 0 and negative values removed the limit."""
    install(tmp_path, "good", GOOD)
    result = backends(tmp_path, env={"REMBERT_PLUGIN_IMPORT_TIMEOUT": raw})
    assert result.returncode != 0, result.stdout[-2000:]
    assert "REMBERT_PLUGIN_IMPORT_TIMEOUT must be a number of seconds greater than 0" in result.stderr
    assert f"got {raw!r}" in result.stderr, result.stderr
    cases.add(kind="timeout value")


def test_a_valid_import_timeout_changes_nothing(tmp_path: Path, cases: Any) -> None:
    install(tmp_path, "good", GOOD)
    plain = json.loads(backends(tmp_path, "--json").stdout)
    for raw in ("30", "1e3", " 2.5 "):
        result = backends(tmp_path, "--json", env={"REMBERT_PLUGIN_IMPORT_TIMEOUT": raw})
        assert result.returncode == 0 and json.loads(result.stdout) == plain, result.stderr[-2000:]
        cases.add(kind="control: valid timeout")


# -- tokenizer name clashes ------------------------------------------------------------------------------

SCRIPT = """
import json, warnings
from rembert_core import plugins
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    registry = plugins.get_registry()
    if {late!r}:  # a plugin registered in code after the built-ins
        import rembert_guard_thief
        plugins.register_plugin(rembert_guard_thief, name="late-thief")
print(json.dumps({{
    "tokenizers": {{n: [s.distribution, s.import_path] for n, s in registry.tokenizers.items()}},
    "conflicts": registry.tokenizer_conflicts,
    "status": {{p.distribution or p.name: p.status for p in registry.plugins}},
    "backends": sorted(registry.backends),
    "warnings": [str(w.message) for w in caught],
    "fast": plugins.get_tokenizer("fast").load().__name__,
}}))
"""


@pytest.mark.parametrize("late", [False, True], ids=["third party first", "third party after the built-ins"])
def test_a_tokenizer_name_clash_keeps_the_real_tokenizers(late: bool, tmp_path: Path, cases: Any) -> None:
    dist = install(tmp_path, "thief", THIEF)
    env = {"REMBERT_PLUGINS": "tokenizers,guard_thief" if not late else "tokenizers"}
    result = host(tmp_path, "-c", SCRIPT.format(late=late), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    thief = dist if not late else "late-thief"
    assert report["tokenizers"]["fast"] == ["rembert-tokenizers", "rembert_tokenizers:RemBertTokenizerFast"]
    assert report["tokenizers"]["sentencepiece"] == ["rembert-tokenizers", "rembert_tokenizers:RemBertTokenizer"]
    assert report["fast"] == "RemBertTokenizerFast"
    assert report["status"]["rembert-tokenizers"] == "loaded" and report["status"][thief] == "loaded", report
    assert "thief_own" in report["tokenizers"] and "thiefbackend" in report["backends"]
    for name in ("fast", "sentencepiece"):
        assert sorted(report["conflicts"][name]) == sorted(["rembert-tokenizers", thief])
        assert any(
            f"tokenizer {name!r} is registered by several distributions" in w
            and "the tokenizer of 'rembert-tokenizers' is kept" in w
            for w in report["warnings"]
        ), report["warnings"]
        cases.add(kind="tokenizer name clash")


def test_a_tokenizer_name_clash_in_strict_mode_is_an_error(tmp_path: Path, cases: Any) -> None:
    install(tmp_path, "thief", THIEF)
    env = {"REMBERT_PLUGINS": "tokenizers,guard_thief", "REMBERT_STRICT_PLUGINS": "1"}
    result = backends(tmp_path, env=env)
    assert result.returncode != 0 and "' is registered by several distributions (" in result.stderr, result.stderr
    assert "rembert-guard-thief" in result.stderr and "rembert-tokenizers" in result.stderr
    cases.add(kind="tokenizer name clash")
    table = backends(tmp_path, env={"REMBERT_PLUGINS": "tokenizers,guard_thief"})
    assert table.returncode == 0 and "rembert_tokenizers:RemBertTokenizerFast" in table.stdout, table.stderr
    cases.add(kind="tokenizer name clash")
