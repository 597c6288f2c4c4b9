"""A small reverse-mode automatic differentiation over NumPy arrays.

Every operation the model needs is a function here that computes its result
with NumPy and, when any input needs a gradient, records how to send the
gradient of its result back to its inputs. :func:`backward` then walks that
record (a directed acyclic graph) from the loss in reverse topological order.
The model code in :mod:`rembert_numpy.modeling` reads like the forward pass
only; gradients come for free.

Each op's backward rule is written next to its forward rule, with the maths in
a comment, so a reader can check them one by one (and the test suite checks
every one against finite differences in float64).

Example:
    >>> import numpy as np
    >>> from rembert_numpy import autodiff as ad
    >>> w = ad.Tensor(np.array([[2.0, -1.0]]), requires_grad=True)
    >>> x = ad.Tensor(np.array([[3.0, 4.0]]))
    >>> y = ad.linear(x, w, None)  # x @ w.T = [[2.0]]
    >>> grads = ad.backward(ad.mse_loss(y, np.array([[0.0]])))
    >>> w.grad
    array([[12., 16.]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Array",
    "Tensor",
    "add",
    "backward",
    "bce_with_logits_loss",
    "concat",
    "cross_entropy",
    "embedding",
    "erf",
    "gelu",
    "gelu_tanh",
    "getitem",
    "layer_norm",
    "linear",
    "matmul",
    "mse_loss",
    "mul",
    "relu",
    "reshape",
    "scale",
    "silu",
    "softmax",
    "tanh",
    "transpose",
]

Array = NDArray[Any]
#: Sends the gradient of an op's output to its inputs (None for inputs that need none).
BackwardFn = Callable[[Array], Sequence[Array | None]]


class Tensor:
    """A NumPy array plus what is needed to differentiate through it.

    Args:
        value: the array (any shape; float for anything that needs a gradient).
        requires_grad: True for leaves whose gradient :func:`backward` should keep
            in :attr:`grad` (the model parameters).

    Ops build non-leaf tensors themselves; a tensor that no parameter depends on
    records nothing, so a forward pass without gradients costs no memory beyond
    NumPy's.

    Example:
        >>> t = Tensor(np.ones((2, 3)), requires_grad=True)
        >>> t.shape
        (2, 3)
    """

    __slots__ = ("_backward", "_parents", "grad", "requires_grad", "value")

    def __init__(
        self,
        value: Array,
        *,
        requires_grad: bool = False,
        parents: tuple[Tensor, ...] = (),
        backward_fn: BackwardFn | None = None,
    ) -> None:
        self.value: Array = value
        self.requires_grad = requires_grad
        self.grad: Array | None = None
        self._parents = parents
        self._backward = backward_fn

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`value`."""
        return tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """dtype of :attr:`value`."""
        return self.value.dtype

    def __repr__(self) -> str:
        kind = "leaf" if self._backward is None else "op"
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad}, {kind})"


def _result(value: Array, parents: tuple[Tensor, ...], backward_fn: BackwardFn) -> Tensor:
    """The output tensor of an op: it records ``backward_fn`` only if an input needs a gradient."""
    if any(p.requires_grad for p in parents):
        return Tensor(value, requires_grad=True, parents=parents, backward_fn=backward_fn)
    return Tensor(value)


def _unbroadcast(grad: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``grad`` over the axes NumPy broadcast to reach it from ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def backward(loss: Tensor) -> dict[int, Array]:
    """Back-propagate from the scalar ``loss``; leaves with ``requires_grad`` get :attr:`Tensor.grad`.

    Returns the gradients of the leaves keyed by ``id(tensor)`` as well.
    """
    if loss.value.size != 1:
        raise ValueError(f"backward() needs a scalar loss, got shape {loss.shape}")
    # Iterative depth-first topological order (models are deep; no recursion limit).
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(loss, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in seen)
    grads: dict[int, Array] = {id(loss): np.ones_like(loss.value)}
    leaves: dict[int, Array] = {}
    for node in reversed(order):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        if node._backward is None:
            node.grad = grad if node.grad is None else node.grad + grad
            leaves[id(node)] = node.grad
            continue
        for parent, parent_grad in zip(node._parents, node._backward(grad), strict=True):
            if parent_grad is None or not parent.requires_grad:
                continue
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
    return leaves


# -- elementwise and shape ops ------------------------------------------------------------------


def add(a: Tensor, b: Tensor) -> Tensor:
    """``a + b`` with NumPy broadcasting."""

    def back(g: Array) -> tuple[Array, Array]:
        return _unbroadcast(g, a.shape), _unbroadcast(g, b.shape)

    return _result(a.value + b.value, (a, b), back)


def mul(a: Tensor, b: Tensor) -> Tensor:
    """``a * b`` with NumPy broadcasting."""

    def back(g: Array) -> tuple[Array, Array]:
        return _unbroadcast(g * b.value, a.shape), _unbroadcast(g * a.value, b.shape)

    return _result(a.value * b.value, (a, b), back)


def scale(a: Tensor, factor: float) -> Tensor:
    """``a * factor`` for a Python number ``factor`` (kept in ``a``'s dtype)."""
    c = a.value.dtype.type(factor)
    return _result(a.value * c, (a,), lambda g: (g * c,))


def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``a.reshape(shape)``."""
    return _result(a.value.reshape(shape), (a,), lambda g: (g.reshape(a.shape),))


def transpose(a: Tensor, axes: tuple[int, ...]) -> Tensor:
    """``a.transpose(axes)``; the gradient goes back through the inverse permutation."""
    inverse = tuple(int(i) for i in np.argsort(axes))
    return _result(a.value.transpose(axes), (a,), lambda g: (g.transpose(inverse),))


def getitem(a: Tensor, index: Any) -> Tensor:
    """``a[index]`` for basic indexing (ints and slices: no element is picked twice)."""

    def back(g: Array) -> tuple[Array]:
        out = np.zeros_like(a.value)
        out[index] = g
        return (out,)

    return _result(a.value[index], (a,), back)


def concat(tensors: Sequence[Tensor], axis: int) -> Tensor:
    """``np.concatenate`` of ``tensors`` along ``axis``; the gradient is split back."""
    bounds = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def back(g: Array) -> list[Array]:
        return list(np.split(g, bounds, axis=axis))

    return _result(np.concatenate([t.value for t in tensors], axis=axis), tuple(tensors), back)


# -- linear algebra -----------------------------------------------------------------------------


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Batched ``a @ b`` for arrays of the same rank >= 2 (attention scores and context)."""

    def back(g: Array) -> tuple[Array, Array]:
        # d(a @ b) = da @ b + a @ db  =>  grad_a = g @ b^T, grad_b = a^T @ g
        return g @ np.swapaxes(b.value, -1, -2), np.swapaxes(a.value, -1, -2) @ g

    return _result(a.value @ b.value, (a, b), back)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight.T + bias``: PyTorch ``nn.Linear`` with ``weight`` in the canonical ``[out, in]`` layout.

    Leading axes of ``x`` are flattened into one so every product is a single
    2-D GEMM (NumPy's stacked matmul is much slower than one BLAS call).
    """
    lead = x.shape[:-1]
    flat_x = x.value.reshape(-1, x.shape[-1])  # (tokens, in)
    out = flat_x @ weight.value.T
    if bias is not None:
        out += bias.value

    def back(g: Array) -> tuple[Array | None, ...]:
        flat_g = g.reshape(-1, g.shape[-1])  # (tokens, out)
        grads: tuple[Array | None, ...] = ((flat_g @ weight.value).reshape(x.shape), flat_g.T @ flat_x)
        if bias is not None:
            grads += (flat_g.sum(axis=0),)
        return grads

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _result(out.reshape(*lead, weight.shape[0]), parents, back)


def embedding(table: Tensor, ids: Array, padding_idx: int | None = None) -> Tensor:
    """Rows ``table[ids]`` (``nn.Embedding``); the gradient of repeated ids is summed.

    As in PyTorch, the row ``padding_idx`` (if given) receives no gradient.
    """

    def back(g: Array) -> tuple[Array]:
        grad = np.zeros_like(table.value)
        np.add.at(grad, ids.reshape(-1), g.reshape(-1, table.shape[-1]))
        if padding_idx is not None:
            grad[padding_idx] = 0
        return (grad,)

    return _result(table.value[ids], (table,), back)


# -- normalisation and activations --------------------------------------------------------------


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over the last axis: ``(x - mean) / sqrt(var + eps) * weight + bias`` (biased variance)."""
    mean = x.value.mean(axis=-1, keepdims=True)
    centred = x.value - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + x.value.dtype.type(eps))
    normed = centred * inv_std

    def back(g: Array) -> tuple[Array, Array, Array]:
        # With n = normed and gn = g * weight:
        # grad_x = inv_std * (gn - mean(gn) - n * mean(gn * n))
        gn = g * weight.value
        grad_x = inv_std * (gn - gn.mean(axis=-1, keepdims=True) - normed * (gn * normed).mean(axis=-1, keepdims=True))
        axes = tuple(range(g.ndim - 1))
        return grad_x, (g * normed).sum(axis=axes), g.sum(axis=axes)

    return _result(normed * weight.value + bias.value, (x, weight, bias), back)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis`` (max subtracted first, as every framework does)."""
    shifted = x.value - x.value.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    y = e / e.sum(axis=axis, keepdims=True)

    def back(g: Array) -> tuple[Array]:
        # dy_i/dx_j = y_i (delta_ij - y_j)  =>  grad_x = y * (g - sum(g * y))
        return (y * (g - (g * y).sum(axis=axis, keepdims=True)),)

    return _result(y, (x,), back)


_ERF = np.frompyfunc(math.erf, 1, 1)


def erf(x: Array) -> Array:
    """The error function, element-wise, through the C library's ``erf`` (correctly rounded in float64).

    NumPy has no ``erf``; ``math.erf`` is exact to float64 rounding, which the
    float64 reference needs. float32 inputs are evaluated in float64 and rounded.
    """
    return np.asarray(_ERF(x.astype(np.float64)), dtype=np.float64).astype(x.dtype, copy=False)


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x: Tensor) -> Tensor:
    """Exact GELU ``x * Phi(x)`` with ``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` (``hidden_act="gelu"``)."""
    v = x.value
    cdf = 0.5 * (1.0 + erf(v * v.dtype.type(_SQRT_HALF)))

    def back(g: Array) -> tuple[Array]:
        # d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density
        pdf = np.exp(-0.5 * v * v) * v.dtype.type(_INV_SQRT_2PI)
        return (g * (cdf + v * pdf),)

    return _result(v * cdf, (x,), back)


def gelu_tanh(x: Tensor) -> Tensor:
    """Tanh GELU ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``gelu_new``, ``gelu_pytorch_tanh``)."""
    v = x.value
    c = v.dtype.type(_SQRT_2_OVER_PI)
    k = v.dtype.type(0.044715)
    t = np.tanh(c * (v + k * v * v * v))

    def back(g: Array) -> tuple[Array]:
        # d/dx = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3k x^2)
        return (g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * c * (1.0 + 3.0 * k * v * v)),)

    return _result(0.5 * v * (1.0 + t), (x,), back)


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``; gradient 0 at 0 (as PyTorch)."""
    positive = x.value > 0
    return _result(np.where(positive, x.value, 0).astype(x.dtype), (x,), lambda g: (g * positive,))


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (``silu`` / ``swish``)."""
    s = _sigmoid(x.value)

    def back(g: Array) -> tuple[Array]:
        # d/dx x s(x) = s + x s (1 - s)
        return (g * (s * (1.0 + x.value * (1.0 - s))),)

    return _result(x.value * s, (x,), back)


def tanh(x: Tensor) -> Tensor:
    """``tanh(x)`` (the pooler activation)."""
    t = np.tanh(x.value)
    return _result(t, (x,), lambda g: (g * (1.0 - t * t),))


def _sigmoid(v: Array) -> Array:
    """A sigmoid that does not overflow for large negative inputs."""
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(v.dtype)


# -- losses -------------------------------------------------------------------------------------


def cross_entropy(logits: Tensor, targets: Array, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, C) against class ids ``targets`` (N,) (``nn.CrossEntropyLoss``).

    Rows whose target is ``ignore_index`` count neither in the sum nor in the
    mean; when every row is ignored the loss is NaN, as in PyTorch.
    """
    x = logits.value
    keep = targets != ignore_index
    count = int(keep.sum())
    safe_targets = np.where(keep, targets, 0)
    shifted = x - x.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, safe_targets[:, None], axis=-1)[:, 0]
    total = -(picked * keep).sum()
    loss = np.asarray(total / count if count else np.nan, dtype=x.dtype)

    def back(g: Array) -> tuple[Array]:
        # d(-log softmax(x)_t)/dx = softmax(x) - onehot(t), averaged over the kept rows
        if not count:
            return (np.full_like(x, np.nan),)
        grad = np.exp(log_probs)
        grad[np.arange(len(targets)), safe_targets] -= 1.0
        return (grad * (keep[:, None] * (g / count)).astype(x.dtype),)

    return _result(loss, (logits,), back)


def bce_with_logits_loss(logits: Tensor, targets: Array) -> Tensor:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against ``targets`` in [0, 1] (``nn.BCEWithLogitsLoss``)."""
    x = logits.value
    t = targets.astype(x.dtype)
    # max(x, 0) - x t + log(1 + exp(-|x|)): stable for either sign of x
    per_element = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    loss = np.asarray(per_element.mean(), dtype=x.dtype)
    return _result(loss, (logits,), lambda g: ((_sigmoid(x) - t) * (g / x.size),))


def mse_loss(prediction: Tensor, targets: Array) -> Tensor:
    """Mean squared error between ``prediction`` and ``targets`` of the same shape (``nn.MSELoss``)."""
    diff = prediction.value - targets.astype(prediction.dtype)
    loss = np.asarray((diff * diff).mean(), dtype=prediction.dtype)
    return _result(loss, (prediction,), lambda g: (diff * (2.0 * g / diff.size),))
