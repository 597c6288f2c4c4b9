from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rembert_core import RemBertConfig, __version__, save_safetensors
from rembert_core.cli import main
from rembert_core.schema import build_schema


def test_inspect_valid_checkpoint(make_checkpoint: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_checkpoint("masked_lm")
    assert main(["inspect", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "RemBertForMaskedLM (task masked_lm)" in out
    assert "vocab 301, hidden 48, layers 2, heads 6, embeddings in/out 20/36" in out
    assert "schema       valid (45 tensors matched)" in out
    assert "dtype        F32" in out


def test_inspect_json_and_sharded(make_checkpoint: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_checkpoint("question_answering", max_shard_size="20KB")
    assert main(["inspect", str(directory), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is True
    assert payload["task"] == "question_answering"
    assert len(payload["files"]) > 1
    assert payload["total_parameters"] == sum(
        s.size for s in build_schema(RemBertConfig.from_pretrained(directory), "question_answering").values()
    )


def test_inspect_reports_problems(
    make_checkpoint: Callable[..., Path], tiny_config: RemBertConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = make_checkpoint("base")
    tiny_config.copy(hidden_size=36).save_pretrained(directory)  # config no longer fits the weights
    assert main(["inspect", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "schema       INVALID" in out
    assert "tensor encoder.embedding_hidden_mapping_in.weight has shape (48, 20), expected (36, 20)" in out


def test_inspect_task_override(make_checkpoint: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_checkpoint("base")
    assert main(["inspect", str(directory), "--task", "sequence_classification"]) == 0
    out = capsys.readouterr().out
    assert "not in checkpoint (would be newly initialised): classifier.weight, classifier.bias" in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "checkpoint not found"),
        ("no_config", "config file not found"),
        ("corrupt", "is not a valid safetensors file"),
    ],
)
def test_inspect_bad_input_is_one_line_exit_2(
    tmp_path: Path, tiny_config: RemBertConfig, setup: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ckpt"
    if setup != "missing":
        target.mkdir()
        if setup == "corrupt":
            tiny_config.save_pretrained(target)
            (target / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
        else:
            save_safetensors({"w": __import__("numpy").zeros(2, "float32")}, target)
    code = main(["inspect", str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("rembert inspect: error:")


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"rembert {__version__}"
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rembert_core.cli", "backends", "--json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"backends", "tokenizers", "plugins", "conflicts"}


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, rembert_core, rembert_core.cli, rembert_core.plugins\n"
        "rembert_core.get_registry()\n"
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]\n"
        "sys.exit(f'framework imported: {bad}' if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "REMBERT_DISABLE_PLUGIN_AUTOLOAD": "0"},
    )
    assert result.returncode == 0, result.stderr + result.stdout
