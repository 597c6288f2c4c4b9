"""Every development task of the rembert monorepo, as nox sessions.

``nox`` (no arguments) runs the default sessions, which is what CI runs.
``nox -s parity`` runs the parity suite, ``nox -s bench`` the benchmarks.
Arguments after ``--`` go to pytest, e.g. ``nox -s tests-torch -- -k cache``.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nox

# -- constants -------------------------------------------------------------------------------

ROOT = Path(__file__).parent
PYTHON = None  # the interpreter that runs nox (CI and the dev machines use Python 3.11)
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))  # pins torch to the CPU wheel, transformers to 4.57
CORE = "packages/rembert-core"
TORCH = "packages/rembert-torch"
TF = "packages/rembert-tf"
TOKENIZERS = "packages/rembert-tokenizers"
NUMPY_PLUGIN = "examples/rembert-numpy"  # the third-party backend example and float64 reference
REFERENCE_PLUGIN = "examples/rembert-reference"  # transformers 4.57 as a backend plugin (parity, docs)
TEST_DEPS = ("pytest>=8", "hypothesis>=6.100")
TF_RUNTIME = ("tensorflow-cpu>=2.16.1", "keras>=3.15.1")  # rembert-tf[cpu]: the smaller CPU-only build
DOCS_DEPS = ("sphinx>=7.2", "myst-parser>=3", "furo>=2024.1", "matplotlib>=3.8", "tqdm>=4.60")
ORACLE = ("transformers",)  # version from constraints.txt; test-only, never a package dependency
# Tokenizer tests that return torch/TF tensors: they run where those frameworks are (tests-cross).
TOKENIZER_FRAMEWORK_TESTS = "return_tensors_torch or return_tensors_tensorflow or tensors_match_reference"

nox.options.sessions = [
    "lint",
    "typecheck",
    "tests-core",
    "tests-torch",
    "tests-tf",
    "tests-tokenizers",
    "tests-cross",
    "tests-distributed",
    "parity",
    "docs",
    "robustness",
    "install-smoke",
    "min-versions",
]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


# -- helpers ---------------------------------------------------------------------------------

#: Set by .ci/run: delete each session's virtualenv when the session ends. Every session with torch and
#: TensorFlow holds 2.5-3 GB, and the default run creates 18 of them (about 27 GB all kept; one at a
#: time this way). Developers keep theirs (``reuse_venv``) unless they set it too.
DISCARD_VENVS = os.environ.get("REMBERT_NOX_DISCARD_VENVS", "") not in ("", "0")


def session(**kwargs: Any) -> Callable[[Callable[..., None]], Any]:
    """``nox.session`` that removes the session's virtualenv afterwards when ``DISCARD_VENVS`` is set."""

    def decorate(func: Callable[..., None]) -> Any:
        @functools.wraps(func)
        def run(session: nox.Session, **params: Any) -> None:
            try:
                func(session, **params)
            finally:
                location = getattr(session.virtualenv, "location", None)
                if DISCARD_VENVS and location and Path(location).is_relative_to(ROOT / ".nox"):
                    shutil.rmtree(location, ignore_errors=True)

        return nox.session(**kwargs)(run)

    return decorate


def install(session: nox.Session, *packages: str, extra: tuple[str, ...] = ()) -> None:
    """Install the given monorepo packages editable (without touching PyPI for them) plus ``extra``."""
    args: list[str] = []
    for package in packages:
        args += ["-e", package]
    session.install(*CONSTRAINTS, *extra, *args)


def assert_not_importable(session: nox.Session, *modules: str) -> None:
    """Fail the session if any of ``modules`` can be imported in its virtualenv."""
    code = (
        "import importlib.util, sys\n"
        f"found = [m for m in {list(modules)!r} if importlib.util.find_spec(m) is not None]\n"
        "sys.exit(f'unexpectedly importable: {found}' if found else 0)\n"
    )
    session.run("python", "-c", code)


def pytest(session: nox.Session, *paths: str) -> None:
    session.run("python", "-m", "pytest", *paths, *session.posargs)


# -- sessions --------------------------------------------------------------------------------


@session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repo."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the four packages, with their frameworks installed so types resolve."""
    install(session, CORE, TORCH, TF, TOKENIZERS, extra=("mypy>=1.10", "torch", *TF_RUNTIME))
    session.run("mypy")


@session(python=PYTHON, name="tests-core")
def tests_core(session: nox.Session) -> None:
    """rembert-core alone: proves it needs neither torch nor TensorFlow."""
    install(session, CORE, extra=TEST_DEPS)
    assert_not_importable(session, "torch", "tensorflow", "keras", "transformers")
    pytest(session, f"{CORE}/tests")


@session(python=PYTHON, name="tests-torch")
def tests_torch(session: nox.Session) -> None:
    """rembert-torch with the reference oracle, and without TensorFlow."""
    install(session, CORE, TORCH, extra=(*TEST_DEPS, "torch", *ORACLE))
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}")  # the conformance kit's float64 reference
    assert_not_importable(session, "tensorflow", "keras")
    pytest(session, f"{TORCH}/tests")


@session(python=PYTHON, name="tests-tf")
def tests_tf(session: nox.Session) -> None:
    """rembert-tf without torch."""
    install(session, CORE, TF, extra=(*TEST_DEPS, *TF_RUNTIME))
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}")  # the conformance kit's float64 reference
    assert_not_importable(session, "torch")
    pytest(session, f"{TF}/tests")


@session(python=PYTHON, name="tests-tokenizers")
def tests_tokenizers(session: nox.Session) -> None:
    """rembert-tokenizers with the reference oracle, without torch or TensorFlow."""
    install(session, CORE, TOKENIZERS, extra=(*TEST_DEPS, *ORACLE))
    assert_not_importable(session, "torch", "tensorflow")
    pytest(session, f"{TOKENIZERS}/tests", "-k", f"not ({TOKENIZER_FRAMEWORK_TESTS})")


@session(python=PYTHON, name="tests-cross")
def tests_cross(session: nox.Session) -> None:
    """Cross-package tests: every package together, against the reference (PyTorch and TF classes)."""
    install(
        session,
        CORE,
        TORCH,
        TF,
        TOKENIZERS,
        extra=(*TEST_DEPS, "torch", *TF_RUNTIME, *ORACLE, "tf-keras"),
    )
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}")  # a third-party backend: the pipelines run on it too
    pytest(session, "tests", "--ignore=tests/test_parity.py", "--ignore=tests/distributed", "--ignore=tests/robustness")
    pytest(session, f"{TOKENIZERS}/tests", "-k", TOKENIZER_FRAMEWORK_TESTS)


@session(python=PYTHON, name="tests-distributed")
def tests_distributed(session: nox.Session) -> None:
    """Multi-process training on loopback: DDP/FSDP2 under torchrun (gloo) and tf.distribute workers.

    2-process DDP and FSDP runs against one process, kill-and-resume, MirroredStrategy and a 2-worker
    MultiWorkerMirroredStrategy against one replica, checkpoints across frameworks (about 3 minutes on
    2 cores; every process runs under a time limit).
    """
    install(session, CORE, TORCH, TF, extra=(*TEST_DEPS, "torch", *TF_RUNTIME, "tqdm>=4.60"))
    pytest(session, "tests/distributed")


@session(python=PYTHON)
def parity(session: nox.Session) -> None:
    """The main job: every backend x every head x float32/bfloat16, outputs and gradients, vs the references.

    Installs the four packages and, like any third-party plugins, the NumPy example backend (the float64
    reference) and the transformers 4.57 reference plugin (its PyTorch classes, and its TF classes through
    tf-keras). The terminal shows a summary per backend pair and head; the per-field tables go to
    ``reports/parity*.json`` and ``reports/parity*.html``. Arguments after ``--`` go to ``rembert parity``
    (e.g. ``nox -s parity -- --backends torch,transformers --verbose``).
    """
    install(session, CORE, TORCH, TF, TOKENIZERS, extra=(*TEST_DEPS, "torch", *TF_RUNTIME, *ORACLE, "tf-keras"))
    # Regular, non-editable installs, as users get them.
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}", f"./{REFERENCE_PLUGIN}")
    (ROOT / "reports").mkdir(exist_ok=True)
    # Every backend loads and its framework imports (the table is shown only if not; parity lists them anyway).
    session.run("rembert", "backends", "--strict", silent=True)
    reports = ("--report", "reports/parity.json", "--report", "reports/parity.html")
    session.run("rembert", "parity", *reports, *session.posargs)
    if not session.posargs:
        # RemBERT's real widths (hidden 1152, 18 heads, embeddings 256/1664, intermediate 4608), 2 layers: the
        # framework packages against the references (the NumPy example runs in float64 only, as the exact run).
        session.run(
            "rembert",
            "parity",
            "--config",
            "full",
            "--tasks",
            "masked_lm,causal_lm,sequence_classification",
            "--backends",
            "torch,tf",
            "--no-tokenizers",
            "--report",
            "reports/parity-full.json",
            "--report",
            "reports/parity-full.html",
        )
        tests = ("tests/test_parity.py", f"{NUMPY_PLUGIN}/tests", f"{REFERENCE_PLUGIN}/tests")
        session.run("python", "-m", "pytest", "-q", "-rfE", "--no-header", "-p", "no:cacheprovider", *tests)


@session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The Sphinx site (warnings are errors), then the tests that keep it true.

    Runs a real ``rembert parity`` on the embedded tiny config for the parity figure, builds
    ``docs/_build/html`` with ``-W --keep-going -n``, then runs ``docs/tests``: every code block of every
    page, every docstring example on the API page, HTML assertions on the built site, and every example
    in ``examples/`` from its README command. Arguments after ``--`` go to pytest.
    """
    install(session, CORE, TORCH, TF, TOKENIZERS, extra=(*TEST_DEPS, *DOCS_DEPS, "torch", *TF_RUNTIME, *ORACLE))
    # The parity page's references: the float64 NumPy run and transformers' PyTorch classes.
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}", f"./{REFERENCE_PLUGIN}")
    build = ROOT / "docs" / "_build"
    report = build / "parity.json"
    build.mkdir(parents=True, exist_ok=True)
    session.run("rembert", "parity", "--config", "tiny", "--no-tokenizers", "--no-progress", "--report", str(report))
    env = {"REMBERT_PARITY_REPORT": str(report), "TF_CPP_MIN_LOG_LEVEL": "3"}
    sphinx = ("python", "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n")
    session.run(*sphinx, "docs", str(build / "html"), env=env)
    session.run("python", "-m", "pytest", "docs/tests", *session.posargs, env=env)


@session(python=PYTHON)
def robustness(session: nox.Session) -> None:
    """Fuzzing, corrupted files, malicious pickles, SIGKILL mid-write, hostile plugins, threads and leaks.

    Prints a table of categories x cases tried x failures and writes it to ``reports/robustness.json``.
    Every package is installed, without the reference (the suite checks invariants, not numbers).
    """
    install(session, CORE, TORCH, TF, TOKENIZERS, extra=(*TEST_DEPS, "torch", *TF_RUNTIME, "h5py"))
    (ROOT / "reports").mkdir(exist_ok=True)
    pytest(session, "tests/robustness", "--durations=10")


@session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with the reference (transformers 4.57, and tf-keras for its TF classes).

    One run of ``benchmarks/bench_models.py``: model speed (PyTorch, TensorFlow), MFU against the measured
    GEMM peak, peak memory, and as its sub-steps the checkpoint and tokenizer benchmarks. Writes JSON to
    ``reports/``, ``docs/_data/bench.json`` and ``docs/bench/latest.md``. Arguments after ``--`` go to it
    (e.g. ``nox -s bench -- --layers 32`` for the full model, ``--repeat 5``).
    """
    install(session, CORE, TORCH, TF, TOKENIZERS, extra=("torch", *TF_RUNTIME, *ORACLE, "tf-keras"))
    (ROOT / "reports").mkdir(exist_ok=True)
    session.run("python", "benchmarks/bench_models.py", "--docs", *session.posargs)


# -- release: build, check, install from the wheels only --------------------------------------------------------

DIST = ROOT / "dist"
RELEASED = (CORE, TORCH, TF, TOKENIZERS)
BUILD_TOOLS = ("build>=1.2", "twine>=6.1", "pytest>=8")


def _version() -> str:
    return (ROOT / "VERSION").read_text(encoding="utf-8").strip()


def _wheel(package: str, extras: str = "") -> str:
    """The path of ``package``'s wheel in dist/ (optionally with ``[extras]``), as a pip requirement."""
    name = Path(package).name.replace("-", "_")
    path = DIST / f"{name}-{_version()}-py3-none-any.whl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run nox -s build")
    return f"{path}[{extras}]" if extras else str(path)


@session(python=PYTHON)
def build(session: nox.Session) -> None:
    """sdist and wheel of the four packages into dist/, then twine check and the contents check.

    ``python -m build`` builds each wheel from its sdist, so an sdist that cannot build on its own fails here.
    scripts/check_dists.py fails the session if a wheel lacks py.typed, its LICENSE or its entry point, carries
    tests or fixtures, or contains absolute paths (tests/test_release.py proves the check catches each).
    """
    session.install(*BUILD_TOOLS)
    session.run("python", "scripts/versioning.py", "check")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_release.py")
    shutil.rmtree(DIST, ignore_errors=True)
    for package in RELEASED:
        session.run("python", "-m", "build", "--outdir", str(DIST), package)
    session.run("twine", "check", "--strict", *sorted(str(path) for path in DIST.iterdir()))
    session.run("python", "scripts/check_dists.py", str(DIST))


#: install-smoke environments: what is installed (wheel files, with extras) and what the smoke script expects.
SMOKE_ENVS = {
    "torch": ([(CORE, ""), (TORCH, "")], "torch"),
    "tf": ([(CORE, ""), (TF, "cpu")], "tf"),
    "tokenizers": ([(CORE, ""), (TOKENIZERS, "")], "tokenizers"),
    "all": ([(CORE, ""), (TORCH, "tokenizers"), (TF, "cpu,tokenizers"), (TOKENIZERS, "")], "torch,tf,tokenizers"),
}


@session(python=PYTHON, name="install-smoke", requires=["build"], reuse_venv=False)
@nox.parametrize("env", list(SMOKE_ENVS))
def install_smoke(session: nox.Session, env: str) -> None:
    """Fresh virtualenvs holding only the built wheels (and their dependencies from the index), as users get them.

    (a) rembert-torch without TensorFlow, (b) rembert-tf[cpu] without torch, (c) rembert-tokenizers without
    either, (d) all four with the [tokenizers] extras, which also runs ``rembert parity`` on its embedded
    default. Each runs tests/smoke/smoke.py: public API, ``rembert backends``, a tiny model built, run, saved
    and reloaded. Our packages come from dist/ only (wheel files; the index is never asked for them); torch
    stays the CPU wheel through constraints.txt. Depends on ``build``, so it works on a fresh clone.
    """
    wheels, expected = SMOKE_ENVS[env]
    session.env["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's import-time logging
    if env == "tf":
        # Without an extra choosing the TensorFlow build, the models must say which extra to install.
        session.install(*CONSTRAINTS, _wheel(CORE), _wheel(TF))
        session.run(
            "python",
            "-c",
            "import rembert_tf\n"
            "try:\n    rembert_tf.TFRemBertModel\n"
            'except ImportError as e:\n    assert "rembert-tf[cpu]" in str(e), e\n'
            "else:\n    raise SystemExit('rembert_tf imported models without TensorFlow')",
        )
    session.install(*CONSTRAINTS, *(_wheel(package, extras) for package, extras in wheels))
    session.run("python", "-m", "pip", "check")
    if "torch" not in expected:
        assert_not_importable(session, "torch")
    if "tf" not in expected:
        assert_not_importable(session, "tensorflow", "keras")
    session.run("python", "tests/smoke/smoke.py", "--version", _version(), "--packages", expected)
    if env == "all":
        session.run("rembert", "parity", "--allow-no-reference")  # no reference plugin here: torch vs tf only


# -- minimum versions ---------------------------------------------------------------------------------------

#: min-versions environments: projects whose declared lower bounds are pinned, and the tests run on them.
#: TensorFlow gets its own environment: tensorflow-cpu 2.16.1 needs numpy<2 and h5py>=3.10 of its own.
MIN_ENVS = {
    "torch": (
        (f"{CORE}[hub,h5]", TORCH, TOKENIZERS, NUMPY_PLUGIN),
        (f"{CORE}/tests", f"{TORCH}/tests", f"{TOKENIZERS}/tests", f"{NUMPY_PLUGIN}/tests"),
    ),
    "tf": ((f"{CORE}[hub,h5]", f"{TF}[cpu]", NUMPY_PLUGIN), (f"{TF}/tests",)),
}


@session(python=PYTHON, name="min-versions")
@nox.parametrize("env", list(MIN_ENVS))
def min_versions(session: nox.Session, env: str) -> None:
    """The packages with every dependency at the lower bound they declare (scripts/min_constraints.py).

    Runs the package tests that do not need the reference (``-m "not oracle"``: transformers 4.57 itself needs
    newer tokenizers and huggingface_hub than our floors). torch here is the CPU wheel of constraints.txt: older
    torch wheels on PyPI pull NVIDIA's CUDA libraries (gigabytes); ``nox -s min-versions-torch`` tests torch's
    own floor. Not in the default run (about 10 minutes, mostly installing); run it before a release and
    whenever a lower bound changes (docs/releasing.md).
    """
    projects, tests = MIN_ENVS[env]
    floors = Path(session.create_tmp()) / "min-constraints.txt"
    # torch: constraints.txt's CPU wheel (see the docstring; the floor itself: nox -s min-versions-torch)
    session.run("python", "scripts/min_constraints.py", *projects, "--except", "torch", "--output", str(floors))
    session.install("-c", str(floors), *CONSTRAINTS, *TEST_DEPS, *(f"-e{p}" for p in projects))
    session.run("python", "-m", "pip", "list", "--format=freeze")
    session.run("python", "-m", "pip", "check")
    if env == "torch":
        assert_not_importable(session, "tensorflow", "transformers")
    else:
        assert_not_importable(session, "torch", "transformers")
    pytest(session, *tests, "-m", "not oracle", "-p", "no:cacheprovider")


@session(python=PYTHON, name="min-versions-torch", default=False)
def min_versions_torch(session: nox.Session) -> None:
    """rembert-torch on the torch version it declares as its floor, from PyPI (with its CUDA libraries: ~3 GB).

    Not constraints.txt (it pins the CPU wheel of a newer torch); every other dependency at its floor too.
    """
    projects = (f"{CORE}[hub,h5]", TORCH, NUMPY_PLUGIN)
    floors = Path(session.create_tmp()) / "min-constraints.txt"
    session.run("python", "scripts/min_constraints.py", *projects, "--output", str(floors))
    session.install("-c", str(floors), *TEST_DEPS, *(f"-e{p}" for p in projects))
    session.run("python", "-m", "pip", "list", "--format=freeze")
    assert_not_importable(session, "tensorflow", "transformers")
    pytest(session, f"{TORCH}/tests", f"{NUMPY_PLUGIN}/tests", "-m", "not oracle", "-p", "no:cacheprovider")
