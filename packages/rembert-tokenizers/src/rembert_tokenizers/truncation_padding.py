"""Step 5 of a call, the length rules: padding/truncation strategies, truncation, padding, ``pad()``.

The reference's rules for ``padding``, ``truncation``, ``max_length``, ``stride`` and
``pad_to_multiple_of``, with errors instead of silent fallbacks; :meth:`~TruncationPaddingMixin.pad`
pads already-encoded inputs (what data collators call).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from rembert_core import InputError
from rembert_tokenizers.encoding import BatchEncoding, check_tensor_type
from rembert_tokenizers.special_tokens import SpecialTokensMixin

__all__ = ["MAX_PADDED_LENGTH", "VERY_LARGE_INTEGER", "TruncationPaddingMixin"]

logger = logging.getLogger(__name__)

#: The key of ``deprecation_warnings`` that records the fast ``pad()`` hint (the reference's key, which
#: transformers' data collators set to silence it).
_PAD_HINT = "Asking-to-pad-a-fast-tokenizer"

#: ``model_max_length`` when the model declares none (the reference value).
VERY_LARGE_INTEGER = int(1e30)

_PADDING = ("longest", "max_length", "do_not_pad")
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")

#: Longest row padding may produce (2**24 tokens): a larger ``max_length`` or ``pad_to_multiple_of``
#: is refused rather than building rows that cannot fit in memory.
MAX_PADDED_LENGTH = 2**24


def _check_padded_length(target: int | None) -> None:
    if target is not None and target > MAX_PADDED_LENGTH:
        raise InputError(
            f"padding to {target} tokens per row is refused (at most {MAX_PADDED_LENGTH}): check max_length "
            "and pad_to_multiple_of"
        )


def _cut(length: int, max_len: int, stride: int, left: bool) -> list[tuple[int, int]]:
    """Windows of at most ``max_len`` tokens overlapping by ``stride`` over ``length`` tokens (``tokenizers``' rule).

    The first window is what truncation keeps (the start, or with ``left`` the end); with ``max_len == 0`` the
    kept part is empty and the whole sequence is the one overflowing window.
    """
    if max_len >= length:
        return [(0, length)]
    if max_len == 0:
        return [(0, 0), (0, length)]
    if stride >= max_len:
        raise InputError(
            f"`stride` must be strictly less than `max_len={max_len}` (note that `max_len` may be shorter than the "
            "max length of the original model, as it subtracts the number of special characters"
        )
    step = max_len - stride
    windows = []
    if not left:
        for start in range(0, length, step):
            stop = min(start + max_len, length)
            windows.append((start, stop))
            if stop == length:
                break
    else:
        for last in range(length - 1, -1, -step):
            start = max(last + 1 - max_len, 0)
            windows.append((start, last + 1))
            if start == 0:
                break
    return windows


class TruncationPaddingMixin(SpecialTokensMixin):
    """Padding and truncation: strategy resolution, the truncation algorithm, padded rows, ``pad()``."""

    @staticmethod
    def _check_side(value: Any, argument: str) -> str:
        if value not in ("left", "right"):
            raise InputError(f"{argument} must be 'left' or 'right', got {value!r}")
        return str(value)

    def _strategies(
        self,
        padding: Any,
        truncation: Any,
        max_length: Any,
        pad_to_multiple_of: Any,
        stride: Any,
    ) -> tuple[str, str, int | None]:
        """The reference's padding/truncation strategy resolution, with errors instead of silent fallbacks."""
        if max_length is not None and (not isinstance(max_length, (int, np.integer)) or isinstance(max_length, bool)):
            raise InputError(f"max_length must be an int or None, got {type(max_length).__name__} {max_length!r}")
        if max_length is not None and max_length < 0:
            raise InputError(f"max_length must be >= 0, got {max_length}")
        if not isinstance(stride, (int, np.integer)) or isinstance(stride, bool) or stride < 0:
            raise InputError(f"stride must be an int >= 0, got {stride!r}")
        if pad_to_multiple_of is not None and (
            not isinstance(pad_to_multiple_of, (int, np.integer))
            or isinstance(pad_to_multiple_of, bool)
            or pad_to_multiple_of <= 0
        ):
            raise InputError(f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        padding = getattr(padding, "value", padding)
        truncation = getattr(truncation, "value", truncation)
        if padding is True:
            pad = "longest"
        elif padding is False or padding is None:
            pad = "do_not_pad"
        elif isinstance(padding, str) and padding in _PADDING:
            pad = padding
        else:
            raise InputError(f"padding={padding!r} is not valid; use True, False, or one of {list(_PADDING)}")
        if truncation is True:
            trunc = "longest_first"
        elif truncation is False or truncation is None:
            trunc = "do_not_truncate"
        elif isinstance(truncation, str) and truncation in _TRUNCATION:
            trunc = truncation
        else:
            raise InputError(f"truncation={truncation!r} is not valid; use True, False, or one of {list(_TRUNCATION)}")
        if max_length is None:
            if pad == "max_length":
                if self.model_max_length >= VERY_LARGE_INTEGER:
                    raise InputError(
                        "padding='max_length' needs max_length: this tokenizer has no model_max_length; pass max_length"
                    )
                max_length = self.model_max_length
            if trunc != "do_not_truncate":
                if self.model_max_length >= VERY_LARGE_INTEGER:
                    trunc = "do_not_truncate"
                else:
                    max_length = self.model_max_length
        if pad != "do_not_pad" and self.pad_token_id is None:
            raise InputError("padding needs a pad_token; set one with add_special_tokens({'pad_token': '[PAD]'})")
        if (
            trunc != "do_not_truncate"
            and pad != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise InputError(
                f"truncation and padding are both on, but max_length={max_length} is not a multiple of "
                f"pad_to_multiple_of={pad_to_multiple_of}"
            )
        return pad, trunc, None if max_length is None else int(max_length)

    def _truncate(
        self, ids: list[int], pair: list[int] | None, remove: int, strategy: str, stride: int
    ) -> tuple[tuple[int, int], tuple[int, int], list[int]]:
        """Kept spans of the first and second sequence and the overflowing tokens (the reference algorithm)."""
        first = (0, len(ids))
        second = (0, len(pair) if pair is not None else 0)
        overflow: list[int] = []
        left = self._check_side(self.truncation_side, "truncation_side") == "left"
        if remove <= 0:
            return first, second, overflow
        if strategy == "only_first" or (strategy == "longest_first" and pair is None):
            if len(ids) <= remove:
                raise InputError(
                    f"cannot truncate: {remove} tokens must be removed but the first sequence has only {len(ids)}"
                    + (
                        " (use truncation='longest_first' or 'only_second')"
                        if pair is not None
                        else " (raise max_length)"
                    )
                )
            window = min(len(ids), stride + remove)
            if left:
                overflow = ids[:window]
                first = (remove, len(ids))
            else:
                overflow = ids[-window:]
                first = (0, len(ids) - remove)
        elif strategy == "longest_first":
            assert pair is not None
            len_ids, len_pair = len(ids), len(pair)
            first_remove = min(abs(len_pair - len_ids), remove)
            second_remove = remove - first_remove
            if len_ids > len_pair:
                ids_remove = first_remove + second_remove // 2
                pair_remove = second_remove - second_remove // 2
            else:
                ids_remove = second_remove // 2
                pair_remove = first_remove + second_remove - second_remove // 2
            ids_remove = min(ids_remove, len_ids)
            pair_remove = min(pair_remove, len_pair)
            if left:
                first = (ids_remove, len_ids)
                second = (pair_remove, len_pair)
            else:
                first = (0, len_ids - ids_remove)
                second = (0, len_pair - pair_remove)
        elif strategy == "only_second":
            if pair is None:
                return first, second, overflow
            if len(pair) <= remove:
                raise InputError(
                    f"cannot truncate: {remove} tokens must be removed but the second sequence has only {len(pair)} "
                    "(use truncation='longest_first' or 'only_first')"
                )
            window = min(len(pair), stride + remove)
            if left:
                overflow = pair[:window]
                second = (remove, len(pair))
            else:
                overflow = pair[-window:]
                second = (0, len(pair) - remove)
        return first, second, overflow

    def _windows(
        self, n1: int, n2: int | None, budget: int, strategy: str, stride: int
    ) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """The kept spans of each window (fast tokenizer's ``return_overflowing_tokens``), in the reference's order.

        ``budget`` is ``max_length`` less the special tokens. The reference fast tokenizer (HF ``tokenizers``) cuts
        each sequence it truncates into windows of its target length that overlap by ``stride`` tokens; a pair
        gives the first windows with the second's first window and then with each of its other windows, then the
        first's first window with the second's other windows.
        """
        left = self._check_side(self.truncation_side, "truncation_side") == "left"
        total = n1 + (n2 or 0)
        first, second = [(0, n1)], [(0, n2 or 0)]
        remove = total - budget
        if budget == 0:
            first = _cut(n1, 0, stride, left)
            if n2 is not None:
                second = _cut(n2, 0, stride, left)
        elif remove <= 0:
            pass
        elif strategy == "longest_first":
            if n2 is None:
                first = _cut(n1, budget, stride, left)
            else:
                short, long = min(n1, n2), max(n1, n2)
                long = short if short > budget else max(short, budget - short)
                if short + long > budget:
                    short = budget // 2
                    long = short + budget % 2
                target1, target2 = (long, short) if n1 > n2 else (short, long)
                first = _cut(n1, target1, stride, left)
                second = _cut(n2, target2, stride, left)
        elif strategy == "only_first" or strategy == "only_second":
            length = n1 if strategy == "only_first" else n2
            if length is None:
                raise InputError(
                    "Truncation error: Second sequence not provided (truncation='only_second' needs a pair)"
                )
            if length <= remove:
                raise InputError(
                    "Truncation error: Sequence to truncate too short to respect the provided max_length "
                    f"({remove} tokens must be removed from the {strategy[5:]} sequence, which has {length})"
                )
            cut = _cut(length, length - remove, stride, left)
            if strategy == "only_first":
                first = cut
            else:
                second = cut
        out = [(first[0], second[0])]
        for span1 in first[1:]:
            out.append((span1, second[0]))
            out.extend((span1, span2) for span2 in second[1:])
        out.extend((first[0], span2) for span2 in second[1:])
        return out

    def _numpy_rows(
        self,
        rows_ids: list[list[int]],
        rows_types: list[list[int]],
        rows_special: list[list[int]],
        lengths: list[int],
        width: int,
        pad_id: int,
        side: str,
        want_types: bool,
        want_mask: bool,
        want_special: bool,
    ) -> dict[str, np.ndarray]:
        """Padded (batch, width) int64 arrays, filled with one scatter per key instead of per-row lists."""
        batch = len(rows_ids)
        lens = np.asarray(lengths, dtype=np.int64)
        starts = np.zeros(batch, dtype=np.int64) if side == "right" else width - lens
        columns = np.arange(width, dtype=np.int64)
        mask = (columns[None, :] >= starts[:, None]) & (columns[None, :] < (starts + lens)[:, None])
        out: dict[str, np.ndarray] = {}
        flat_ids = np.fromiter((x for r in rows_ids for x in r), dtype=np.int64, count=int(lens.sum()))
        ids = np.full((batch, width), pad_id, dtype=np.int64)
        ids[mask] = flat_ids
        out["input_ids"] = ids
        if want_types:
            types = np.zeros((batch, width), dtype=np.int64)
            if any(1 in t for t in rows_types):
                types[mask] = np.fromiter((x for r in rows_types for x in r), dtype=np.int64, count=int(lens.sum()))
            out["token_type_ids"] = types
        if want_special:
            special = np.ones((batch, width), dtype=np.int64)
            special[mask] = np.fromiter((x for r in rows_special for x in r), dtype=np.int64, count=int(lens.sum()))
            out["special_tokens_mask"] = special
        if want_mask:
            out["attention_mask"] = mask.astype(np.int64)
        return out

    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: Any = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad already-encoded inputs (a dict of lists, a BatchEncoding, or a list of per-example dicts).

        Pads ``input_ids`` with the pad id, ``token_type_ids`` with 0, ``special_tokens_mask``
        with 1, and builds/pads ``attention_mask``; token-level ``labels`` (rows as long as their
        ``input_ids``) are padded with -100, the index losses ignore. Other keys are kept, and with
        ``return_tensors`` every key that holds numbers in rectangular rows becomes a tensor
        (``labels``, ``label``, ...). This is what data collators call (``DataCollatorWithPadding``,
        ``DataCollatorForTokenClassification``). On the fast tokenizer it logs, once, the reference's
        hint that calling the tokenizer with ``padding`` is faster.

        Example::

            tokenizer.pad([{"input_ids": [1000, 5, 1001]}, {"input_ids": [1000, 1001]}], return_tensors="np")
        """
        if self.is_fast and not self.deprecation_warnings.get(_PAD_HINT, False):
            logger.warning(
                f"You're using a {type(self).__name__} tokenizer. Please note that with a fast tokenizer, "
                "using the `__call__` method is faster than using a method to encode the text followed by a call "
                "to the `pad` method to get a padded encoding."
            )
            self.deprecation_warnings[_PAD_HINT] = True
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            keys = list(encoded_inputs[0])
            for index, example in enumerate(encoded_inputs):
                if not isinstance(example, Mapping) or set(example) != set(keys):
                    raise InputError(
                        f"encoded_inputs[{index}]: every example must be a dict with the keys of the first one {keys}"
                    )
            encoded_inputs = {k: [example[k] for example in encoded_inputs] for k in keys}
        if not isinstance(encoded_inputs, Mapping) or "input_ids" not in encoded_inputs:
            raise InputError("encoded_inputs: expected a dict (or a list of dicts) with an 'input_ids' entry")
        data = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in encoded_inputs.items()}
        rows = data["input_ids"]
        batched = isinstance(rows, (list, tuple)) and len(rows) > 0 and isinstance(rows[0], (list, tuple))
        if not batched:
            data = {k: [v] for k, v in data.items()}
        tensor_type = check_tensor_type(return_tensors)
        pad, _, max_len = self._strategies(padding, False, max_length, pad_to_multiple_of, 0)
        side = self._check_side(self.padding_side if padding_side is None else padding_side, "padding_side")
        lengths = [len(r) for r in data["input_ids"]]
        if return_attention_mask is not False and "attention_mask" not in data:
            data["attention_mask"] = [[1] * n for n in lengths]
        target = max(lengths, default=0) if pad == "longest" else max_len if pad == "max_length" else None
        if target is not None and pad_to_multiple_of is not None and target % pad_to_multiple_of != 0:
            target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of
        _check_padded_length(target)
        fills = {
            "input_ids": self.pad_token_id if self.pad_token_id is not None else 0,
            "token_type_ids": self.pad_token_type_id,
            "attention_mask": 0,
            "special_tokens_mask": 1,
        }
        labels = data.get("labels")
        if (
            isinstance(labels, (list, tuple))
            and all(isinstance(row, (list, tuple)) and len(row) == n for row, n in zip(labels, lengths, strict=False))
            and len(labels) == len(lengths)
        ):
            fills["labels"] = -100  # token-level labels: the index the losses ignore
        if target is not None:
            for key, fill in fills.items():
                if key not in data:
                    continue
                padded = []
                for row, n in zip(data[key], lengths, strict=True):
                    extra = [fill] * max(target - n, 0)
                    padded.append(list(row) + extra if side == "right" else extra + list(row))
                data[key] = padded
        if return_attention_mask is False:
            data.pop("attention_mask", None)
        if tensor_type is None and not batched:
            data = {k: v[0] for k, v in data.items()}
        result = BatchEncoding(data, is_batched=batched or tensor_type is not None)
        if tensor_type is not None:
            result.convert_to_tensors(tensor_type)
        return result
