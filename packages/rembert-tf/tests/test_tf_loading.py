"""Checkpoints: save/load round trips, sharding, head re-use, schema errors, tf_model.h5 reading."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import h5py
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from rembert_core import CheckpointError, build_schema
from rembert_core.tolerances import assert_close
from rembert_tf import (
    TFRemBertForCausalLM,
    TFRemBertForMaskedLM,
    TFRemBertForMultipleChoice,
    TFRemBertForQuestionAnswering,
    TFRemBertForSequenceClassification,
    TFRemBertForTokenClassification,
    TFRemBertModel,
)

CLASSES = [
    TFRemBertModel,
    TFRemBertForMaskedLM,
    TFRemBertForCausalLM,
    TFRemBertForSequenceClassification,
    TFRemBertForMultipleChoice,
    TFRemBertForTokenClassification,
    TFRemBertForQuestionAnswering,
]


def _run(model, batch):
    if model.task == "multiple_choice":
        batch = {k: np.stack([v, v[::-1]], 1) for k, v in batch.items()}
    return model(**batch, output_hidden_states=True)


@pytest.mark.parametrize("cls", CLASSES)
def test_save_and_load_round_trip(tmp_path, config_factory, batch_factory, cls):
    config = config_factory("odd", num_labels=2, is_decoder=cls is TFRemBertForCausalLM)
    model = cls(config)
    files = model.save_pretrained(tmp_path)
    assert {f.name for f in files} == {"config.json", "model.safetensors"}
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == [cls.__name__[2:]]
    assert set(load_file(tmp_path / "model.safetensors")) == set(build_schema(config, cls.task))
    again = cls.from_pretrained(tmp_path)
    batch = batch_factory(config)
    a, b = _run(model, batch), _run(again, batch)
    for key in a:
        if key == "past_key_values":
            continue
        values = zip(a[key], b[key], strict=True) if isinstance(a[key], tuple) else [(a[key], b[key])]
        for x, y in values:
            np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=key)


def test_sharded_save_loads(tmp_path, config_factory, batch_factory):
    config = config_factory("tiny")
    model = TFRemBertForMaskedLM(config)
    files = model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len([f for f in files if f.suffix == ".safetensors"]) > 1
    again = TFRemBertForMaskedLM.from_pretrained(tmp_path)
    batch = batch_factory(config)
    np.testing.assert_array_equal(model(**batch).logits.numpy(), again(**batch).logits.numpy())


def test_task_checkpoint_into_other_heads(tmp_path, config_factory, batch_factory, caplog):
    config = config_factory("tiny", num_labels=3)
    mlm = TFRemBertForMaskedLM(config)
    mlm.save_pretrained(tmp_path)
    batch = batch_factory(config)
    with caplog.at_level(logging.WARNING, logger="rembert_tf"):
        clf, info = TFRemBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info["newly_initialized"] == [
        "rembert.pooler.dense.weight",
        "rembert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    assert sorted(info["unused"]) == sorted(n for n in build_schema(config, "masked_lm") if n.startswith("cls."))
    assert "newly initialized" in caplog.text and "classifier.weight" in caplog.text
    weight = clf.classifier.kernel.numpy()
    assert 0.005 < weight.std() < 0.05  # normal(0, initializer_range), not zeros
    np.testing.assert_array_equal(clf.classifier.bias.numpy(), 0.0)
    a = mlm.rembert(**batch).last_hidden_state.numpy()
    b = clf.rembert(**batch).last_hidden_state.numpy()
    np.testing.assert_array_equal(a, b)
    # The bare model reads the prefixed backbone, and a bare checkpoint loads into a head.
    bare = TFRemBertModel.from_pretrained(tmp_path)
    np.testing.assert_array_equal(bare(**batch).last_hidden_state.numpy(), a)
    no_pooler = TFRemBertModel.from_pretrained(tmp_path, add_pooling_layer=False)
    assert no_pooler.rembert.pooler is None and "add_pooling_layer" not in no_pooler.config.extra
    assert "pooler_output" not in no_pooler(**batch)
    bare.save_pretrained(tmp_path / "bare")
    assert "embeddings.word_embeddings.weight" in load_file(tmp_path / "bare" / "model.safetensors")
    head = TFRemBertForTokenClassification.from_pretrained(tmp_path / "bare")
    np.testing.assert_array_equal(head.rembert(**batch).last_hidden_state.numpy(), a)


def test_config_overrides_and_bfloat16_tensors(tmp_path, config_factory, batch_factory):
    config = config_factory("tiny")
    model = TFRemBertForSequenceClassification(config)
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    save_file(
        {k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items()}, tmp_path / "model.safetensors", {"format": "pt"}
    )
    loaded = TFRemBertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert loaded.config.num_labels == 2
    expected = tensors["rembert.encoder.layer.0.attention.self.query.weight"].astype(ml_dtypes.bfloat16)
    got = loaded.export_tensors()["rembert.encoder.layer.0.attention.self.query.weight"]
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_schema_errors_are_reported(tmp_path, config_factory):
    config = config_factory("tiny")
    model = TFRemBertForMaskedLM(config)
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["rembert.encoder.layer.1.output.dense.weight"]
    tensors["rembert.embeddings.LayerNorm.weight"] = np.ones(5, np.float32)
    tensors["rembert.encoder.bogus"] = np.ones(2, np.float32)
    save_file(tensors, tmp_path / "model.safetensors", {"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        TFRemBertForMaskedLM.from_pretrained(tmp_path)
    message = str(err.value)
    assert "missing tensor rembert.encoder.layer.1.output.dense.weight" in message
    assert "unexpected tensor rembert.encoder.bogus" in message
    assert "rembert.embeddings.LayerNorm.weight has shape (5,), expected (16,)" in message
    assert "model.safetensors" in message


def test_missing_or_unreadable_weights(tmp_path, config_factory):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        TFRemBertModel.from_pretrained(tmp_path / "nope")
    config_factory("tiny").save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no weights file in"):
        TFRemBertModel.from_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):  # needs rembert-torch, or is unreadable
        TFRemBertModel.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        TFRemBertModel.from_pretrained(tmp_path)


def _write_transformers_h5(path, tensors, scope, task):
    """Write canonical tensors the way transformers' TF classes (Keras 2 HDF5 weights) lay them out."""
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, array in tensors.items():
        parts = name.split(".")
        if parts[0] != "rembert" and parts[0] in ("embeddings", "encoder", "pooler"):
            parts = ["rembert", *parts]
        top = "mlm___cls" if parts[0] == "cls" else parts[0]
        tail = parts[1:]
        path_parts = [top]
        i = 0
        while i < len(tail):
            if tail[i] == "layer":
                path_parts.append(f"layer_._{tail[i + 1]}")
                i += 2
                continue
            path_parts.append(tail[i])
            i += 1
        leaf = path_parts[-1]
        transposed = False
        if "LayerNorm" in path_parts[-2]:
            path_parts[-1] = {"weight": "gamma", "bias": "beta"}[leaf]
        elif path_parts[-2] in ("position_embeddings", "token_type_embeddings"):
            path_parts[-1] = "embeddings"
        elif leaf == "weight" and path_parts[-2] not in ("word_embeddings", "decoder"):
            path_parts[-1] = "kernel"
            transposed = True
        weight_name = f"{scope}/" + "/".join(path_parts) + ":0"
        groups.setdefault(top, []).append((weight_name, array.T if transposed else array))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [g.encode() for g in groups]
        for group_name, weights in groups.items():
            group = f.create_group(group_name)
            group.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for weight_name, array in weights:
                group.create_dataset(weight_name, data=array)


@pytest.fixture(params=["lazy-buffers", "tf-allocated"])
def lazy(request, monkeypatch):
    """Load into NumPy-backed lazy buffers (every float32 variable) or into TF-allocated variables."""
    import rembert_tf.kernels

    monkeypatch.setattr(rembert_tf.kernels, "LAZY_ZEROS_MIN_BYTES", 0 if request.param == "lazy-buffers" else 2**62)
    return request.param == "lazy-buffers"


@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("cls", [TFRemBertForMaskedLM, TFRemBertForQuestionAnswering, TFRemBertModel])
def test_reads_transformers_tf_model_h5_layout(tmp_path, monkeypatch, config_factory, batch_factory, cls, blocks, lazy):
    import rembert_tf.loading

    if blocks:
        monkeypatch.setattr(rembert_tf.loading, "STREAM_BLOCK_BYTES", 700)  # stream in blocks of a few rows
    config = config_factory("odd", num_labels=2)
    model = cls(config)
    tensors = model.export_tensors()
    config.copy(architectures=["TF" + cls.__name__[2:]]).save_pretrained(tmp_path)
    _write_transformers_h5(tmp_path / "tf_model.h5", tensors, "tf_rem_bert_x", cls.task)
    loaded = cls.from_pretrained(tmp_path)
    for name, value in loaded.export_tensors().items():
        np.testing.assert_array_equal(value, tensors[name], err_msg=name)
    batch = batch_factory(config)
    out = loaded(**batch)
    assert_close(np.asarray(out[0]), np.asarray(model(**batch)[0]), cross_framework=False)


def test_h5_with_wrong_shape_is_reported(tmp_path, config_factory):
    config = config_factory("tiny")
    tensors = TFRemBertModel(config).export_tensors()
    tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros((3, 3), np.float32)
    config.save_pretrained(tmp_path)
    _write_transformers_h5(tmp_path / "tf_model.h5", tensors, "tf_rem_bert_model", "base")
    with pytest.raises(CheckpointError, match=r"intermediate.dense.weight has shape \(3, 3\), expected \(37, 32\)"):
        TFRemBertModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("bfloat16", [False, True])
def test_large_tensors_stream_in_blocks(tmp_path, monkeypatch, config_factory, bfloat16, lazy):
    import rembert_tf.loading

    config = config_factory("odd")
    model = TFRemBertForMaskedLM(config)
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    if bfloat16:
        tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items()}
        save_file(tensors, tmp_path / "model.safetensors", {"format": "pt"})
    monkeypatch.setattr(rembert_tf.loading, "STREAM_BLOCK_BYTES", 700)  # blocks of a few rows
    loaded = TFRemBertForMaskedLM.from_pretrained(tmp_path)
    for name, value in loaded.export_tensors().items():
        np.testing.assert_array_equal(value, np.asarray(tensors[name], dtype=np.float32), err_msg=name)


@pytest.mark.parametrize("anonymous_mmap", [True, False], ids=["mmap", "np.zeros fallback"])
def test_loaded_variables_live_in_lazy_buffers(tmp_path, monkeypatch, config_factory, batch_factory, anonymous_mmap):
    """Large float32 variables are written in place into NumPy buffers TF adopted (no TF-allocated copy)."""
    import mmap

    import rembert_tf.kernels
    import rembert_tf.loading
    from rembert_tf.loading import host_buffer

    mapping_type = mmap.mmap
    if not anonymous_mmap:

        def no_mmap(*args, **kwargs):
            raise OSError("anonymous mappings unavailable")

        monkeypatch.setattr(mmap, "mmap", no_mmap)
    pages = rembert_tf.kernels._zero_pages(4096)
    assert pages.shape == (4096,) and pages.ctypes.data % 64 == 0 and not pages.any() and pages.flags.writeable
    owner = pages.base.obj if isinstance(pages.base, memoryview) else pages.base  # what holds the bytes
    assert isinstance(owner, mapping_type) is anonymous_mmap

    config = config_factory("odd", num_labels=3)
    model = TFRemBertForSequenceClassification(config)
    model.save_pretrained(tmp_path)
    assert all(host_buffer(v) is None for v in model.weights)  # randomly initialised: TF's own memory
    monkeypatch.setattr(rembert_tf.kernels, "LAZY_ZEROS_MIN_BYTES", 0)
    monkeypatch.setattr(rembert_tf.loading, "STREAM_BLOCK_BYTES", 700)
    loaded = TFRemBertForSequenceClassification.from_pretrained(tmp_path)
    lazy = [name for name, (var, _) in loaded.canonical_variables().items() if host_buffer(var) is not None]
    assert set(lazy) == set(loaded.canonical_variables())  # every variable went the zero-copy way
    kernel, transposed = loaded.canonical_variables()["rembert.encoder.layer.0.intermediate.dense.weight"]
    assert transposed
    np.testing.assert_array_equal(host_buffer(kernel), kernel.numpy())  # the buffer is the variable
    batch = batch_factory(config)
    np.testing.assert_array_equal(np.asarray(loaded(**batch).logits), np.asarray(model(**batch).logits))
    # Training replaces the buffer: the loader then falls back to TensorFlow ops, and stays correct.
    kernel.assign(kernel * 2.0)
    assert host_buffer(kernel) is None
    reloaded = rembert_tf.loading.assign_canonical(loaded, model.export_tensors(), strict=False)
    assert reloaded == []
    np.testing.assert_array_equal(np.asarray(loaded(**batch).logits), np.asarray(model(**batch).logits))


_HEAD_NAMES = {
    "cls.predictions.dense.weight": ("cls/predictions/transform/dense/kernel", True),
    "cls.predictions.dense.bias": ("cls/predictions/transform/dense/bias", False),
    "cls.predictions.LayerNorm.weight": ("cls/predictions/transform/LayerNorm/gamma", False),
    "cls.predictions.LayerNorm.bias": ("cls/predictions/transform/LayerNorm/beta", False),
    "cls.predictions.decoder.weight": ("cls/predictions/output_embedding", False),
    "cls.predictions.decoder.bias": ("cls/predictions/output_bias", False),
}


def _original_name(canonical: str) -> tuple[str, bool]:
    """The variable name Google's original RemBERT checkpoints use for a canonical tensor."""
    if canonical in _HEAD_NAMES:
        return _HEAD_NAMES[canonical]
    parts = canonical.removeprefix("rembert.").split(".")
    path = ["bert"]
    i = 0
    while i < len(parts) - 1:
        if parts[i] == "layer":
            path.append(f"layer_{parts[i + 1]}")
            i += 2
            continue
        path.append(parts[i])
        i += 1
    leaf = parts[-1]
    if path[-1].endswith("_embeddings"):
        return "/".join(path), False
    if path[-1] == "LayerNorm":
        return "/".join([*path, "gamma" if leaf == "weight" else "beta"]), False
    return "/".join([*path, "kernel" if leaf == "weight" else "bias"]), leaf == "weight"


def _write_original_checkpoint(directory: Path, tensors: dict[str, np.ndarray], extra: dict[str, Any]) -> str:
    import tensorflow as tf

    names, values = [], []
    for canonical, value in tensors.items():
        name, transposed = _original_name(canonical)
        names.append(name)
        values.append(tf.constant(value.T if transposed else value))
        names.append(name + "/adam_m")  # optimizer slots are skipped
        values.append(tf.zeros_like(values[-1]))
    for name, value in extra.items():
        names.append(name)
        values.append(tf.constant(value))
    prefix = str(directory / "model.ckpt-7")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values)
    (directory / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-7"\n')
    return prefix


@pytest.mark.parametrize("use_prefix", [False, True])
def test_reads_original_tensorflow_checkpoints(tmp_path, config_factory, batch_factory, use_prefix):
    config = config_factory("odd")
    pretraining = TFRemBertForMaskedLM(config).export_tensors()  # backbone + masked-LM head
    pooler = TFRemBertModel(config).export_tensors()
    tensors = {**pretraining, **{f"rembert.{k}": v for k, v in pooler.items() if k.startswith("pooler.")}}
    prefix = _write_original_checkpoint(tmp_path, tensors, {"global_step": np.int64(7)})
    config.save_pretrained(tmp_path)
    where = prefix if use_prefix else tmp_path
    # Unlike the reference converter, the masked-LM head and the output embedding are kept.
    head, info = TFRemBertForMaskedLM.from_pretrained(where, output_loading_info=True)
    assert info["newly_initialized"] == []
    assert sorted(info["unused"]) == ["rembert.pooler.dense.bias", "rembert.pooler.dense.weight"]
    for name, value in head.export_tensors().items():
        np.testing.assert_array_equal(value, pretraining[name], err_msg=name)
    base, info = TFRemBertModel.from_pretrained(where, output_loading_info=True)
    assert info["newly_initialized"] == []
    assert sorted(info["unused"]) == sorted(n for n in pretraining if n.startswith("cls."))
    batch = batch_factory(config)
    np.testing.assert_array_equal(
        head.rembert(**batch).last_hidden_state.numpy(), base(**batch).last_hidden_state.numpy()
    )


def test_original_checkpoint_with_unmapped_variables_is_refused(tmp_path, config_factory):
    config = config_factory("odd")
    tensors = TFRemBertModel(config).export_tensors()
    tensors = {f"rembert.{k}": v for k, v in tensors.items()}
    _write_original_checkpoint(tmp_path, tensors, {"bert/mystery/thing": np.zeros(3, np.float32)})
    config.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="unexpected tensor rembert.mystery.thing"):
        TFRemBertModel.from_pretrained(tmp_path)
