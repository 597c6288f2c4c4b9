"""rembert-core against the reference: config.json round trips and checkpoint schemas of transformers 4.57."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rembert_core import ARCHITECTURES, TASKS, RemBertConfig, build_schema
from rembert_core.cli import main

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.oracle

CONFIGS: list[dict[str, Any]] = [
    {},
    {"hidden_size": 48, "num_attention_heads": 6, "input_embedding_size": 20, "output_embedding_size": 36},
    {"num_labels": 5, "problem_type": "multi_label_classification", "classifier_dropout_prob": 0.3},
    {"id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}, "hidden_act": "gelu_new"},
    {"is_decoder": True, "add_cross_attention": True, "use_cache": False, "layer_norm_eps": 1e-5},
    {"vocab_size": 301, "type_vocab_size": 3, "pad_token_id": 3, "bos_token_id": None, "eos_token_id": 7},
    {"hidden_act": "relu", "max_position_embeddings": 128, "initializer_range": 0.5, "problem_type": "regression"},
]


def reference_dict(config: Any) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("transformers_version", None)
    return data


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_reference_config_round_trips_losslessly(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    ref = transformers.RemBertConfig(**kwargs)
    ref.save_pretrained(tmp_path / "ref")
    ours = RemBertConfig.from_pretrained(tmp_path / "ref")
    for key in ("vocab_size", "hidden_size", "hidden_act", "num_labels", "problem_type", "is_decoder", "pad_token_id"):
        assert getattr(ours, key) == getattr(ref, key), key
    assert ours.id2label == ref.id2label
    assert ours.label2id == ref.label2id
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.RemBertConfig.from_pretrained(tmp_path / "ours")
    assert reference_dict(back) == reference_dict(ref)
    # and the file we write keeps every key the reference wrote
    written = json.loads((tmp_path / "ref" / "config.json").read_text())
    ours_written = json.loads((tmp_path / "ours" / "config.json").read_text())
    for key, value in written.items():
        assert ours_written[key] == value, key


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_our_config_loads_in_the_reference(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    ours = RemBertConfig.from_dict(kwargs)
    ours.save_pretrained(tmp_path)
    ref = transformers.RemBertConfig.from_pretrained(tmp_path)
    for key, value in ours.to_dict().items():
        if key == "id2label":
            assert ref.id2label == ours.id2label
        else:
            assert getattr(ref, key) == value, key


@pytest.mark.parametrize(("task", "cross"), [(task, False) for task in TASKS] + [("causal_lm", True)])
def test_schema_names_and_shapes_equal_reference_state_dict(tmp_path: Path, task: str, cross: bool) -> None:
    torch = pytest.importorskip("torch")
    kwargs: dict[str, Any] = {
        "vocab_size": 301,
        "hidden_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 6,
        "input_embedding_size": 20,
        "output_embedding_size": 36,
        "intermediate_size": 64,
        "type_vocab_size": 3,
        "num_labels": 3,
        "is_decoder": cross,
        "add_cross_attention": cross,
    }
    torch.manual_seed(0)
    model = getattr(transformers, ARCHITECTURES[task])(transformers.RemBertConfig(**kwargs))
    schema = build_schema(RemBertConfig(**kwargs), task)
    state = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    assert list(state) == list(schema)
    assert state == {name: spec.shape for name, spec in schema.items()}
    # A checkpoint saved by transformers is reported valid by `rembert inspect`.
    model.save_pretrained(tmp_path)
    assert main(["inspect", str(tmp_path)]) == 0


@pytest.mark.parametrize("num_labels", [2, 3, 5])
def test_num_labels_override_like_the_reference(tmp_path: Path, num_labels: int) -> None:
    transformers.RemBertConfig(id2label={0: "a", 1: "b", 2: "c"}).save_pretrained(tmp_path)
    ref = transformers.RemBertConfig.from_pretrained(tmp_path, num_labels=num_labels)
    ours = RemBertConfig.from_pretrained(tmp_path, num_labels=num_labels)
    assert ours.id2label == ref.id2label
    # (the reference leaves label2id None when only id2label was given; ours is always the inverse)
    assert ours.label2id == (ref.label2id or {v: k for k, v in ref.id2label.items()})
