"""Checkpoint loading and conversion at full scale: rembert vs transformers 4.57, side by side in one run.

Run from the repository root (``nox -s bench`` does, with every package installed)::

    python benchmarks/bench_checkpoints.py [--layers 32] [--workdir /tmp/rembert-bench] [--json out.json]

It writes a full-size RemBERT backbone (575M parameters, 2.3 GB in float32) once with transformers
(``model.safetensors``, ``pytorch_model.bin``, and ``tf_model.h5`` through its TF classes), then runs
each measurement in a fresh Python process and reports wall time and the process's peak RSS:

* PyTorch ``from_pretrained`` from safetensors: ours vs the reference;
* TensorFlow: ours from safetensors and from ``tf_model.h5`` vs the reference from ``pytorch_model.bin``
  and from its own ``tf_model.h5`` (the reference cannot load safetensors into its TF classes);
* ``rembert convert`` of ``pytorch_model.bin`` and of ``tf_model.h5`` to safetensors.

Peak RSS includes the framework's own import (reported separately as "baseline"). It is a benchmark,
not a test: numbers depend on the machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

PREAMBLE = """
import os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
def peak_mb():  # MiB; VmHWM, as ru_maxrss starts from the parent's RSS when a big process spawns this one
    try:
        with open("/proc/self/status") as status:
            return next(int(ln.split()[1]) for ln in status if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CASES: dict[str, tuple[str, str]] = {
    # name: (imports, the timed statement); {d} is the checkpoint directory
    "torch: ours from safetensors": (
        "import torch, rembert_torch",
        "rembert_torch.RemBertModel.from_pretrained('{d}/st')",
    ),
    "torch: reference from safetensors": (
        "import torch, transformers",
        "transformers.RemBertModel.from_pretrained('{d}/st')",
    ),
    "tf: ours from safetensors": (
        "import tensorflow, rembert_tf",
        "rembert_tf.TFRemBertModel.from_pretrained('{d}/st')",
    ),
    "tf: ours from tf_model.h5": (
        "import tensorflow, rembert_tf",
        "rembert_tf.TFRemBertModel.from_pretrained('{d}/h5')",
    ),
    "tf: reference from pytorch_model.bin": (
        "import tensorflow, transformers",
        "transformers.TFRemBertModel.from_pretrained('{d}/bin', from_pt=True)",
    ),
    "tf: reference from tf_model.h5": (
        "import tensorflow, transformers",
        "transformers.TFRemBertModel.from_pretrained('{d}/h5')",
    ),
    "convert: pytorch_model.bin -> safetensors": (
        "import rembert_core.convert, rembert_torch.plugin",
        "rembert_core.convert.convert_checkpoint('{d}/bin', '{d}/out-bin', overwrite=True)",
    ),
    "convert: tf_model.h5 -> safetensors": (
        "import rembert_core.convert",
        "rembert_core.convert.convert_checkpoint('{d}/h5', '{d}/out-h5', overwrite=True)",
    ),
}
LEGACY_KERAS = {"tf: reference from pytorch_model.bin", "tf: reference from tf_model.h5"}


def run_case(name: str, directory: Path) -> dict[str, Any]:
    imports, statement = CASES[name]
    code = PREAMBLE + textwrap.dedent(
        f"""
        {imports}
        base = peak_mb()
        start = time.perf_counter()
        model = {statement.format(d=directory)}
        seconds = time.perf_counter() - start
        print("RESULT", seconds, base, peak_mb())
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if name in LEGACY_KERAS:
        env["TF_USE_LEGACY_KERAS"] = "1"  # transformers' TF classes need tf-keras
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    if proc.returncode != 0 or line is None:
        return {"case": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    _, seconds, base, peak = line.split()
    return {"case": name, "seconds": float(seconds), "baseline_mb": float(base), "peak_mb": float(peak)}


def make_checkpoints(directory: Path, layers: int) -> float:
    """Write the full-size backbone in three formats with transformers; return the safetensors size in GB."""
    if (directory / "h5" / "tf_model.h5").is_file():
        return (directory / "st" / "model.safetensors").stat().st_size / 1e9
    code = textwrap.dedent(
        f"""
        import os, torch, transformers
        torch.manual_seed(0)
        config = transformers.RemBertConfig(num_hidden_layers={layers})
        model = transformers.RemBertModel(config)
        model.save_pretrained("{directory}/st")
        model.save_pretrained("{directory}/bin", safe_serialization=False)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=3600)
    code = textwrap.dedent(
        f"""
        import transformers
        tf_model = transformers.TFRemBertModel.from_pretrained("{directory}/bin", from_pt=True)
        tf_model.save_pretrained("{directory}/h5")
        """
    )
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=3600, env=env)
    return (directory / "st" / "model.safetensors").stat().st_size / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32, help="encoder layers (32 = the full model)")
    parser.add_argument("--workdir", default="/tmp/rembert-bench-checkpoints")
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--cases", help="comma-separated subset of: " + ", ".join(CASES))
    args = parser.parse_args()
    directory = Path(args.workdir)
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    size_gb = make_checkpoints(directory, args.layers)
    print(
        f"checkpoint: {args.layers} layers, {size_gb:.2f} GB float32 (written in {time.perf_counter() - start:.0f} s)"
    )
    names = [n.strip() for n in args.cases.split(",")] if args.cases else list(CASES)
    results = [run_case(name, directory) for name in names]
    print()
    print("| case | seconds | peak RSS (GB) | baseline RSS (GB) | peak / checkpoint |")  # GB = 10**9 bytes
    print("|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['case']} | error: {r['error']} | | | |")
        else:
            peak_gb, base_gb = r["peak_mb"] * 2**20 / 1e9, r["baseline_mb"] * 2**20 / 1e9
            print(f"| {r['case']} | {r['seconds']:.1f} | {peak_gb:.2f} | {base_gb:.2f} | {peak_gb / size_gb:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint_gb": size_gb, "results": results}, indent=2))


if __name__ == "__main__":
    main()
