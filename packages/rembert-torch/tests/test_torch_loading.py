"""Checkpoints: loading what transformers saves, saving what transformers loads, round trips, errors."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import rembert_torch
from rembert_core import TASKS, CheckpointError, RemBertConfig, build_schema, match_weights, open_weights
from rembert_torch import TASK_CLASSES, RemBertForMaskedLM, RemBertForSequenceClassification, RemBertModel
from rembert_torch.modeling import RemBertPreTrainedModel


def _make(task: str, cfg: dict[str, Any], seed: int = 0, **kwargs: Any) -> Any:
    torch.manual_seed(seed)
    config = RemBertConfig(**cfg)
    model = TASK_CLASSES[task](config, **kwargs).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                param.add_(torch.randn_like(param) * 0.05)
    return model


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cross", [False, True])
def test_state_dict_keys_are_the_core_schema(task: str, cross: bool, configs: Any) -> None:
    cfg = {**configs["odd"], "is_decoder": cross, "add_cross_attention": cross}
    model = TASK_CLASSES[task](RemBertConfig(**cfg))
    schema = build_schema(model.config, task)
    state = model.state_dict()
    assert list(state) == list(schema)
    for name, spec in schema.items():
        assert tuple(state[name].shape) == spec.shape, name
    if task == "base":
        bare = RemBertModel(RemBertConfig(**cfg), add_pooling_layer=False)
        assert list(bare.state_dict()) == list(build_schema(bare.config, "base", add_pooling_layer=False))


@pytest.mark.parametrize("task", TASKS)
def test_save_load_round_trip_is_exact(task: str, tmp_path: Path, batch_factory: Any, configs: Any) -> None:
    cfg = {**configs["wide"], "is_decoder": task == "causal_lm"}
    model = _make(task, cfg)
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path)
    assert not loaded.training
    for (name, a), (name_b, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert name == name_b
        assert torch.equal(a, b), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == [type(model).__name__]
    assert config["dtype"] == "float32"
    inputs = batch_factory(cfg, batch=2, seq=5)
    if task == "multiple_choice":
        inputs = {k: v[:, None, :].expand(2, 2, 5).contiguous() for k, v in inputs.items()}
    first = model(**inputs, use_cache=False) if task == "causal_lm" else model(**inputs)
    second = loaded(**inputs, use_cache=False) if task == "causal_lm" else loaded(**inputs)
    for a, b in zip(first.to_tuple(), second.to_tuple(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.oracle
@pytest.mark.parametrize("task", TASKS)
def test_our_checkpoint_loads_in_transformers_with_identical_outputs(
    task: str, tmp_path: Path, transformers_mod: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    cfg = {**configs["odd"], "is_decoder": task == "causal_lm"}
    model = _make(task, cfg, seed=3)
    model.save_pretrained(tmp_path, max_shard_size="20KB")  # sharded: index + several files
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ref = getattr(transformers_mod, type(model).__name__).from_pretrained(tmp_path).eval()
    ref_state = ref.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(ref_state[name], tensor), name
    inputs = batch_factory(cfg, batch=3, seq=6)
    if task == "multiple_choice":
        inputs = {k: v.view(3, 1, 6).expand(3, 2, 6).contiguous() for k, v in inputs.items()}
    expected = ref(**inputs, output_hidden_states=True)
    actual = model(**inputs, output_hidden_states=True)
    for key in actual.keys():  # noqa: SIM118
        if key == "past_key_values":
            continue
        close(actual[key], expected[key], name=f"{task}/{key}")


@pytest.mark.oracle
@pytest.mark.parametrize("task", ["masked_lm", "sequence_classification"])
def test_pytorch_model_bin_from_transformers_loads(
    task: str, reference_checkpoint: Any, transformers_mod: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    overrides = {"num_labels": 3} if task == "sequence_classification" else {}
    path = reference_checkpoint(task, "odd", seed=5, safe=False, **overrides)
    assert (path / "pytorch_model.bin").is_file()
    assert not (path / "model.safetensors").exists()
    name = TASK_CLASSES[task].__name__
    ref = getattr(transformers_mod, name).from_pretrained(path).eval()
    ours = TASK_CLASSES[task].from_pretrained(path)
    inputs = batch_factory(configs["odd"], batch=2, seq=5)
    close(ours(**inputs).logits, ref(**inputs).logits, name="logits from pytorch_model.bin")


def test_pytorch_model_bin_is_read_without_unpickling_code(tmp_path: Path, configs: Any) -> None:
    model = _make("base", configs["relu"])
    model.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "pytorch_model.bin").is_file()
    loaded = RemBertModel.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (tmp_path / "pwned",))

    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    (evil_dir / "config.json").write_text((tmp_path / "config.json").read_text())
    with open(evil_dir / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"embeddings.word_embeddings.weight": Evil()}, fh)
    with pytest.raises(CheckpointError, match="weights_only"):
        RemBertModel.from_pretrained(evil_dir)
    assert not (tmp_path / "pwned").exists()


def test_loading_allocates_no_random_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs: Any) -> None:
    model = _make("masked_lm", configs["odd"])
    model.save_pretrained(tmp_path)
    calls: list[str] = []
    original = RemBertPreTrainedModel._init_weights

    def spy(self: Any, module: torch.nn.Module) -> None:
        calls.extend(p.device.type for p in module.parameters(recurse=False))
        original(self, module)

    monkeypatch.setattr(RemBertPreTrainedModel, "_init_weights", spy)
    loaded = RemBertForMaskedLM.from_pretrained(tmp_path)
    assert calls and set(calls) == {"meta"}  # init only ever ran on meta tensors
    assert all(p.device.type == "cpu" for p in loaded.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, "bfloat16", "auto"])
def test_torch_dtype(dtype: Any, tmp_path: Path, batch_factory: Any, configs: Any) -> None:
    model = _make("masked_lm", configs["odd"])
    model.save_pretrained(tmp_path / "f32")
    loaded = RemBertForMaskedLM.from_pretrained(tmp_path / "f32", torch_dtype=dtype)
    expected = torch.float32 if dtype == "auto" else getattr(torch, dtype) if isinstance(dtype, str) else dtype
    assert {p.dtype for p in loaded.parameters()} == {expected}
    out = loaded(**batch_factory(configs["odd"], batch=3, seq=6))
    assert out.logits.dtype == expected
    assert not torch.isnan(out.logits).any()
    # A half-precision save keeps its dtype, and "auto" reads it back in that dtype.
    loaded.save_pretrained(tmp_path / "half")
    again = RemBertForMaskedLM.from_pretrained(tmp_path / "half", torch_dtype="auto")
    assert {p.dtype for p in again.parameters()} == {expected}
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_head_weights_are_reported_as_newly_initialized(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, configs: Any
) -> None:
    backbone = _make("base", configs["odd"])
    backbone.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="rembert_torch"):
        model, info = RemBertForSequenceClassification.from_pretrained(tmp_path, num_labels=4, output_loading_info=True)
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert info["unexpected_keys"] == []
    assert "newly initialized" in caplog.text and "classifier.weight" in caplog.text
    assert model.classifier.weight.shape == (4, configs["odd"]["hidden_size"])
    assert torch.equal(model.classifier.bias, torch.zeros(4))
    assert torch.equal(model.rembert.pooler.dense.weight, backbone.pooler.dense.weight)
    assert model.config.num_labels == 4
    # An MLM checkpoint loads into the bare model; its head is reported unused.
    mlm = _make("masked_lm", configs["odd"])
    mlm.save_pretrained(tmp_path / "mlm")
    bare, info = RemBertModel.from_pretrained(tmp_path / "mlm", output_loading_info=True)
    assert "cls.predictions.decoder.weight" in info["unexpected_keys"]
    assert info["missing_keys"] == ["pooler.dense.weight", "pooler.dense.bias"]
    assert torch.equal(bare.encoder.layer[0].output.dense.weight, mlm.rembert.encoder.layer[0].output.dense.weight)


def test_bad_checkpoints_raise_checkpoint_error(tmp_path: Path, configs: Any) -> None:
    model = _make("base", configs["odd"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    def write(name: str, tensors: dict[str, torch.Tensor]) -> Path:
        path = tmp_path / name
        path.mkdir()
        model.config.save_pretrained(path)
        save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
        return path

    missing = write("missing", {k: v for k, v in state.items() if "layer.1.output.dense" not in k})
    with pytest.raises(CheckpointError, match=r"missing tensor encoder\.layer\.1\.output\.dense\.weight"):
        RemBertModel.from_pretrained(missing)
    shaped = write("shaped", {**state, "encoder.layer.0.intermediate.dense.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match=r"intermediate\.dense\.weight has shape \(3, 3\)"):
        RemBertModel.from_pretrained(shaped)
    unexpected = write("unexpected", {**state, "encoder.layer.0.mystery.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="unexpected tensor encoder.layer.0.mystery.weight"):
        RemBertModel.from_pretrained(unexpected)
    with pytest.raises(CheckpointError, match="not found"):
        RemBertModel.from_pretrained(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no weights file"):
        RemBertModel.from_pretrained(empty)


def test_ignore_mismatched_sizes_reinitializes_the_head(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, configs: Any
) -> None:
    model = _make("sequence_classification", {**configs["odd"], "num_labels": 2})
    model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"classifier\.weight has shape \(2, 48\), expected \(5, 48\)"):
        RemBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with caplog.at_level(logging.WARNING, logger="rembert_torch"):
        loaded, info = RemBertForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
        )
    assert info["mismatched_keys"] == [
        ("classifier.weight", (2, 48), (5, 48)),
        ("classifier.bias", (2,), (5,)),
    ]
    assert "other shapes" in caplog.text
    assert loaded.classifier.weight.shape == (5, 48) and torch.equal(loaded.classifier.bias, torch.zeros(5))
    assert torch.equal(loaded.rembert.pooler.dense.weight, model.rembert.pooler.dense.weight)


def test_single_file_and_sharded_loads(tmp_path: Path, configs: Any) -> None:
    model = _make("token_classification", {**configs["relu"], "num_labels": 5})
    model.save_pretrained(tmp_path / "sharded", max_shard_size=4000)
    files = sorted(p.name for p in (tmp_path / "sharded").iterdir())
    assert "model.safetensors.index.json" in files and len([f for f in files if f.endswith(".safetensors")]) > 2
    sharded = rembert_torch.RemBertForTokenClassification.from_pretrained(tmp_path / "sharded")
    model.save_pretrained(tmp_path / "single")
    single_file = rembert_torch.RemBertForTokenClassification.from_pretrained(
        tmp_path / "single" / "model.safetensors", config=model.config
    )
    for name, tensor in model.state_dict().items():
        assert torch.equal(sharded.state_dict()[name], tensor)
        assert torch.equal(single_file.state_dict()[name], tensor)
    # Saving a single file over the sharded one leaves a loadable, unambiguous directory.
    model.save_pretrained(tmp_path / "sharded")
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == ["config.json", "model.safetensors"]


def test_saved_checkpoint_fits_the_core_schema_for_other_backends(tmp_path: Path, configs: Any) -> None:
    """What rembert-tf (and every backend) reads: the core schema check over our safetensors."""
    model = _make("masked_lm", configs["odd"])
    model.save_pretrained(tmp_path)
    config = RemBertConfig.from_pretrained(tmp_path)
    with open_weights(tmp_path) as weights:
        report = match_weights(weights, build_schema(config, "masked_lm"))
        assert report.ok and not report.newly_initialized and not report.unused
        assert weights.metadata == {"format": "pt"}
        np.testing.assert_array_equal(
            weights["cls.predictions.decoder.weight"], model.cls.predictions.decoder.weight.detach().numpy()
        )


def test_pytorch_format_is_registered_with_the_core(tmp_path: Path, configs: Any) -> None:
    from rembert_core.loading import detect_format
    from rembert_torch.loading import TorchBinSource

    model = _make("masked_lm", configs["relu"]).to(torch.bfloat16)
    model.save_pretrained(tmp_path, safe_serialization=False)
    detected = detect_format(tmp_path)
    assert detected.format.name == "pytorch" and detected.format.distribution == "rembert-torch"
    with open_weights(tmp_path) as weights:
        assert isinstance(weights, TorchBinSource)
        info = weights.infos()["rembert.embeddings.word_embeddings.weight"]
        assert info.dtype == "BF16" and info.shape == (64, 12)
        array = weights["cls.predictions.decoder.weight"]
        assert str(array.dtype) == "bfloat16"
        assert torch.equal(
            torch.from_numpy(array.view(np.int16)).view(torch.bfloat16), model.cls.predictions.decoder.weight
        )
    loaded = RemBertForMaskedLM.from_pretrained(tmp_path, torch_dtype="auto")
    assert loaded.dtype == torch.bfloat16
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_streaming_reads_of_a_bin_remap_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configs: Any) -> None:
    import rembert_torch.loading
    from rembert_core.convert import convert_checkpoint
    from rembert_core.serialization import open_checkpoint

    model = _make("masked_lm", configs["relu"])
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    loads = []
    real_load = rembert_torch.loading._torch_load
    monkeypatch.setattr(rembert_torch.loading, "REMAP_BYTES", 4096)  # map afresh every few tensors
    monkeypatch.setattr(rembert_torch.loading, "_torch_load", lambda file: loads.append(file) or real_load(file))
    convert_checkpoint(tmp_path / "bin", tmp_path / "out")
    assert len(loads) > 2  # the file was mapped again while streaming
    with open_checkpoint(tmp_path / "out") as converted:
        for name, tensor in model.state_dict().items():
            assert torch.equal(torch.from_numpy(np.array(converted[name])), tensor), name


def test_hub_ids_resolve_through_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never touch the network
    with pytest.raises(CheckpointError, match="rembert-test/not-a-real-repo"):
        RemBertModel.from_pretrained("rembert-test/not-a-real-repo", local_files_only=True)
