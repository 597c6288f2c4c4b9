"""Random configurations and random inputs, both frameworks against the reference (transformers 4.57, PyTorch).

The other oracle tests use a few hand-picked configurations. Here each seed draws a whole case: a head, a
configuration (1-4 heads of 2-8 dimensions, 1-3 layers, input and output embedding sizes unrelated to the
hidden size, every ``hidden_act``, three layer-norm epsilons, 1-3 token types, decoder and cross-attention
variants), a batch (1-4 rows, 1 to ``max_position_embeddings`` tokens, right or left padding, fully padded
rows, optional token types, position ids, head masks and input embeddings) and the head's labels
(classification problem types included). The reference model is built from the configuration with random
weights and saved; ours loads the saved directory. Every output field must agree within the tolerance
table; in PyTorch the gradients of every parameter and one step of cached decoding too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rembert_core import ARCHITECTURES
from rembert_core.tolerances import assert_close

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.oracle

CLASS_NAMES = ARCHITECTURES  # task -> reference class name (ours: the same, with "TF" in front in rembert-tf)
ACTIVATIONS = ["gelu", "relu", "gelu_new", "silu", "gelu_pytorch_tanh", "swish"]
PROBLEM_TYPES = [None, "single_label_classification", "multi_label_classification", "regression"]


@dataclass
class Case:
    task: str
    config: dict[str, Any]
    inputs: dict[str, Any]  # torch tensors
    options: dict[str, bool]  # output_attentions, output_hidden_states, use_cache
    problem_type: str | None = None

    def __str__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.inputs.items()}
        return f"{self.task} {self.config} inputs={shapes} options={self.options} problem_type={self.problem_type}"


def draw_case(seed: int) -> Case:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    task = rng.choice(list(CLASS_NAMES))
    heads = rng.choice([1, 2, 3, 4])
    is_decoder = task == "causal_lm" or (task == "base" and rng.random() < 0.3)
    config = dict(
        vocab_size=rng.randint(10, 120),
        hidden_size=heads * rng.choice([2, 4, 5, 8]),
        num_hidden_layers=rng.randint(1, 3),
        num_attention_heads=heads,
        input_embedding_size=rng.randint(3, 20),
        output_embedding_size=rng.randint(3, 20),
        intermediate_size=rng.randint(3, 40),
        max_position_embeddings=rng.randint(8, 40),
        type_vocab_size=rng.randint(1, 3),
        hidden_act=rng.choice(ACTIVATIONS),
        layer_norm_eps=rng.choice([1e-12, 1e-5, 1e-3]),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
        num_labels=2 if task == "question_answering" else rng.randint(1, 4),
        is_decoder=is_decoder,
        add_cross_attention=is_decoder and rng.random() < 0.4,
        initializer_range=rng.choice([0.02, 0.2]),
    )
    batch, seq = rng.randint(1, 4), rng.randint(1, config["max_position_embeddings"])
    inputs: dict[str, Any] = {}
    if rng.random() < 0.15:
        inputs["inputs_embeds"] = torch.randn(batch, seq, config["input_embedding_size"], generator=gen)
    else:
        inputs["input_ids"] = torch.randint(0, config["vocab_size"], (batch, seq), generator=gen)
    if rng.random() < 0.7:
        lowest = 0 if rng.random() < 0.5 else 1  # 0: fully padded rows may occur
        lengths = torch.randint(lowest, seq + 1, (batch,), generator=gen)
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()  # (batch, seq)
        inputs["attention_mask"] = mask.flip(-1) if rng.random() < 0.3 else mask
    if rng.random() < 0.6:
        inputs["token_type_ids"] = torch.randint(0, config["type_vocab_size"], (batch, seq), generator=gen)
    if rng.random() < 0.2:
        inputs["position_ids"] = torch.randint(0, config["max_position_embeddings"], (batch, seq), generator=gen)
    if rng.random() < 0.2:
        inputs["head_mask"] = (torch.rand(config["num_hidden_layers"], heads, generator=gen) > 0.3).float()
    if config["add_cross_attention"]:
        length = rng.randint(1, 6)
        inputs["encoder_hidden_states"] = torch.randn(batch, length, config["hidden_size"], generator=gen)
        if rng.random() < 0.5:
            inputs["encoder_attention_mask"] = (torch.rand(batch, length, generator=gen) > 0.3).long()

    problem_type = None
    if task == "multiple_choice":
        choices = rng.randint(1, 3)
        for name, value in list(inputs.items()):  # (batch, ...) -> (batch, choices, ...)
            if name != "head_mask":
                inputs[name] = value.unsqueeze(1).expand(batch, choices, *value.shape[1:]).contiguous()
        inputs["labels"] = torch.randint(0, choices, (batch,), generator=gen)
    elif task in ("masked_lm", "causal_lm") and rng.random() < 0.8:
        labels = torch.randint(0, config["vocab_size"], (batch, seq), generator=gen)
        inputs["labels"] = labels.masked_fill(torch.rand(batch, seq, generator=gen) < 0.3, -100)
    elif task == "sequence_classification":
        labels_n = config["num_labels"]
        problem_type = rng.choice(PROBLEM_TYPES)
        if problem_type == "regression" or (problem_type is None and labels_n == 1):
            shape = (batch, labels_n) if labels_n > 1 else (batch,)
            inputs["labels"] = torch.randn(*shape, generator=gen)
        elif problem_type == "multi_label_classification":
            inputs["labels"] = (torch.rand(batch, labels_n, generator=gen) > 0.5).float()
        else:
            inputs["labels"] = torch.randint(0, labels_n, (batch,), generator=gen)
    elif task == "token_classification":
        inputs["labels"] = torch.randint(0, config["num_labels"], (batch, seq), generator=gen)
    elif task == "question_answering":  # positions past the end are clamped and ignored
        inputs["start_positions"] = torch.randint(0, seq + 3, (batch,), generator=gen)
        inputs["end_positions"] = torch.randint(0, seq + 3, (batch,), generator=gen)
    options = {"output_attentions": rng.random() < 0.5, "output_hidden_states": rng.random() < 0.5}
    if is_decoder and task in ("base", "causal_lm") and rng.random() < 0.5:
        options["use_cache"] = True
    return Case(task, config, inputs, options, problem_type)


def reference_model(case: Case, seed: int, directory: Path) -> Any:
    torch.manual_seed(seed)
    config = transformers.RemBertConfig(**case.config)
    if case.problem_type is not None:
        config.problem_type = case.problem_type
    model = getattr(transformers, CLASS_NAMES[case.task])(config).eval()
    model.save_pretrained(directory)
    return model


def legacy_cache(value: Any) -> Any:
    """The reference's cache object as plain per-layer tuples (its empty cross-attention entries dropped)."""
    if hasattr(value, "to_legacy_cache"):
        return tuple(tuple(t for t in layer if t is not None) for layer in value.to_legacy_cache())
    return value


def compare(actual: Any, expected: Any, name: str, *, quantity: str, cross_framework: bool) -> None:
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), f"{name}: structure differs"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            compare(a, e, f"{name}[{i}]", quantity=quantity, cross_framework=cross_framework)
        return
    if expected is None:
        assert actual is None, f"{name}: the reference has none, ours has one"
        return
    if isinstance(actual, torch.Tensor):
        actual = actual.detach()
    got = np.asarray(actual, dtype=np.float32)
    assert_close(got, expected.detach().float().numpy(), quantity=quantity, name=name, cross_framework=cross_framework)


def compare_outputs(actual: Any, expected: Any, case: Case, *, cross_framework: bool) -> None:
    for key in expected.keys():  # noqa: SIM118 (a ModelOutput)
        value = legacy_cache(expected[key]) if key == "past_key_values" else expected[key]
        quantity = "loss" if key == "loss" else "activations"
        compare(actual[key], value, f"{key} ({case})", quantity=quantity, cross_framework=cross_framework)


@pytest.mark.parametrize("seed", range(40))
def test_torch_matches_reference_on_a_random_case(seed: int, tmp_path: Path) -> None:
    import rembert_torch

    case = draw_case(seed)
    reference = reference_model(case, seed, tmp_path)
    ours = getattr(rembert_torch, CLASS_NAMES[case.task]).from_pretrained(tmp_path)
    if case.problem_type is not None:
        ours.config.problem_type = case.problem_type
    expected = reference(**case.inputs, **case.options)
    actual = ours(**case.inputs, **case.options)
    compare_outputs(actual, expected, case, cross_framework=False)

    if expected.get("loss") is not None:
        expected.loss.backward()
        actual.loss.backward()
        reference_params = dict(reference.named_parameters())
        for name, param in ours.named_parameters():
            want = reference_params[name].grad
            if want is None:
                assert param.grad is None or not param.grad.any(), f"grad {name}: the reference has none ({case})"
                continue
            compare(param.grad, want, f"grad {name} ({case})", quantity="gradients", cross_framework=False)

    plain = not {"inputs_embeds", "attention_mask", "head_mask", "position_ids"} & set(case.inputs)
    seq = case.inputs["input_ids"].shape[1] if "input_ids" in case.inputs else 0
    if case.options.get("use_cache") and plain and seq < case.config["max_position_embeddings"]:
        batch = case.inputs["input_ids"].shape[0]
        step: dict[str, Any] = {"input_ids": torch.randint(0, case.config["vocab_size"], (batch, 1))}
        for name in ("encoder_hidden_states", "encoder_attention_mask"):
            if name in case.inputs:
                step[name] = case.inputs[name]
        with torch.no_grad():
            expected_step = reference(**step, past_key_values=expected.past_key_values, use_cache=True)
            actual_step = ours(**step, past_key_values=actual.past_key_values, use_cache=True)
        compare_outputs(actual_step, expected_step, case, cross_framework=False)


@pytest.mark.parametrize("seed", range(1000, 1025))
def test_tensorflow_matches_reference_on_a_random_case(seed: int, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    import rembert_tf

    case = draw_case(seed)
    reference = reference_model(case, seed, tmp_path)
    ours = getattr(rembert_tf, "TF" + CLASS_NAMES[case.task]).from_pretrained(tmp_path)
    if case.problem_type is not None:
        ours.config.problem_type = case.problem_type
    with torch.no_grad():
        expected = reference(**case.inputs, **case.options)
    actual = ours(**{k: v.numpy() for k, v in case.inputs.items()}, **case.options, training=False)
    compare_outputs(actual, expected, case, cross_framework=True)
