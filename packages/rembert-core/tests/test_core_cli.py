from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rembert_core import Backend, RemBertConfig, __version__, hookimpl, register_plugin, save_safetensors
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


# -- backends --strict, parity's header and references, quiet frameworks, fast start-up ---------------------------


class Toy(Backend):
    """Embedding lookup as the model, sum of squares as the loss: enough for the CLI's parity runs."""

    tasks = ("base", "masked_lm")
    dtypes = ("float32", "float64")

    def __init__(self, name: str, *, requires: tuple[str, ...] = (), reference: str = "") -> None:
        self.name, self.requires, self.reference = name, requires, reference

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> dict[str, Any]:
        return {"task": task, "dtype": np.dtype(dtype), "w": {}}

    def load_tensors(self, model: dict[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
        model["w"] = {k: np.asarray(v) for k, v in tensors.items()}

    def export_tensors(self, model: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in model["w"].items()}

    def _emb(self, model: dict[str, Any]) -> str:
        return ("" if model["task"] == "base" else "rembert.") + "embeddings.word_embeddings.weight"

    def forward(
        self,
        model: dict[str, Any],
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        hidden = model["w"][self._emb(model)].astype(model["dtype"])[inputs["input_ids"]]
        return {"last_hidden_state": hidden.astype(np.float32)}

    def gradients(self, model: dict[str, Any], inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        weight = model["w"][self._emb(model)].astype(model["dtype"])
        grads = {k: np.zeros(np.shape(v), np.float32) for k, v in model["w"].items()}
        grad = np.zeros_like(weight)
        np.add.at(grad, inputs["input_ids"], 2 * weight[inputs["input_ids"]])
        grads[self._emb(model)] = grad.astype(np.float32)
        return float(np.sum(weight[inputs["input_ids"]] ** 2)), grads


class Plugin:
    def __init__(self, *backends: Backend) -> None:
        self.backends = backends

    @hookimpl
    def register_backends(self, register: Any) -> None:
        for backend in self.backends:
            register(backend)


PARITY = ["parity", "--tasks", "base,masked_lm", "--dtypes", "float32", "--no-progress", "--no-tokenizers"]


@pytest.fixture
def broken_framework(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module that is installed but fails to import, as a broken framework install does."""
    (tmp_path / "brokenframework.py").write_text("raise ImportError('libframework.so: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "brokenframework"


def test_backends_strict_reports_a_backend_whose_framework_cannot_be_imported(
    broken_framework: str, capsys: pytest.CaptureFixture[str]
) -> None:
    register_plugin(
        Plugin(Toy("fine"), Toy("absent", requires=("nosuchframework",)), Toy("broken", requires=(broken_framework,))),
        "toys",
    )
    assert main(["backends"]) == 0  # listing: present or not, nothing is imported
    out = capsys.readouterr().out
    assert "unavailable: needs nosuchframework, which is not installed" in out
    assert main(["backends", "--strict"]) == 1
    out = capsys.readouterr().out
    assert "unavailable: needs brokenframework, which cannot be imported (ImportError: libframework.so" in out
    assert "fine" in out
    assert main(["backends", "--strict", "--json"]) == 1
    payload = {b["name"]: b for b in json.loads(capsys.readouterr().out)["backends"]}
    assert payload["fine"]["available"] is True and payload["fine"]["unavailable"] is None
    assert payload["absent"]["available"] is False and payload["absent"]["requires"] == ["nosuchframework"]


def test_parity_header_lists_unavailable_backends_once(
    broken_framework: str, capsys: pytest.CaptureFixture[str]
) -> None:
    register_plugin(Plugin(Toy("numpy"), Toy("one"), Toy("broken", requires=(broken_framework,))), "toys")
    assert main(PARITY) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("config       tiny config (embedded): 2 layers, hidden 48")
    assert next(line for line in lines if line.startswith("unavailable")).startswith(
        "unavailable  broken: needs brokenframework, which cannot be imported (ImportError"
    )
    assert sum("broken" in line for line in lines) == 1 and err == ""  # said once, in the header; never run
    assert next(line for line in lines if line.startswith("references")).split()[1] == "numpy:float64"


def test_parity_names_the_reference_and_states_the_rule_before_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    register_plugin(Plugin(Toy("mine"), Toy("oracle", reference="oracle 4.57.6 (toy classes)")), "toys")
    assert main(PARITY) == 0
    out = capsys.readouterr().out
    assert "references   oracle  oracle 4.57.6 (toy classes)" in out
    assert (
        out.index("|a - b| <= atol + rtol * |b|")
        < out.index("pair of runs")
        < out.index("PASS: mine agrees with oracle 4.57.6")
    )
    assert "mine:float32 vs oracle:float32" in out
    assert "max abs" not in out  # the per-field table: --verbose
    assert main([*PARITY, "--verbose"]) == 0
    assert "max abs" in capsys.readouterr().out


def test_parity_without_a_reference_says_so_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    register_plugin(Plugin(Toy("alone"), Toy("other")), "toys")
    assert main(PARITY) == 1
    out = capsys.readouterr().out
    assert "references   none" in out
    assert "FAIL: no reference to compare with: install transformers 4.57 as a backend" in out
    assert "pair of runs" not in out  # nothing ran
    assert main([*PARITY, "--allow-no-reference"]) == 0
    out = capsys.readouterr().out
    assert "alone:float32 vs other:float32" in out or "other:float32 vs alone:float32" in out
    assert "PASS: " in out and "each other (no reference)" in out


def test_parity_with_a_missing_checkpoint_says_it_was_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_plugin(Plugin(Toy("numpy")), "toys")
    code = main(["parity", str(tmp_path / "nowhere"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"checkpoint not found: {tmp_path / 'nowhere'}" in err
    assert "config" not in err


def test_parity_reports_as_json_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register_plugin(Plugin(Toy("numpy"), Toy("mine")), "toys")
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    assert main([*PARITY, "--report", str(json_path), "--report", str(html_path)]) == 0
    assert f"reports: {json_path}, {html_path}" in capsys.readouterr().out
    payload = json.loads(json_path.read_text())
    assert payload["ok"] is True and payload["reference"] == "numpy:float64" and payload["summary"]
    page = html_path.read_text()
    assert "rembert parity: PASS" in page and 'class="fields sortable"' in page and "<svg" in page


NOISY = """
import os
os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\\n")  # C++ start-up logging, straight to fd 2
import logging
logging.getLogger("tensorflow").warning("a Python-level framework warning")
"""


@pytest.mark.parametrize("how", ["declared", "imported by a plugin"])
def test_no_framework_log_noise(tmp_path: Path, how: str) -> None:
    """A framework that writes to file descriptor 2 while it loads (as TensorFlow does) stays silent.

    ``declared``: ``rembert backends --strict`` imports a backend's declared modules; ``imported by a
    plugin``: any import during a command, here the registration hook of a plugin that declares nothing.
    """
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(NOISY)
    requires = ("tensorflow",) if how == "declared" else ()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from rembert_core import Backend, hookimpl, register_plugin
        from rembert_core.cli import main

        class Declared(Backend):
            name, requires = "tfish", {requires!r}
            build_model = load_tensors = export_tensors = forward = gradients = None

        class Plugin:
            @hookimpl
            def register_backends(self, register):
                if not Declared.requires:
                    import tensorflow  # noqa: F401
                register(Declared())

        register_plugin(Plugin(), "tfish")
        code = main(["backends", "--strict"])
        print(code, "tensorflow" in sys.modules)
        """
    )
    env = {**os.environ, "REMBERT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 True"
    assert done.stderr == ""


def test_cli_start_imports_no_framework() -> None:
    """``rembert --help`` and ``rembert backends`` stay fast: no framework, ml_dtypes or tqdm is imported.

    Counting modules, not timing them, so the check does not depend on the machine's speed.
    """
    code = textwrap.dedent(
        """
        import contextlib, io, sys
        from rembert_core.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["--help"])
            except SystemExit:
                pass
            main(["backends"])
        heavy = ("ml_dtypes", "torch", "tensorflow", "keras", "tf_keras", "jax", "transformers", "h5py", "tqdm",
                 "safetensors.torch", "safetensors.tensorflow")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    env = {**os.environ, "REMBERT_DISABLE_PLUGIN_AUTOLOAD": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_convert_carries_the_other_files_of_the_checkpoint(
    make_checkpoint: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_checkpoint("masked_lm")
    others = {
        "tokenizer_config.json": "{}",
        "sentencepiece.model": "spm",
        "special_tokens_map.json": "{}",
        "generation_config.json": '{"max_length": 20}',
        "README.md": "# model card",
        "LICENSE": "Apache-2.0",
    }
    for name, text in others.items():
        (source / name).write_text(text)
    target = tmp_path / "converted"
    assert main(["convert", str(source), str(target), "--dtype", "bfloat16", "--no-progress"]) == 0
    assert "converted safetensors checkpoint" in capsys.readouterr().out
    assert {name: (target / name).read_text() for name in others} == others
    assert sorted(p.name for p in target.iterdir()) == sorted([*others, "config.json", "model.safetensors"])
