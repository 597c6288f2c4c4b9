"""rembert-tf against the reference: transformers 4.57 PyTorch outputs, its tf_model.h5 files, and the way back.

* checkpoints saved by transformers' PyTorch classes (random weights, several configs incl. odd sizes)
  load into rembert-tf, and every output field of every head (last_hidden_state, pooler_output,
  hidden_states, attentions, cross_attentions, past_key_values, logits, loss) agrees with the reference
  PyTorch outputs on padded batches with token types, within the float32 cross-framework tolerance;
* greedy ``generate`` equals transformers' ``generate(do_sample=False)``;
* ``tf_model.h5`` written by transformers' TF classes (tf-keras, in a subprocess) loads;
* rembert-tf's ``save_pretrained`` output loads in transformers' PyTorch classes with the same outputs;
* the ``tf`` backend's gradients equal PyTorch's gradients.
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

from rembert_core.tolerances import assert_close, max_diffs

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytestmark = pytest.mark.oracle

import tensorflow as tf  # noqa: E402

import rembert_tf  # noqa: E402
from rembert_tf.plugin import TFBackend  # noqa: E402

ARCHS = {
    "base": "RemBertModel",
    "masked_lm": "RemBertForMaskedLM",
    "causal_lm": "RemBertForCausalLM",
    "sequence_classification": "RemBertForSequenceClassification",
    "multiple_choice": "RemBertForMultipleChoice",
    "token_classification": "RemBertForTokenClassification",
    "question_answering": "RemBertForQuestionAnswering",
}

CONFIGS: dict[str, dict[str, Any]] = {
    # the odd sizes: head_dim 8 over 6 heads, input 20 / output 36 embeddings, vocab 301, 3 token types
    "odd": dict(
        vocab_size=301,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=6,
        input_embedding_size=20,
        output_embedding_size=36,
        intermediate_size=52,
        type_vocab_size=3,
        max_position_embeddings=64,
        hidden_act="gelu",
    ),
    "wide": dict(
        vocab_size=250,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        input_embedding_size=32,
        output_embedding_size=40,
        intermediate_size=96,
        type_vocab_size=2,
        max_position_embeddings=48,
        hidden_act="gelu",
    ),
}
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0)

# Measured max abs differences, printed at the end of the session (-s) for the report.
MEASURED: dict[str, float] = {}


def _quantity(key: str) -> str:
    if key == "loss":
        return "loss"
    return "attentions" if "attentions" in key else "activations"


def _compare(name: str, actual: Any, expected: Any, quantity: str) -> None:
    actual = np.asarray(tf.cast(actual, tf.float32)) if isinstance(actual, tf.Tensor) else np.asarray(actual)
    expected = expected.detach().float().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert_close(actual, expected, quantity=quantity, name=name)
    MEASURED[quantity] = max(MEASURED.get(quantity, 0.0), max_diffs(actual, expected)[0])


def _compare_outputs(prefix: str, ours: Any, ref: Any) -> set[str]:
    compared = set()
    for key, expected in ref.items():
        if expected is None:
            continue
        if key == "past_key_values":
            legacy = expected.to_legacy_cache() if hasattr(expected, "to_legacy_cache") else expected
            assert len(ours[key]) == len(legacy)
            for i, (mine, theirs) in enumerate(zip(ours[key], legacy, strict=True)):
                assert len(mine) == len(theirs), f"{prefix} past_key_values[{i}] entries"
                for j, (a, b) in enumerate(zip(mine, theirs, strict=True)):
                    _compare(f"{prefix} past_key_values[{i}][{j}]", a, b, "activations")
        elif isinstance(expected, tuple):
            assert len(ours[key]) == len(expected), f"{prefix} {key} length"
            for i, (a, b) in enumerate(zip(ours[key], expected, strict=True)):
                _compare(f"{prefix} {key}[{i}]", a, b, _quantity(key))
        else:
            _compare(f"{prefix} {key}", ours[key], expected, _quantity(key))
        compared.add(key)
    assert set(ours.keys()) == compared, f"{prefix}: fields differ: ours {set(ours.keys())}, reference {compared}"
    return compared


def _task_kwargs(task: str, config_name: str) -> dict[str, Any]:
    kwargs = {**CONFIGS[config_name], **NO_DROPOUT, "num_labels": 3}
    if task == "causal_lm":
        kwargs.update(is_decoder=True, add_cross_attention=True)
    if task == "question_answering":
        kwargs["num_labels"] = 2
    return kwargs


def _batch(config: dict[str, Any], task: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch, seq = 3, 10
    ids = rng.integers(1, config["vocab_size"], size=(batch, seq))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0  # pad id
    types = rng.integers(0, config["type_vocab_size"], size=(batch, seq))
    inputs: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if task == "multiple_choice":
        other = _batch(config, "base", seed + 1)
        inputs = {k: np.stack([v, other[k]], axis=1) for k, v in inputs.items()}
        inputs["labels"] = np.array([1, 0, 1])
    elif task in ("masked_lm", "causal_lm"):
        inputs["labels"] = np.where(mask == 1, ids, -100)
    elif task == "sequence_classification":
        inputs["labels"] = np.array([2, 0, 1])
    elif task == "token_classification":
        inputs["labels"] = np.where(mask == 1, rng.integers(0, 3, size=ids.shape), -100)
    elif task == "question_answering":
        inputs["start_positions"] = np.array([1, 40, 3])  # 40: outside, clamped and ignored
        inputs["end_positions"] = np.array([4, 2, -2])  # -2: clamped to 0
    if task == "causal_lm":
        inputs["encoder_hidden_states"] = rng.standard_normal((batch, 4, config["hidden_size"])).astype(np.float32)
        inputs["encoder_attention_mask"] = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]])
    return inputs


def _torch_inputs(inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: torch.tensor(v) for k, v in inputs.items()}


def _reference_model(task: str, config_name: str, directory: Path, shard: bool = False) -> Any:
    torch.manual_seed(hash((task, config_name)) % 2**31)
    config = transformers.RemBertConfig(**_task_kwargs(task, config_name))
    model = getattr(transformers, ARCHS[task])(config).eval()
    with torch.no_grad():  # give biases and LayerNorms non-trivial values
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                param.add_(0.05 * torch.randn_like(param))
    model.save_pretrained(directory, max_shard_size="60KB" if shard else "5GB")
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[Any, Path]]:
    root = tmp_path_factory.mktemp("tf_reference")
    out = {}
    for config_name in CONFIGS:
        for task in ARCHS:
            directory = root / f"{config_name}-{task}"
            shard = config_name == "wide" and task in ("masked_lm", "base")
            out[(config_name, task)] = (_reference_model(task, config_name, directory, shard), directory)
    return out


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("task", list(ARCHS))
def test_pytorch_checkpoint_every_field_agrees(checkpoints, task, config_name):
    pt_model, directory = checkpoints[(config_name, task)]
    if config_name == "wide" and task in ("masked_lm", "base"):
        assert (directory / "model.safetensors.index.json").is_file()
    cls = getattr(rembert_tf, "TF" + ARCHS[task])
    model, info = cls.from_pretrained(directory, output_loading_info=True)
    assert info["newly_initialized"] == [] and info["unexpected_keys"] == []
    inputs = _batch(_task_kwargs(task, config_name), task)
    flags = dict(output_hidden_states=True, output_attentions=True)
    if task in ("base", "causal_lm"):
        flags["use_cache"] = task == "causal_lm"
    with torch.no_grad():
        ref = pt_model(**_torch_inputs(inputs), **flags)
    ours = model(**inputs, **flags)
    compared = _compare_outputs(f"{config_name}/{task}", ours, ref)
    if task != "base":
        assert "loss" in compared
    if task == "causal_lm":
        assert {"past_key_values", "cross_attentions"} <= compared


@pytest.mark.parametrize("problem", ["multi_label_classification", "regression"])
def test_sequence_classification_other_losses(tmp_path, problem):
    torch.manual_seed(3)
    num_labels = 1 if problem == "regression" else 3
    config = transformers.RemBertConfig(**{**CONFIGS["odd"], **NO_DROPOUT, "num_labels": num_labels})
    pt_model = transformers.RemBertForSequenceClassification(config).eval()
    pt_model.save_pretrained(tmp_path)
    model = rembert_tf.TFRemBertForSequenceClassification.from_pretrained(tmp_path)
    inputs = _batch(_task_kwargs("base", "odd"), "base")
    rng = np.random.default_rng(5)
    labels = (
        (rng.random((3, 3)) > 0.5).astype(np.float32)
        if problem == "multi_label_classification"
        else rng.standard_normal(3).astype(np.float32)
    )
    with torch.no_grad():
        ref = pt_model(**_torch_inputs(inputs), labels=torch.tensor(labels))
    ours = model(**inputs, labels=labels)
    assert config.problem_type == problem  # the reference inferred it (and mutated its config)
    _compare(f"{problem} loss", ours.loss, ref.loss, "loss")
    _compare(f"{problem} logits", ours.logits, ref.logits, "activations")


def test_head_mask_and_inputs_embeds_agree(checkpoints):
    pt_model, directory = checkpoints[("odd", "base")]
    model = rembert_tf.TFRemBertModel.from_pretrained(directory)
    inputs = _batch(_task_kwargs("base", "odd"), "base")
    head_mask = np.random.default_rng(2).random((2, 6)).astype(np.float32)
    embeds = pt_model.embeddings.word_embeddings(torch.tensor(inputs["input_ids"])).detach()
    with torch.no_grad():
        ref = pt_model(
            inputs_embeds=embeds,
            attention_mask=torch.tensor(inputs["attention_mask"]),
            token_type_ids=torch.tensor(inputs["token_type_ids"]),
            head_mask=torch.tensor(head_mask),
            output_attentions=True,
            output_hidden_states=True,
        )
    ours = model(
        inputs_embeds=embeds.numpy(),
        attention_mask=inputs["attention_mask"],
        token_type_ids=inputs["token_type_ids"],
        head_mask=head_mask,
        output_attentions=True,
        output_hidden_states=True,
    )
    _compare_outputs("head_mask", ours, ref)


def test_incremental_decoding_agrees_with_reference_cache(checkpoints):
    pt_model, directory = checkpoints[("odd", "causal_lm")]
    model = rembert_tf.TFRemBertForCausalLM.from_pretrained(directory)
    inputs = _batch(_task_kwargs("causal_lm", "odd"), "causal_lm")
    enc = {k: inputs[k] for k in ("encoder_hidden_states", "encoder_attention_mask")}
    ids, mask = inputs["input_ids"][:, :6], np.ones((3, 6), np.int64)
    with torch.no_grad():
        first = pt_model(input_ids=torch.tensor(ids), **_torch_inputs(enc), use_cache=True)
        step = pt_model(
            input_ids=torch.tensor(inputs["input_ids"][:, 6:8]),
            attention_mask=torch.ones(3, 8, dtype=torch.long),
            past_key_values=first.past_key_values,
            **_torch_inputs(enc),
            use_cache=True,
            output_attentions=True,
        )
    ours_first = model(input_ids=ids, attention_mask=mask, **enc, use_cache=True)
    ours_step = model(
        input_ids=inputs["input_ids"][:, 6:8],
        attention_mask=np.ones((3, 8)),
        past_key_values=ours_first.past_key_values,
        **enc,
        use_cache=True,
        output_attentions=True,
    )
    _compare_outputs("cached step", ours_step, step)


@pytest.mark.parametrize("padded", [False, True])
def test_greedy_generate_matches_transformers(checkpoints, padded):
    pt_model, directory = checkpoints[("odd", "causal_lm")]
    torch.manual_seed(0)
    config = transformers.RemBertConfig(**{**_task_kwargs("causal_lm", "odd"), "add_cross_attention": False})
    pt_model = transformers.RemBertForCausalLM(config).eval()
    pt_model.save_pretrained(directory.parent / "generate")
    model = rembert_tf.TFRemBertForCausalLM.from_pretrained(directory.parent / "generate")
    prompt = np.array([[5, 17, 42, 8], [7, 8, 9, 10]])
    mask = np.ones_like(prompt)
    if padded:
        prompt[1, :2] = 0
        mask[1, :2] = 0  # left padding
    with torch.no_grad():
        expected = pt_model.generate(
            torch.tensor(prompt),
            attention_mask=torch.tensor(mask),
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        ).numpy()
    ours = model.generate(prompt, attention_mask=mask, max_new_tokens=8, eos_token_id=None, pad_token_id=0).numpy()
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("task", list(ARCHS))
def test_our_save_pretrained_loads_in_transformers(tmp_path, task):
    kwargs = _task_kwargs(task, "odd")
    config = rembert_tf.RemBertConfig(**kwargs)
    model = getattr(rembert_tf, "TF" + ARCHS[task])(config)
    model.save_pretrained(tmp_path)
    pt_model = getattr(transformers, ARCHS[task]).from_pretrained(tmp_path).eval()
    assert pt_model.config.architectures == [ARCHS[task]]
    inputs = _batch(kwargs, task)
    flags = dict(output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        ref = pt_model(**_torch_inputs(inputs), **flags)
    if task in ("base", "causal_lm"):
        flags["use_cache"] = task == "causal_lm"
    _compare_outputs(f"saved {task}", model(**inputs, **flags), ref)


@pytest.mark.parametrize("task", ["masked_lm", "sequence_classification", "question_answering", "causal_lm"])
def test_backend_gradients_equal_pytorch_gradients(checkpoints, task):
    pt_model, directory = checkpoints[("odd", task)]
    backend = TFBackend()
    model = getattr(rembert_tf, "TF" + ARCHS[task]).from_pretrained(directory)
    inputs = _batch(_task_kwargs(task, "odd"), task)
    loss, grads = backend.gradients(model, inputs)
    pt_model.zero_grad()
    out = pt_model(**_torch_inputs(inputs))
    out.loss.backward()
    _compare(f"{task} loss", np.float32(loss), out.loss, "loss")
    assert set(grads) == {name for name, _ in pt_model.named_parameters()}
    for name, param in pt_model.named_parameters():
        expected = param.grad if param.grad is not None else torch.zeros_like(param)
        assert_close(grads[name], expected.numpy(), quantity="gradients", name=f"{task} grad {name}")
        MEASURED["gradients"] = max(MEASURED.get("gradients", 0.0), max_diffs(grads[name], expected.numpy())[0])


# -- tf_model.h5 written by transformers' TensorFlow classes -----------------------------------------

H5_TASKS = ["base", "masked_lm", "sequence_classification", "multiple_choice", "question_answering", "causal_lm"]


@pytest.fixture(scope="module")
def h5_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For each task: tf/ (tf_model.h5 by transformers' TF classes) and pt/ (the same weights in PyTorch)."""
    root = tmp_path_factory.mktemp("tf_h5")
    tasks = {task: ARCHS[task] for task in H5_TASKS}
    configs = {task: _task_kwargs(task, "odd") for task in H5_TASKS}
    script = textwrap.dedent(
        f"""
        import transformers
        from transformers.modeling_tf_pytorch_utils import load_tf2_checkpoint_in_pytorch_model

        for task, arch in {tasks!r}.items():
            config = transformers.RemBertConfig(**{configs!r}[task])
            tf_model = getattr(transformers, "TF" + arch)(config)
            tf_model(tf_model.dummy_inputs)
            tf_model.save_pretrained("{root}/" + task + "/tf")
            pt_model = getattr(transformers, arch)(config)
            load_tf2_checkpoint_in_pytorch_model(pt_model, "{root}/" + task + "/tf/tf_model.h5")
            pt_model.save_pretrained("{root}/" + task + "/pt")
        """
    )
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.parametrize("task", H5_TASKS)
def test_transformers_tf_model_h5_loads(h5_dirs, task):
    tf_dir = h5_dirs / task / "tf"
    assert (tf_dir / "tf_model.h5").is_file() and not (tf_dir / "model.safetensors").exists()
    cls = getattr(rembert_tf, "TF" + ARCHS[task])
    model, info = cls.from_pretrained(tf_dir, output_loading_info=True)
    assert info["newly_initialized"] == []
    pt_model = getattr(transformers, ARCHS[task]).from_pretrained(h5_dirs / task / "pt").eval()
    inputs = _batch(_task_kwargs(task, "odd"), task)
    flags = dict(output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        ref = pt_model(**_torch_inputs(inputs), **flags)
    if task in ("base", "causal_lm"):
        flags["use_cache"] = task == "causal_lm"
    _compare_outputs(f"h5 {task}", model(**inputs, **flags), ref)


@pytest.mark.parametrize("hidden_act", ["relu", "gelu_new", "silu"])
def test_variants_activation_positions_and_3d_masks(tmp_path, hidden_act):
    torch.manual_seed(11)
    kwargs = {**CONFIGS["odd"], **NO_DROPOUT, "hidden_act": hidden_act, "num_hidden_layers": 1}
    pt_model = transformers.RemBertForMaskedLM(transformers.RemBertConfig(**kwargs)).eval()
    pt_model.save_pretrained(tmp_path)
    model = rembert_tf.TFRemBertForMaskedLM.from_pretrained(tmp_path)
    inputs = _batch(kwargs, "base", seed=4)
    rng = np.random.default_rng(7)
    positions = rng.integers(0, kwargs["max_position_embeddings"], size=inputs["input_ids"].shape)
    mask3d = (rng.random((3, 10, 10)) > 0.3).astype(np.float32)
    mask3d[:, :, 0] = 1.0  # every query sees at least one key
    for name, extra in (
        ("position_ids", {"position_ids": positions}),
        ("3-D float mask", {"attention_mask": mask3d}),
        ("batch of one", {k: v[:1] for k, v in inputs.items()}),
    ):
        feed = {**inputs, **extra}
        with torch.no_grad():
            ref = pt_model(**_torch_inputs(feed), output_hidden_states=True, output_attentions=True)
        ours = model(**feed, output_hidden_states=True, output_attentions=True)
        _compare_outputs(f"{hidden_act} {name}", ours, ref)


def test_zz_report_measured_differences(capsys):
    """Print the largest differences measured above (run with -s to see them)."""
    with capsys.disabled():
        print("\nrembert-tf vs reference, max abs differences:", {k: f"{v:.2e}" for k, v in sorted(MEASURED.items())})
