"""rembert-tf against the float64 NumPy oracle: every head, every output field, masks, caches, losses."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from rembert_core import TASKS, build_schema
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
from rembert_tf.modeling import MODEL_CLASSES

CLASSES = {
    "base": TFRemBertModel,
    "masked_lm": TFRemBertForMaskedLM,
    "causal_lm": TFRemBertForCausalLM,
    "sequence_classification": TFRemBertForSequenceClassification,
    "multiple_choice": TFRemBertForMultipleChoice,
    "token_classification": TFRemBertForTokenClassification,
    "question_answering": TFRemBertForQuestionAnswering,
}


def _task_config(config_factory, name, task, **changes):
    if task == "causal_lm":
        changes.setdefault("is_decoder", True)
    if task == "question_answering":
        changes.setdefault("num_labels", 2)
    elif task in ("sequence_classification", "token_classification"):
        changes.setdefault("num_labels", 3)
    return config_factory(name, **changes)


def _inputs(task, config, batch_factory, seed=0):
    batch = batch_factory(config, seed=seed)
    if task == "multiple_choice":
        other = batch_factory(config, seed=seed + 1)
        batch = {k: np.stack([batch[k], other[k]], axis=1) for k in batch}  # (batch, 2 choices, seq)
    return batch


def _compare(out, ref, quantity_of=lambda k: "attentions" if "attentions" in k else "activations"):
    for key, expected in ref.items():
        actual = out[key]
        if isinstance(expected, list):
            assert len(actual) == len(expected), key
            for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
                assert_close(np.asarray(a), e, quantity=quantity_of(key), name=f"{key}[{i}]")
        else:
            assert_close(np.asarray(actual), expected, quantity=quantity_of(key), name=key)


def test_model_classes_cover_every_task():
    assert set(MODEL_CLASSES) == set(TASKS)
    assert MODEL_CLASSES == CLASSES


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cross", [False, True])
def test_canonical_variables_match_the_schema(config_factory, task, cross):
    changes = {"is_decoder": True, "add_cross_attention": True} if cross else {}
    config = _task_config(config_factory, "tiny", task, **changes)
    model = CLASSES[task](config)
    variables = model.canonical_variables()
    schema = build_schema(config, task)
    assert list(variables) == list(schema)
    for name, (var, transposed) in variables.items():
        shape = tuple(var.shape)[::-1] if transposed else tuple(var.shape)
        assert shape == schema[name].shape, name
        assert transposed == (schema[name].layout.value == "linear" and name.endswith(".weight")), name
    assert len(model.trainable_variables) == len(schema)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("config_name", ["tiny", "odd"])
def test_every_output_matches_numpy(config_factory, batch_factory, numpy_reference, task, config_name):
    config = _task_config(config_factory, config_name, task)
    model = CLASSES[task](config)
    inputs = _inputs(task, config, batch_factory)
    out = model(**inputs, output_hidden_states=True, output_attentions=True)
    ref = numpy_reference(config, model.export_tensors(), task).forward(inputs)
    _compare(out, ref)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert len(out.attentions) == config.num_hidden_layers


def test_inputs_embeds_equals_input_ids(config_factory, batch_factory):
    config = config_factory("odd")
    model = TFRemBertModel(config)
    batch = batch_factory(config)
    embeds = tf.gather(model.get_input_embeddings().weight, batch["input_ids"])
    a = model(**batch)
    b = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    np.testing.assert_array_equal(a.last_hidden_state.numpy(), b.last_hidden_state.numpy())


@pytest.mark.parametrize("shape", ["heads", "layers_heads"])
def test_head_mask(config_factory, batch_factory, numpy_reference, shape):
    config = config_factory("odd")
    model = TFRemBertModel(config)
    batch = batch_factory(config)
    rng = np.random.default_rng(3)
    n, layers = config.num_attention_heads, config.num_hidden_layers
    head_mask = (rng.random(n) > 0.4).astype(np.float32) if shape == "heads" else rng.random((layers, n))
    head_mask = head_mask.astype(np.float32)
    out = model(**batch, head_mask=head_mask, output_attentions=True, output_hidden_states=True)
    ref = numpy_reference(config, model.export_tensors(), "base").forward({**batch, "head_mask": head_mask})
    _compare(out, ref)


def test_outputs_access_by_attribute_key_and_index(config_factory, batch_factory):
    config = config_factory("tiny")
    out = TFRemBertModel(config)(**batch_factory(config))
    assert list(out.keys()) == ["last_hidden_state", "pooler_output"]
    assert out[0] is out.last_hidden_state is out["last_hidden_state"]
    assert out.hidden_states is None
    as_tuple = TFRemBertModel(config)(**batch_factory(config), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2


def test_dropout_only_in_training(config_factory, batch_factory):
    config = config_factory("tiny", hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    model = TFRemBertForMaskedLM(config)
    batch = batch_factory(config)
    a, b = model(**batch).logits.numpy(), model(**batch).logits.numpy()
    np.testing.assert_array_equal(a, b)
    c = model(**batch, training=True).logits.numpy()
    assert not np.allclose(a, c)


def test_gelu_is_exact_erf(config_factory):
    from rembert_tf.modeling import get_activation

    x = tf.constant(np.linspace(-4, 4, 101), tf.float32)
    expected = 0.5 * x.numpy().astype(np.float64) * (1 + np.vectorize(__import__("math").erf)(x.numpy() / np.sqrt(2)))
    assert_close(get_activation("gelu")(x).numpy(), expected, name="gelu")


# -- decoder: causal mask, cache, cross-attention, generate ---------------------------------------


def test_causal_mask_hides_the_future(config_factory, batch_factory):
    config = config_factory("odd", is_decoder=True)
    model = TFRemBertForCausalLM(config)
    batch = batch_factory(config, pad=False)
    full = model(**batch, use_cache=False).logits.numpy()
    changed = batch["input_ids"].copy()
    changed[:, -1] = (changed[:, -1] + 1) % config.vocab_size
    other = model(input_ids=changed, token_type_ids=batch["token_type_ids"], use_cache=False).logits.numpy()
    np.testing.assert_allclose(full[:, :-1], other[:, :-1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cross", [False, True])
def test_incremental_decoding_equals_full_decoding(config_factory, batch_factory, cross):
    config = config_factory("odd", is_decoder=True, add_cross_attention=cross)
    model = TFRemBertForCausalLM(config)
    batch = batch_factory(config, batch=2, seq=8, pad=False)
    ids, types = batch["input_ids"], batch["token_type_ids"]
    extra = {}
    if cross:
        rng = np.random.default_rng(1)
        extra["encoder_hidden_states"] = rng.standard_normal((2, 5, config.hidden_size)).astype(np.float32)
        extra["encoder_attention_mask"] = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    full = model(input_ids=ids, token_type_ids=types, use_cache=True, output_attentions=True, **extra)
    first = model(input_ids=ids[:, :5], token_type_ids=types[:, :5], use_cache=True, **extra)
    past = first.past_key_values
    assert len(past) == config.num_hidden_layers
    assert len(past[0]) == (4 if cross else 2)
    logits = [first.logits.numpy()]
    for t in range(5, 8):
        step = model(
            input_ids=ids[:, t : t + 1],
            token_type_ids=types[:, t : t + 1],
            past_key_values=past,
            use_cache=True,
            **extra,
        )
        past = step.past_key_values
        logits.append(step.logits.numpy())
    assert_close(np.concatenate(logits, axis=1), full.logits.numpy(), name="incremental logits")
    for layer in range(config.num_hidden_layers):
        for j in range(len(past[layer])):
            assert_close(past[layer][j].numpy(), full.past_key_values[layer][j].numpy(), name=f"cache[{layer}][{j}]")
    if cross:
        assert len(full.cross_attentions) == config.num_hidden_layers
        assert full.cross_attentions[0].shape == (2, config.num_attention_heads, 8, 5)
        np.testing.assert_array_equal(full.cross_attentions[0].numpy()[1, :, :, 3:], 0.0)


def test_cross_attention_matches_numpy(config_factory, batch_factory, numpy_reference):
    config = config_factory("tiny", is_decoder=True, add_cross_attention=True)
    model = TFRemBertModel(config)
    batch = batch_factory(config)
    enc = np.random.default_rng(2).standard_normal((3, 4, config.hidden_size)).astype(np.float32)
    out = model(**batch, encoder_hidden_states=enc, output_attentions=True, output_hidden_states=True)
    ref = numpy_reference(config, model.export_tensors(), "base").forward({**batch, "encoder_hidden_states": enc})
    _compare(out, ref)


def test_generate_greedy_with_and_without_cache(config_factory):
    config = config_factory("odd", is_decoder=True, eos_token_id=None)
    model = TFRemBertForCausalLM(config)
    prompt = np.array([[5, 17, 42], [7, 8, 9]], dtype=np.int32)
    with_cache = model.generate(prompt, max_new_tokens=6).numpy()
    without = model.generate(prompt, max_new_tokens=6, use_cache=False).numpy()
    np.testing.assert_array_equal(with_cache, without)
    assert with_cache.shape == (2, 9)
    np.testing.assert_array_equal(with_cache[:, :3], prompt)
    # Each new token is the argmax of a full forward pass over the sequence so far.
    for t in range(3, 9):
        logits = model(input_ids=with_cache[:, :t], use_cache=False).logits.numpy()
        np.testing.assert_array_equal(logits[:, -1].argmax(-1), with_cache[:, t])


def test_generate_stops_at_eos_and_pads(config_factory):
    config = config_factory("tiny", is_decoder=True)
    model = TFRemBertForCausalLM(config)
    prompt = np.array([[5, 17, 42]], dtype=np.int32)
    free = model.generate(prompt, max_new_tokens=4, eos_token_id=None).numpy()
    eos = int(free[0, 3])
    stopped = model.generate(prompt, max_new_tokens=4, eos_token_id=eos).numpy()
    np.testing.assert_array_equal(stopped, free[:, :4])


# -- losses ----------------------------------------------------------------------------------------


def test_masked_lm_loss_ignores_minus_100(config_factory, batch_factory, cross_entropy):
    config = config_factory("odd")
    model = TFRemBertForMaskedLM(config)
    batch = batch_factory(config)
    labels = batch["input_ids"].copy()
    labels[:, ::2] = -100
    out = model(**batch, labels=labels)
    assert_close(out.loss.numpy(), cross_entropy(out.logits.numpy(), labels), quantity="loss", name="mlm loss")


def test_causal_lm_loss_is_shifted(config_factory, batch_factory, cross_entropy):
    config = config_factory("odd", is_decoder=True)
    model = TFRemBertForCausalLM(config)
    batch = batch_factory(config)
    labels = batch["input_ids"].copy()
    labels[1, -3:] = -100
    out = model(**batch, labels=labels)
    expected = cross_entropy(out.logits.numpy()[:, :-1], labels[:, 1:])
    assert_close(out.loss.numpy(), expected, quantity="loss", name="clm loss")


@pytest.mark.parametrize("problem", ["single", "multi", "regression", "regression_multi"])
def test_sequence_classification_losses(config_factory, batch_factory, cross_entropy, problem):
    num_labels = 1 if problem == "regression" else 3
    problem_type = "regression" if problem == "regression_multi" else None
    config = config_factory("tiny", num_labels=num_labels, problem_type=problem_type)
    model = TFRemBertForSequenceClassification(config)
    batch = batch_factory(config)
    rng = np.random.default_rng(4)
    if problem == "single":
        labels = np.array([0, 2, 1])
    elif problem == "multi":
        labels = (rng.random((3, 3)) > 0.5).astype(np.float32)
    elif problem == "regression":
        labels = rng.standard_normal(3).astype(np.float32)
    else:
        labels = rng.standard_normal((3, 3)).astype(np.float32)
    out = model(**batch, labels=labels)
    logits = out.logits.numpy().astype(np.float64)
    if problem == "single":
        expected = cross_entropy(logits, labels)
    elif problem == "multi":
        expected = float(np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))))
    else:
        expected = float(np.mean((logits.reshape(labels.shape) - labels) ** 2))
    assert_close(out.loss.numpy(), expected, quantity="loss", name=f"{problem} loss")
    assert config.problem_type == problem_type  # the config is not mutated


def test_multiple_choice_and_token_losses(config_factory, batch_factory, cross_entropy):
    config = config_factory("tiny", num_labels=3)
    mc = TFRemBertForMultipleChoice(config)
    inputs = _inputs("multiple_choice", config, batch_factory)
    out = mc(**inputs, labels=np.array([1, 0, 1]))
    assert out.logits.shape == (3, 2)
    assert_close(out.loss.numpy(), cross_entropy(out.logits.numpy(), np.array([1, 0, 1])), quantity="loss")
    tok = TFRemBertForTokenClassification(config)
    batch = batch_factory(config)
    labels = np.random.default_rng(5).integers(0, 3, size=batch["input_ids"].shape)
    labels[batch["attention_mask"] == 0] = -100
    out = tok(**batch, labels=labels)
    assert_close(out.loss.numpy(), cross_entropy(out.logits.numpy(), labels), quantity="loss")


def test_question_answering_loss_clamps_positions(config_factory, batch_factory, cross_entropy):
    config = config_factory("tiny", num_labels=2)
    model = TFRemBertForQuestionAnswering(config)
    batch = batch_factory(config)
    seq = batch["input_ids"].shape[1]
    start = np.array([1, 50, 3])  # 50 is clamped to seq and then ignored
    end = np.array([[4], [2], [-5]])  # (batch, 1) is squeezed; -5 is clamped to 0
    out = model(**batch, start_positions=start, end_positions=end)
    s, e = out.start_logits.numpy(), out.end_logits.numpy()
    expected_start = cross_entropy(s, np.minimum(np.maximum(start, 0), seq), ignore_index=seq)
    expected_end = cross_entropy(e, np.clip(end.reshape(-1), 0, seq), ignore_index=seq)
    assert_close(out.loss.numpy(), (expected_start + expected_end) / 2, quantity="loss")


# -- embeddings ------------------------------------------------------------------------------------


def test_resize_token_embeddings(config_factory, batch_factory):
    config = config_factory("tiny")
    model = TFRemBertForMaskedLM(config)
    batch = batch_factory(config)
    before = model(**batch).logits.numpy()
    old_table = model.get_input_embeddings().weight.numpy()
    model.resize_token_embeddings(config.vocab_size + 5)
    assert model.config.vocab_size == 102
    table = model.get_input_embeddings().weight.numpy()
    assert table.shape == (102, config.input_embedding_size)
    np.testing.assert_array_equal(table[:97], old_table)
    np.testing.assert_allclose(table[97:], np.repeat(old_table.mean(0, keepdims=True), 5, 0), rtol=1e-6)
    decoder = model.get_output_embeddings()
    assert tuple(decoder.kernel.shape) == (config.output_embedding_size, 102)
    assert tuple(decoder.bias.shape) == (102,)
    after = model(**batch).logits.numpy()
    assert after.shape[-1] == 102
    np.testing.assert_allclose(after[..., :97], before, rtol=0, atol=1e-6)
    assert len(model.trainable_variables) == len(build_schema(model.config, "masked_lm"))
    out = model(input_ids=np.array([[100, 101]]), labels=np.array([[101, 100]]))
    assert np.isfinite(out.loss.numpy())
    model.resize_token_embeddings(50)
    assert model.get_input_embeddings().weight.shape == (50, config.input_embedding_size)
    assert model(input_ids=np.array([[49]])).logits.shape == (1, 1, 50)
