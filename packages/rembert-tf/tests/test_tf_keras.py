"""The Keras ways in: inputs as users pass them, compile/fit/evaluate with metrics, .keras files, the model API.

Without transformers (tests-tf has neither torch nor transformers): expected values come from the model's
own outputs and NumPy. The comparisons with transformers' TF classes are in tests/test_tf_keras_reference.py.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import rembert_tf
from rembert_core import ConfigError, InputError
from rembert_core.tolerances import assert_close
from rembert_tf import (
    MaskedLMOutput,
    SequenceClassifierOutput,
    TFRemBertForCausalLM,
    TFRemBertForMaskedLM,
    TFRemBertForMultipleChoice,
    TFRemBertForQuestionAnswering,
    TFRemBertForSequenceClassification,
    TFRemBertForTokenClassification,
    TFRemBertModel,
)

HEADS = {
    "base": (TFRemBertModel, {}),
    "masked_lm": (TFRemBertForMaskedLM, {}),
    "causal_lm": (TFRemBertForCausalLM, {"is_decoder": True}),
    "sequence_classification": (TFRemBertForSequenceClassification, {}),
    "multiple_choice": (TFRemBertForMultipleChoice, {}),
    "token_classification": (TFRemBertForTokenClassification, {}),
    "question_answering": (TFRemBertForQuestionAnswering, {"num_labels": 2}),
}


def _model(config_factory, task, **changes):
    cls, task_changes = HEADS[task]
    return cls(config_factory("tiny", **{**task_changes, **changes}))


def _data(config, task, n=6, seq=7, seed=0):
    """Inputs (padded) and labels of ``task`` as dicts of NumPy arrays."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, config.vocab_size, size=(n, seq)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, seq - 2 :] = 0
    mask[2, 3:] = 0
    x = {"input_ids": ids, "attention_mask": mask}
    if task == "multiple_choice":
        x = {k: v.reshape(n // 2, 2, seq) for k, v in x.items()}
        return x, {"labels": rng.integers(0, 2, size=(n // 2,)).astype(np.int32)}
    if task in ("masked_lm", "causal_lm"):
        return x, {"labels": np.where(mask == 1, ids, -100).astype(np.int32)}
    if task == "token_classification":
        return x, {
            "labels": np.where(mask == 1, rng.integers(0, config.num_labels, size=(n, seq)), -100).astype(np.int32)
        }
    if task == "sequence_classification":
        return x, {"labels": rng.integers(0, config.num_labels, size=(n,)).astype(np.int32)}
    if task == "question_answering":
        return x, {
            "start_positions": rng.integers(0, seq, size=(n,)).astype(np.int32),
            "end_positions": rng.integers(0, seq, size=(n,)).astype(np.int32),
        }
    return x, {}


class UserDictEncoding(collections.UserDict):  # type: ignore[type-arg]
    """transformers' BatchEncoding is a UserDict (a Mapping, not a dict)."""


class DictEncoding(dict):  # type: ignore[type-arg]
    """rembert-tokenizers' BatchEncoding is a dict subclass with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# -- 1. inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", [dict, UserDictEncoding, DictEncoding])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_mapping_list_and_tuple_inputs_equal_keywords(config_factory, batch_factory, wrap, dtype, as_tensor):
    config = config_factory("tiny")
    model = TFRemBertForMaskedLM(config)
    batch = {k: v.astype(dtype) for k, v in batch_factory(config).items()}
    if as_tensor:
        batch = {k: tf.constant(v) for k, v in batch.items()}
    expected = model(**batch).logits.numpy()
    ordered = [batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]]
    for inputs in (wrap(batch), ordered, tuple(ordered)):
        np.testing.assert_array_equal(model(inputs).logits.numpy(), expected)
    np.testing.assert_array_equal(model(wrap(batch), training=False).logits.numpy(), expected)


def test_nested_python_lists_are_ids(config_factory):
    model = TFRemBertForSequenceClassification(config_factory("tiny"))
    ids = [[5, 6, 7, 8], [9, 10, 11, 0]]
    expected = model(np.array(ids)).logits.numpy()
    np.testing.assert_array_equal(model(ids).logits.numpy(), expected)
    np.testing.assert_array_equal(model(input_ids=ids).logits.numpy(), expected)
    masked = model(np.array(ids), attention_mask=np.ones((2, 4), np.int64)).logits.numpy()  # a mask: unpadded path
    np.testing.assert_array_equal(model({"input_ids": ids, "attention_mask": [[1] * 4] * 2}).logits.numpy(), masked)


def test_flags_in_the_dict_as_keywords_and_from_the_config(config_factory, batch_factory):
    config = config_factory("tiny")
    model = TFRemBertForSequenceClassification(config)
    batch = batch_factory(config)
    plain = model(batch)
    assert list(plain.keys()) == ["logits"]
    in_dict = model({**batch, "output_hidden_states": True, "output_attentions": True})
    assert list(in_dict.keys()) == ["logits", "hidden_states", "attentions"]
    assert len(in_dict.hidden_states) == config.num_hidden_layers + 1
    as_tuple = model({**batch, "return_dict": False})
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    np.testing.assert_array_equal(as_tuple[0].numpy(), plain.logits.numpy())
    with pytest.raises(InputError, match="output_attentions was passed both"):
        model({**batch, "output_attentions": True}, output_attentions=False)
    # config-level flags are the defaults; the call wins
    flagged = TFRemBertForSequenceClassification(
        config_factory("tiny", output_hidden_states=True, output_attentions=True, return_dict=False)
    )
    flagged.load_tensors(model.export_tensors())
    out = flagged(batch)
    assert isinstance(out, tuple) and len(out) == 3  # logits, hidden_states, attentions
    np.testing.assert_array_equal(out[0].numpy(), in_dict.logits.numpy())  # both padded (hidden states)
    out = flagged(batch, output_hidden_states=False, output_attentions=False, return_dict=True)
    assert list(out.keys()) == ["logits"]


def test_bad_inputs_are_input_errors_naming_the_argument(config_factory, batch_factory):
    config = config_factory("tiny")
    model = TFRemBertForSequenceClassification(config)
    batch = batch_factory(config)
    with pytest.raises(InputError, match=r"input_ids must have rank 2 \(batch, seq\), got shape \(1, 2, 2\)"):
        model([[[5, 6], [7, 8]]])  # a 3-D list where 2-D ids are meant
    with pytest.raises(InputError, match="input_ids must be a rectangular nested list"):
        model([[5, 6, 7], [8, 9]])
    with pytest.raises(InputError, match=r"attention_mask must have shape \(batch, .*\) = \(3, 9\), got \(2, 9\)"):
        model([batch["input_ids"], batch["attention_mask"][:2]])  # mixed batch sizes
    with pytest.raises(InputError, match=r"token_type_ids must have shape \(batch, input length\) = \(3, 9\)"):
        model({**batch, "token_type_ids": batch["token_type_ids"][:1]})
    with pytest.raises(InputError, match="attention_mask must hold numbers"):
        model({"input_ids": batch["input_ids"], "attention_mask": [["a"] * 9] * 3})
    with pytest.raises(InputError, match=r"at most 10, in the order \['input_ids', 'attention_mask',"):
        model([batch["input_ids"]] * 13)
    with pytest.raises(InputError, match=r"unknown input name\(s\) \['offset_mapping'\]"):
        model({**batch, "offset_mapping": batch["input_ids"]})


# -- 2. training -----------------------------------------------------------------------------------


def _expected_accuracy(task, logits, labels):
    """Accuracy over the labels the model's loss scores (NumPy)."""
    if task == "question_answering":
        return {
            "start_logits_accuracy": float(np.mean(logits["start_logits"].argmax(-1) == labels["start_positions"])),
            "end_logits_accuracy": float(np.mean(logits["end_logits"].argmax(-1) == labels["end_positions"])),
        }
    predicted, target = logits["logits"].argmax(-1), labels["labels"]
    if task == "causal_lm":
        predicted, target = predicted[:, :-1], target[:, 1:]
    keep = target != -100
    return {"accuracy": float(np.mean(predicted[keep] == target[keep]))}


@pytest.mark.parametrize("task", [t for t in HEADS if t != "base"])
@pytest.mark.parametrize("labels_as", ["x", "y"])
def test_evaluate_metrics_see_each_heads_logits_and_labels(config_factory, task, labels_as):
    keras.utils.set_random_seed(0)
    model = _model(config_factory, task)
    x, labels = _data(model.config, task)
    outputs = model(x)
    own_loss = float(model({**x, **labels}).loss)
    logits = {k: v.numpy() for k, v in outputs.items() if isinstance(v, tf.Tensor)}
    expected = _expected_accuracy(task, logits, labels)
    model.compile(optimizer="adam", metrics=["accuracy"])
    if labels_as == "x":
        data = tf.data.Dataset.from_tensor_slices({**x, **labels})
    else:
        y = labels["labels"] if "labels" in labels else (labels["start_positions"], labels["end_positions"])
        data = tf.data.Dataset.from_tensor_slices((x, y))
    n = len(x["input_ids"])
    result = model.evaluate(data.batch(n), verbose=0, return_dict=True)
    assert set(result) == {"loss", *expected}
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-6), name
    assert result["loss"] == pytest.approx(own_loss, rel=1e-5)  # compiled without a loss: the model's own


def test_fit_on_a_dataset_with_metrics_and_predict(config_factory):
    keras.utils.set_random_seed(3)
    model = _model(config_factory, "token_classification")
    x, labels = _data(model.config, "token_classification", n=8)
    data = tf.data.Dataset.from_tensor_slices((x, labels["labels"])).batch(4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"])
    history = model.fit(data, epochs=6, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "accuracy"}
    predicted = model.predict(data, verbose=0)
    assert_close(predicted["logits"], model(x).logits.numpy(), cross_framework=False, name="logits")


@pytest.mark.parametrize("wrap", [UserDictEncoding, DictEncoding])
def test_fit_evaluate_predict_take_a_batch_encoding(config_factory, wrap):
    keras.utils.set_random_seed(6)
    model = _model(config_factory, "sequence_classification")
    x, labels = _data(model.config, "sequence_classification")
    model.compile(optimizer="adam", metrics=["accuracy"])
    history = model.fit(
        wrap(x), labels["labels"], batch_size=3, epochs=1, verbose=0, validation_data=(wrap(x), labels["labels"])
    )
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    loss, _ = model.evaluate(wrap({**x, **labels}), batch_size=6, verbose=0)
    assert loss == pytest.approx(float(model({**x, **labels}).loss), rel=1e-5)
    assert_close(model.predict(wrap(x), verbose=0)["logits"], model(x).logits.numpy(), cross_framework=False)


def test_a_keras_loss_with_labels_in_x_or_as_y(config_factory):
    model = _model(config_factory, "sequence_classification")
    x, labels = _data(model.config, "sequence_classification")
    own = float(model({**x, **labels}).loss)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    in_x = model.evaluate(tf.data.Dataset.from_tensor_slices({**x, **labels}).batch(6), verbose=0)
    as_y = model.evaluate(x, labels["labels"], batch_size=6, verbose=0)
    assert in_x == pytest.approx(own, rel=1e-5) and as_y == pytest.approx(own, rel=1e-5)


def test_keras_steps_get_output_objects_with_return_dict_false_in_the_config(config_factory):
    keras.utils.set_random_seed(5)
    model = _model(config_factory, "sequence_classification", return_dict=False)
    x, labels = _data(model.config, "sequence_classification")
    assert isinstance(model(x), tuple)
    model.compile(optimizer="adam", metrics=["accuracy"])
    history = model.fit({**x, **labels}, batch_size=3, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert set(model.predict(x, verbose=0)) == {"logits"}
    assert isinstance(model(x), tuple)


def test_fit_without_labels_or_loss_is_a_clear_error(config_factory):
    model = _model(config_factory, "sequence_classification")
    x, _ = _data(model.config, "sequence_classification")
    model.compile(optimizer="adam")
    with pytest.raises(InputError, match=r"compiled without a loss and got no labels: put \['labels'\]"):
        model.fit(x, batch_size=6, epochs=1, verbose=0)


def test_fit_masked_lm_without_logits(config_factory):
    """``config.return_logits = False``: ``fit`` trains on the loss alone (the same loss as with logits);
    metrics, which need the logits, are a clear error."""
    keras.utils.set_random_seed(5)
    model = _model(config_factory, "masked_lm")
    x, labels = _data(model.config, "masked_lm")
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    full = float(model.evaluate({**x, **labels}, batch_size=6, verbose=0, return_dict=True)["loss"])
    model.config.return_logits = False
    model.compile(optimizer=keras.optimizers.Adam(3e-3))  # Keras traced evaluate with the logits: trace again
    lean = float(model.evaluate({**x, **labels}, batch_size=6, verbose=0, return_dict=True)["loss"])
    assert lean == pytest.approx(full, rel=1e-5)
    history = model.fit({**x, **labels}, batch_size=6, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]
    model.compile(optimizer="adam", metrics=["accuracy"])
    with pytest.raises(InputError, match="returned only its loss"):
        model.fit({**x, **labels}, batch_size=6, epochs=1, verbose=0)


# -- 3. saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(HEADS))
def test_keras_file_round_trip_per_head(tmp_path, config_factory, task):
    model = _model(config_factory, task)
    x, _ = _data(model.config, task)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.name == model.name
    assert loaded.config.to_dict() == model.config.to_dict()
    for key, value in model(x).items():
        if isinstance(value, tf.Tensor):
            np.testing.assert_array_equal(loaded(x)[key].numpy(), value.numpy(), err_msg=key)


def test_compiled_model_restores_its_optimizer_state(tmp_path, config_factory):
    keras.utils.set_random_seed(4)
    model = _model(config_factory, "sequence_classification")
    x, labels = _data(model.config, "sequence_classification")
    data = tf.data.Dataset.from_tensor_slices({**x, **labels}).batch(3)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for mine, theirs in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(theirs.numpy(), mine.numpy(), err_msg=mine.path)
    # the same next step from the same state (no dropout): identical weights
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    loaded.fit(data, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_array_equal(loaded(x).logits.numpy(), model(x).logits.numpy())
    assert loaded.evaluate(data, verbose=0, return_dict=True) == model.evaluate(data, verbose=0, return_dict=True)


def test_keras_file_keeps_policy_and_options(tmp_path, config_factory):
    model = TFRemBertModel(config_factory("tiny"), add_pooling_layer=False, dtype="mixed_bfloat16", name="enc")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.dtype_policy.name == "mixed_bfloat16" and loaded.name == "enc"
    assert loaded.rembert.pooler is None


def test_keras_file_loads_in_a_fresh_process_without_custom_objects(tmp_path, config_factory):
    model = _model(config_factory, "question_answering")
    x, _ = _data(model.config, "question_answering")
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "ids.npy", x["input_ids"])
    np.save(tmp_path / "start.npy", model(x["input_ids"]).start_logits.numpy())
    script = textwrap.dedent(
        f"""
        import keras, numpy as np
        import rembert_tf.modeling  # registers the classes (as `from rembert_tf import TFRemBert...` does)
        model = keras.models.load_model({str(tmp_path / "m.keras")!r})
        ids = np.load({str(tmp_path / "ids.npy")!r})
        np.testing.assert_array_equal(model(ids).start_logits.numpy(), np.load({str(tmp_path / "start.npy")!r}))
        print(type(model).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("TFRemBertForQuestionAnswering")


def test_get_config_from_config_round_trip(config_factory):
    model = _model(config_factory, "masked_lm")
    again = TFRemBertForMaskedLM.from_config(model.get_config())
    assert again.config.to_dict() == model.config.to_dict() and again.name == model.name
    for source in (model.config, model.config.to_dict()):
        built = TFRemBertForMaskedLM.from_config(source)
        assert built.config.to_dict() == model.config.to_dict()
        assert built.num_parameters() == model.num_parameters()
    with pytest.raises(ConfigError, match="from_config takes a RemBertConfig or a dict"):
        TFRemBertForMaskedLM.from_config("config.json")


def test_save_pretrained_with_a_saved_model(tmp_path, config_factory):
    model = _model(config_factory, "sequence_classification")
    x, _ = _data(model.config, "sequence_classification")
    files = model.save_pretrained(tmp_path, saved_model=True)
    assert tmp_path / "saved_model" / "1" in files and (tmp_path / "model.safetensors") in files
    serving = tf.saved_model.load(str(tmp_path / "saved_model" / "1")).signatures["serving_default"]
    ids, mask = (tf.constant(v) for v in (x["input_ids"], x["attention_mask"]))
    out = serving(input_ids=ids, attention_mask=mask, token_type_ids=tf.zeros_like(ids))
    assert_close(out["logits"].numpy(), model(x).logits.numpy(), cross_framework=False, name="logits")
    again = TFRemBertForSequenceClassification.from_pretrained(tmp_path)  # the SavedModel does not get in the way
    np.testing.assert_array_equal(again(x).logits.numpy(), model(x).logits.numpy())


# -- 4. the model API ------------------------------------------------------------------------------


def test_model_api_of_transformers_tf_classes(config_factory):
    config = config_factory("tiny")
    mlm = TFRemBertForMaskedLM(config)
    assert mlm.main_input_name == "input_ids"
    canonical = sum(int(np.prod(v.shape)) for v in mlm.export_tensors().values())
    assert mlm.num_parameters() == mlm.num_parameters(only_trainable=True) == canonical
    assert mlm.get_lm_head() is mlm.cls.predictions
    assert mlm.get_output_embeddings() is mlm.cls.predictions.decoder
    bias = mlm.get_bias()
    assert set(bias) == {"decoder_bias"} and bias["decoder_bias"] is mlm.cls.predictions.decoder.bias
    mlm.set_bias({"decoder_bias": np.full(config.vocab_size, 0.5, np.float32)})
    np.testing.assert_array_equal(mlm.get_bias()["decoder_bias"].numpy(), 0.5)
    with pytest.raises(InputError, match="resize_token_embeddings"):
        mlm.set_bias({"decoder_bias": np.zeros(config.vocab_size + 1, np.float32)})
    table = np.random.default_rng(0).standard_normal(mlm.get_input_embeddings().weight.shape).astype(np.float32)
    mlm.set_input_embeddings(table)
    np.testing.assert_array_equal(mlm.get_input_embeddings().weight.numpy(), table)
    other = TFRemBertForMaskedLM(config)
    other.set_input_embeddings(mlm.get_input_embeddings())
    np.testing.assert_array_equal(other.get_input_embeddings().weight.numpy(), table)
    with pytest.raises(InputError, match="input embeddings must have shape"):
        mlm.set_input_embeddings(table[:-1])
    mlm.resize_token_embeddings(config.vocab_size + 2)
    assert mlm.get_bias()["decoder_bias"].shape == (config.vocab_size,)  # config.vocab_size was updated
    classifier = TFRemBertForSequenceClassification(config_factory("tiny"))
    assert classifier.get_lm_head() is None and classifier.get_bias() is None
    with pytest.raises(InputError, match="no LM head"):
        classifier.set_bias({"decoder_bias": np.zeros(3)})


# -- 5. outputs ------------------------------------------------------------------------------------


def test_outputs_are_dict_like_as_transformers_model_output():
    logits, loss = np.zeros((1, 2, 3)), np.float32(1.5)
    out = MaskedLMOutput(logits=logits)
    assert list(out.keys()) == ["logits"] and out.to_tuple() == (logits,)
    out["loss"] = loss  # item assignment sets the attribute too
    assert out.loss is loss and out["loss"] is loss
    assert list(out.items()) == [("loss", loss), ("logits", logits)]  # field order, as rembert-torch
    assert out[0] is loss and out.to_tuple() == (loss, logits)
    out["logits"] = logits + 1
    assert out.logits[0, 0, 0] == 1 and out[1] is out.logits
    with pytest.raises(KeyError, match="no field 'logit'"):
        out["logit"] = logits
    with pytest.raises(TypeError, match="__delitem__"):
        del out["loss"]
    built = MaskedLMOutput({"loss": loss, "logits": logits})  # from a dict, as transformers' ModelOutput
    assert built.loss is loss and built.logits is logits and list(built.keys()) == ["loss", "logits"]
    assert built.to_tuple() == (loss, logits) and built[1] is logits
    assert SequenceClassifierOutput(**{"logits": logits}).to_dict() == {"logits": logits}
    with pytest.raises(KeyError):
        built["hidden_states"]
    with pytest.raises(KeyError, match="no field 'logit'"):
        MaskedLMOutput({"logit": logits})


def test_every_model_class_is_registered_keras_serializable():
    for name in ("TFRemBertModel", "TFRemBertForMaskedLM", "TFRemBertForQuestionAnswering"):
        cls = getattr(rembert_tf, name)
        assert keras.saving.get_registered_name(cls) == f"rembert_tf>{name}"
        assert keras.saving.get_registered_object(f"rembert_tf>{name}") is cls


def test_prepare_tf_dataset_without_datasets_names_it(config_factory, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed (it is not in the test envs)
    model = _model(config_factory, "sequence_classification")
    with pytest.raises(ImportError, match=r"prepare_tf_dataset needs the `datasets` package \(pip install datasets\)"):
        model.prepare_tf_dataset([{"input_ids": [5, 6]}])


def test_prepare_tf_dataset_hands_datasets_the_model_columns(config_factory, monkeypatch):
    """A stand-in for ``datasets`` (not installed here): checks what we pass to ``Dataset.to_tf_dataset``
    and that our collate function batches rows for ``fit``; not a test of the real ``datasets`` package.
    """

    class Dataset:
        def __init__(self, rows):
            self.rows = rows
            self.column_names = list(rows[0])

        def to_tf_dataset(self, **kwargs):
            self.kwargs = kwargs
            batch = kwargs["collate_fn"](self.rows, **kwargs["collate_fn_args"])
            labels = kwargs["label_cols"]
            labels = "labels" if labels in ("label", "label_ids") else labels
            features = {k: batch[k] for k in kwargs["columns"]}
            return tf.data.Dataset.from_tensors((features, batch[labels]))

    monkeypatch.setitem(sys.modules, "datasets", type(sys)("datasets"))
    sys.modules["datasets"].Dataset = Dataset
    model = _model(config_factory, "sequence_classification")
    x, labels = _data(model.config, "sequence_classification")
    rows = [
        {"input_ids": x["input_ids"][i], "attention_mask": x["attention_mask"][i], "label": labels["labels"][i]}
        | {"text": "not a model input"}
        for i in range(len(labels["labels"]))
    ]
    dataset = Dataset(rows)
    tf_dataset = model.prepare_tf_dataset(dataset, batch_size=6, shuffle=False)
    assert dataset.kwargs["columns"] == ["input_ids", "attention_mask"] and dataset.kwargs["label_cols"] == "label"
    assert dataset.kwargs["batch_size"] == 6 and dataset.kwargs["drop_remainder"] is False
    model.compile(optimizer="adam", metrics=["accuracy"])
    result = model.evaluate(tf_dataset, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(float(model({**x, **labels}).loss), rel=1e-5)
    with pytest.raises(TypeError, match="must be a datasets.Dataset"):
        model.prepare_tf_dataset(rows)
