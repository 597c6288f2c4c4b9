"""``BatchEncoding``: what both tokenizers return, with tensor conversion and ``word_ids()``.

A ``dict`` of model inputs (``input_ids``, ``token_type_ids``, ``attention_mask``, ...)
whose values are Python lists, NumPy arrays, or framework tensors. Frameworks are
imported only when ``return_tensors`` asks for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rembert_core import InputError
from rembert_tokenizers.alignment import AlignmentMixin, Encoding

__all__ = ["TENSOR_TYPES", "BatchEncoding", "to_tensor"]

#: Accepted ``return_tensors`` values, with the framework each needs.
TENSOR_TYPES = {"np": "numpy", "pt": "torch", "tf": "tensorflow"}

#: Model inputs: converted to int tensors (ragged rows are an error); other keys are converted when they can be.
_TENSOR_KEYS = (
    "input_ids",
    "token_type_ids",
    "attention_mask",
    "special_tokens_mask",
    "length",
    "offset_mapping",
)


def check_tensor_type(return_tensors: Any) -> str | None:
    """Validate ``return_tensors`` and return it as one of :data:`TENSOR_TYPES` (or ``None``)."""
    if return_tensors is None:
        return None
    value = getattr(return_tensors, "value", return_tensors)  # transformers' TensorType enum
    if not isinstance(value, str) or value not in TENSOR_TYPES:
        raise InputError(
            f"return_tensors={return_tensors!r} is not supported; use one of {sorted(TENSOR_TYPES)} or None"
        )
    return value


def _import_framework(tensor_type: str) -> Any:
    module_name = TENSOR_TYPES[tensor_type]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(
            f"return_tensors={tensor_type!r} needs {module_name}, which is not installed ({exc}); "
            "install it or use return_tensors='np'"
        ) from exc


def to_tensor(key: str, value: Any, tensor_type: str) -> Any:
    """Convert one value (nested lists or an array) to a ``tensor_type`` tensor.

    Integer dtypes follow the reference: int64 for "np" and "pt", int32 for "tf" (what
    ``tf.constant`` makes of Python ints).
    """
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value, dtype=np.int64)
        except ValueError as exc:
            raise InputError(
                f"cannot make a {tensor_type!r} tensor of {key!r}: its rows have different lengths; "
                "pass padding=True (or padding='max_length') together with return_tensors"
            ) from exc
    if tensor_type == "np":
        return array
    framework = _import_framework(tensor_type)
    if tensor_type == "pt":
        return framework.from_numpy(np.ascontiguousarray(array))
    return framework.constant(array.astype(np.int32) if array.dtype == np.int64 else array)


class BatchEncoding(AlignmentMixin, dict[str, Any]):
    """The output of a tokenizer call: model inputs by name, plus the fast tokenizer's alignment.

    Keys are the reference names: ``input_ids``, ``token_type_ids``, ``attention_mask``
    and, when asked for, ``special_tokens_mask``, ``offset_mapping``, ``length``,
    ``overflowing_tokens``, ``num_truncated_tokens`` (slow tokenizer), ``overflow_to_sample_mapping``
    (fast tokenizer), ``labels`` (``text_target``). Values are lists (shape ``(seq,)`` for one text,
    ``(batch, seq)`` for a batch) or tensors of shape ``(batch, seq)`` when ``return_tensors`` was given.
    Keys are also attributes; an int index gives the row's :class:`~rembert_tokenizers.alignment.Encoding`
    (fast tokenizer outputs), a slice the rows of every key.

    The alignment methods (``word_ids()``, ``sequence_ids()``, ``token_to_chars()``, ``char_to_token()``,
    ``word_to_tokens()``, ...) are those of the reference's ``BatchEncoding``, with its batch-index forms.

    Example::

        enc = tokenizer(["hello world", "hi"], padding=True, return_tensors="np")
        enc["input_ids"].shape  # (2, 4)
        enc.word_ids(0)  # [None, 0, 1, None] (fast tokenizer)
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        is_batched: bool = True,
        tensor_type: str | None = None,
    ) -> None:
        super().__init__(data or {})
        self._encodings: list[Encoding] | None = None
        self._alignment: Callable[[], list[Encoding]] | None = None
        self._is_batched = is_batched
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type)

    def _set_alignment(self, compute: Callable[[], list[Encoding]]) -> None:
        """Attach the (lazily computed) ``Encoding`` of every row."""
        self._alignment = compute

    def _encodings_or_none(self) -> list[Encoding] | None:
        if self._encodings is None and self._alignment is not None:
            self._encodings = self._alignment()
            self._alignment = None
        return self._encodings

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return dict.__getitem__(self, key)
        if isinstance(key, slice):
            return {name: value[key] for name, value in self.items()}
        if isinstance(key, int) and not isinstance(key, bool):
            encodings = self._encodings_or_none()
            if encodings is not None:
                return encodings[key]
        raise KeyError(
            "Invalid key. Only three types of key are available: "
            "(1) string, (2) integers for backend Encoding, and (3) slices for data subsetting."
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            raise AttributeError(name) from None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": dict(self), "encodings": self._encodings_or_none(), "batched": self._is_batched}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state["data"])
        self._alignment = None
        self._encodings = state.get("encodings")
        self._is_batched = state["batched"]

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchEncoding, (), self.__getstate__())

    @property
    def is_fast(self) -> bool:
        """Whether this output comes from :class:`~rembert_tokenizers.RemBertTokenizerFast` (it has alignment)."""
        return self._encodings is not None or self._alignment is not None

    def to(self, device: Any) -> BatchEncoding:
        """Move torch tensors to ``device`` in place (other values are left as they are).

        Example::

            tokenizer(["a", "b"], padding=True, return_tensors="pt").to("cpu")
        """
        for key, value in self.items():
            if hasattr(value, "to") and type(value).__module__.startswith("torch"):
                self[key] = value.to(device)
        return self

    def convert_to_tensors(self, tensor_type: str) -> BatchEncoding:
        """Convert the model inputs in place to ``tensor_type`` ("np", "pt" or "tf") tensors of shape (batch, seq).

        A single (unbatched) encoding gains a batch axis of size 1, as in the reference.

        Example::

            tokenizer(["a", "b c"], padding=True).convert_to_tensors("np")["input_ids"].shape  # (2, 4)
        """
        checked = check_tensor_type(tensor_type)
        assert checked is not None
        for key in list(self):
            value = self[key]
            if not self._is_batched and not isinstance(value, np.ndarray):
                value = [value]
            if key in _TENSOR_KEYS:
                self[key] = to_tensor(key, value, checked)
                continue
            converted = _other_to_tensor(value, checked)  # labels, overflow_to_sample_mapping, ...
            if converted is not None:
                self[key] = converted
        return self


def _other_to_tensor(value: Any, tensor_type: str) -> Any:
    """A tensor of any other key's value (``labels``, ``overflow_to_sample_mapping``), or ``None`` when it has none.

    Numbers keep their kind, with the reference's dtypes: int64 (int32 for "tf"), and float32 for Python
    floats in "pt" and "tf" (float64 in "np", what ``numpy.asarray`` makes of them). Ragged rows, strings
    and objects stay as they are.
    """
    if type(value).__module__.split(".")[0] in ("torch", "tensorflow"):
        return None  # already a tensor
    from_python = not isinstance(value, np.ndarray)
    try:
        array = np.asarray(value)
    except ValueError:  # ragged rows
        return None
    if array.dtype.kind not in "biuf":
        return None
    if array.size == 0 and from_python:
        array = array.astype(np.int64)
    if tensor_type == "np":
        return array
    framework = _import_framework(tensor_type)
    if from_python and array.dtype == np.float64:
        array = array.astype(np.float32)
    if tensor_type == "pt":
        return framework.from_numpy(np.ascontiguousarray(array))
    return framework.constant(array.astype(np.int32) if from_python and array.dtype == np.int64 else array)
