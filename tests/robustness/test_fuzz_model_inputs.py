"""Model inputs of both frameworks: random shapes, dtypes, out-of-range ids, mismatched masks.

The invariant: outputs of the expected shape (all finite) or an :class:`~rembert_core.InputError`;
never a crash, a bare ``IndexError``/``RuntimeError``/``InvalidArgumentError``, or a hang. Each model
runs in its own worker process (TensorFlow and PyTorch are never imported together).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _util import TINY, fuzz_settings
from _worker import Worker, check
from hypothesis import given
from hypothesis import strategies as st

CATEGORY = "fuzz: model inputs"
FRAMEWORKS = {"torch": "torch_forward", "tf": "tf_forward"}
VOCAB, TYPES, POSITIONS, HIDDEN = TINY["vocab_size"], TINY["type_vocab_size"], TINY["max_position_embeddings"], 16
DTYPES = ["int64", "int32", "int16", "uint8", "float32", "float16", "bool"]


@pytest.fixture(params=sorted(FRAMEWORKS))
def framework(request: pytest.FixtureRequest) -> tuple[str, Worker]:
    return request.param, request.getfixturevalue("tf_worker" if request.param == "tf" else "worker")


def spec(array: np.ndarray) -> dict[str, Any]:
    return {"data": array.reshape(-1).tolist(), "dtype": str(array.dtype), "shape": list(array.shape)}


@st.composite
def tensors(draw: st.DrawFn, shape: tuple[int, ...], low: int, high: int) -> np.ndarray:
    """A tensor usually of ``shape`` with values in [low, high), sometimes of another shape, dtype or range."""
    if draw(st.integers(0, 4)) == 0:
        shape = tuple(draw(st.lists(st.integers(0, 5), max_size=4)))
    dtype = "int64" if draw(st.integers(0, 2)) else draw(st.sampled_from(DTYPES))
    if draw(st.integers(0, 4)) == 0:
        low, high = draw(st.sampled_from([(-3, 0), (high, high + 3), (-(2**31), 2**31 - 1)]))
    size = int(np.prod(shape)) if shape else 1
    seed = draw(st.integers(0, 2**16))
    values = np.random.default_rng(seed).integers(low, max(high, low + 1), size=size, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype).reshape(shape)


@st.composite
def model_inputs(draw: st.DrawFn) -> dict[str, np.ndarray]:
    batch, seq = draw(st.integers(1, 3)), draw(st.integers(1, POSITIONS + 2))
    out = {"input_ids": draw(tensors((batch, seq), 0, VOCAB))}
    if draw(st.booleans()):
        out["attention_mask"] = draw(tensors((batch, seq), 0, 2))
    if draw(st.booleans()):
        out["token_type_ids"] = draw(tensors((batch, seq), 0, TYPES))
    if draw(st.integers(0, 3)) == 0:
        out["position_ids"] = draw(tensors((batch, seq), 0, POSITIONS))
    return out


def valid(inputs: dict[str, np.ndarray]) -> bool:
    """Whether the reference would accept these inputs (ints in range, shapes agreeing)."""
    ids = inputs["input_ids"]
    if ids.ndim != 2 or 0 in ids.shape or ids.shape[1] > POSITIONS:
        return False
    limits = {"input_ids": VOCAB, "token_type_ids": TYPES, "position_ids": POSITIONS, "attention_mask": 2}
    for name, array in inputs.items():
        if array.shape != ids.shape:
            return False
        if name != "attention_mask" and (array.dtype.kind not in "iu"):
            return False
        if array.size and (array.min() < 0 or array.max() >= limits[name]):
            return False
    return True


def test_random_inputs(framework: tuple[str, Worker], cases: Any) -> None:
    name, worker = framework

    @fuzz_settings(200)
    @given(inputs=model_inputs())
    def fuzz(inputs: dict[str, np.ndarray]) -> None:
        described = {k: (str(v.dtype), v.shape, v.min() if v.size else None) for k, v in inputs.items()}
        reply = worker.call(FRAMEWORKS[name], timeout=120, inputs={k: spec(v) for k, v in inputs.items()})
        check(reply, f"{name} model on {described}")
        if reply["status"] == "library_error":
            assert reply["type"] == "InputError", reply
            assert not valid(inputs), f"valid inputs {described} refused: {reply}"
        else:
            shape, finite = reply["value"]
            assert shape == [*inputs["input_ids"].shape, HIDDEN] and finite, reply
        cases.add(kind=f"random inputs ({name})")

    fuzz()


EDGE = {
    "input_ids = vocab_size": {"input_ids": np.array([[1, VOCAB]])},
    "input_ids = -1": {"input_ids": np.array([[1, -1]])},
    "input_ids = 2**62": {"input_ids": np.array([[2**62]])},
    "token_type_ids = type_vocab_size": {"input_ids": np.array([[1, 2]]), "token_type_ids": np.array([[0, TYPES]])},
    "position_ids = max_position_embeddings": {
        "input_ids": np.array([[1, 2]]),
        "position_ids": np.array([[0, POSITIONS]]),
    },
    "longer than max_position_embeddings": {"input_ids": np.ones((1, POSITIONS + 1), dtype=np.int64)},
    "attention_mask one token short": {"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.ones((2, 4))},
    "attention_mask of another batch": {"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.ones((3, 5))},
    "attention_mask 1-D": {"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.ones(5)},
    "attention_mask all zero": {"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.zeros((2, 5))},
    "attention_mask of 7s": {"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.full((2, 5), 7)},
    "float input_ids": {"input_ids": np.ones((1, 3), np.float32)},
    "bool input_ids": {"input_ids": np.ones((1, 3), bool)},
    "0-D input_ids": {"input_ids": np.array(3)},
    "3-D input_ids": {"input_ids": np.ones((1, 2, 3), np.int64)},
    "empty batch": {"input_ids": np.ones((0, 3), np.int64)},
    "empty sequence": {"input_ids": np.ones((2, 0), np.int64)},
}


@pytest.mark.parametrize("what", sorted(EDGE))
def test_edge_inputs(what: str, framework: tuple[str, Worker], cases: Any) -> None:
    name, worker = framework
    inputs = EDGE[what]
    reply = worker.call(FRAMEWORKS[name], timeout=120, inputs={k: spec(v) for k, v in inputs.items()})
    check(reply, f"{name} model on {what}")
    if valid(inputs):
        assert reply["status"] == "ok", reply
    else:
        assert reply["status"] == "library_error" and reply["type"] == "InputError", reply
    cases.add(kind=f"edge inputs ({name})")
