"""Every class against the reference (transformers 4.57): outputs, losses and gradients with the same weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rembert_torch
from rembert_core import TASKS

pytestmark = pytest.mark.oracle

CHOICES = 3


def _overrides(task: str) -> dict[str, Any]:
    if task == "causal_lm":
        return {"is_decoder": True}
    if task in ("sequence_classification", "token_classification"):
        return {"num_labels": 3}
    return {}


def _inputs(task: str, cfg: dict[str, Any], batch_factory: Any, seed: int = 0) -> dict[str, torch.Tensor]:
    """Padded inputs (a fully padded row included) with token types and the task's labels."""
    gen = torch.Generator().manual_seed(seed + 100)
    if task == "multiple_choice":
        flat = batch_factory(cfg, batch=2 * CHOICES, seq=6, seed=seed)
        inputs = {k: v.view(2, CHOICES, 6) for k, v in flat.items()}
        inputs["labels"] = torch.tensor([2, 0])
        return inputs
    inputs = batch_factory(cfg, batch=3, seq=7, seed=seed)
    batch, seq = inputs["input_ids"].shape
    if task in ("masked_lm", "causal_lm"):
        labels = torch.randint(0, cfg["vocab_size"], (batch, seq), generator=gen)
        labels[0, 1] = -100
        labels[1, seq - 2 :] = -100
        inputs["labels"] = labels
    elif task == "sequence_classification":
        inputs["labels"] = torch.tensor([0, 2, 1])
    elif task == "token_classification":
        labels = torch.randint(0, 3, (batch, seq), generator=gen)
        labels[1, seq - 2 :] = -100
        inputs["labels"] = labels
    elif task == "question_answering":
        inputs["start_positions"] = torch.tensor([1, seq + 5, 3])  # out of range: ignored
        inputs["end_positions"] = torch.tensor([4, 2, seq])  # seq: clamped and ignored
    return inputs


def _legacy(value: Any) -> Any:
    """The reference's cache object as our plain per-layer tuples (its empty cross entries dropped)."""
    to_legacy = getattr(value, "to_legacy_cache", None)
    if not callable(to_legacy):
        return value
    return tuple(tuple(t for t in layer if t is not None) for layer in to_legacy())


def _load_pair(transformers_mod: Any, path: Any, task: str) -> tuple[Any, Any]:
    name = {
        "base": "RemBertModel",
        "masked_lm": "RemBertForMaskedLM",
        "causal_lm": "RemBertForCausalLM",
        "sequence_classification": "RemBertForSequenceClassification",
        "multiple_choice": "RemBertForMultipleChoice",
        "token_classification": "RemBertForTokenClassification",
        "question_answering": "RemBertForQuestionAnswering",
    }[task]
    ref = getattr(transformers_mod, name).from_pretrained(path).eval()
    ours = getattr(rembert_torch, name).from_pretrained(path)
    return ref, ours


@pytest.mark.parametrize("config_name", ["odd", "wide", "relu"])
@pytest.mark.parametrize("task", TASKS)
def test_outputs_losses_and_gradients_match_reference(
    task: str,
    config_name: str,
    transformers_mod: Any,
    reference_checkpoint: Any,
    batch_factory: Any,
    close: Any,
    configs: Any,
) -> None:
    overrides = _overrides(task)
    cfg = {**configs[config_name], **overrides}
    path = reference_checkpoint(task, config_name, **overrides)
    ref, ours = _load_pair(transformers_mod, path, task)
    inputs = _inputs(task, cfg, batch_factory)

    # Every output field, eager attention path (attention probabilities requested).
    expected = ref(**inputs, output_hidden_states=True, output_attentions=True)
    actual = ours(**inputs, output_hidden_states=True, output_attentions=True)
    assert list(actual.keys()) == list(expected.keys())
    for key in expected:
        quantity = (
            "attentions" if key in ("attentions", "cross_attentions") else "loss" if key == "loss" else "activations"
        )
        close(actual[key], _legacy(expected[key]), quantity=quantity, name=f"{task}/{config_name}/{key}")
    if task == "base":
        assert len(actual.hidden_states) == cfg["num_hidden_layers"] + 1

    # The main (SDPA) path: outputs and gradients of the loss w.r.t. every parameter.
    expected = ref(**inputs)
    actual = ours(**inputs)
    for key in expected:
        close(actual[key], _legacy(expected[key]), name=f"{task}/{config_name}/sdpa/{key}")
    if task == "base":
        loss_ref = expected.last_hidden_state.square().mean() + expected.pooler_output.sum()
        loss_ours = actual.last_hidden_state.square().mean() + actual.pooler_output.sum()
    else:
        loss_ref, loss_ours = expected.loss, actual.loss
    loss_ref.backward()
    loss_ours.backward()
    ref_params = dict(ref.named_parameters())
    our_params = dict(ours.named_parameters())
    assert list(our_params) == list(ref_params)
    for name, param in our_params.items():
        ref_grad = ref_params[name].grad
        if ref_grad is None:
            assert param.grad is None or not param.grad.any(), name
            continue
        assert param.grad is not None, f"no gradient for {name}"
        close(param.grad, ref_grad, quantity="gradients", name=f"{task}/{config_name}/grad/{name}")


@pytest.mark.parametrize("task", TASKS)
def test_tuple_outputs_match_reference(
    task: str, transformers_mod: Any, reference_checkpoint: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    overrides = _overrides(task)
    cfg = {**configs["odd"], **overrides}
    ref, ours = _load_pair(transformers_mod, reference_checkpoint(task, "odd", **overrides), task)
    inputs = _inputs(task, cfg, batch_factory, seed=1)
    expected = ref(**inputs, output_hidden_states=True, return_dict=False)
    actual = ours(**inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(actual, tuple)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e is None:
            assert a is None, f"element {i}"
        else:
            close(a, _legacy(e), name=f"{task}/tuple[{i}]")


@pytest.mark.parametrize(
    ("num_labels", "problem_type", "labels"),
    [
        (1, None, torch.tensor([0.5, -1.0, 2.0])),
        (3, None, torch.tensor([2, 0, 1])),
        (3, None, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])),
        (4, "regression", torch.randn(3, 4, generator=torch.Generator().manual_seed(3))),
        (3, "single_label_classification", torch.tensor([1, 1, 0], dtype=torch.int32)),
    ],
    ids=["regression-inferred", "single-label-inferred", "multi-label-inferred", "regression-4", "single-int32"],
)
def test_sequence_classification_problem_types(
    num_labels: int,
    problem_type: str | None,
    labels: torch.Tensor,
    transformers_mod: Any,
    reference_checkpoint: Any,
    batch_factory: Any,
    close: Any,
    configs: Any,
) -> None:
    overrides: dict[str, Any] = {"num_labels": num_labels}
    if problem_type is not None:
        overrides["problem_type"] = problem_type
    path = reference_checkpoint("sequence_classification", "odd", **overrides)
    ref, ours = _load_pair(transformers_mod, path, "sequence_classification")
    inputs = batch_factory(configs["odd"], batch=3, seq=5)
    # The reference's cross-entropy rejects int32 targets; ours accepts them (as int64).
    expected = ref(**inputs, labels=labels.long() if labels.dtype == torch.int32 else labels)
    actual = ours(**inputs, labels=labels)
    close(actual.logits, expected.logits, name="logits")
    close(actual.loss, expected.loss, quantity="loss", name="loss")
    assert ours.config.problem_type == ref.config.problem_type
    expected.loss.backward()
    actual.loss.backward()
    close(ours.classifier.weight.grad, ref.classifier.weight.grad, quantity="gradients", name="classifier grad")


def test_inputs_embeds_position_ids_and_head_mask_match_reference(
    transformers_mod: Any, reference_checkpoint: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    cfg = configs["odd"]
    ref, ours = _load_pair(transformers_mod, reference_checkpoint("base", "odd"), "base")
    inputs = batch_factory(cfg, batch=3, seq=6, seed=4)
    embeds = torch.randn(3, 6, cfg["input_embedding_size"], generator=torch.Generator().manual_seed(5))
    positions = torch.tensor([[5, 4, 3, 2, 1, 0], [0, 2, 4, 6, 8, 10], [1, 1, 1, 1, 1, 1]])
    head_mask = torch.ones(cfg["num_hidden_layers"], cfg["num_attention_heads"])
    head_mask[0, 1] = 0.0
    head_mask[1, 4] = 0.5
    kwargs = {
        "inputs_embeds": embeds,
        "attention_mask": inputs["attention_mask"],
        "token_type_ids": inputs["token_type_ids"],
        "position_ids": positions,
        "output_attentions": True,
    }
    for mask in (head_mask, head_mask[1]):
        expected = ref(**kwargs, head_mask=mask)
        actual = ours(**kwargs, head_mask=mask)
        for key in expected:
            close(actual[key], expected[key], name=f"head_mask {tuple(mask.shape)} {key}")
    # A 3-D attention mask (batch, seq, seq) is used as given.
    mask3 = torch.tril(torch.ones(3, 6, 6, dtype=torch.long))
    expected = ref(inputs["input_ids"], attention_mask=mask3)
    actual = ours(inputs["input_ids"], attention_mask=mask3)
    close(actual.last_hidden_state, expected.last_hidden_state, name="3-D mask")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_matches_reference(
    dtype: str, transformers_mod: Any, reference_checkpoint: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    torch_dtype = getattr(torch, dtype)
    path = reference_checkpoint("masked_lm", "odd")
    ref = transformers_mod.RemBertForMaskedLM.from_pretrained(path, dtype=torch_dtype).eval()
    ours = rembert_torch.RemBertForMaskedLM.from_pretrained(path, torch_dtype=torch_dtype)
    assert all(p.dtype == torch_dtype for p in ours.parameters())
    inputs = batch_factory(configs["odd"], batch=3, seq=7)
    labels = inputs["input_ids"].clone()
    expected = ref(**inputs, labels=labels, output_hidden_states=True)
    actual = ours(**inputs, labels=labels, output_hidden_states=True)
    assert actual.logits.dtype == torch_dtype
    assert not torch.isnan(actual.logits).any()
    close(actual.logits, expected.logits, dtype=dtype, name=f"{dtype} logits")
    close(actual.hidden_states, expected.hidden_states, dtype=dtype, name=f"{dtype} hidden_states")
    close(actual.loss, expected.loss, dtype=dtype, quantity="loss", name=f"{dtype} loss")


@given(data=st.data())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_batches_match_reference(
    data: Any, transformers_mod: Any, reference_checkpoint: Any, close: Any, configs: Any
) -> None:
    """Random batch sizes, lengths, padding patterns, token types and positions, MLM and token classification."""
    task = data.draw(st.sampled_from(["masked_lm", "token_classification"]), label="task")
    config_name = data.draw(st.sampled_from(["odd", "wide"]), label="config")
    cfg = {**configs[config_name], **_overrides(task)}
    ref, ours = _load_pair(transformers_mod, reference_checkpoint(task, config_name, **_overrides(task)), task)
    batch = data.draw(st.integers(1, 4), label="batch")
    seq = data.draw(st.integers(1, cfg["max_position_embeddings"]), label="seq")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, seq + 1, (batch,), generator=gen)  # 0: a fully padded row
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    if data.draw(st.booleans(), label="left padding"):
        mask = mask.flip(-1)
    inputs: dict[str, Any] = {
        "input_ids": torch.randint(0, cfg["vocab_size"], (batch, seq), generator=gen),
        "attention_mask": mask,
        "token_type_ids": torch.randint(0, cfg["type_vocab_size"], (batch, seq), generator=gen),
    }
    if data.draw(st.booleans(), label="position ids"):
        inputs["position_ids"] = torch.randint(0, cfg["max_position_embeddings"], (batch, seq), generator=gen)
    classes = cfg["vocab_size"] if task == "masked_lm" else 3
    labels = torch.randint(0, classes, (batch, seq), generator=gen).masked_fill(mask == 0, -100)
    expected = ref(**inputs, labels=labels, output_hidden_states=True)
    actual = ours(**inputs, labels=labels, output_hidden_states=True)
    for key in expected.keys():  # noqa: SIM118
        close(actual[key], expected[key], quantity="loss" if key == "loss" else "activations", name=key)
