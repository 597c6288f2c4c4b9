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
