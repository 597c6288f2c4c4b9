"""Unpadded execution of the pooled heads (issue 22) against the float64 NumPy oracle and our padded path.

``TFRemBertForSequenceClassification`` and ``TFRemBertForMultipleChoice`` read the pooled first token only,
so their backbone runs on the kept tokens (:func:`rembert_tf.kernels.plan_unpadding`), eagerly and under
``tf.function``, in inference and training. Checked on padded batches: right and left padding, fully padded
rows, one-token rows, equal lengths, no padding, holes in the mask; outputs, loss and gradients. Where the
outputs need the padded positions (hidden states, attentions, head mask, batch 1, XLA) the padded path runs.
The comparison with transformers' own TF classes is at the end (skipped without transformers and tf-keras).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import rembert_tf.kernels as kernels
import rembert_tf.modeling as modeling
from rembert_core.tolerances import assert_close
from rembert_tf import TFRemBertForMaskedLM, TFRemBertForMultipleChoice, TFRemBertForSequenceClassification

SEQ = 9


def _masks() -> dict[str, np.ndarray]:
    """Padding layouts (batch 4, seq 9) the unpadded path must handle."""
    right = np.array([[1] * 9, [1] * 3 + [0] * 6, [1] + [0] * 8, [1] * 6 + [0] * 3])
    return {
        "right": right,
        "left": right[:, ::-1].copy(),
        "fully_padded_row": np.array([[1] * 5 + [0] * 4, [0] * 9, [1] * 2 + [0] * 7, [1] * 9]),
        "one_token_rows": np.array([[1] + [0] * 8] * 3 + [[1] * 4 + [0] * 5]),
        "equal_lengths": np.array([[1] * 5 + [0] * 4] * 4),
        "no_padding": np.ones((4, SEQ), dtype=np.int64),
        "holes": np.array([[1, 0, 1, 1, 0, 0, 1, 0, 1], [0, 1, 1, 0, 0, 0, 0, 0, 0]] * 2),
    }


MASKS = _masks()


def _inputs(config: Any, mask: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.where(mask == 0, 0, rng.integers(3, config.vocab_size, mask.shape))
    types = rng.integers(0, config.type_vocab_size, mask.shape)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _choices(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.reshape(2, 2, SEQ) for k, v in inputs.items()}  # (batch 2, choices 2, seq)


@pytest.fixture
def unpadded_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the backbone runs on kept tokens."""
    calls: list[int] = []
    original = modeling.encode_unpadded

    def counting(*args: Any, **kwargs: Any) -> tf.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(modeling, "encode_unpadded", counting)
    return calls


def _padded(model: Any, inputs: dict[str, Any], **kwargs: Any) -> Any:
    kernels.UNPAD = False
    try:
        return model(**inputs, **kwargs)
    finally:
        kernels.UNPAD = True


@pytest.mark.parametrize("layout", list(MASKS))
@pytest.mark.parametrize("task", ["sequence_classification", "multiple_choice"])
def test_pooled_heads_unpadded_match_numpy_and_padded(
    config_factory, numpy_reference, unpadded_calls, task: str, layout: str
) -> None:
    config = config_factory("odd")
    inputs = _inputs(config, MASKS[layout])
    if task == "multiple_choice":
        model: Any = TFRemBertForMultipleChoice(config)
        inputs = _choices(inputs)
    else:
        model = TFRemBertForSequenceClassification(config)
    logits = model(**inputs).logits.numpy()
    assert unpadded_calls, "the unpadded path did not run"
    expected = numpy_reference(config, model.export_tensors(), task).forward(inputs)["logits"]
    assert_close(logits, expected, quantity="activations", name=f"{task} {layout} logits vs float64")
    padded = _padded(model, inputs).logits.numpy()
    assert_close(logits, padded, quantity="activations", cross_framework=False, name=f"{layout} vs padded")
    graph = tf.function(lambda x: model(**x).logits)({k: tf.constant(v) for k, v in inputs.items()})
    assert_close(graph.numpy(), expected, quantity="activations", name=f"{task} {layout} tf.function vs float64")


@pytest.mark.parametrize("layout", ["right", "left", "fully_padded_row", "holes"])
def test_inputs_embeds_position_ids_and_mixed_precision(config_factory, unpadded_calls, layout: str) -> None:
    config = config_factory("odd")
    model = TFRemBertForSequenceClassification(config)
    inputs = _inputs(config, MASKS[layout], seed=1)
    embeds = tf.gather(model.get_input_embeddings().weight, inputs.pop("input_ids"))
    positions = np.random.default_rng(2).integers(0, config.max_position_embeddings, (4, SEQ))
    out = model(inputs_embeds=embeds, position_ids=positions, **inputs).logits
    assert unpadded_calls
    ref = _padded(model, {"inputs_embeds": embeds, "position_ids": positions, **inputs}).logits
    assert_close(out.numpy(), ref.numpy(), quantity="activations", cross_framework=False, name=layout)


def test_mixed_bfloat16_unpadded_matches_padded(config_factory, unpadded_calls) -> None:
    config = config_factory("odd")
    model = TFRemBertForSequenceClassification(config, dtype="mixed_bfloat16")
    inputs = _inputs(config, MASKS["right"])
    out = model(**inputs).logits
    assert unpadded_calls
    ref = _padded(model, inputs).logits
    assert_close(out.numpy(), ref.numpy(), dtype="bfloat16", quantity="activations", name="mixed_bfloat16")


@pytest.mark.parametrize("layout", ["right", "left", "fully_padded_row", "one_token_rows"])
@pytest.mark.parametrize("graph", [False, True])
def test_training_loss_and_gradients_match_padded(config_factory, unpadded_calls, layout: str, graph: bool) -> None:
    config = config_factory("odd")
    model = TFRemBertForSequenceClassification(config)
    inputs = _inputs(config, MASKS[layout], seed=3)
    labels = np.array([0, 1, 1, 0])

    def loss_and_grads(unpad: bool) -> tuple[Any, list[Any]]:
        kernels.UNPAD = unpad
        try:

            def step(x: dict[str, Any]) -> tuple[Any, list[Any]]:
                with tf.GradientTape() as tape:
                    loss = model(**x, labels=labels, training=True).loss
                return loss, tape.gradient(loss, model.trainable_variables)

            x = {k: tf.constant(v) for k, v in inputs.items()}
            return tf.function(step)(x) if graph else step(x)
        finally:
            kernels.UNPAD = True

    loss, grads = loss_and_grads(True)
    assert unpadded_calls
    ref_loss, ref_grads = loss_and_grads(False)
    assert_close(loss.numpy(), ref_loss.numpy(), quantity="loss", cross_framework=False, name="loss")
    for var, g, r in zip(model.trainable_variables, grads, ref_grads, strict=True):
        if r is None:
            assert g is None, var.path
            continue
        assert_close(
            tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(r).numpy(), quantity="gradients", name=var.path
        )


@pytest.mark.parametrize(
    "case", ["batch_1", "hidden_states", "attentions", "head_mask", "no_mask", "3d_mask", "switched_off", "xla"]
)
def test_padded_path_where_the_outputs_need_it(config_factory, unpadded_calls, case: str) -> None:
    config = config_factory("odd")
    model = TFRemBertForSequenceClassification(config)
    inputs: dict[str, Any] = _inputs(config, MASKS["right"])
    kwargs: dict[str, Any] = {}
    if case == "batch_1":
        inputs = {k: v[1:2] for k, v in inputs.items()}
    elif case == "hidden_states":
        kwargs["output_hidden_states"] = True
    elif case == "attentions":
        kwargs["output_attentions"] = True
    elif case == "head_mask":
        kwargs["head_mask"] = np.ones(config.num_attention_heads, np.float32)
    elif case == "no_mask":
        inputs.pop("attention_mask")
    elif case == "3d_mask":
        inputs["attention_mask"] = np.broadcast_to(inputs["attention_mask"][:, None, :], (4, SEQ, SEQ)).copy()
    if case == "switched_off":
        out = _padded(model, inputs).logits
    elif case == "xla":
        x = {k: tf.constant(v) for k, v in inputs.items()}
        out = tf.function(lambda x: model(**x).logits, jit_compile=True)(x)
    else:
        out = model(**inputs, **kwargs).logits
    assert not unpadded_calls
    assert out.shape[0] == inputs["input_ids"].shape[0]
    if case in ("hidden_states", "attentions", "head_mask", "xla"):
        kernels.UNPAD = True
        assert_close(
            out.numpy(), model(**inputs).logits.numpy(), quantity="activations", cross_framework=False, name=case
        )


# -- masked LM without the full logits -----------------------------------------------------------


def _mlm_labels(inputs: dict[str, np.ndarray], mask: np.ndarray, on_padding: bool) -> np.ndarray:
    """Every third real token labelled with its id; with ``on_padding`` also one padded position."""
    labels = np.full(mask.shape, -100)
    picked = np.argwhere(mask != 0)[::3]
    labels[picked[:, 0], picked[:, 1]] = inputs["input_ids"][picked[:, 0], picked[:, 1]]
    if on_padding:
        row, col = np.argwhere(mask == 0)[0]
        labels[row, col] = 5
    return labels


@pytest.mark.parametrize("layout", ["right", "left", "fully_padded_row", "holes", "no_padding", "label_on_padding"])
@pytest.mark.parametrize("graph", [False, True])
def test_masked_lm_loss_without_logits_matches_full(config_factory, unpadded_calls, layout: str, graph: bool) -> None:
    """``return_logits=False``: the decoder at the labelled positions only, the backbone on the kept tokens (a
    label on a padded position keeps that position); the loss and every gradient as with the full logits."""
    config = config_factory("odd")
    model = TFRemBertForMaskedLM(config)
    mask = MASKS["right" if layout == "label_on_padding" else layout]
    inputs = _inputs(config, mask)
    labels = tf.constant(_mlm_labels(inputs, mask, on_padding=layout == "label_on_padding"))
    x = {k: tf.constant(v) for k, v in inputs.items()}

    def step(x: dict[str, tf.Tensor], lean: bool) -> tuple[Any, ...]:
        with tf.GradientTape() as tape:
            out = model(**x, labels=labels, return_logits=not lean)
        return out.loss, out.logits, tape.gradient(out.loss, model.trainable_variables)

    full_loss, full_logits, full_grads = step(x, lean=False)
    assert full_logits is not None and not unpadded_calls  # the default: the padded path, every logit
    run = tf.function(step) if graph else step
    loss, logits, grads = run(x, lean=True)
    assert logits is None
    assert unpadded_calls, "the unpadded path did not run"
    assert_close(loss.numpy(), full_loss.numpy(), quantity="loss", cross_framework=False, name=f"{layout} loss")
    for var, got, want in zip(model.trainable_variables, grads, full_grads, strict=True):
        if want is None:
            assert got is None, var.path
            continue
        got, want = tf.convert_to_tensor(got), tf.convert_to_tensor(want)
        assert_close(got.numpy(), want.numpy(), quantity="gradients", cross_framework=False, name=var.path)


def test_masked_lm_return_logits_config_and_checks(config_factory) -> None:
    config = config_factory("odd")
    model = TFRemBertForMaskedLM(config)
    inputs = _inputs(config, MASKS["right"])
    labels = np.where(MASKS["right"] == 0, -100, inputs["input_ids"])
    full = model(**inputs, labels=labels)
    assert tuple(full.logits.shape) == (*labels.shape, config.vocab_size)  # the default is unchanged
    model.config.return_logits = False  # a training loop's switch: applies where labels are given
    lean = model(**inputs, labels=labels)
    assert lean.logits is None
    assert_close(lean.loss.numpy(), full.loss.numpy(), quantity="loss", cross_framework=False, name="loss")
    assert model(**inputs).logits is not None  # no labels: logits as always
    assert model(**inputs, labels=labels, return_logits=True).logits is not None  # the call wins
    with pytest.raises(Exception, match="labels must have shape"):
        model(**inputs, labels=labels[:, :5])


def test_one_trace_for_every_token_count(config_factory, unpadded_calls) -> None:
    config = config_factory("tiny")
    model = TFRemBertForSequenceClassification(config)
    traced = tf.function(lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits)
    for layout in ("right", "one_token_rows", "equal_lengths"):
        inputs = _inputs(config, MASKS[layout])
        traced(tf.constant(inputs["input_ids"]), tf.constant(inputs["attention_mask"]))
    assert traced.experimental_get_tracing_count() == 1  # the token count is a dynamic dimension of the graph


@pytest.mark.parametrize("layout", ["right", "left", "holes", "fully_padded_row"])
def test_tf_function_plan_drops_the_padding(config_factory, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """Under ``tf.function`` the plan keeps the same tokens as eagerly: Grappler's rewrites (a division by
    float32.min became a multiplication by its subnormal reciprocal, flushed to zero) must not turn the
    graph back into a padded run that gives the same numbers slower."""
    config = config_factory("tiny")
    model = TFRemBertForSequenceClassification(config)
    plans: list[kernels.Unpadded] = []
    planner = kernels.plan_unpadding

    def recording(mask: tf.Tensor, keep: tf.Tensor | None = None) -> kernels.Unpadded:
        plans.append(planner(mask, keep))
        return plans[-1]

    monkeypatch.setattr(kernels, "plan_unpadding", recording)
    inputs = {k: tf.constant(v) for k, v in _inputs(config, MASKS[layout]).items()}

    def kept(x: dict[str, tf.Tensor]) -> tf.Tensor:
        model(**x)
        return tf.size(plans[-1].index)

    mask = MASKS[layout]
    rows_with_keys = mask.any(axis=1)
    expected = int(np.where(rows_with_keys[:, None], (mask != 0) | (np.arange(SEQ) == 0), True).sum())
    assert int(kept(inputs)) == expected
    assert int(tf.function(kept)(inputs)) == expected


# -- transformers' TF classes (tf-keras, in a subprocess) --------------------------------------------

REFERENCE_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import transformers

    root = sys.argv[1]
    data = np.load(root + "/inputs.npz")
    out = {}
    for task, arch in (("sequence_classification", "TFRemBertForSequenceClassification"),
                       ("multiple_choice", "TFRemBertForMultipleChoice")):
        model = getattr(transformers, arch).from_pretrained(root + "/" + task, from_pt=True)
        for key in data.files:
            layout, name = key.split("__")
            if name != "input_ids":
                continue
            x = {n: data[layout + "__" + n] for n in ("input_ids", "attention_mask", "token_type_ids")}
            if task == "multiple_choice":
                x = {n: v.reshape(2, 2, -1) for n, v in x.items()}
            out[task + "__" + layout] = model(x).logits.numpy()
    np.savez(root + "/reference.npz", **out)
    """
)


@pytest.mark.oracle
def test_against_transformers_tf_classes(config_factory, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("torch")  # from_pt: the reference TF classes load our safetensors through PyTorch
    pytest.importorskip("tf_keras")
    config = config_factory("odd")
    models = {
        "sequence_classification": TFRemBertForSequenceClassification(config),
        "multiple_choice": TFRemBertForMultipleChoice(config),
    }
    for task, model in models.items():
        model.save_pretrained(tmp_path / task)
    arrays = {}
    for layout, mask in MASKS.items():
        for name, value in _inputs(config, mask, seed=5).items():
            arrays[f"{layout}__{name}"] = value
    np.savez(tmp_path / "inputs.npz", **arrays)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = np.load(tmp_path / "reference.npz")
    for layout in MASKS:
        if layout == "fully_padded_row":  # the TF reference masks with -1e4, not float32.min (module docstring)
            continue
        x = {n: arrays[f"{layout}__{n}"] for n in ("input_ids", "attention_mask", "token_type_ids")}
        for task, model in models.items():
            inputs = _choices(x) if task == "multiple_choice" else x
            assert_close(
                model(**inputs).logits.numpy(), expected[f"{task}__{layout}"], name=f"{task} {layout} vs transformers"
            )
