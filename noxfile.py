"""Every development task of the rembert monorepo, as nox sessions.

``nox`` (no arguments) runs the default sessions, which is what CI runs.
``nox -s parity`` runs the parity suite, ``nox -s bench`` the benchmarks.
Arguments after ``--`` go to pytest, e.g. ``nox -s tests-torch -- -k cache``.
"""

from __future__ import annotations

from pathlib import Path

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
TEST_DEPS = ("pytest>=8", "hypothesis>=6.100")
TF_RUNTIME = ("tensorflow-cpu>=2.16", "keras>=3.0")  # CPU build: the full one pulls CUDA libraries
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
    "parity",
]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


# -- helpers ---------------------------------------------------------------------------------


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


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repo."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the four packages, with their frameworks installed so types resolve."""
    install(session, CORE, TORCH, TF, TOKENIZERS, extra=("mypy>=1.10", "torch", *TF_RUNTIME))
    session.run("mypy")


@nox.session(python=PYTHON, name="tests-core")
def tests_core(session: nox.Session) -> None:
    """rembert-core alone: proves it needs neither torch nor TensorFlow."""
    install(session, CORE, extra=TEST_DEPS)
    assert_not_importable(session, "torch", "tensorflow", "keras", "transformers")
    pytest(session, f"{CORE}/tests")


@nox.session(python=PYTHON, name="tests-torch")
def tests_torch(session: nox.Session) -> None:
    """rembert-torch with the reference oracle, and without TensorFlow."""
    install(session, CORE, TORCH, extra=(*TEST_DEPS, "torch", *ORACLE))
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}")  # the conformance kit's float64 reference
    assert_not_importable(session, "tensorflow", "keras")
    pytest(session, f"{TORCH}/tests")


@nox.session(python=PYTHON, name="tests-tf")
def tests_tf(session: nox.Session) -> None:
    """rembert-tf without torch."""
    install(session, CORE, TF, extra=(*TEST_DEPS, *TF_RUNTIME))
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}")  # the conformance kit's float64 reference
    assert_not_importable(session, "torch")
    pytest(session, f"{TF}/tests")


@nox.session(python=PYTHON, name="tests-tokenizers")
def tests_tokenizers(session: nox.Session) -> None:
    """rembert-tokenizers with the reference oracle, without torch or TensorFlow."""
    install(session, CORE, TOKENIZERS, extra=(*TEST_DEPS, *ORACLE))
    assert_not_importable(session, "torch", "tensorflow")
    pytest(session, f"{TOKENIZERS}/tests", "-k", f"not ({TOKENIZER_FRAMEWORK_TESTS})")


@nox.session(python=PYTHON, name="tests-cross")
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
    pytest(session, "tests", "--ignore=tests/test_parity.py")
    pytest(session, f"{TOKENIZERS}/tests", "-k", TOKENIZER_FRAMEWORK_TESTS)


@nox.session(python=PYTHON)
def parity(session: nox.Session) -> None:
    """The main job: every backend x every head x float32/bfloat16, outputs and gradients, vs a float64 reference.

    Installs the four packages and, like any third-party plugin, the NumPy example backend. Arguments after
    ``--`` go to ``rembert parity`` (e.g. ``nox -s parity -- --backends torch,numpy``). Reports land in
    ``reports/``.
    """
    install(session, CORE, TORCH, TF, TOKENIZERS, extra=(*TEST_DEPS, "torch", *TF_RUNTIME, *ORACLE))
    session.install(*CONSTRAINTS, f"./{NUMPY_PLUGIN}")  # a regular, non-editable install, as users get it
    (ROOT / "reports").mkdir(exist_ok=True)
    session.run("rembert", "backends", "--strict")
    session.run("rembert", "parity", "--report", "reports/parity.json", *session.posargs)
    if not session.posargs:
        # RemBERT's real widths (hidden 1152, 18 heads, embeddings 256/1664, intermediate 4608), 2 layers.
        session.run(
            "rembert",
            "parity",
            "--config",
            "full",
            "--tasks",
            "masked_lm,causal_lm,sequence_classification",
            "--no-tokenizers",
            "--report",
            "reports/parity-full.json",
        )
        session.run("python", "-m", "pytest", "tests/test_parity.py", f"{NUMPY_PLUGIN}/tests")


@nox.session(python=PYTHON, default=False)
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
