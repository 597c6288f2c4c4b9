"""The Backend contract without a reference: build, load, export, output fields and dtypes, and clear input errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from rembert_core import TASKS, CheckpointError, ConfigError, InputError, RemBertConfig, build_schema
from rembert_numpy import NumpyBackend, random_tensors

FIELDS = {
    "base": {"last_hidden_state", "pooler_output"},
    "masked_lm": {"logits", "loss"},
    "causal_lm": {"logits", "loss"},
    "sequence_classification": {"logits", "loss"},
    "multiple_choice": {"logits", "loss"},
    "token_classification": {"logits", "loss"},
    "question_answering": {"start_logits", "end_logits", "loss"},
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("task", TASKS)
def test_outputs_fields_shapes_and_dtypes(
    backend: NumpyBackend,
    configs: dict[str, RemBertConfig],
    make_config: Callable[..., RemBertConfig],
    make_batch: Callable[..., dict[str, Any]],
    build: Callable[..., Any],
    task: str,
    dtype: str,
) -> None:
    config = make_config(configs["odd"], task)
    inputs = make_batch(config, task, batch=3, seq=7)
    model, _ = build(config, task, dtype)
    out = backend.forward(model, inputs, output_hidden_states=True, output_attentions=True, use_cache=True)
    rows = 6 if task == "multiple_choice" else 3
    expected = FIELDS[task] | {"hidden_states", "attentions"}
    if task == "causal_lm":
        expected |= {"past_key_values", "cross_attentions"}
    assert set(out) == expected
    assert len(out["hidden_states"]) == config.num_hidden_layers + 1
    assert all(h.shape == (rows, 7, config.hidden_size) for h in out["hidden_states"])
    assert all(a.shape == (rows, config.num_attention_heads, 7, 7) for a in out["attentions"])
    for name, value in out.items():
        for array in value if isinstance(value, list) else [value]:
            for a in array if isinstance(array, tuple) else [array]:
                assert np.asarray(a).dtype == np.dtype(dtype), name
    if task == "multiple_choice":
        assert out["logits"].shape == (3, 2)
    loss, grads = (None, None) if task == "base" else backend.gradients(model, inputs)
    if grads is not None:
        assert loss == pytest.approx(float(out["loss"]), rel=1e-6)
        assert list(grads) == list(build_schema(config, task))
        assert all(g.dtype == np.dtype(dtype) and np.all(np.isfinite(g)) for g in grads.values())


def test_unused_tensors_get_zero_gradients(
    backend: NumpyBackend, configs: dict[str, RemBertConfig], build: Callable[..., Any]
) -> None:
    """Cross-attention layers without encoder_hidden_states take no part in the loss."""
    config = configs["odd"].copy(is_decoder=True, add_cross_attention=True)
    model, _ = build(config, "causal_lm")
    ids = np.array([[4, 5, 6, 7]])
    _, grads = backend.gradients(model, {"input_ids": ids, "labels": ids})
    cross = [n for n in grads if ".crossattention." in n]
    assert cross and all(not grads[n].any() for n in cross)
    assert grads["rembert.encoder.layer.0.attention.self.query.weight"].any()


@pytest.mark.parametrize("source", ["float32", "bfloat16", "unprefixed"])
def test_load_export_round_trip(configs: dict[str, RemBertConfig], source: str) -> None:
    backend = NumpyBackend()
    config = configs["odd"]
    tensors = random_tensors(config, "token_classification", seed=3)
    if source == "bfloat16":
        given = {k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items()}
    elif source == "unprefixed":
        given = {k.removeprefix("rembert."): v.astype(np.float32) for k, v in tensors.items()}
    else:
        given = {k: v.astype(np.float32) for k, v in tensors.items()}
    model = backend.build_model(config, "token_classification", dtype="float32")
    backend.load_tensors(model, given)
    exported = backend.export_tensors(model)
    assert list(exported) == list(build_schema(config, "token_classification"))
    for name, value in exported.items():
        original = given.get(name, given.get(name.removeprefix("rembert.")))
        assert value.dtype == np.float32 and np.array_equal(value, np.asarray(original, dtype=np.float32)), name
    exported[next(iter(exported))][...] = 0  # a copy: the model is untouched
    assert backend.export_tensors(model)[next(iter(exported))].any()


def test_load_errors_list_every_problem(configs: dict[str, RemBertConfig]) -> None:
    backend = NumpyBackend()
    config = configs["odd"]
    model = backend.build_model(config, "masked_lm", dtype="float64")
    tensors = random_tensors(config, "masked_lm")
    with pytest.raises(CheckpointError, match="no weights yet"):
        backend.forward(model, {"input_ids": np.array([[1]])})
    bad = dict(tensors)
    del bad["rembert.encoder.layer.1.output.dense.bias"]
    bad["rembert.embeddings.LayerNorm.weight"] = np.ones(3)
    bad["surprise.weight"] = np.ones(2)
    with pytest.raises(CheckpointError) as info:
        backend.load_tensors(model, bad)
    message = str(info.value)
    assert "missing tensor rembert.encoder.layer.1.output.dense.bias" in message
    assert "rembert.embeddings.LayerNorm.weight has shape (3,), expected (20,)" in message
    assert "unexpected tensor surprise.weight" in message
    head_missing = {k: v for k, v in tensors.items() if not k.startswith("cls.")}
    with pytest.raises(CheckpointError, match="cls.predictions.decoder.weight"):
        backend.load_tensors(model, head_missing)
    with pytest.raises(CheckpointError, match="dtype int64"):
        backend.load_tensors(model, {**tensors, "cls.predictions.decoder.bias": np.zeros(301, dtype=np.int64)})


def test_build_errors(configs: dict[str, RemBertConfig]) -> None:
    backend = NumpyBackend()
    with pytest.raises(InputError, match="task 'summarize'"):
        backend.build_model(configs["odd"], "summarize")
    with pytest.raises(InputError, match="dtype 'bfloat16'"):
        backend.build_model(configs["odd"], "base", dtype="bfloat16")
    with pytest.raises(ConfigError, match="num_labels=2"):
        backend.build_model(configs["odd"], "question_answering")
    with pytest.raises(ConfigError, match="is_decoder"):
        backend.build_model(configs["odd"].copy(add_cross_attention=True), "base")


@pytest.mark.parametrize(
    ("task", "change", "message"),
    [
        ("masked_lm", {"input_ids": np.array([[1, 301]])}, r"input_ids contains 301, outside \[0, 301\)"),
        ("masked_lm", {"input_ids": np.array([[1.0, 2.0]])}, "input_ids must be an integer array"),
        ("masked_lm", {"input_ids": np.array([1, 2])}, r"input_ids has shape \(2,\)"),
        ("masked_lm", {"token_type_ids": np.array([[0, 3]])}, r"token_type_ids contains 3, outside \[0, 3\)"),
        ("masked_lm", {"token_type_ids": np.array([[0]])}, r"token_type_ids has shape \(1, 1\), expected \(1, 2\)"),
        ("masked_lm", {"attention_mask": np.ones((2, 2))}, r"attention_mask has shape \(2, 2\), expected \(1, 2\)"),
        ("masked_lm", {"position_ids": np.array([[0, 40]])}, r"position_ids contains 40, outside \[0, 40\)"),
        ("masked_lm", {"input_ids": np.zeros((1, 41), int)}, "exceed max_position_embeddings=40"),
        ("masked_lm", {"labels": np.array([[1, -5]])}, r"labels contains -5, outside \[0, 301\) or -100"),
        ("masked_lm", {"inputs_embeds": np.zeros((1, 2, 20))}, "exactly one of input_ids and inputs_embeds"),
        ("masked_lm", {"attention_mask": np.array([[1.0, np.nan]])}, "attention_mask contains NaN"),
        ("masked_lm", {"encoder_hidden_states": np.zeros((1, 2, 48))}, "needs a model with cross-attention"),
        ("masked_lm", {"start_positions": np.array([0])}, "inputs of question_answering"),
        ("masked_lm", {"input_mask": np.ones((1, 2))}, r"unknown input\(s\) \['input_mask'\]"),
        ("base", {"labels": np.array([[1, 2]])}, "takes no labels"),
        ("multiple_choice", {}, r"input_ids has shape \(1, 2\).*\(batch, num_choices, seq\)"),
        ("sequence_classification", {"labels": np.array([0, 1])}, r"labels has shape \(2,\), expected \(1,\)"),
        ("sequence_classification", {"labels": np.array([3])}, r"labels contains 3, outside \[0, 3\)"),
        ("sequence_classification", {"labels": np.array([0.5])}, r"labels has shape \(1,\), expected \(1, 3\)"),
        ("token_classification", {"labels": np.array([[0, 7]])}, r"labels contains 7"),
        ("question_answering", {"start_positions": np.array([1])}, "both start_positions and end_positions"),
    ],
)
def test_bad_inputs_raise_input_error_naming_the_argument(
    backend: NumpyBackend,
    configs: dict[str, RemBertConfig],
    make_config: Callable[..., RemBertConfig],
    build: Callable[..., Any],
    task: str,
    change: dict[str, Any],
    message: str,
) -> None:
    config = make_config(configs["odd"], task)
    model, _ = build(config, task)
    inputs = {"input_ids": np.array([[5, 6]]), **change}
    with pytest.raises(InputError, match=message):
        backend.forward(model, inputs)


def test_gradients_need_labels_and_a_head(
    backend: NumpyBackend, configs: dict[str, RemBertConfig], build: Callable[..., Any]
) -> None:
    model, _ = build(configs["odd"], "token_classification")
    with pytest.raises(InputError, match="needs labels"):
        backend.gradients(model, {"input_ids": np.array([[1, 2]])})
    base, _ = build(configs["odd"], "base")
    with pytest.raises(InputError, match="no loss"):
        backend.gradients(base, {"input_ids": np.array([[1, 2]])})


def test_input_error_is_a_value_error() -> None:
    assert issubclass(InputError, ValueError)


@pytest.mark.parametrize("module_name", ["autodiff", "modeling", "backend"])
def test_docstring_examples_run(module_name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(f"rembert_numpy.{module_name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
