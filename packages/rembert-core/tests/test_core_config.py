from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import pickle
import re
from pathlib import Path

import pytest

from rembert_core import ConfigError, RemBertConfig
from rembert_core.config import ConfigFileError

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


# -- transformers' PretrainedConfig attributes (issue 18) -----------------------------------------

SMALL = {"hidden_size": 48, "num_attention_heads": 6, "num_hidden_layers": 2}


def test_the_constructor_signature_matches_the_fields() -> None:
    """The hand-written __init__ (it takes **kwargs) keeps every field, in order, with the field's default."""
    parameters = inspect.signature(RemBertConfig).parameters
    fields = [f for f in dataclasses.fields(RemBertConfig)]
    assert list(parameters)[: len(fields)] == [f.name for f in fields]
    for f in fields:
        expected = None if f.name == "extra" else f.default
        assert parameters[f.name].default == expected, f.name
    assert RemBertConfig.model_type == "rembert"


def test_transformers_attributes_have_the_reference_defaults() -> None:
    config = RemBertConfig()
    assert config.extra == {}  # defaults are not stored: extra holds what was set
    assert (config.return_dict, config.output_attentions, config.output_hidden_states) == (True, False, False)
    assert config.use_return_dict and not config.torchscript
    assert config.dtype is None and config.torch_dtype is None and config._attn_implementation is None
    assert config.pruned_heads == {} and config.chunk_size_feed_forward == 0 and not config.is_encoder_decoder
    assert (config.max_length, config.min_length, config.num_beams, config.top_k, config.top_p) == (20, 0, 1, 50, 1.0)
    assert config.bad_words_ids is None and config.task_specific_params is None and config.prefix is None
    assert config.extra == {"pruned_heads": {}}  # a dict read once is stored, so in-place changes stick


def test_transformers_attributes_are_arguments_attributes_and_extra_entries() -> None:
    config = RemBertConfig(
        **SMALL,
        return_dict=False,
        output_hidden_states=True,
        chunk_size_feed_forward=4,
        finetuning_task="sst2",
        tokenizer_class="RemBertTokenizerFast",
        prefix="summarize: ",
        sep_token_id=313,
        decoder_start_token_id=312,
        max_length=64,
        num_beams=4,
        early_stopping="never",
        bad_words_ids=[[5, 6], [7]],
        task_specific_params={"summarization": {"num_beams": 2}},
    )
    assert config.return_dict is False and config.output_hidden_states is True and not config.use_return_dict
    assert (config.chunk_size_feed_forward, config.max_length, config.num_beams) == (4, 64, 4)
    assert config.bad_words_ids == [[5, 6], [7]] and config.early_stopping == "never"
    # framework code that reads config.extra (rembert_torch's _resolve_flags) sees the same values
    assert config.extra["return_dict"] is False and config.extra["output_hidden_states"] is True
    config.output_attentions = True
    config.return_dict = True
    assert config.output_attentions and config.extra["output_attentions"] is True and config.use_return_dict
    data = config.to_dict()
    assert data["output_attentions"] is True and data["task_specific_params"] == {"summarization": {"num_beams": 2}}
    assert RemBertConfig.from_dict(data) == config


def test_torch_dtype_is_dtype() -> None:
    assert RemBertConfig(torch_dtype="float16").dtype == "float16"
    assert RemBertConfig(dtype="torch.bfloat16").to_dict()["dtype"] == "bfloat16"
    assert RemBertConfig(dtype="float32", torch_dtype="float16").dtype == "float32"  # dtype wins, as in transformers
    loaded = RemBertConfig.from_dict({"torch_dtype": "bfloat16"})
    assert loaded.dtype == "bfloat16" and loaded.extra == {"dtype": "bfloat16"}
    assert "torch_dtype" not in loaded.to_dict() and loaded.to_dict()["dtype"] == "bfloat16"
    config = RemBertConfig()
    config.torch_dtype = "float16"
    assert config.dtype == "float16"

    class FakeTorchDtype:  # torch.float16 prints as "torch.float16"
        def __str__(self) -> str:
            return "torch.float16"

    assert RemBertConfig(dtype=FakeTorchDtype()).dtype == "float16"


def test_pruned_heads_keys_become_ints_and_are_kept_when_mutated() -> None:
    config = RemBertConfig.from_dict({**SMALL, "pruned_heads": {"1": [0, 2]}})
    assert config.pruned_heads == {1: [0, 2]}
    assert json.loads(config.to_json_string())["pruned_heads"] == {"1": [0, 2]}
    fresh = RemBertConfig(**SMALL)
    fresh.pruned_heads[0] = [3]  # transformers' prune_heads updates the dict in place
    assert fresh.pruned_heads == {0: [3]} and json.loads(fresh.to_json_string())["pruned_heads"] == {"0": [3]}


def test_unknown_arguments_and_attributes_are_kept_and_saved(tmp_path: Path) -> None:
    config = RemBertConfig(**SMALL, my_setting={"a": 1})
    config.note = "kept"
    assert config.my_setting == {"a": 1} and config.note == "kept"
    assert config.extra == {"my_setting": {"a": 1}, "note": "kept"}
    with pytest.raises(AttributeError, match="no attribute 'absent'"):
        _ = config.absent
    assert not hasattr(config, "absent")
    config.save_pretrained(tmp_path)
    again = RemBertConfig.from_pretrained(tmp_path)
    assert again.note == "kept" and again.my_setting == {"a": 1} and again == config


def test_a_misspelt_argument_warns_with_the_field_it_resembles() -> None:
    with pytest.warns(UserWarning, match="did you mean 'hidden_size'"):
        config = RemBertConfig(hiden_size=48)
    assert config.hidden_size == 1152 and config.extra == {"hiden_size": 48}
    with pytest.warns(UserWarning, match="did you mean 'output_hidden_states'"):
        config.output_hidden_state = True
    RemBertConfig.from_dict({"hiden_size": 48})  # a file's keys are data: no warning (filterwarnings=error)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_attentions": "yes"}, "output_attentions must be a bool"),
        ({"return_dict": 1}, "return_dict must be a bool"),
        ({"chunk_size_feed_forward": -1}, "chunk_size_feed_forward must be >= 0"),
        ({"dtype": "fp17"}, "dtype must name a dtype"),
        ({"torch_dtype": 3}, "dtype must name a dtype"),
        ({"pruned_heads": {"5": [0]}}, "pruned_heads names layer 5, but num_hidden_layers is 2"),
        ({"pruned_heads": {"0": [6]}}, "pruned_heads[0] names head 6, but num_attention_heads is 6"),
        ({"pruned_heads": {"x": [0]}}, "pruned_heads key 'x' is not a layer index"),
        ({"pruned_heads": [0]}, "pruned_heads must be a mapping"),
        ({"num_beams": 0}, "num_beams must be >= 1"),
        ({"top_p": 1.5}, "top_p must be in [0.0, 1.0]"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be in (0.0, inf]"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"bad_words_ids": [[-1]]}, "bad_words_ids[0][0] must be >= 0"),
        ({"early_stopping": "sometimes"}, "early_stopping must be True, False or 'never'"),
        ({"task_specific_params": ["x"]}, "task_specific_params must be a mapping with string keys"),
        ({"sep_token_id": -3}, "sep_token_id must be >= 0"),
        ({"label2id": ["a"]}, "label2id must be a mapping"),
    ],
)
def test_transformers_attributes_are_validated_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        RemBertConfig.from_dict({**SMALL, **kwargs})


def test_an_assignment_is_validated_too() -> None:
    config = RemBertConfig(**SMALL)
    with pytest.raises(ConfigError, match="output_hidden_states must be a bool"):
        config.output_hidden_states = "no"
    with pytest.raises(ConfigError, match="pruned_heads names layer 9"):
        config.pruned_heads = {9: [0]}
    assert config.output_hidden_states is False and config.pruned_heads == {}


def test_generation_defaults_of_old_configs_are_kept() -> None:
    old = {
        **REFERENCE_DEFAULTS,
        "max_length": 128,
        "num_beams": 4,
        "length_penalty": 0.6,
        "no_repeat_ngram_size": 3,
        "num_return_sequences": 2,
        "do_sample": True,
        "temperature": 0.7,
        "top_k": 0,
        "forced_eos_token_id": [313, 2],
        "exponential_decay_length_penalty": [5, 1.5],
        "suppress_tokens": None,  # None delegates to the generation config, as in transformers
    }
    config = RemBertConfig.from_dict(old)
    assert (config.max_length, config.num_beams, config.length_penalty, config.do_sample) == (128, 4, 0.6, True)
    written = json.loads(config.to_json_string())
    for key in ("max_length", "num_beams", "length_penalty", "no_repeat_ngram_size", "forced_eos_token_id"):
        assert written[key] == old[key], key
    assert "suppress_tokens" not in written  # equal to the default: dropped, as transformers drops it


def test_use_diff_drops_transformers_defaults_and_keeps_rembert_sizes(tmp_path: Path) -> None:
    config = RemBertConfig(**SMALL, pad_token_id=None, is_decoder=True)
    diff = config.to_diff_dict()
    assert diff == json.loads(config.to_json_string()) == json.loads(config.to_json_string(use_diff=True))
    # RemBERT's own fields are always written, even at their defaults (as transformers writes them)
    for key in ("vocab_size", "input_embedding_size", "use_cache", "layer_norm_eps", "bos_token_id", "model_type"):
        assert key in diff, key
    assert diff["pad_token_id"] is None  # differs from RemBertConfig's default 0: must be written
    assert diff["is_decoder"] is True and diff["tie_word_embeddings"] is False
    for key in ("id2label", "label2id", "add_cross_attention", "return_dict", "max_length", "pruned_heads", "dtype"):
        assert key not in diff, key
    full = json.loads(config.to_json_string(use_diff=False))
    assert full == config.to_dict() and full["max_length"] == 20
    assert full["id2label"] == {"0": "LABEL_0", "1": "LABEL_1"}
    assert config.to_json_file(tmp_path / "full.json", use_diff=False).read_text() == config.to_json_string(
        use_diff=False
    )
    assert RemBertConfig.from_json_file(tmp_path / "full.json") == config
    config.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").read_text() == config.to_json_string()


def test_from_pretrained_returns_unused_kwargs(tmp_path: Path) -> None:
    RemBertConfig(**SMALL, custom=1).save_pretrained(tmp_path)
    config, unused = RemBertConfig.from_pretrained(
        tmp_path,
        return_unused_kwargs=True,
        output_attentions=True,
        num_labels=4,
        custom=2,  # a key of the file: an attribute, so applied
        torch_dtype="bfloat16",  # applied, and handed back as `dtype` for the model loader (as transformers)
        add_pooling_layer=False,  # not an attribute: handed back, not applied
        revision="main",  # a download argument: consumed
    )
    assert unused == {"add_pooling_layer": False, "dtype": "bfloat16"}
    assert config.output_attentions and config.num_labels == 4 and config.custom == 2 and config.dtype == "bfloat16"
    assert "add_pooling_layer" not in config.extra
    # without return_unused_kwargs an unknown override is kept in extra, as before
    assert RemBertConfig.from_pretrained(tmp_path, add_pooling_layer=False).extra["add_pooling_layer"] is False
    again, nothing = RemBertConfig.from_dict(config.to_dict(), return_unused_kwargs=True, return_dict=False)
    assert nothing == {} and again.return_dict is False


def test_from_pretrained_subfolder_and_missing_paths_are_os_errors(tmp_path: Path) -> None:
    RemBertConfig(**SMALL).save_pretrained(tmp_path / "sub")
    assert RemBertConfig.from_pretrained(tmp_path, subfolder="sub").hidden_size == 48
    for missing in (tmp_path / "nowhere", tmp_path):  # no such path; a directory without config.json
        with pytest.raises(OSError, match="config file not found") as info:
            RemBertConfig.from_pretrained(missing)
        assert isinstance(info.value, ConfigError) and isinstance(info.value, ConfigFileError)
    with pytest.raises(OSError, match="config file not found"):
        RemBertConfig.from_pretrained(tmp_path, subfolder="other")


def test_attn_implementation_is_kept_in_memory_not_written(tmp_path: Path) -> None:
    config = RemBertConfig(**SMALL, attn_implementation="eager")
    assert config._attn_implementation == "eager" and "attn_implementation" not in config.extra
    assert "attn_implementation" not in config.to_dict() and "_attn_implementation" not in config.to_dict()
    assert config.copy(num_labels=3)._attn_implementation == "eager"
    config.save_pretrained(tmp_path)
    assert RemBertConfig.from_pretrained(tmp_path)._attn_implementation is None
    loaded, unused = RemBertConfig.from_pretrained(tmp_path, attn_implementation="sdpa", return_unused_kwargs=True)
    assert loaded._attn_implementation == "sdpa" and unused == {}
    # as in transformers, only the argument counts: a file's "attn_implementation" key is dropped
    assert RemBertConfig.from_dict({"attn_implementation": "eager"})._attn_implementation is None
    with pytest.raises(ConfigError, match="attn_implementation must be a string or None"):
        RemBertConfig(attn_implementation=3)


def test_copy_pickle_and_update_keep_everything() -> None:
    config = RemBertConfig(**SMALL, output_hidden_states=True, pruned_heads={1: [2]}, custom=[1])
    for other in (config.copy(), copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
        assert other == config and other.output_hidden_states and other.pruned_heads == {1: [2]}
        assert other.custom == [1] and other.extra is not config.extra
    config.update({"return_dict": False, "num_labels": 5})
    assert config.return_dict is False and config.num_labels == 5
    assert config.copy(output_hidden_states=False).output_hidden_states is False
