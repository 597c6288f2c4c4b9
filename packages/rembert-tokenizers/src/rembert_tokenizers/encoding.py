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

__all__ = ["TENSOR_TYPES", "BatchEncoding", "to_tensor"]

#: Accepted ``return_tensors`` values, with the framework each needs.
TENSOR_TYPES = {"np": "numpy", "pt": "torch", "tf": "tensorflow"}

#: Keys converted to tensors; the other keys (``overflowing_tokens``, ...) stay lists.
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


class BatchEncoding(dict[str, Any]):
    """The output of a tokenizer call: model inputs by name, plus per-token word ids.

    Keys are the reference names: ``input_ids``, ``token_type_ids``, ``attention_mask``
    and, when asked for, ``special_tokens_mask``, ``offset_mapping``, ``length``,
    ``overflowing_tokens``, ``num_truncated_tokens``. Values are lists (shape
    ``(seq,)`` for one text, ``(batch, seq)`` for a batch) or tensors of shape
    ``(batch, seq)`` when ``return_tensors`` was given. Keys are also attributes.

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
        self._word_ids: list[list[int | None]] | None = None
        self._tokens: list[list[str]] | None = None
        self._alignment: Callable[[], tuple[list[list[int | None]], list[list[str]]]] | None = None
        self._is_batched = is_batched
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type)

    def _set_alignment(self, compute: Callable[[], tuple[list[list[int | None]], list[list[str]]]]) -> None:
        """Attach the (lazily computed) per-token word ids and token strings of every row."""
        self._alignment = compute

    def _aligned(self) -> None:
        if self._word_ids is None and self._alignment is not None:
            self._word_ids, self._tokens = self._alignment()
            self._alignment = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getstate__(self) -> dict[str, Any]:
        self._aligned()
        return {"data": dict(self), "word_ids": self._word_ids, "tokens": self._tokens, "batched": self._is_batched}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.update(state["data"])
        self._alignment = None
        self._word_ids = state["word_ids"]
        self._tokens = state["tokens"]
        self._is_batched = state["batched"]

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchEncoding, (), self.__getstate__())

    @property
    def is_fast(self) -> bool:
        """Whether per-token alignment (``word_ids``, ``tokens``) is available (fast tokenizer outputs)."""
        return self._word_ids is not None or self._alignment is not None

    def _row(self, batch_index: int, what: str) -> int:
        if not self.is_fast:
            raise InputError(f"{what}() is only available on outputs of RemBertTokenizerFast")
        self._aligned()
        assert self._word_ids is not None
        if not isinstance(batch_index, int) or not -len(self._word_ids) <= batch_index < len(self._word_ids):
            raise InputError(f"batch_index={batch_index!r} is out of range for a batch of {len(self._word_ids)}")
        return batch_index

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """Word index of every token of row ``batch_index`` (``None`` for special and padding tokens).

        Words are the whitespace-separated words of the text (or the given words
        with ``is_split_into_words=True``); an added token is a word of its own.

        Example::

            tokenizer_fast("Hello world").word_ids()  # [None, 0, 0, 0, 1, None]
        """
        row = self._row(batch_index, "word_ids")
        assert self._word_ids is not None
        return list(self._word_ids[row])

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of row ``batch_index`` (fast tokenizer outputs), special and padding tokens included.

        Example::

            tokenizer_fast("Hello").tokens()  # ['[CLS]', '▁He', 'll', 'o', '[SEP]']
        """
        row = self._row(batch_index, "tokens")
        assert self._tokens is not None
        return list(self._tokens[row])

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """0/1 for tokens of the first/second sequence, ``None`` for special and padding tokens.

        Example::

            tokenizer_fast("a b", "c").sequence_ids()  # [None, 0, 0, None, 1, None]
        """
        row = self._row(batch_index, "sequence_ids")
        types = self.get("token_type_ids")
        words = self.word_ids(row)
        if types is None:
            return [None if w is None else 0 for w in words]
        row_types = types[row] if self._is_batched else types
        return [None if w is None else int(t) for w, t in zip(words, list(row_types), strict=False)]

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
        for key in _TENSOR_KEYS:
            if key not in self:
                continue
            value = self[key]
            if not self._is_batched and not isinstance(value, np.ndarray):
                value = [value]
            self[key] = to_tensor(key, value, checked)
        return self
