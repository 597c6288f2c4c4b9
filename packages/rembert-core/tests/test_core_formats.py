"""Checkpoint formats (the register_checkpoint_formats hook) and `rembert convert`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from rembert_core import CheckpointError, RemBertConfig, hookimpl, open_checkpoint, register_plugin, save_safetensors
from rembert_core.cli import main
from rembert_core.convert import convert_checkpoint
from rembert_core.formats import CheckpointFormat, detect_files
from rembert_core.loading import detect_format, open_weights
from rembert_core.serialization import TensorInfo, TensorSource


class NpzSource(TensorSource):
    """A third-party format: canonical tensors in a NumPy .npz archive."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._data = np.load(path)
        self.metadata = {}

    @property
    def files(self) -> list[Path]:
        return [self._path]

    def infos(self) -> dict[str, TensorInfo]:
        st = {"float32": "F32", "float16": "F16", "int64": "I64"}
        return {k: TensorInfo(k, self._data[k].shape, st[self._data[k].dtype.name], self._path) for k in self._data}

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self._data[name])

    def close(self) -> None:
        self._data.close()


def open_npz(path: Path) -> NpzSource:
    return NpzSource(path)


class NpzPlugin:
    def __init__(self, precedence: int = 50) -> None:
        self.precedence = precedence

    @hookimpl
    def register_checkpoint_formats(self, register: Callable[[CheckpointFormat], None]) -> None:
        register(
            CheckpointFormat(
                name="npz",
                detect=detect_files("weights.npz", suffixes=(".npz",)),
                opener=f"{__name__}:open_npz",
                precedence=self.precedence,
                description="canonical tensors in a NumPy archive",
            )
        )


@pytest.fixture
def npz_checkpoint(tmp_path: Path, tiny_config: RemBertConfig) -> Path:
    from conftest import random_tensors  # type: ignore[import-not-found]

    directory = tmp_path / "npz"
    directory.mkdir()
    tiny_config.save_pretrained(directory)
    np.savez(directory / "weights.npz", **random_tensors(tiny_config, "masked_lm", seed=3))
    return directory


@pytest.fixture(autouse=True)
def _importable_conftest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_a_registered_format_is_read_everywhere(npz_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckpointError, match="that a registered format reads"):
        open_weights(npz_checkpoint)
    register_plugin(NpzPlugin(), name="npz-plugin")
    with open_weights(npz_checkpoint) as weights:
        assert weights.format == "npz"
        assert "cls.predictions.decoder.weight" in weights
    assert main(["inspect", str(npz_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "format       npz" in out
    assert "schema       valid" in out


def test_precedence_decides_and_reports_the_ignored_format(npz_checkpoint: Path) -> None:
    from conftest import random_tensors

    save_safetensors(random_tensors(RemBertConfig.from_pretrained(npz_checkpoint), "masked_lm"), npz_checkpoint)
    register_plugin(NpzPlugin(precedence=50), name="npz-plugin")
    detected = detect_format(npz_checkpoint)
    assert detected.format.name == "safetensors"
    assert [name for name, _ in detected.ignored] == ["npz"]


def test_precedence_can_put_a_format_first(npz_checkpoint: Path) -> None:
    from conftest import random_tensors

    save_safetensors(random_tensors(RemBertConfig.from_pretrained(npz_checkpoint), "masked_lm"), npz_checkpoint)
    register_plugin(NpzPlugin(precedence=-1), name="npz-first")
    assert detect_format(npz_checkpoint).format.name == "npz"


def test_two_plugins_with_one_format_name(npz_checkpoint: Path) -> None:
    register_plugin(NpzPlugin(), name="npz-a")
    register_plugin(NpzPlugin(), name="npz-b")
    from rembert_core.plugins import PluginWarning, get_registry

    with pytest.warns(PluginWarning, match="checkpoint format 'npz' is registered by both"):
        registry = get_registry()
    assert registry.formats["npz"].distribution == "npz-a"


def test_convert_streams_casts_and_shards(npz_checkpoint: Path, tmp_path: Path) -> None:
    register_plugin(NpzPlugin(), name="npz-plugin")
    seen: list[str] = []
    out = tmp_path / "out"
    result = convert_checkpoint(npz_checkpoint, out, dtype="bfloat16", max_shard_size="20KB", progress=seen.append)
    assert result.format == "npz"
    assert result.task == "masked_lm"
    assert len(seen) == result.tensors == 45
    assert (out / "model.safetensors.index.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["RemBertForMaskedLM"]
    original = np.load(npz_checkpoint / "weights.npz")
    with open_checkpoint(out) as ckpt:  # read back with safetensors itself
        assert len(ckpt.files) > 1
        for name in original.files:
            assert ckpt.info(name).dtype == "BF16"
            np.testing.assert_array_equal(ckpt[name], original[name].astype(ml_dtypes.bfloat16))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_convert_single_file_keeps_dtype(make_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    src = make_checkpoint("question_answering", max_shard_size="20KB")
    out = tmp_path / "single"
    assert main(["convert", str(src), str(out), "--max-shard-size", "0", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    with open_checkpoint(src) as a, open_checkpoint(out) as b:
        assert set(a) == set(b)
        for name in a:
            assert a[name].tobytes() == b[name].tobytes()


def test_convert_refuses_bad_sources_before_writing(
    make_checkpoint: Callable[..., Path], tmp_path: Path, tiny_config: RemBertConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_checkpoint("base")
    tiny_config.copy(intermediate_size=65).save_pretrained(src)
    out = tmp_path / "never"
    assert main(["convert", str(src), str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "intermediate.dense.weight has shape (64, 48), expected (65, 48)" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]
    (out).mkdir()
    (out / "keep.txt").write_text("mine")
    tiny_config.save_pretrained(src)
    assert main(["convert", str(src), str(out), "--no-progress"]) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["convert", str(src), str(out), "--no-progress", "--overwrite"]) == 0
    assert not (out / "keep.txt").exists()
    assert main(["convert", str(tmp_path / "nothing"), str(tmp_path / "o2"), "--no-progress"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_convert_without_config_needs_one(tmp_path: Path, tiny_config: RemBertConfig) -> None:
    from conftest import random_tensors

    src = tmp_path / "bare"
    save_safetensors(random_tensors(tiny_config, "base"), src)
    with pytest.raises(CheckpointError, match="pass --config"):
        convert_checkpoint(src, tmp_path / "o")
    cfg = tmp_path / "rembert_config.json"
    cfg.write_text(tiny_config.to_json_string())
    result = convert_checkpoint(src, tmp_path / "o", config_file=cfg)
    assert result.task == "base"


def test_killed_conversion_leaves_previous_output_intact(
    make_checkpoint: Callable[..., Path], tmp_path: Path, tiny_config: RemBertConfig
) -> None:
    src = make_checkpoint("masked_lm")
    out = tmp_path / "out"
    convert_checkpoint(src, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    script = textwrap.dedent(
        f"""
        import sys, time
        from rembert_core.convert import convert_checkpoint

        def slow(name):
            print("writing", name, flush=True)
            time.sleep(0.2)

        convert_checkpoint({str(src)!r}, {str(out)!r}, dtype="float16", overwrite=True, progress=slow)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(5):  # let it write a few tensors, then kill it mid-write
        assert proc.stdout.readline().startswith("writing")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    time.sleep(0.1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".out.rembert-convert-")]
    assert leftovers  # the partial output is hidden and incomplete: it has no config.json
    assert not (leftovers[0] / "config.json").exists()


def test_h5_without_h5py_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(CheckpointError, match=r"needs h5py: pip install rembert-core\[h5\]"):
        open_weights(tmp_path)


@pytest.mark.parametrize(
    ("h5_name", "canonical", "transpose"),
    [
        (
            "rembert/tf_rem_bert_model/rembert/embeddings/word_embeddings/weight:0",
            "rembert.embeddings.word_embeddings.weight",
            False,
        ),
        (
            "rembert/x/rembert/embeddings/position_embeddings/embeddings:0",
            "rembert.embeddings.position_embeddings.weight",
            False,
        ),
        ("rembert/x/rembert/embeddings/LayerNorm/gamma:0", "rembert.embeddings.LayerNorm.weight", False),
        (
            "rembert/x/rembert/encoder/layer_._11/attention/self/query/kernel:0",
            "rembert.encoder.layer.11.attention.self.query.weight",
            True,
        ),
        (
            "rembert/x/rembert/encoder/layer_._0/crossattention/output/LayerNorm/beta:0",
            "rembert.encoder.layer.0.crossattention.output.LayerNorm.bias",
            False,
        ),
        ("mlm___cls/x/mlm___cls/predictions/decoder/weight:0", "cls.predictions.decoder.weight", False),
        ("mlm___cls/x/mlm___cls/predictions/dense/kernel:0", "cls.predictions.dense.weight", True),
        ("classifier/x/classifier/kernel:0", "classifier.weight", True),
        ("qa_outputs/x/qa_outputs/bias:0", "qa_outputs.bias", False),
        ("optimizer/iterations:0", "optimizer/iterations:0", False),
    ],
)
def test_h5_name_rules(h5_name: str, canonical: str, transpose: bool) -> None:
    from rembert_core.io.h5 import canonical_h5_name

    assert canonical_h5_name(h5_name) == (canonical, transpose)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("bert/embeddings/word_embeddings", ("rembert.embeddings.word_embeddings.weight", False)),
        ("bert/embeddings/token_type_embeddings", ("rembert.embeddings.token_type_embeddings.weight", False)),
        ("bert/embeddings/LayerNorm/beta", ("rembert.embeddings.LayerNorm.bias", False)),
        (
            "bert/encoder/embedding_hidden_mapping_in/kernel",
            ("rembert.encoder.embedding_hidden_mapping_in.weight", True),
        ),
        ("bert/encoder/layer_31/output/dense/kernel", ("rembert.encoder.layer.31.output.dense.weight", True)),
        (
            "bert/encoder/layer_0/attention/output/LayerNorm/gamma",
            ("rembert.encoder.layer.0.attention.output.LayerNorm.weight", False),
        ),
        ("bert/pooler/dense/bias", ("rembert.pooler.dense.bias", False)),
        ("cls/predictions/transform/dense/kernel", ("cls.predictions.dense.weight", True)),
        ("cls/predictions/transform/LayerNorm/beta", ("cls.predictions.LayerNorm.bias", False)),
        ("cls/predictions/output_bias", ("cls.predictions.decoder.bias", False)),
        ("cls/predictions/output_embedding", ("cls.predictions.decoder.weight", False)),
        ("bert/embeddings/output_embedding", ("cls.predictions.decoder.weight", False)),
        ("bert/encoder/layer_0/output/dense/kernel/adam_m", None),
        ("global_step", None),
        ("bert/mystery/thing", ("rembert.mystery.thing", False)),
    ],
)
def test_original_tf_checkpoint_names(variable: str, expected: tuple[str, bool] | None) -> None:
    from rembert_core.io.tf_names import tf_checkpoint_name

    assert tf_checkpoint_name(variable) == expected


# -- found by the robustness suite (tests/robustness/test_plugins.py) ------------------------------


def _crash(path: Path) -> object:
    raise ZeroDivisionError("reader bug")


def _register_format(detect: object, opener: str) -> None:
    from rembert_core import hookimpl
    from rembert_core.formats import CheckpointFormat
    from rembert_core.plugins import register_plugin

    class Plugin:
        @hookimpl
        def register_checkpoint_formats(self, register: object) -> None:
            register(CheckpointFormat(name="hostile", detect=detect, opener=opener, precedence=-1))  # type: ignore[operator,arg-type]

    register_plugin(Plugin(), name="hostile")


def test_a_format_whose_detect_crashes_is_skipped(make_checkpoint: object) -> None:
    """A third-party detect() raising ValueError used to break loading of every checkpoint."""
    from rembert_core.plugins import PluginWarning

    _register_format(_crash, f"{__name__}:_crash")
    directory = make_checkpoint()  # type: ignore[operator]
    with pytest.warns(PluginWarning, match="checkpoint format 'hostile' .* failed to inspect"):
        assert len(open_weights(directory)) > 0


def test_a_format_whose_opener_crashes_is_a_checkpoint_error(make_checkpoint: object) -> None:
    """The opener's ZeroDivisionError used to escape bare; a missing opener was a bare AttributeError."""
    _register_format(lambda path: path, f"{__name__}:_crash")
    with pytest.raises(CheckpointError, match="format 'hostile' .* failed: ZeroDivisionError: reader bug"):
        open_weights(make_checkpoint())  # type: ignore[operator]
    from rembert_core.plugins import reset_plugins

    reset_plugins()
    _register_format(lambda path: path, f"{__name__}:_no_such_opener")
    with pytest.raises(CheckpointError, match="names opener .* which does not exist"):
        open_weights(make_checkpoint(name="other"))  # type: ignore[operator]
