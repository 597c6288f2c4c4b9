"""rembert-tf's Keras ways against transformers 4.57's TF classes (tf-keras, in a subprocess) on the same weights.

* a ``BatchEncoding`` (ours and transformers', ``return_tensors="tf"``), a dict with flags, a list
  ``[input_ids, attention_mask, token_type_ids]`` and int64 ids give the reference TF model's outputs;
  config-level output flags give the same fields;
* ``compile(optimizer, metrics=["accuracy"])`` then ``evaluate``, labels inside ``x`` and as ``y``: the same
  loss and metric values as the reference for sequence classification, multiple choice and question
  answering (per output); for the token-level heads the reference counts -100 positions as misses
  (and does not shift the causal LM's labels), ours scores what the loss scores: both are checked
  against their NumPy formula;
* ``fit``/``evaluate``/``predict`` take either tokenizer's ``BatchEncoding`` (NumPy or TF tensors) as ``x``;
* ``save_pretrained(dir, saved_model=True)`` writes ``dir/saved_model/1`` as transformers does, with a
  ``serving_default`` signature taking the same inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rembert_core.tolerances import assert_close

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")  # transformers' TF classes load our safetensors through its PyTorch bridge
pytest.importorskip("tf_keras")
pytest.importorskip("tensorflow")
pytestmark = pytest.mark.oracle

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import rembert_tf  # noqa: E402
from rembert_tokenizers import RemBertTokenizer  # noqa: E402

SPM = Path(__file__).parent / "fixtures" / "sentencepiece" / "test_model.model"
TEXTS = ["Hello world", "a longer sentence here, friends", "and a third one", "short", "the fifth text", "six"]
CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    input_embedding_size=16,
    output_embedding_size=24,
    intermediate_size=40,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    classifier_dropout_prob=0.0,
)
TASKS = {
    "sequence_classification": ("TFRemBertForSequenceClassification", {"num_labels": 3}),
    "multiple_choice": ("TFRemBertForMultipleChoice", {}),
    "question_answering": ("TFRemBertForQuestionAnswering", {"num_labels": 2}),
    "token_classification": ("TFRemBertForTokenClassification", {"num_labels": 3}),
    "masked_lm": ("TFRemBertForMaskedLM", {}),
    "causal_lm": ("TFRemBertForCausalLM", {"is_decoder": True}),
}


def _inputs_and_labels(task: str, encoding: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rng = np.random.default_rng(7)
    x = {k: np.asarray(v) for k, v in encoding.items()}
    n, seq = x["input_ids"].shape
    mask = x["attention_mask"]
    if task == "multiple_choice":
        x = {k: v.reshape(n // 2, 2, seq) for k, v in x.items()}
        return x, {"labels": rng.integers(0, 2, size=(n // 2,)).astype(np.int32)}
    if task == "question_answering":
        return x, {
            "start_positions": rng.integers(0, seq, size=(n,)).astype(np.int32),
            "end_positions": rng.integers(0, seq, size=(n,)).astype(np.int32),
        }
    if task == "sequence_classification":
        return x, {"labels": rng.integers(0, 3, size=(n,)).astype(np.int32)}
    if task == "token_classification":
        return x, {"labels": np.where(mask == 1, rng.integers(0, 3, size=(n, seq)), -100).astype(np.int32)}
    return x, {"labels": np.where(mask == 1, x["input_ids"], -100).astype(np.int32)}


REFERENCE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tf_keras
    import transformers

    root = sys.argv[1]
    spec = json.load(open(root + "/spec.json"))
    results = {}
    for task, arch in spec["tasks"].items():
        data = np.load(root + "/" + task + "/data.npz")
        x = {k[2:]: data[k] for k in data.files if k.startswith("x_")}
        labels = {k[2:]: data[k] for k in data.files if k.startswith("y_")}
        model = getattr(transformers, arch).from_pretrained(root + "/" + task + "/weights", from_pt=True)
        out = model(transformers.BatchEncoding({k: tf.constant(v) for k, v in x.items()}))
        arrays = {"out_" + k: v.numpy() for k, v in out.items() if isinstance(v, tf.Tensor)}
        flagged = model({**x, "output_hidden_states": True, "return_dict": False})
        result = {"hidden_states": len(flagged[-1])}
        model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), metrics=["accuracy"])
        n = len(x["input_ids"])
        in_x = tf.data.Dataset.from_tensor_slices({**x, **labels}).batch(n)
        result["in_x"] = model.evaluate(in_x, verbose=0, return_dict=True)
        y = labels["labels"] if "labels" in labels else (labels["start_positions"], labels["end_positions"])
        as_y = tf.data.Dataset.from_tensor_slices((x, y)).batch(n)
        result["as_y"] = model.evaluate(as_y, verbose=0, return_dict=True)
        if task == "sequence_classification":
            model.save_pretrained(root + "/" + task + "/hf_saved", saved_model=True)
            loaded = tf.saved_model.load(root + "/" + task + "/hf_saved/saved_model/1")
            signature = loaded.signatures["serving_default"]
            result["serving_inputs"] = sorted(signature.structured_input_signature[1])
        np.savez(root + "/" + task + "/reference.npz", **arrays)
        results[task] = {
            k: ({m: float(v) for m, v in r.items()} if isinstance(r, dict) else r) for k, r in result.items()
        }
    json.dump(results, open(root + "/results.json", "w"))
    """
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Our models (seeded weights saved as safetensors) and the reference TF models' results on them."""
    root = tmp_path_factory.mktemp("tf_keras_reference")
    tokenizer = RemBertTokenizer(str(SPM))
    encoding = tokenizer(TEXTS, padding=True, return_tensors="np")
    keras.utils.set_random_seed(0)
    models = {}
    for task, (arch, changes) in TASKS.items():
        config = rembert_tf.RemBertConfig(vocab_size=len(tokenizer), **CONFIG, **changes)
        model = getattr(rembert_tf, arch)(config)
        model.save_pretrained(root / task / "weights")
        x, labels = _inputs_and_labels(task, dict(encoding))
        np.savez(
            root / task / "data.npz", **{f"x_{k}": v for k, v in x.items()}, **{f"y_{k}": v for k, v in labels.items()}
        )
        models[task] = (model, x, labels)
    (root / "spec.json").write_text(json.dumps({"tasks": {task: arch for task, (arch, _) in TASKS.items()}}))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT, str(root)], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return root, models, json.loads((root / "results.json").read_text())


@pytest.mark.parametrize("task", list(TASKS))
def test_call_forms_give_the_reference_outputs(reference, task):
    root, models, results = reference
    model, x, _ = models[task]
    expected = np.load(root / task / "reference.npz")
    forms: list[Any] = [x, {k: v.astype(np.int64) for k, v in x.items()}]
    forms.append([x["input_ids"], x["attention_mask"], x["token_type_ids"]])
    if task != "multiple_choice":  # the BatchEncodings of both tokenizers, tf tensors
        texts_encoding = RemBertTokenizer(str(SPM))(TEXTS, padding=True, return_tensors="tf")
        forms += [texts_encoding, transformers.RemBertTokenizer(str(SPM))(TEXTS, padding=True, return_tensors="tf")]
    for form in forms:
        out = model(form)
        for key in expected.files:
            name = key[4:]
            assert_close(np.asarray(out[name]), expected[key], quantity="activations", name=f"{task} {name}")
    # Flags in the dict: a tuple ending with the hidden states, as the reference's. (Its tuples differ in the
    # middle where the TF reference deviates from the PyTorch one that we follow: a None pooler output in
    # token classification, no past_key_values from the causal LM.)
    flagged = model({**x, "output_hidden_states": True, "return_dict": False})
    assert isinstance(flagged, tuple) and len(flagged[-1]) == results[task]["hidden_states"]
    first = "out_start_logits" if task == "question_answering" else "out_logits"
    assert_close(np.asarray(flagged[0]), expected[first], quantity="activations", name=f"{task} {first} (tuple)")


def _naive_and_scored_accuracy(task: str, logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    predicted = logits.argmax(-1)
    naive = float(np.mean(predicted == labels))  # the reference: every position, -100 a miss, no shift
    if task == "causal_lm":
        predicted, labels = predicted[:, :-1], labels[:, 1:]
    keep = labels != -100
    return naive, float(np.mean(predicted[keep] == labels[keep]))


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("labels_as", ["in_x", "as_y"])
def test_compiled_metrics_match_the_reference(reference, task, labels_as):
    _, models, results = reference
    model, x, labels = models[task]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    n = len(x["input_ids"])
    if labels_as == "in_x":
        data = tf.data.Dataset.from_tensor_slices({**x, **labels})
    else:
        y = labels["labels"] if "labels" in labels else (labels["start_positions"], labels["end_positions"])
        data = tf.data.Dataset.from_tensor_slices((x, y))
    ours = model.evaluate(data.batch(n), verbose=0, return_dict=True)
    # The reference mishandles y = (start_positions, end_positions): it does not move the tuple into its
    # inputs, so its loss is its dummy loss, and it swaps the metrics' names. Its labels-in-x values are right.
    theirs = results[task]["in_x" if task == "question_answering" else labels_as]
    assert set(ours) == set(theirs), (ours, theirs)
    assert_close(np.float32(ours["loss"]), np.float32(theirs["loss"]), quantity="loss", name=f"{task} loss")
    if task in ("masked_lm", "causal_lm", "token_classification"):
        logits = model(x).logits.numpy()
        naive, scored = _naive_and_scored_accuracy(task, logits, labels["labels"])
        assert theirs["accuracy"] == pytest.approx(naive, abs=1e-6)
        assert ours["accuracy"] == pytest.approx(scored, abs=1e-6)
    else:
        for name in ours:
            if name != "loss":
                assert ours[name] == pytest.approx(theirs[name], abs=1e-6), name


def test_saved_model_where_transformers_writes_it(reference, tmp_path):
    root, models, results = reference
    model, x, _ = models["sequence_classification"]
    files = model.save_pretrained(tmp_path, saved_model=True)
    assert tmp_path / "saved_model" / "1" in files
    signature = tf.saved_model.load(str(tmp_path / "saved_model" / "1")).signatures["serving_default"]
    assert sorted(signature.structured_input_signature[1]) == results["sequence_classification"]["serving_inputs"]
    out = signature(**{k: tf.constant(v, tf.int32) for k, v in x.items()})
    expected = np.load(root / "sequence_classification" / "reference.npz")["out_logits"]
    assert_close(out["logits"].numpy(), expected, quantity="activations", name="serving logits")


def test_fit_evaluate_predict_take_both_batch_encodings(reference):
    root, models, _ = reference
    model = type(models["sequence_classification"][0]).from_pretrained(root / "sequence_classification" / "weights")
    labels = np.arange(len(TEXTS)) % 3  # a copy of the module's model: fit changes the weights
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    for tokenizer in (RemBertTokenizer(str(SPM)), transformers.RemBertTokenizer(str(SPM))):
        for tensors in ("np", "tf"):
            encoding = tokenizer(TEXTS, padding=True, return_tensors=tensors)
            expected = model(encoding).logits.numpy()
            predicted = model.predict(encoding, batch_size=len(TEXTS), verbose=0)["logits"]
            assert_close(predicted, expected, cross_framework=False, name=f"{type(tokenizer).__module__} {tensors}")
            assert model.evaluate(encoding, labels, batch_size=len(TEXTS), verbose=0)[0] > 0
    history = model.fit(encoding, labels, batch_size=3, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
