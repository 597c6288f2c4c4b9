from __future__ import annotations

import json
from pathlib import Path

import pytest

from rembert_core import ConfigError, RemBertConfig

REFERENCE_DEFAULTS = {
    "vocab_size": 250300,
    "hidden_size": 1152,
    "num_hidden_layers": 32,
    "num_attention_heads": 18,
    "input_embedding_size": 256,
    "output_embedding_size": 1664,
    "intermediate_size": 4608,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "classifier_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "use_cache": True,
    "pad_token_id": 0,
    "bos_token_id": 312,
    "eos_token_id": 313,
    "tie_word_embeddings": False,
    "is_decoder": False,
    "add_cross_attention": False,
    "problem_type": None,
}


def test_defaults_are_the_reference_defaults() -> None:
    config = RemBertConfig()
    for name, value in REFERENCE_DEFAULTS.items():
        assert getattr(config, name) == value, name
    assert config.num_labels == 2
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
    assert config.label2id == {"LABEL_0": 0, "LABEL_1": 1}
    assert config.head_dim == 64


def test_json_round_trip_is_lossless(tmp_path: Path) -> None:
    config = RemBertConfig(hidden_size=48, num_attention_heads=6, num_labels=3, problem_type="regression")
    config.extra["custom_key"] = {"nested": [1, 2]}
    config.save_pretrained(tmp_path)
    again = RemBertConfig.from_pretrained(tmp_path)
    assert again == config
    assert again.to_json_string() == config.to_json_string()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "rembert"


def test_unknown_keys_are_kept(tmp_path: Path) -> None:
    data = {**REFERENCE_DEFAULTS, "model_type": "rembert", "transformers_version": "4.57.6", "dtype": "float32"}
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = RemBertConfig.from_pretrained(tmp_path / "config.json")
    assert config.extra == {"transformers_version": "4.57.6", "dtype": "float32"}
    out = config.to_dict()
    assert out["transformers_version"] == "4.57.6"
    assert out["dtype"] == "float32"
    assert "num_labels" not in out and "extra" not in out


def test_id2label_from_json_string_keys() -> None:
    config = RemBertConfig.from_dict({"id2label": {"0": "neg", "1": "neu", "2": "pos"}})
    assert config.num_labels == 3
    assert config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    assert config.to_dict()["id2label"] == {"0": "neg", "1": "neu", "2": "pos"}


def test_setting_num_labels_regenerates_labels() -> None:
    config = RemBertConfig()
    config.num_labels = 4
    assert config.id2label == {i: f"LABEL_{i}" for i in range(4)}
    assert config.label2id == {f"LABEL_{i}": i for i in range(4)}
    config.id2label = {0: "a"}
    assert config.num_labels == 1
    assert config.label2id == {"a": 0}


def test_overrides_in_from_pretrained(tmp_path: Path) -> None:
    RemBertConfig(hidden_size=48, num_attention_heads=6).save_pretrained(tmp_path)
    config = RemBertConfig.from_pretrained(tmp_path, num_hidden_layers=3, is_decoder=True)
    assert config.num_hidden_layers == 3 and config.is_decoder


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_size": 50, "num_attention_heads": 6}, "divisible by num_attention_heads"),
        ({"vocab_size": 0}, "vocab_size must be >= 1"),
        ({"hidden_size": -4}, "hidden_size must be >= 1"),
        ({"num_hidden_layers": 2.0}, "num_hidden_layers must be an integer"),
        ({"hidden_act": "gelu_fancy"}, "hidden_act 'gelu_fancy' is not supported"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be in [0, 1)"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps must be > 0"),
        ({"problem_type": "ranking"}, "problem_type 'ranking'"),
        ({"pad_token_id": 400000}, "pad_token_id (400000) must be < vocab_size"),
        ({"is_decoder": "yes"}, "is_decoder must be a bool"),
        ({"tie_word_embeddings": True}, "tie_word_embeddings=True is not supported"),
        ({"id2label": {"x": "a"}}, "is not an integer label id"),
        ({"id2label": {0: "a", 2: "b"}}, "keys must be 0..1"),
        ({"num_labels": -1}, "num_labels must be >= 0"),
    ],
)
def test_validation_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=__import__("re").escape(message)):
        RemBertConfig.from_dict(kwargs)


def test_wrong_model_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="model_type is 'bert'"):
        RemBertConfig.from_dict({"model_type": "bert"})


def test_num_labels_conflicting_with_id2label() -> None:
    with pytest.raises(ConfigError, match="num_labels \\(5\\) does not match"):
        RemBertConfig.from_dict({"num_labels": 5, "id2label": {"0": "a"}})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*nowhere"):
        RemBertConfig.from_pretrained(tmp_path / "nowhere")
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=f"{bad} is not valid JSON"):
        RemBertConfig.from_pretrained(tmp_path)
    bad.write_text('{"hidden_size": NaN}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        RemBertConfig.from_pretrained(tmp_path)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        RemBertConfig.from_pretrained(tmp_path)
    bad.write_text('{"hidden_size": 7}')
    with pytest.raises(ConfigError, match=f"{bad}: hidden_size \\(7\\) must be divisible"):
        RemBertConfig.from_pretrained(tmp_path)


def test_save_is_atomic_and_refuses_a_file_as_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = RemBertConfig()
    config.save_pretrained(tmp_path)
    before = (tmp_path / "config.json").read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        RemBertConfig(hidden_size=48, num_attention_heads=6).save_pretrained(tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "config.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary left behind
    file_path = tmp_path / "config.json"
    with pytest.raises(ConfigError, match="is not a directory"):
        config.save_pretrained(file_path)


def test_copy_applies_changes_and_validates() -> None:
    config = RemBertConfig(hidden_size=48, num_attention_heads=6)
    copy = config.copy(num_hidden_layers=1)
    assert copy.num_hidden_layers == 1 and config.num_hidden_layers == 32
    with pytest.raises(ConfigError):
        config.copy(num_attention_heads=5)


def test_num_labels_override_follows_the_reference(tmp_path: Path) -> None:
    RemBertConfig(id2label={0: "a", 1: "b", 2: "c"}).save_pretrained(tmp_path)
    same = RemBertConfig.from_pretrained(tmp_path, num_labels=3)
    assert same.id2label == {0: "a", 1: "b", 2: "c"}
    other = RemBertConfig.from_pretrained(tmp_path, num_labels=5)
    assert other.id2label == {i: f"LABEL_{i}" for i in range(5)}
    fewer = RemBertConfig.from_pretrained(tmp_path, num_labels=2)
    assert fewer.label2id == {"LABEL_0": 0, "LABEL_1": 1}


# -- found by the robustness suite (tests/robustness) -------------------------------------------


@pytest.mark.parametrize("field", ["layer_norm_eps", "initializer_range", "hidden_dropout_prob"])
def test_a_huge_integer_for_a_float_field_is_a_config_error(tmp_path: Path, field: str) -> None:
    """float(10**400) overflows: it used to escape as a bare OverflowError."""
    path = tmp_path / "config.json"
    path.write_text(f'{{"{field}": 1{"0" * 400}}}')
    with pytest.raises(ConfigError, match=f"{field} must be a finite number"):
        RemBertConfig.from_json_file(path)


def test_a_config_claiming_a_trillion_labels_is_refused_without_allocating(tmp_path: Path) -> None:
    """num_labels 10**12 used to build 10**12 label names (MemoryError or a hang)."""
    from rembert_core.config import MAX_NUM_LABELS

    path = tmp_path / "config.json"
    path.write_text('{"num_labels": 1000000000000}')
    with pytest.raises(ConfigError, match="num_labels must be <= "):
        RemBertConfig.from_json_file(path)
    config = RemBertConfig(num_labels=3)
    with pytest.raises(ConfigError, match="num_labels must be <= "):
        config.num_labels = MAX_NUM_LABELS + 1
    assert RemBertConfig(num_labels=MAX_NUM_LABELS).num_labels == MAX_NUM_LABELS
