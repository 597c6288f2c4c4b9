"""Bad inputs raise clear errors naming the argument, eagerly (InputError) and under tf.function."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from rembert_core import InputError
from rembert_tf import (
    TFRemBertForCausalLM,
    TFRemBertForMaskedLM,
    TFRemBertForMultipleChoice,
    TFRemBertForSequenceClassification,
    TFRemBertModel,
)


@pytest.fixture
def setup(config_factory, batch_factory):
    config = config_factory("tiny")
    return config, TFRemBertForMaskedLM(config), batch_factory(config)


def _bad_ids(batch, value):
    ids = batch["input_ids"].copy()
    ids[1, 2] = value
    return ids


@pytest.mark.parametrize("value", [97, 1000, -1])
def test_out_of_range_input_ids(setup, value):
    _, model, batch = setup
    with pytest.raises(InputError, match=r"input_ids contains .* at index \(1, 2\).*vocab_size"):
        model(**{**batch, "input_ids": _bad_ids(batch, value)})
    fn = tf.function(lambda ids: model(input_ids=ids).logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input_ids has values outside"):
        fn(tf.constant(_bad_ids(batch, value)))


def test_out_of_range_token_type_ids(setup):
    config, model, batch = setup
    types = batch["token_type_ids"].copy()
    types[0, 0] = config.type_vocab_size
    with pytest.raises(InputError, match="token_type_ids contains 2"):
        model(**{**batch, "token_type_ids": types})
    fn = tf.function(lambda ids, t: model(input_ids=ids, token_type_ids=t).logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match="token_type_ids has values outside"):
        fn(tf.constant(batch["input_ids"]), tf.constant(types))


def test_too_long_sequence(setup):
    config, model, _ = setup
    ids = np.ones((1, config.max_position_embeddings + 1), np.int32)
    with pytest.raises(InputError, match="too long.*max_position_embeddings"):
        model(input_ids=ids)
    fn = tf.function(lambda x: model(input_ids=x).logits, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="too long"):
        fn(tf.constant(ids))
    with pytest.raises(InputError, match="position_ids contains 40"):
        model(input_ids=ids[:, :3], position_ids=np.array([[0, 1, 40]]))


def test_shape_mismatches(setup):
    _, model, batch = setup
    with pytest.raises(InputError, match=r"attention_mask must have shape \(batch, past length \+ input length\)"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"][:, :-1])
    with pytest.raises(InputError, match=r"token_type_ids must have shape"):
        model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"][:2])
    with pytest.raises(InputError, match="input_ids must have rank 2"):
        model(input_ids=batch["input_ids"][0])
    with pytest.raises(InputError, match="inputs_embeds has width 5"):
        model(inputs_embeds=np.zeros((1, 3, 5), np.float32))
    with pytest.raises(InputError, match="head_mask must have shape"):
        model(input_ids=batch["input_ids"], head_mask=np.ones(3, np.float32))
    sig = tf.TensorSpec([None, None], tf.int32)
    fn = tf.function(lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits, input_signature=[sig, sig])
    with pytest.raises(tf.errors.InvalidArgumentError, match="attention_mask must have shape"):
        fn(tf.constant(batch["input_ids"]), tf.constant(batch["attention_mask"][:, :-1]))


def test_wrong_dtypes_and_missing_inputs(setup):
    config, model, batch = setup
    with pytest.raises(InputError, match="input_ids must be an integer tensor, got dtype float32"):
        model(input_ids=batch["input_ids"].astype(np.float32))
    with pytest.raises(InputError, match="token_type_ids must be an integer tensor"):
        model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"].astype(np.float32))
    with pytest.raises(InputError, match="inputs_embeds must be a floating-point tensor"):
        model(inputs_embeds=np.zeros((1, 3, config.input_embedding_size), np.int32))
    with pytest.raises(InputError, match="input_ids or inputs_embeds"):
        model(attention_mask=batch["attention_mask"])
    with pytest.raises(InputError, match="either input_ids or inputs_embeds, not both"):
        model(input_ids=batch["input_ids"], inputs_embeds=np.zeros((3, 9, config.input_embedding_size), np.float32))
    with pytest.raises(InputError, match=r"unknown input name\(s\) \['token_types'\]"):
        model({"input_ids": batch["input_ids"], "token_types": batch["token_type_ids"]})


def test_malformed_labels(config_factory, setup):
    config, model, batch = setup
    labels = batch["input_ids"].copy()
    labels[0, 0] = config.vocab_size
    with pytest.raises(InputError, match="labels contains 97"):
        model(**batch, labels=labels)
    with pytest.raises(InputError, match="labels must be an integer tensor"):
        model(**batch, labels=labels.astype(np.float32))
    fn = tf.function(lambda ids, y: model(input_ids=ids, labels=y).loss)
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels has values outside"):
        fn(tf.constant(batch["input_ids"]), tf.constant(labels))
    cls_config = config_factory("tiny", num_labels=3, problem_type="multi_label_classification")
    cls_model = TFRemBertForSequenceClassification(cls_config)
    with pytest.raises(InputError, match="labels for multi_label_classification must be float"):
        cls_model(**batch, labels=np.array([[1, 0, 1]] * 3))
    with pytest.raises(InputError, match=r"labels must have shape \(batch, num_labels\)"):
        cls_model(**batch, labels=np.ones((3, 2), np.float32))
    mc = TFRemBertForMultipleChoice(config)
    ids = np.stack([batch["input_ids"]] * 2, 1)
    with pytest.raises(InputError, match="labels contains 2"):
        mc(input_ids=ids, labels=np.array([0, 1, 2]))
    with pytest.raises(InputError, match="input_ids must have rank 3"):
        mc(input_ids=batch["input_ids"])


def test_bad_cache_and_cross_attention(config_factory, batch_factory):
    config = config_factory("tiny", is_decoder=True)
    model = TFRemBertForCausalLM(config)
    batch = batch_factory(config, pad=False)
    with pytest.raises(InputError, match="past_key_values must hold one"):
        model(input_ids=batch["input_ids"], past_key_values=((np.zeros((3, 4, 2, 8), np.float32),) * 2,))
    with pytest.raises(InputError, match="no cross-attention layers"):
        model(input_ids=batch["input_ids"], encoder_hidden_states=np.zeros((3, 2, config.hidden_size), np.float32))
    with pytest.raises(InputError, match="max_new_tokens"):
        model.generate(batch["input_ids"], max_new_tokens=-1)


def test_errors_are_value_errors(setup):
    _, model, batch = setup
    with pytest.raises(ValueError, match="input_ids"):
        model(input_ids=_bad_ids(batch, 500))
    assert issubclass(InputError, ValueError)
    assert TFRemBertModel is not None


# -- found by the robustness suite (tests/robustness) -------------------------------------------


@pytest.mark.parametrize("value", [7.0, -1.0, float("inf"), float("nan")])
def test_attention_mask_values_outside_zero_one_are_refused(config_factory, batch_factory, value):
    """A mask value of 7 (or inf, NaN) used to give non-finite hidden states silently."""
    config = config_factory("tiny")
    model, batch = TFRemBertModel(config), batch_factory(config)
    mask = batch["attention_mask"].astype(np.float32)
    mask[0, 1] = value
    with pytest.raises(InputError, match=r"attention_mask values must be in \[0, 1\]"):
        model(**{**batch, "attention_mask": mask})
    fn = tf.function(lambda m: model(input_ids=batch["input_ids"], attention_mask=m).last_hidden_state)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"attention_mask values must be in \[0, 1\]"):
        fn(tf.constant(mask))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int8])
def test_small_integer_ids_work_like_int32(config_factory, batch_factory, dtype):
    """uint8 input_ids used to fail inside tf.gather with a bare InvalidArgumentError."""
    config = config_factory("tiny")
    model, batch = TFRemBertModel(config), batch_factory(config, seq=5)
    ids = batch["input_ids"] % min(config.vocab_size, 127)
    expected = model(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state
    got = model(input_ids=ids.astype(dtype), attention_mask=batch["attention_mask"].astype(dtype)).last_hidden_state
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize(
    ("shape", "position_shape"), [((2, 0), None), ((0, 3), None), ((1, 3), (0,)), ((2, 3), (3, 3))]
)
def test_empty_inputs_and_mismatched_positions_are_input_errors(config_factory, shape, position_shape):
    """Empty sequences failed in the pooler with a bare InvalidArgumentError; an empty batch returned nothing."""
    model = TFRemBertModel(config_factory("tiny"))
    kwargs = {"input_ids": np.ones(shape, np.int32)}
    if position_shape is not None:
        kwargs["position_ids"] = np.zeros(position_shape, np.int32)
    with pytest.raises(InputError, match="at least one sequence and one token|position_ids has shape"):
        model(**kwargs)
