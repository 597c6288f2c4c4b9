"""Gradients checked without any reference: float64 finite differences, op by op and through every task model.

A five-point central difference ``(f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / 12h``
has truncation error O(h^4) and rounding error O(eps / h); with h = 1e-3 both
stay far below the float64 "gradients" bounds of the tolerance table, so the
checks use those bounds unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rembert_core import TASKS, RemBertConfig
from rembert_core.tolerances import assert_close
from rembert_numpy import NumpyBackend
from rembert_numpy import autodiff as ad

STEP = 1e-3


def five_point(f: Callable[[float], float]) -> float:
    """d/dt f(t) at 0 by the five-point stencil."""
    return (f(-2 * STEP) - 8 * f(-STEP) + 8 * f(STEP) - f(2 * STEP)) / (12 * STEP)


def check_op(op: Callable[..., ad.Tensor], *arrays: np.ndarray, seed: int = 0) -> None:
    """Analytic gradient of sum(op(*arrays) * w) w.r.t. every input element vs finite differences."""
    rng = np.random.default_rng(seed)
    leaves = [ad.Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = op(*leaves)
    weights = rng.standard_normal(out.shape)

    def value(inputs: list[np.ndarray]) -> float:
        return float((op(*[ad.Tensor(a) for a in inputs]).value * weights).sum())

    ad.backward(_weighted_sum(out, weights))
    for k, leaf in enumerate(leaves):
        assert leaf.grad is not None and leaf.grad.shape == arrays[k].shape
        numeric = np.zeros_like(arrays[k])
        for index in np.ndindex(arrays[k].shape):

            def shifted(t: float, k: int = k, index: tuple[int, ...] = index) -> float:
                inputs = [a.copy() for a in arrays]
                inputs[k][index] += t
                return value(inputs)

            numeric[index] = five_point(shifted)
        assert_close(leaf.grad, numeric, dtype="float64", quantity="gradients", name=f"{op.__name__} input {k}")


def _weighted_sum(out: ad.Tensor, weights: np.ndarray) -> ad.Tensor:
    flat = ad.reshape(ad.mul(out, ad.Tensor(weights)), (1, -1))
    return ad.reshape(ad.linear(flat, ad.Tensor(np.ones((1, out.value.size))), None), ())


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values with |x| >= 0.05, so a stencil never straddles a kink at 0."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.05 * np.sign(x) + (x == 0) * 0.05, x)


RNG = np.random.default_rng(42)


@pytest.mark.parametrize(
    ("op", "arrays"),
    [
        (ad.add, (RNG.standard_normal((2, 3, 4)), RNG.standard_normal((1, 3, 1)))),
        (ad.mul, (RNG.standard_normal((2, 1, 4)), RNG.standard_normal((3, 1)))),
        (lambda a: ad.scale(a, -0.37), (RNG.standard_normal((3, 2)),)),
        (lambda a: ad.reshape(a, (6, 2)), (RNG.standard_normal((3, 4)),)),
        (lambda a: ad.transpose(a, (2, 0, 1)), (RNG.standard_normal((2, 3, 4)),)),
        (lambda a: ad.getitem(a, (slice(None), 0)), (RNG.standard_normal((2, 3, 4)),)),
        (lambda a, b: ad.concat([a, b], axis=1), (RNG.standard_normal((2, 1, 3)), RNG.standard_normal((2, 2, 3)))),
        (ad.matmul, (RNG.standard_normal((2, 3, 4, 5)), RNG.standard_normal((2, 3, 5, 2)))),
        (ad.linear, (RNG.standard_normal((2, 3, 4)), RNG.standard_normal((5, 4)), RNG.standard_normal(5))),
        (lambda x, w: ad.linear(x, w, None), (RNG.standard_normal((3, 4)), RNG.standard_normal((2, 4)))),
        (lambda t: ad.embedding(t, np.array([[1, 3, 1], [0, 4, 4]])), (RNG.standard_normal((5, 3)),)),
        (
            lambda x, w, b: ad.layer_norm(x, w, b, 1e-5),
            (RNG.standard_normal((2, 3, 6)), RNG.standard_normal(6), RNG.standard_normal(6)),
        ),
        (lambda x: ad.softmax(x, axis=-1), (RNG.standard_normal((2, 3, 5)),)),
        (ad.gelu, (3 * RNG.standard_normal((4, 5)),)),
        (ad.gelu_tanh, (3 * RNG.standard_normal((4, 5)),)),
        (ad.relu, (away_from_zero(RNG, (4, 5)),)),
        (ad.silu, (3 * RNG.standard_normal((4, 5)),)),
        (ad.tanh, (RNG.standard_normal((4, 5)),)),
        (lambda x: ad.cross_entropy(x, np.array([2, -100, 0, 3])), (RNG.standard_normal((4, 5)),)),
        (lambda x: ad.cross_entropy(x, np.array([2, 5, 0]), ignore_index=5), (RNG.standard_normal((3, 5)),)),
        (lambda x: ad.bce_with_logits_loss(x, np.array([[1.0, 0.0], [0.3, 1.0]])), (3 * RNG.standard_normal((2, 2)),)),
        (lambda x: ad.mse_loss(x, np.array([0.5, -1.0, 2.0])), (RNG.standard_normal(3),)),
    ],
    ids=[
        "add",
        "mul",
        "scale",
        "reshape",
        "transpose",
        "getitem",
        "concat",
        "matmul",
        "linear",
        "linear_no_bias",
        "embedding",
        "layer_norm",
        "softmax",
        "gelu",
        "gelu_tanh",
        "relu",
        "silu",
        "tanh",
        "cross_entropy",
        "cross_entropy_ignore",
        "bce_with_logits",
        "mse",
    ],
)
def test_op_gradient_matches_finite_differences(op: Callable[..., ad.Tensor], arrays: tuple[np.ndarray, ...]) -> None:
    check_op(op, *arrays)


def test_embedding_padding_row_gets_no_gradient() -> None:
    table = ad.Tensor(np.ones((4, 2)), requires_grad=True)
    ad.backward(ad.mse_loss(ad.embedding(table, np.array([0, 1, 1, 3]), padding_idx=1), np.zeros((4, 2))))
    assert table.grad is not None
    assert np.all(table.grad[1] == 0) and np.all(table.grad[[0, 3]] != 0) and np.all(table.grad[2] == 0)


def test_erf_is_float64_accurate() -> None:
    import math

    x = np.linspace(-6, 6, 1001)
    assert np.array_equal(ad.erf(x), np.array([math.erf(v) for v in x]))
    assert ad.erf(x.astype(np.float32)).dtype == np.float32


def test_cross_entropy_all_ignored_is_nan_like_pytorch() -> None:
    logits = ad.Tensor(np.zeros((2, 3)), requires_grad=True)
    loss = ad.cross_entropy(logits, np.array([-100, -100]))
    assert np.isnan(loss.value)


def test_backward_accumulates_a_tensor_used_twice() -> None:
    x = ad.Tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = ad.mul(x, x)  # x used twice: dy/dx = 2x
    ad.backward(ad.mse_loss(y, np.zeros(2)))  # d/dx mean(x^4) = 4 x^3 / 2
    assert x.grad is not None
    assert_close(x.grad, 2 * x.value**3, dtype="float64", quantity="gradients", name="x^4")


def test_no_graph_without_requires_grad() -> None:
    out = ad.linear(ad.Tensor(np.ones((2, 3))), ad.Tensor(np.ones((4, 3))), ad.Tensor(np.zeros(4)))
    assert not out.requires_grad and out._parents == () and "leaf" in repr(out)
    with pytest.raises(ValueError, match="scalar"):
        ad.backward(out)


TINY = RemBertConfig(
    vocab_size=23,
    hidden_size=8,
    num_hidden_layers=2,
    num_attention_heads=2,
    input_embedding_size=5,
    output_embedding_size=6,
    intermediate_size=12,
    max_position_embeddings=12,
    type_vocab_size=2,
    num_labels=3,
)


@pytest.mark.parametrize("task", [t for t in TASKS if t != "base"])
def test_model_gradients_match_finite_differences(
    task: str,
    make_config: Callable[..., RemBertConfig],
    make_batch: Callable[..., dict[str, Any]],
    build: Callable[..., Any],
) -> None:
    """For every canonical tensor: the directional derivative along a random direction equals <gradient, direction>."""
    config = make_config(TINY, task)
    inputs = make_batch(config, task, seed=1, batch=2, seq=5)
    backend = NumpyBackend()
    model, tensors = build(config, task, "float64", scale=10.0)
    _, grads = backend.gradients(model, inputs)
    rng = np.random.default_rng(0)
    for name in model.schema:
        direction = rng.standard_normal(tensors[name].shape)
        if name.endswith("word_embeddings.weight") and config.pad_token_id is not None:
            direction[config.pad_token_id] = 0.0  # the padding row has no gradient, by design (as nn.Embedding)

        def loss_at(t: float, name: str = name, direction: np.ndarray = direction) -> float:
            moved = backend.build_model(config, task, dtype="float64")
            backend.load_tensors(moved, {**tensors, name: tensors[name] + t * direction})
            return float(backend.forward(moved, inputs)["loss"])

        numeric = five_point(loss_at)
        analytic = float((grads[name] * direction).sum())
        assert_close(np.asarray(analytic), np.asarray(numeric), dtype="float64", quantity="gradients", name=name)
