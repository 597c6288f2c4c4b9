"""Smoke test of the installed wheels, run by ``nox -s install-smoke`` in virtualenvs holding only wheels.

    python tests/smoke/smoke.py --version 0.1.0 --packages torch,tokenizers

``--packages`` names the rembert packages installed besides rembert-core (``torch``, ``tf``, ``tokenizers``).
The script checks each is the installed wheel (not this source tree) at ``--version``, with ``py.typed``;
that ``rembert --version`` agrees; that ``rembert backends --strict`` lists exactly the installed backends
and tokenizers; then, per package, builds a tiny model (or a tokenizer from the test SentencePiece model),
runs it, saves it, loads it back and compares. With both frameworks it also loads the torch checkpoint in
TensorFlow and compares logits within the float32 tolerance of the one tolerance table. Exit status 1 on
the first failure (an AssertionError with what differed).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SPM_MODEL = REPO / "tests" / "fixtures" / "sentencepiece" / "test_model.model"
MODULES = {"torch": "rembert_torch", "tf": "rembert_tf", "tokenizers": "rembert_tokenizers"}
TINY: dict[str, Any] = {
    "vocab_size": 301,
    "hidden_size": 48,
    "num_attention_heads": 6,
    "num_hidden_layers": 2,
    "input_embedding_size": 20,
    "output_embedding_size": 36,
    "intermediate_size": 64,
}
INPUT_IDS = np.array([[5, 6, 7, 8, 0], [9, 10, 11, 0, 0]], dtype=np.int64)
ATTENTION_MASK = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=np.int64)


def step(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


def rembert(*args: str) -> str:
    """Run the installed ``rembert`` console script (the wheel's entry point) and return its stdout."""
    executable = shutil.which("rembert", path=sysconfig.get_path("scripts"))
    assert executable is not None, f"no rembert console script in {sysconfig.get_path('scripts')}"
    result = subprocess.run([executable, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"rembert {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def check_installed(module_name: str, version: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__version__ == version, f"{module_name}.__version__ = {module.__version__}, expected {version}"
    location = Path(module.__file__ or "").resolve().parent
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert location.parent == site, f"{module_name} imported from {location}, not this environment's {site}"
    # pip records where it installed a distribution from: a wheel file, not a directory (editable/source).
    origin = json.loads(metadata.distribution(module_name.replace("_", "-")).read_text("direct_url.json") or "{}")
    assert str(origin.get("url", "")).endswith(".whl"), f"{module_name} not installed from a wheel: {origin}"
    assert (location / "py.typed").is_file(), f"{module_name} installed without py.typed"
    step(f"{module_name} {module.__version__} from {location}")


def check_absent(*modules: str) -> None:
    found = [m for m in modules if importlib.util.find_spec(m) is not None]
    assert not found, f"unexpectedly importable: {found}"


def smoke_backends(packages: set[str]) -> None:
    from rembert_core import get_registry

    registry = get_registry()
    expected_backends = {p for p in packages if p in ("torch", "tf")}
    assert set(registry.backends) == expected_backends, f"backends {sorted(registry.backends)}"
    assert bool(registry.tokenizers) == ("tokenizers" in packages), f"tokenizers {sorted(registry.tokenizers)}"
    listing = rembert("backends", "--strict")
    print(listing, flush=True)
    for name in expected_backends:
        assert name in listing, f"rembert backends does not list {name}"


def smoke_torch(work: Path) -> np.ndarray:
    import torch

    from rembert_torch import RemBertConfig, RemBertForMaskedLM

    torch.manual_seed(0)
    model = RemBertForMaskedLM(RemBertConfig(**TINY)).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(INPUT_IDS), attention_mask=torch.from_numpy(ATTENTION_MASK)).logits
    assert tuple(logits.shape) == (2, 5, TINY["vocab_size"]), logits.shape
    model.save_pretrained(work / "torch")
    assert (work / "torch" / "model.safetensors").is_file() and (work / "torch" / "config.json").is_file()
    again = RemBertForMaskedLM.from_pretrained(work / "torch").eval()
    with torch.no_grad():
        reloaded = again(torch.from_numpy(INPUT_IDS), attention_mask=torch.from_numpy(ATTENTION_MASK)).logits
    assert torch.equal(logits, reloaded), "torch logits changed after save_pretrained/from_pretrained"
    step(f"torch: built, ran, saved and reloaded RemBertForMaskedLM {tuple(logits.shape)}")
    return logits.numpy()


def smoke_tf(work: Path) -> np.ndarray:
    from rembert_tf import RemBertConfig, TFRemBertForMaskedLM

    model = TFRemBertForMaskedLM(RemBertConfig(**TINY))
    logits = np.asarray(model(INPUT_IDS, attention_mask=ATTENTION_MASK).logits)
    assert logits.shape == (2, 5, TINY["vocab_size"]), logits.shape
    model.save_pretrained(work / "tf")
    assert (work / "tf" / "model.safetensors").is_file() and (work / "tf" / "config.json").is_file()
    again = TFRemBertForMaskedLM.from_pretrained(work / "tf")
    reloaded = np.asarray(again(INPUT_IDS, attention_mask=ATTENTION_MASK).logits)
    np.testing.assert_array_equal(logits, reloaded, err_msg="TF logits changed after save/load")
    step(f"tf: built, ran, saved and reloaded TFRemBertForMaskedLM {logits.shape}")
    return logits


def smoke_cross(work: Path, torch_logits: np.ndarray) -> None:
    """The torch checkpoint in TensorFlow: the same logits within the float32 backend-vs-backend bound."""
    from rembert_core.tolerances import get_tolerance
    from rembert_tf import TFRemBertForMaskedLM

    model = TFRemBertForMaskedLM.from_pretrained(work / "torch")
    tf_logits = np.asarray(model(INPUT_IDS, attention_mask=ATTENTION_MASK).logits)
    bound = get_tolerance("float32", "activations", two_sided=True)
    mask = ATTENTION_MASK.astype(bool)  # padded positions carry no meaning
    np.testing.assert_allclose(tf_logits[mask], torch_logits[mask], rtol=bound.rtol, atol=bound.atol)
    step("torch checkpoint -> tf: same logits")


def smoke_tokenizers(work: Path) -> None:
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    text = ["This is a test", "I was born in 92000, and this is falsé."]
    slow = RemBertTokenizer(str(SPM_MODEL))
    fast = RemBertTokenizerFast(str(SPM_MODEL))
    ids = slow(text, padding=True, return_tensors="np")["input_ids"]
    np.testing.assert_array_equal(ids, fast(text, padding=True, return_tensors="np")["input_ids"])
    slow.save_pretrained(work / "slow")
    fast.save_pretrained(work / "fast")
    np.testing.assert_array_equal(ids, RemBertTokenizer.from_pretrained(work / "slow")(text, padding=True)["input_ids"])
    reloaded = RemBertTokenizerFast.from_pretrained(work / "fast")(text, padding=True)["input_ids"]
    np.testing.assert_array_equal(ids, reloaded)
    step(f"tokenizers: slow and fast agree, saved and reloaded ({ids.shape[1]} ids per row)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the version every package must report")
    parser.add_argument("--packages", default="", help="comma-separated: torch, tf, tokenizers")
    args = parser.parse_args(argv)
    packages = {p for p in args.packages.split(",") if p}
    unknown = packages - set(MODULES)
    if unknown:
        parser.error(f"unknown packages {sorted(unknown)}")

    check_installed("rembert_core", args.version)
    for package in sorted(packages):
        check_installed(MODULES[package], args.version)
    check_absent(*(MODULES[p] for p in set(MODULES) - packages), "transformers")
    if "torch" not in packages:
        check_absent("torch")
    if "tf" not in packages:
        check_absent("tensorflow", "keras")
    assert rembert("--version").strip() == f"rembert {args.version}", rembert("--version")
    smoke_backends(packages)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch_logits = smoke_torch(work) if "torch" in packages else None
        if "tf" in packages:
            smoke_tf(work)
            if torch_logits is not None:
                smoke_cross(work, torch_logits)
        if "tokenizers" in packages:
            smoke_tokenizers(work)
    step(f"ok: rembert-core + {', '.join(sorted(packages)) or 'nothing else'} at {args.version} ({sys.prefix})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
