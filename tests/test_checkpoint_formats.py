"""Every checkpoint format in, canonical safetensors out; loads in both frameworks with the reference's numbers.

The same weights (a transformers ``RemBertForMaskedLM``) are written in every format a user may hold:
safetensors (single and sharded) and ``pytorch_model.bin`` by transformers, ``tf_model.h5`` by
transformers' TF classes, and Google's original TensorFlow checkpoint layout written with TensorFlow.
Each is converted with ``rembert convert`` and loaded by rembert-torch and rembert-tf.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rembert_core import CheckpointError, open_checkpoint
from rembert_core.cli import main
from rembert_core.convert import convert_checkpoint
from rembert_core.tolerances import assert_close

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
import rembert_tf  # noqa: E402
import rembert_torch  # noqa: E402

pytestmark = pytest.mark.oracle

CONFIG = {
    "vocab_size": 301,
    "hidden_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 6,
    "input_embedding_size": 20,
    "output_embedding_size": 36,
    "intermediate_size": 64,
    "type_vocab_size": 3,
}
FORMATS = ("safetensors", "sharded", "bin", "h5", "tf_checkpoint")


def _original_name(canonical: str) -> tuple[str, bool]:
    """Google's original variable name for a canonical tensor (the inverse of rembert_core.io.tf_names)."""
    head = {
        "cls.predictions.dense.weight": ("cls/predictions/transform/dense/kernel", True),
        "cls.predictions.dense.bias": ("cls/predictions/transform/dense/bias", False),
        "cls.predictions.LayerNorm.weight": ("cls/predictions/transform/LayerNorm/gamma", False),
        "cls.predictions.LayerNorm.bias": ("cls/predictions/transform/LayerNorm/beta", False),
        "cls.predictions.decoder.weight": ("cls/predictions/output_embedding", False),
        "cls.predictions.decoder.bias": ("cls/predictions/output_bias", False),
    }
    if canonical in head:
        return head[canonical]
    parts = canonical.removeprefix("rembert.").replace("layer.", "layer_").split(".")
    *path, leaf = parts
    if path[-1].endswith("_embeddings"):
        return "bert/" + "/".join(path), False
    if path[-1] == "LayerNorm":
        return "bert/" + "/".join([*path, "gamma" if leaf == "weight" else "beta"]), False
    return "bert/" + "/".join([*path, "kernel" if leaf == "weight" else "bias"]), leaf == "weight"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formats")
    torch.manual_seed(0)
    reference = transformers.RemBertForMaskedLM(transformers.RemBertConfig(**CONFIG)).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    reference.save_pretrained(root / "safetensors")
    reference.save_pretrained(root / "sharded", max_shard_size="40KB")
    reference.save_pretrained(root / "bin", safe_serialization=False)
    script = textwrap.dedent(
        f"""
        import transformers
        model = transformers.TFRemBertForMaskedLM.from_pretrained("{root / "safetensors"}", from_pt=True)
        model.save_pretrained("{root / "h5"}")
        """
    )
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    original = root / "tf_checkpoint"
    original.mkdir()
    names, values = ["global_step"], [tf.constant(np.int64(1000))]
    for key, value in reference.state_dict().items():
        if key.endswith("position_ids"):
            continue
        name, transpose = _original_name(key)
        array = value.numpy()
        names += [name, name + "/adam_m", name + "/adam_v"]
        values += [tf.constant(array.T if transpose else array)] + [
            tf.zeros(array.T.shape if transpose else array.shape)
        ] * 2
    prefix = str(original / "model.ckpt-1000")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values)
    (original / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1000"\n')
    (original / "rembert_config.json").write_text((root / "safetensors" / "config.json").read_text())
    return {name: root / name for name in FORMATS} | {"root": root}


@pytest.fixture(scope="module")
def expected(checkpoints: dict[str, Path]) -> dict[str, np.ndarray]:
    with open_checkpoint(checkpoints["safetensors"]) as ckpt:
        return {name: np.array(ckpt[name]) for name in ckpt}


def batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    ids = rng.integers(3, CONFIG["vocab_size"], (3, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": rng.integers(0, 3, (3, 9)) * mask}


@pytest.fixture(scope="module")
def reference_logits(checkpoints: dict[str, Path]) -> np.ndarray:
    model = transformers.RemBertForMaskedLM.from_pretrained(checkpoints["safetensors"]).eval()
    with torch.no_grad():
        return model(**{k: torch.tensor(v) for k, v in batch().items()}).logits.numpy()


@pytest.mark.parametrize("fmt", FORMATS)
def test_convert_every_format_to_the_same_canonical_tensors(
    checkpoints: dict[str, Path], expected: dict[str, np.ndarray], fmt: str, tmp_path: Path
) -> None:
    config = ["--config", str(checkpoints[fmt] / "rembert_config.json")] if fmt == "tf_checkpoint" else []
    out = tmp_path / "out"
    assert main(["convert", str(checkpoints[fmt]), str(out), "--no-progress", *config]) == 0
    with open_checkpoint(out) as converted:
        assert set(converted) == set(expected)
        for name, value in expected.items():
            np.testing.assert_array_equal(converted[name], value, err_msg=f"{fmt}: {name}")
    assert main(["inspect", str(checkpoints[fmt] if fmt != "tf_checkpoint" else out)]) == 0


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "tf_checkpoint"])
def test_both_frameworks_load_every_format_with_reference_outputs(
    checkpoints: dict[str, Path], reference_logits: np.ndarray, fmt: str
) -> None:
    inputs = batch()
    ours = rembert_torch.RemBertForMaskedLM.from_pretrained(checkpoints[fmt]).eval()
    with torch.no_grad():
        logits = ours(**{k: torch.tensor(v) for k, v in inputs.items()}).logits.numpy()
    assert_close(logits, reference_logits, cross_framework=False, name=f"torch from {fmt}")
    tf_model = rembert_tf.TFRemBertForMaskedLM.from_pretrained(checkpoints[fmt])
    tf_logits = np.asarray(tf_model(**inputs, training=False).logits)
    assert_close(tf_logits, reference_logits, cross_framework=True, name=f"tf from {fmt}")


def test_original_tf_checkpoint_loads_in_both_frameworks(
    checkpoints: dict[str, Path], reference_logits: np.ndarray, tmp_path: Path
) -> None:
    directory = checkpoints["tf_checkpoint"]
    (directory / "config.json").write_text((directory / "rembert_config.json").read_text())
    try:
        inputs = batch()
        ours = rembert_torch.RemBertForMaskedLM.from_pretrained(directory).eval()
        with torch.no_grad():
            logits = ours(**{k: torch.tensor(v) for k, v in inputs.items()}).logits.numpy()
        assert_close(logits, reference_logits, cross_framework=False, name="torch from the TF checkpoint")
        tf_model = rembert_tf.TFRemBertForMaskedLM.from_pretrained(directory / "model.ckpt-1000")
        assert_close(np.asarray(tf_model(**inputs).logits), reference_logits, name="tf from the TF checkpoint")
    finally:
        (directory / "config.json").unlink()


def test_two_formats_in_one_directory_follow_the_documented_precedence(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = tmp_path / "both"
    both.mkdir()
    for name in ("config.json", "pytorch_model.bin"):
        (both / name).write_bytes((checkpoints["bin"] / name).read_bytes())
    (both / "tf_model.h5").write_bytes((checkpoints["h5"] / "tf_model.h5").read_bytes())
    assert main(["inspect", str(both)]) == 0
    out = capsys.readouterr().out
    assert "format       pytorch" in out
    assert "ignored      tf_h5 (tf_model.h5) (lower precedence)" in out


# -- bad input, every format ---------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "file"), [("bin", "pytorch_model.bin"), ("h5", "tf_model.h5")])
@pytest.mark.parametrize("keep", [0, 16, 0.5])
def test_truncated_files_are_clear_errors(
    checkpoints: dict[str, Path], tmp_path: Path, fmt: str, file: str, keep: float
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((checkpoints[fmt] / "config.json").read_bytes())
    raw = (checkpoints[fmt] / file).read_bytes()
    (broken / file).write_bytes(raw[: int(len(raw) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match=file):
        convert_checkpoint(broken, tmp_path / "out")
    with pytest.raises(CheckpointError, match=file):
        rembert_torch.RemBertForMaskedLM.from_pretrained(broken)
    assert not (tmp_path / "out").exists()


def test_truncated_tf_checkpoint_is_a_clear_error(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in checkpoints["tf_checkpoint"].iterdir():
        data = path.read_bytes()
        (broken / path.name).write_bytes(data[: len(data) // 3] if ".data-" in path.name else data)
    with pytest.raises(CheckpointError, match="model.ckpt-1000"):
        convert_checkpoint(broken, tmp_path / "out", config_file=broken / "rembert_config.json")


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"embeddings.word_embeddings.weight": _Payload()}, "weights_only"),
        ([1, 2, 3], "not a state dict"),
        ({"embeddings.word_embeddings.weight": "text"}, "not a state dict"),
    ],
)
def test_pickles_that_are_not_plain_state_dicts_are_refused(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: object, reason: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_bytes((checkpoints["bin"] / "config.json").read_bytes())
    with open(bad / "pytorch_model.bin", "wb") as fh:
        if isinstance(payload, list):
            torch.save(payload, fh)
        else:
            pickle.dump(payload, fh)
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(bad, tmp_path / "out")
    assert "pytorch_model.bin" in str(info.value)
    assert not (tmp_path / "PWNED").exists()  # the payload never ran


def test_bin_index_cannot_escape_the_directory(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_bytes((checkpoints["bin"] / "config.json").read_bytes())
    (bad / "pytorch_model.bin.index.json").write_text(
        '{"weight_map": {"embeddings.word_embeddings.weight": "../../etc/passwd"}}'
    )
    with pytest.raises(CheckpointError, match="escapes the checkpoint directory"):
        convert_checkpoint(bad, tmp_path / "out")
