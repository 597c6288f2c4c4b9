"""Every example in examples/ runs from its README command, with its tiny default, and does its job.

The commands are read from examples/README.md, so the README cannot drift from the scripts. Each runs in a
subprocess from the repository root, as a user would run it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from doc_helpers import ROOT

README = ROOT / "examples" / "README.md"
COMMAND = re.compile(r"`(python examples/[^`]+)`")


def readme_commands() -> list[str]:
    return COMMAND.findall(README.read_text(encoding="utf-8"))


def run(command: str, tmp_path: Path) -> str:
    """Run a README command with /tmp/... output paths moved under ``tmp_path``; return its stdout."""
    args = [tmp_path / a[len("/tmp/") :] if a.startswith("/tmp/") else a for a in shlex.split(command)]
    args[0] = sys.executable
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([os.fspath(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


def test_readme_lists_every_example() -> None:
    scripts = {shlex.split(c)[1] for c in readme_commands()}
    on_disk = {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py") if p.name != "common.py"}
    assert scripts == on_disk


def command(fragment: str) -> str:
    (found,) = [c for c in readme_commands() if fragment in c]
    return found


def test_finetune_torch_then_tf_reproduces_it(tmp_path: Path) -> None:
    out = run(command("finetune_torch.py"), tmp_path)
    accuracy = float(re.search(r"evaluation accuracy: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.9, out  # the generated task is easy; a model that learned nothing scores ~0.5
    saved = tmp_path / "rembert-sentiment"
    assert {"config.json", "model.safetensors", "predictions.json", "tokenizer_config.json"} <= {
        p.name for p in saved.iterdir()
    }
    predictions = json.loads((saved / "predictions.json").read_text())
    assert len(predictions["logits"]) == len(predictions["labels"]) == 64

    out = run(command("--from-torch"), tmp_path)
    assert "same predictions as PyTorch" in out, out


def test_finetune_tf_with_fit(tmp_path: Path) -> None:
    out = run(command("finetune_tf.py --output-dir"), tmp_path)
    accuracy = float(re.search(r"evaluation accuracy: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.9, out
    assert (tmp_path / "rembert-sentiment-tf" / "model.safetensors").is_file()


def test_masked_lm(tmp_path: Path) -> None:
    out = run(command("masked_lm.py"), tmp_path)
    assert "[MASK]" in out and re.search(r"recovered \d+ of 4 masked words", out), out


def test_question_answering(tmp_path: Path) -> None:
    out = run(command("question_answering.py"), tmp_path)
    context = re.search(r"context:  (.*)", out).group(1)  # type: ignore[union-attr]
    found = re.search(r"answer:   '(.*)' \(characters (\d+)-(\d+)", out)
    assert found, out
    text, start, end = found.group(1), int(found.group(2)), int(found.group(3))
    assert text and context[start:end] == text  # a real span of the context, located by the offsets


def test_qa_preprocessing_windows_in_both_frameworks(tmp_path: Path) -> None:
    out = run(command("qa_preprocessing.py"), tmp_path)
    windows = re.search(r"2 examples -> (\d+) windows", out)
    assert windows and int(windows.group(1)) > 2, out  # the contexts are longer than one window
    assert re.search(r"training labels hold the answer in [1-9]\d* windows and map back to it", out), out
    assert len(re.findall(r"answer:   '.*' \(characters \d+-\d+ of the context, window \d+", out)) == 2, out
    assert "same answers as PyTorch: True" in out, out


def test_token_classification(tmp_path: Path) -> None:
    out = run(command("token_classification.py"), tmp_path)
    accuracy = float(re.search(r"word accuracy on 32 held-out sentences: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.9, out  # word-level tags recovered through word_ids()


def test_multiple_choice(tmp_path: Path) -> None:
    out = run(command("multiple_choice.py"), tmp_path)
    accuracy = float(re.search(r"accuracy on 32 held-out questions: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.5, out  # chance is 0.25 with 4 choices


def test_causal_lm_cache_gives_the_same_tokens(tmp_path: Path) -> None:
    out = run(command("causal_lm.py"), tmp_path)
    assert "same tokens: yes" in out, out
