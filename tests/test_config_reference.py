"""RemBertConfig against transformers 4.57's: every PretrainedConfig attribute, written and read both ways.

The configs below carry what a transformers user or a Hub ``config.json`` may hold: output flags, dtype,
pruned heads, the generation defaults of old configs, task-specific parameters, labels and unknown keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rembert_core import ConfigError, RemBertConfig

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.oracle

SMALL = {"hidden_size": 48, "num_attention_heads": 6, "num_hidden_layers": 2, "vocab_size": 400}

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "output flags and dtype": {
        **SMALL,
        "return_dict": False,
        "output_hidden_states": True,
        "output_attentions": True,
        "torch_dtype": "bfloat16",
        "torchscript": True,
    },
    "generation defaults": {
        **SMALL,
        "max_length": 128,
        "min_length": 5,
        "num_beams": 4,
        "length_penalty": 0.6,
        "no_repeat_ngram_size": 3,
        "early_stopping": True,
        "do_sample": True,
        "temperature": 0.7,
        "top_k": 10,
        "top_p": 0.9,
        "repetition_penalty": 1.2,
        "bad_words_ids": [[5, 6], [7]],
        "num_return_sequences": 2,
        "decoder_start_token_id": 312,
        "sep_token_id": 313,
        "forced_eos_token_id": 313,
    },
    "pruned heads": {**SMALL, "pruned_heads": {0: [1, 3], 1: [0]}, "chunk_size_feed_forward": 2},
    "task and labels": {
        **SMALL,
        "id2label": {0: "neg", 1: "neu", 2: "pos"},
        "label2id": {"neg": 0, "neu": 1, "pos": 2},
        "finetuning_task": "mnli",
        "task_specific_params": {"summarization": {"max_length": 30, "num_beams": 2}},
        "problem_type": "single_label_classification",
        "architectures": ["RemBertForSequenceClassification"],
        "tokenizer_class": "RemBertTokenizerFast",
        "prefix": "mnli: ",
    },
    "decoder without pad": {
        **SMALL,
        "is_decoder": True,
        "add_cross_attention": True,
        "is_encoder_decoder": True,
        "pad_token_id": None,
        "cross_attention_hidden_size": 32,
        "tie_encoder_decoder": True,
    },
    "unknown keys": {**SMALL, "custom_key": {"nested": [1, 2]}, "auto_map": {"AutoModel": "x.Y"}, "note": "kept"},
}


def normal(data: dict[str, Any]) -> dict[str, Any]:
    """A ``to_dict()`` (ours or transformers') in one form: JSON keys, dtype names, no version stamp."""
    out = json.loads(json.dumps({k: v for k, v in data.items() if k != "dtype"}))
    out.pop("transformers_version", None)
    dtype = data.get("dtype")
    out["dtype"] = None if dtype is None else str(dtype).removeprefix("torch.")
    return dict(sorted(out.items()))


def reference(kwargs: dict[str, Any]) -> Any:
    return transformers.RemBertConfig(**kwargs)


def test_every_attribute_and_default_is_the_reference_one() -> None:
    assert normal(RemBertConfig().to_dict()) == normal(reference({}).to_dict())
    assert RemBertConfig.model_type == transformers.RemBertConfig.model_type == "rembert"


@pytest.mark.parametrize("name", CONFIGS)
def test_the_same_arguments_give_the_same_config(name: str) -> None:
    ours, ref = RemBertConfig(**CONFIGS[name]), reference(CONFIGS[name])
    assert normal(ours.to_dict()) == normal(ref.to_dict())
    for key in ("return_dict", "output_attentions", "output_hidden_states", "use_return_dict", "pruned_heads"):
        assert getattr(ours, key) == getattr(ref, key), key
    assert normal(ours.to_diff_dict()) == normal(ref.to_diff_dict())


@pytest.mark.parametrize("name", CONFIGS)
def test_we_write_the_file_transformers_writes(tmp_path: Path, name: str) -> None:
    RemBertConfig(**CONFIGS[name]).save_pretrained(tmp_path / "ours")
    reference(CONFIGS[name]).save_pretrained(tmp_path / "ref")
    ours = json.loads((tmp_path / "ours" / "config.json").read_text())
    ref = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert ref.pop("transformers_version") == transformers.__version__
    assert ours == ref


@pytest.mark.parametrize("name", CONFIGS)
def test_our_file_loads_in_transformers_with_every_value(tmp_path: Path, name: str) -> None:
    ours = RemBertConfig(**CONFIGS[name])
    ours.save_pretrained(tmp_path)
    ref = transformers.RemBertConfig.from_pretrained(tmp_path)
    assert normal(ref.to_dict()) == normal(ours.to_dict())
    assert ref.pruned_heads == ours.pruned_heads  # int keys on both sides
    assert ref.id2label == ours.id2label


@pytest.mark.parametrize("name", CONFIGS)
def test_a_transformers_file_loads_here_with_every_value(tmp_path: Path, name: str) -> None:
    ref = reference(CONFIGS[name])
    ref.save_pretrained(tmp_path / "ref")
    ours = RemBertConfig.from_pretrained(tmp_path / "ref")
    assert normal(ours.to_dict()) == normal(ref.to_dict())
    assert ours.transformers_version == transformers.__version__
    assert ours.pruned_heads == ref.pruned_heads and ours.id2label == ref.id2label
    # and written back unchanged, version stamp included
    ours.save_pretrained(tmp_path / "ours")
    assert (tmp_path / "ours" / "config.json").read_text() == (tmp_path / "ref" / "config.json").read_text()


def test_an_old_hub_config_loads_the_same_in_both(tmp_path: Path) -> None:
    """A config.json as older transformers wrote them: torch_dtype, generation defaults, a custom key."""
    old = {
        "architectures": ["RemBertForMaskedLM"],
        "model_type": "rembert",
        "torch_dtype": "float16",
        "transformers_version": "4.12.0.dev0",
        **SMALL,
        "max_length": 512,
        "num_beams": 4,
        "early_stopping": True,
        "no_repeat_ngram_size": 3,
        "task_specific_params": {"translation_en_to_de": {"prefix": "translate English to German: "}},
        "gradient_checkpointing": False,
        "position_embedding_type": "absolute",
        "pruned_heads": {"1": [2]},
        "id2label": {"0": "a", "1": "b", "2": "c"},
        "label2id": {"a": 0, "b": 1, "c": 2},
    }
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(old))
    ours = RemBertConfig.from_pretrained(tmp_path / "old")
    ref = transformers.RemBertConfig.from_pretrained(tmp_path / "old")
    assert normal(ours.to_dict()) == normal(ref.to_dict())
    assert ours.dtype == "float16" and ours.pruned_heads == {1: [2]} and ours.num_labels == 3
    assert ours.gradient_checkpointing is False and ours.position_embedding_type == "absolute"
    ours.save_pretrained(tmp_path / "ours")
    again = transformers.RemBertConfig.from_pretrained(tmp_path / "ours")
    assert normal(again.to_dict()) == normal(ref.to_dict())


KWARGS: list[dict[str, Any]] = [
    {"output_attentions": True, "foo": False},
    {"num_labels": 5, "return_dict": False, "add_pooling_layer": False},
    {"torch_dtype": "bfloat16", "max_length": 30},
    {"dtype": "float16", "note": "changed", "bar": 1},  # "note" is a key of the file: an attribute
    {"attn_implementation": "eager", "num_labels": 1},
]


@pytest.mark.parametrize("kwargs", KWARGS)
def test_from_pretrained_unused_kwargs_are_the_reference_ones(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    RemBertConfig(**CONFIGS["unknown keys"]).save_pretrained(tmp_path)
    ours, ours_unused = RemBertConfig.from_pretrained(tmp_path, return_unused_kwargs=True, **kwargs)
    ref, ref_unused = transformers.RemBertConfig.from_pretrained(tmp_path, return_unused_kwargs=True, **kwargs)
    assert ours_unused == {k: str(v) if k == "dtype" else v for k, v in ref_unused.items()}
    assert normal(ours.to_dict()) == normal(ref.to_dict())
    assert ours._attn_implementation == ref._attn_implementation or kwargs.get("attn_implementation") is None
    data = RemBertConfig(**CONFIGS["unknown keys"]).to_dict()
    ours, ours_unused = RemBertConfig.from_dict(dict(data), return_unused_kwargs=True, **kwargs)
    ref, ref_unused = transformers.RemBertConfig.from_dict(dict(data), return_unused_kwargs=True, **kwargs)
    assert ours_unused == {k: str(v) if k == "dtype" else v for k, v in ref_unused.items()}
    assert normal(ours.to_dict()) == normal(ref.to_dict())


def test_attribute_assignment_is_saved_as_transformers_saves_it(tmp_path: Path) -> None:
    ours, ref = RemBertConfig(**SMALL), reference(SMALL)
    for config in (ours, ref):
        config.output_hidden_states = True
        config.my_own_setting = {"a": [1]}
        config.num_labels = 4
        config.pruned_heads[1] = [0, 5]
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    ref_written = json.loads((tmp_path / "ref" / "config.json").read_text())
    ref_written.pop("transformers_version")
    assert json.loads((tmp_path / "ours" / "config.json").read_text()) == ref_written
    back = transformers.RemBertConfig.from_pretrained(tmp_path / "ours")
    assert back.my_own_setting == {"a": [1]} and back.output_hidden_states and back.num_labels == 4


def test_an_id2label_override_keeps_label2id_consistent(tmp_path: Path) -> None:
    """Deliberate difference: transformers sets id2label and leaves the old label2id beside it."""
    RemBertConfig(**SMALL).save_pretrained(tmp_path)
    ref = transformers.RemBertConfig.from_pretrained(tmp_path, id2label={0: "x"}, num_labels=1)
    assert ref.id2label == {0: "x"} and ref.label2id == {"LABEL_0": 0, "LABEL_1": 1}
    ours = RemBertConfig.from_pretrained(tmp_path, id2label={0: "x"}, num_labels=1)
    assert ours.id2label == {0: "x"} and ours.label2id == {"x": 0}


def test_a_missing_path_is_an_os_error_in_both(tmp_path: Path) -> None:
    for load in (RemBertConfig.from_pretrained, transformers.RemBertConfig.from_pretrained):
        with pytest.raises(OSError, match="nowhere"):
            load(tmp_path / "nowhere")
    # Deliberate difference: a directory without config.json is an error here; transformers returns
    # a default (full-size) config for it.
    assert transformers.RemBertConfig.from_pretrained(tmp_path).hidden_size == 1152
    with pytest.raises(OSError, match="config file not found") as info:
        RemBertConfig.from_pretrained(tmp_path)
    assert isinstance(info.value, ConfigError)


# -- Hub ids, through a Hugging Face cache laid out by hand (no network) -------------------------------------


def _hub_cache(root: Path, repo: str, files: dict[str, dict[str, Any]]) -> Path:
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, data in files.items():
        path = folder / "snapshots" / commit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return root


def test_a_hub_id_reads_config_json_from_the_cache(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    top = RemBertConfig(**CONFIGS["generation defaults"]).to_diff_dict()
    sub = RemBertConfig(**CONFIGS["pruned heads"]).to_diff_dict()
    cache = _hub_cache(tmp_path, "someone/tiny-rembert", {"config.json": top, "encoder/config.json": sub})
    hub = {"cache_dir": cache, "local_files_only": True}
    ours = RemBertConfig.from_pretrained("someone/tiny-rembert", **hub)
    ref = transformers.RemBertConfig.from_pretrained("someone/tiny-rembert", **hub)
    assert normal(ours.to_dict()) == normal(ref.to_dict()) and ours.num_beams == 4
    ours = RemBertConfig.from_pretrained("someone/tiny-rembert", subfolder="encoder", **hub)
    ref = transformers.RemBertConfig.from_pretrained("someone/tiny-rembert", subfolder="encoder", **hub)
    assert normal(ours.to_dict()) == normal(ref.to_dict()) and ours.pruned_heads == {0: [1, 3], 1: [0]}
    with pytest.raises(OSError, match=r"not in the local Hugging Face cache .*local_files_only=True"):
        RemBertConfig.from_pretrained("someone/absent", **hub)
    with pytest.raises(OSError, match="not in the local Hugging Face cache"):
        RemBertConfig.from_pretrained("someone/tiny-rembert", subfolder="decoder", **hub)
