"""Seeded random configs and batches against the reference in float64: sizes, activations, epsilons, pad ids,
decoders, cross-attention, label kinds, out-of-range QA positions, single-token sequences, missing masks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rembert_core import TASKS, RemBertConfig
from rembert_core.tolerances import assert_close
from rembert_numpy import NumpyBackend

pytestmark = pytest.mark.oracle

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def random_case(seed: int) -> tuple[RemBertConfig, str, dict[str, Any]]:
    """A random (config, task, inputs) triple; the task cycles through all seven."""
    rng = np.random.default_rng(seed)
    task = TASKS[seed % len(TASKS)]
    heads = int(rng.integers(1, 5))
    config = RemBertConfig(
        vocab_size=int(rng.integers(10, 80)),
        hidden_size=heads * int(rng.integers(1, 6)),
        num_hidden_layers=int(rng.integers(1, 4)),
        num_attention_heads=heads,
        input_embedding_size=int(rng.integers(1, 9)),
        output_embedding_size=int(rng.integers(1, 9)),
        intermediate_size=int(rng.integers(1, 12)),
        max_position_embeddings=int(rng.integers(8, 20)),
        type_vocab_size=int(rng.integers(1, 4)),
        hidden_act=str(rng.choice(["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"])),
        layer_norm_eps=float(rng.choice([1e-12, 1e-6, 0.1])),
        pad_token_id=int(rng.integers(0, 5)),
        num_labels=int(rng.integers(1, 5)) if task == "sequence_classification" else int(rng.integers(2, 5)),
        is_decoder=bool(rng.random() < 0.4) or task == "causal_lm",
    )
    if task == "question_answering":
        config.num_labels = 2
    if config.is_decoder and task in ("base", "masked_lm", "causal_lm") and rng.random() < 0.6:
        config = config.copy(add_cross_attention=True)
    b, s, c = int(rng.integers(1, 4)), int(rng.integers(1, 8)), int(rng.integers(1, 4))
    shape = (b, c, s) if task == "multiple_choice" else (b, s)
    inputs: dict[str, Any] = {"input_ids": rng.integers(0, config.vocab_size, size=shape)}
    if rng.random() < 0.8:
        inputs["attention_mask"] = (rng.random(shape) < 0.7).astype(np.int64)
    if rng.random() < 0.7:
        inputs["token_type_ids"] = rng.integers(0, config.type_vocab_size, size=shape)
    if task in ("masked_lm", "causal_lm"):
        inputs["labels"] = np.where(rng.random(shape) < 0.6, rng.integers(0, config.vocab_size, size=shape), -100)
        if task == "masked_lm":
            inputs["labels"].flat[0] = 1  # at least one scored token
    elif task == "token_classification":
        inputs["labels"] = np.where(rng.random(shape) < 0.8, rng.integers(0, config.num_labels, size=shape), -100)
        inputs["labels"].flat[0] = 0
    elif task == "sequence_classification":
        if config.num_labels == 1:
            inputs["labels"] = rng.standard_normal(b)
        elif rng.random() < 0.5:
            inputs["labels"] = rng.integers(0, config.num_labels, size=b)
        else:
            inputs["labels"] = rng.integers(0, 2, size=(b, config.num_labels)).astype(np.float64)
    elif task == "multiple_choice":
        inputs["labels"] = rng.integers(0, c, size=b)
    elif task == "question_answering":
        inputs["start_positions"] = rng.integers(-2, s + 3, size=b)
        inputs["end_positions"] = rng.integers(-2, s + 3, size=b)
    if config.add_cross_attention and rng.random() < 0.8:
        enc = int(rng.integers(1, 5))
        inputs["encoder_hidden_states"] = rng.standard_normal((b, enc, config.hidden_size))
        if rng.random() < 0.5:
            inputs["encoder_attention_mask"] = (rng.random((b, enc)) < 0.7).astype(np.int64)
    return config, task, inputs


@pytest.mark.parametrize("seed", range(28))
def test_random_config_matches_reference(build: Callable[..., Any], reference: Callable[..., Any], seed: int) -> None:
    config, task, inputs = random_case(seed)
    backend = NumpyBackend()
    model, tensors = build(config, task, "float64", seed=seed)
    ref_model = reference(config, task, tensors, "float64")
    ours = backend.forward(model, inputs, output_hidden_states=True, output_attentions=True)
    tin = {k: torch.tensor(np.array(v)) for k, v in inputs.items()}
    labels = tin.pop("labels") if task == "causal_lm" else None  # float64 loss oracle, see test_numpy_reference
    theirs = ref_model(**tin, output_hidden_states=True, output_attentions=True)
    if labels is not None:
        shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]
        ref_loss = torch.nn.functional.cross_entropy(theirs.logits.reshape(-1, config.vocab_size), shifted.reshape(-1))
    else:
        ref_loss = getattr(theirs, "loss", None)
    for name, value in ours.items():
        expected = ref_loss if name == "loss" else getattr(theirs, name)
        quantity = "loss" if name == "loss" else "attentions" if "attentions" in name else "activations"
        for i, (a, b) in enumerate(zip(value if isinstance(value, list) else [value], _entries(expected), strict=True)):
            assert_close(a, b.detach().numpy(), dtype="float64", quantity=quantity, name=f"{task} {name}[{i}]")
    if task == "base" or bool(torch.isnan(ref_loss)):
        return
    _, grads = backend.gradients(model, inputs)
    ref_loss.backward()
    for name, param in ref_model.named_parameters():
        expected_grad = np.zeros(param.shape) if param.grad is None else param.grad.numpy()
        assert_close(grads[name], expected_grad, dtype="float64", quantity="gradients", name=f"{task} grad {name}")


def _entries(value: Any) -> list[Any]:
    return list(value) if isinstance(value, tuple) else [value]
