"""Step 5 assembled, and reading results back: rows -> :class:`BatchEncoding`, alignment, decoding.

:meth:`~OutputsMixin._encode_batch` runs steps 4-5 for a batch: it encodes the texts
(:mod:`~rembert_tokenizers.segmentation`), truncates them, adds ``[CLS]``/``[SEP]``, pads the rows
(:mod:`~rembert_tokenizers.truncation_padding`) and returns the :class:`BatchEncoding`. The fast
tokenizer's word ids, tokens and offsets are aligned lazily from each row's :class:`_Row`.
:meth:`~OutputsMixin.decode` turns ids back into text with the reference slow tokenizer's rules.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rembert_core import InputError
from rembert_tokenizers.alignment import Encoding, Offsets
from rembert_tokenizers.encoding import BatchEncoding, check_tensor_type
from rembert_tokenizers.normalization import _preview
from rembert_tokenizers.segmentation import SegmentationMixin
from rembert_tokenizers.truncation_padding import TruncationPaddingMixin, _check_padded_length
from rembert_tokenizers.vocabulary import SPIECE_UNDERLINE, _resolved, _Sequence

__all__ = ["OutputsMixin"]

logger = logging.getLogger(__name__)

#: The key of :attr:`deprecation_warnings` that records the too-long warning (the reference's key).
_TOO_LONG = "sequence-length-is-longer-than-the-specified-maximum"


@dataclass(slots=True)
class _Row:
    """One output row: how the sequences were truncated, for the lazy word/offset alignment."""

    first: _Sequence
    first_span: tuple[int, int]
    second: _Sequence | None = None
    second_span: tuple[int, int] = (0, 0)
    special: bool = True
    pad_left: int = 0
    pad_right: int = 0


class OutputsMixin(TruncationPaddingMixin, SegmentationMixin):
    """The batch encoder behind every call, the fast tokenizer's alignment, and decoding."""

    # ------------------------------------------------------------------ rows -> BatchEncoding

    def _encode_batch(
        self,
        texts: list[Any],
        pairs: list[Any] | None,
        *,
        batched: bool,
        add_special_tokens: bool,
        padding: Any,
        truncation: Any,
        max_length: Any,
        stride: Any,
        is_split_into_words: bool,
        pad_to_multiple_of: Any,
        padding_side: Any,
        return_tensors: Any,
        return_token_type_ids: bool | None,
        return_attention_mask: bool | None,
        return_overflowing_tokens: bool,
        return_special_tokens_mask: bool,
        return_offsets_mapping: bool,
        return_length: bool,
        verbose: bool = True,
    ) -> BatchEncoding:
        tensor_type = check_tensor_type(return_tensors)
        pad, trunc, max_len = self._strategies(padding, truncation, max_length, pad_to_multiple_of, stride)
        side = self._check_side(self.padding_side if padding_side is None else padding_side, "padding_side")
        if return_offsets_mapping and not self.is_fast:
            raise InputError(
                "return_offsets_mapping=True is only available on RemBertTokenizerFast "
                "(as in the reference, the sentencepiece tokenizer has no character alignment)"
            )
        is_pair = pairs is not None
        if return_overflowing_tokens and trunc == "longest_first" and is_pair and not self.is_fast:
            raise InputError(
                "return_overflowing_tokens=True is not possible for pairs with truncation='longest_first'; "
                "use 'only_first' or 'only_second'"
            )
        n_special = self.num_special_tokens_to_add(is_pair) if add_special_tokens else 0
        if trunc != "do_not_truncate" and max_len is not None and max_len < n_special:
            raise InputError(
                f"max_length={max_len} is smaller than the {n_special} special tokens every "
                f"{'pair' if is_pair else 'sequence'} needs"
            )
        if return_token_type_ids is None:
            return_token_type_ids = True
        if return_attention_mask is None:
            return_attention_mask = True

        want_offsets = return_offsets_mapping
        firsts = self._encode_inputs(texts, is_split_into_words=is_split_into_words, offsets=want_offsets)
        seconds = (
            self._encode_inputs(pairs, is_split_into_words=is_split_into_words, offsets=want_offsets)
            if pairs is not None
            else None
        )
        cls_id = self.cls_token_id
        sep_id = self.sep_token_id
        head = [cls_id] if add_special_tokens and cls_id is not None else []
        tail = [sep_id] if add_special_tokens and sep_id is not None else []

        want_types = bool(return_token_type_ids)
        want_special = bool(return_special_tokens_mask)
        rows_ids: list[list[int]] = []
        rows_types: list[list[int]] = []
        rows_special: list[list[int]] = []
        # One row per (sample, kept span of the first sequence, kept span of the second): one per sample, or one
        # per window for the fast tokenizer's return_overflowing_tokens (the reference fast tokenizer's layout).
        spans: list[tuple[int, tuple[int, int], tuple[int, int]]] = []
        overflows: list[list[int]] = []
        truncated: list[int] = []
        limit = max_len or 0
        truncating = trunc != "do_not_truncate" and limit > 0
        windows = return_overflowing_tokens and self.is_fast
        if windows and truncating and int(stride) > limit - n_special:  # (equal: each cut sequence's own error)
            raise InputError(
                f"tokenizer stride set to {stride}, which is greater than or equal to its effective max length of "
                f"{limit - n_special} (= {limit} original max length - {n_special} added special tokens)"
            )
        n_head, n_tail = len(head), len(tail)
        for index, first in enumerate(firsts):
            second = seconds[index] if seconds is not None else None
            n1, n2 = len(first.ids), len(second.ids) if second is not None else 0
            full = ((0, n1), (0, n2))
            total = n1 + n2 + n_special
            if windows:
                kept = (
                    self._windows(n1, n2 if second is not None else None, limit - n_special, trunc, int(stride))
                    if truncating and total > limit
                    else [full]
                )
                spans.extend((index, span1, span2) for span1, span2 in kept)
                continue
            span1, span2 = full
            overflow: list[int] = []
            if truncating and total > limit:
                span1, span2, overflow = self._truncate(
                    first.ids, second.ids if second is not None else None, total - limit, trunc, int(stride)
                )
            spans.append((index, span1, span2))
            if return_overflowing_tokens:
                overflows.append(overflow)
                truncated.append(total - max_len if max_len else 0)
        for index, span1, span2 in spans:
            second = seconds[index] if seconds is not None else None
            ids = firsts[index].ids[span1[0] : span1[1]]
            if second is None:
                sequence = head + ids + tail
                rows_ids.append(sequence)
                if want_types:
                    rows_types.append([0] * len(sequence))
                if want_special:
                    rows_special.append(
                        [1] * n_head + [0] * len(ids) + [1] * n_tail if add_special_tokens else [0] * len(sequence)
                    )
            else:
                pair_ids = second.ids[span2[0] : span2[1]]
                first_len = n_head + len(ids) + n_tail
                sequence = head + ids + tail + pair_ids + tail
                rows_ids.append(sequence)
                if want_types:
                    rows_types.append([0] * first_len + [1 if add_special_tokens else 0] * (len(pair_ids) + n_tail))
                if want_special:
                    rows_special.append(
                        [1] * n_head + [0] * len(ids) + [1] * n_tail + [0] * len(pair_ids) + [1] * n_tail
                        if add_special_tokens
                        else [0] * len(sequence)
                    )

        lengths = [len(r) for r in rows_ids]
        if max_len is None and verbose:
            self._warn_if_too_long(max(lengths, default=0))
        target: int | None = None
        if pad == "longest":
            target = max(lengths, default=0)
        elif pad == "max_length":
            target = max_len
        if target is not None and pad_to_multiple_of is not None and target % pad_to_multiple_of != 0:
            target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of
        _check_padded_length(target)

        data: dict[str, Any] = {}
        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        use_numpy = tensor_type is not None and target is not None
        if use_numpy:
            assert target is not None
            width = max(target, max(lengths, default=0))
            if any(n != width for n in lengths) and any(n > target for n in lengths):
                raise InputError(
                    f"cannot make a {tensor_type!r} tensor: some rows are longer than the padding length {target}; "
                    "enable truncation or pad to the longest"
                )
            data.update(
                self._numpy_rows(
                    rows_ids,
                    rows_types,
                    rows_special,
                    lengths,
                    width,
                    pad_id,
                    side,
                    return_token_type_ids,
                    return_attention_mask,
                    return_special_tokens_mask,
                )
            )
        else:
            if target is not None:
                right = side == "right"

                def padded(rows: list[list[int]], fill: int) -> list[list[int]]:
                    if right:
                        return [
                            r + [fill] * (target - n) if n < target else r for r, n in zip(rows, lengths, strict=True)
                        ]
                    return [[fill] * (target - n) + r if n < target else r for r, n in zip(rows, lengths, strict=True)]

                masks = padded([[1] * n for n in lengths], 0)
                rows_ids = padded(rows_ids, pad_id)
                rows_types = padded(rows_types, self.pad_token_type_id) if want_types else rows_types
                rows_special = padded(rows_special, 1) if want_special else rows_special
            else:
                masks = [[1] * n for n in lengths]
            data["input_ids"] = rows_ids
            if return_token_type_ids:
                data["token_type_ids"] = rows_types
            if return_special_tokens_mask:
                data["special_tokens_mask"] = rows_special
            if return_attention_mask:
                data["attention_mask"] = masks

        def make_rows(firsts: list[_Sequence] = firsts, seconds: list[_Sequence] | None = seconds) -> list[_Row]:
            rows = []
            for (index, span1, span2), n in zip(spans, lengths, strict=True):
                extra = target - n if target is not None and target > n else 0
                rows.append(
                    _Row(
                        firsts[index],
                        span1,
                        seconds[index] if seconds is not None else None,
                        span2,
                        special=add_special_tokens,
                        pad_left=extra if side == "left" else 0,
                        pad_right=extra if side == "right" else 0,
                    )
                )
            return rows

        if return_overflowing_tokens and not windows:
            data["overflowing_tokens"] = overflows
            data["num_truncated_tokens"] = truncated
        if return_offsets_mapping:
            data["offset_mapping"] = [self._row_offsets(r) for r in make_rows()]
        if return_length:
            if windows:  # the reference fast tokenizer counts the padded rows
                data["length"] = [max(n, target or 0) for n in lengths]
            else:
                data["length"] = (
                    lengths if batched else [target if target is not None and target > lengths[0] else lengths[0]]
                )
        if windows:
            data["overflow_to_sample_mapping"] = [index for index, _, _ in spans]
            batched = True  # one row per window, as the reference fast tokenizer returns them
        if tensor_type is None and not batched:
            data = {k: v[0] for k, v in data.items()}
        result = BatchEncoding(data, is_batched=batched or tensor_type is not None)
        if tensor_type is not None:
            result.convert_to_tensors(tensor_type)
        if self.is_fast:

            def offsets_of_rows() -> list[list[tuple[int, int]]]:
                if want_offsets:
                    return [self._row_offsets(r) for r in make_rows()]
                # Not asked for: the texts are encoded again with offsets, on first use.
                again = self._encode_inputs(texts, is_split_into_words=is_split_into_words, offsets=True)
                pairs_again = (
                    self._encode_inputs(pairs, is_split_into_words=is_split_into_words, offsets=True)
                    if pairs is not None
                    else None
                )
                return [self._row_offsets(r) for r in make_rows(again, pairs_again)]

            result._set_alignment(lambda: self._alignment(make_rows(), offsets_of_rows))
        return result

    def _warn_if_too_long(self, length: int) -> None:
        """The reference's warning (once per tokenizer) for a row longer than ``model_max_length``, untruncated."""
        if length > self.model_max_length and not self.deprecation_warnings.get(_TOO_LONG, False):
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence length "
                f"for this model ({length} > {self.model_max_length}). Running this sequence through the model "
                "will result in indexing errors"
            )
            self.deprecation_warnings[_TOO_LONG] = True

    # ------------------------------------------------------------------ alignment (fast tokenizer)

    def _words_of(self, seq: _Sequence) -> list[int]:
        if seq.words is not None:
            return seq.words
        words: list[int] = []
        current = -1
        previous_added = True
        pieces = _resolved(seq)
        for index, token_id in enumerate(seq.ids):
            is_added = token_id in self._added_tokens and (pieces is None or pieces[index] in self._added_ids)
            if is_added:
                piece = ""
            elif pieces is not None:
                piece = pieces[index]
            else:
                piece = self._pieces[token_id] if 0 <= token_id < len(self._pieces) else ""
            if is_added or previous_added or piece.startswith(SPIECE_UNDERLINE):
                current += 1
            words.append(current)
            previous_added = is_added
        return words

    def _row_parts(self, row: _Row, per_token: Any, head: Any, tail: Any, pad: Any) -> list[Any]:
        start = [head] if row.special and self.cls_token_id is not None else []
        end = [tail] if row.special and self.sep_token_id is not None else []
        out = [pad] * row.pad_left + start + list(per_token(row.first)[row.first_span[0] : row.first_span[1]]) + end
        if row.second is not None:
            out += list(per_token(row.second)[row.second_span[0] : row.second_span[1]]) + end
        return out + [pad] * row.pad_right

    def _row_offsets(self, row: _Row) -> list[tuple[int, int]]:
        return self._row_parts(
            row, lambda s: s.offsets if s.offsets is not None else [(0, 0)] * len(s.ids), (0, 0), (0, 0), (0, 0)
        )

    def _alignment(self, rows: list[_Row], offsets_of_rows: Callable[[], list[Offsets]]) -> list[Encoding]:
        """One :class:`Encoding` per row; the offsets of all rows are computed together, on first use."""
        computed: list[list[Offsets]] = []

        def offsets_of(index: int) -> Offsets:
            if not computed:
                computed.append(offsets_of_rows())
            return computed[0][index]

        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        encodings = []
        for index, row in enumerate(rows):
            n_head = 1 if row.special and cls_id is not None else 0
            n_tail = 1 if row.special and sep_id is not None else 0
            len1 = row.first_span[1] - row.first_span[0]
            start1 = row.pad_left + n_head
            ranges = {0: (start1, start1 + len1)}
            ids = self._row_parts(row, lambda s: s.ids, cls_id, sep_id, pad_id)
            type_ids = [0] * len(ids)
            if row.second is not None:
                start2 = start1 + len1 + n_tail
                ranges[1] = (start2, start2 + row.second_span[1] - row.second_span[0])
                if row.special:
                    type_ids[start2 : len(ids) - row.pad_right] = [1] * (len(ids) - row.pad_right - start2)
            if row.pad_left or row.pad_right:
                type_ids[: row.pad_left] = [self.pad_token_type_id] * row.pad_left
                type_ids[len(ids) - row.pad_right :] = [self.pad_token_type_id] * row.pad_right
            attention = [0] * row.pad_left + [1] * (len(ids) - row.pad_left - row.pad_right) + [0] * row.pad_right
            encodings.append(
                Encoding(
                    ids=ids,
                    type_ids=type_ids,
                    tokens=self._row_parts(
                        row, self._pieces_of, self.cls_token or "", self.sep_token or "", self.pad_token or ""
                    ),
                    word_ids=self._row_parts(row, self._words_of, None, None, None),
                    sequence_ranges=ranges,
                    offsets_of=functools.partial(offsets_of, index),
                    attention_mask=attention,
                )
            )
        return encodings

    # ------------------------------------------------------------------ decode

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        spaces_between_special_tokens: bool = True,
        **kwargs: Any,
    ) -> str:
        """Text of a list of ids (or a 1-D array/tensor), with the reference slow tokenizer's rules.

        Example::

            tokenizer.decode(tokenizer.encode("Hello world"), skip_special_tokens=True)  # 'Hello world'
        """
        if kwargs:
            raise InputError(f"decode: unexpected keyword argument(s): {sorted(kwargs)}")
        ids = self._as_id_list(token_ids, "token_ids")
        tokens = self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        assert isinstance(tokens, list)
        special = set(self.all_special_tokens)
        legacy = (set(self._added_ids) - special) | {
            t for t in self.additional_special_tokens if self._token_to_id(t) >= self.vocab_size
        }
        texts: list[str] = []
        current: list[str] = []
        for token in tokens:
            if skip_special_tokens and token in special:
                continue
            if token in legacy:
                if current:
                    string = self._decode_pieces(current)
                    if string:
                        texts.append(string)
                    current = []
                texts.append(token)
            else:
                current.append(token)
        if current:
            texts.append(self._decode_pieces(current))
        text = (" " if spaces_between_special_tokens else "").join(texts)
        clean = (
            self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        )
        return self.clean_up_tokenization(text) if clean else text

    def batch_decode(self, sequences: Any, **kwargs: Any) -> list[str]:
        """:meth:`decode` of each row of a list of id lists or a 2-D array/tensor of shape (batch, seq).

        Example::

            tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)  # ['Hello world', 'Hi']
        """
        if hasattr(sequences, "numpy") and not isinstance(sequences, np.ndarray):
            sequences = sequences.numpy()
        if isinstance(sequences, np.ndarray):
            if sequences.ndim != 2:
                raise InputError(f"sequences: expected a 2-D array, got shape {sequences.shape}")
            sequences = sequences.tolist()
        if not isinstance(sequences, (list, tuple)):
            raise InputError(f"sequences: expected a list of id lists, got {type(sequences).__name__}")
        return [self.decode(s, **kwargs) for s in sequences]

    @staticmethod
    def _as_id_list(token_ids: Any, argument: str) -> list[int]:
        if hasattr(token_ids, "numpy") and not isinstance(token_ids, np.ndarray):
            token_ids = token_ids.numpy()
        if isinstance(token_ids, np.ndarray):
            if token_ids.ndim > 1:
                raise InputError(f"{argument}: expected a 1-D array of ids, got shape {token_ids.shape}")
            token_ids = token_ids.reshape(-1).tolist()
        if isinstance(token_ids, (int, np.integer)) and not isinstance(token_ids, bool):
            return [int(token_ids)]
        if not isinstance(token_ids, (list, tuple)):
            raise InputError(
                f"{argument}: expected a list of int ids, got {type(token_ids).__name__} {_preview(token_ids)}"
            )
        for value in token_ids:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise InputError(f"{argument}: expected int ids, got {type(value).__name__} {_preview(value)}")
        return [int(v) for v in token_ids]

    @staticmethod
    def clean_up_tokenization(out_string: str) -> str:
        """The reference's English clean-up (``" ."`` -> ``"."``, ``" n't"`` -> ``"n't"``, ...).

        Example::

            tokenizer.clean_up_tokenization("Hello , world !")  # 'Hello, world!'
        """
        return (
            out_string.replace(" .", ".")
            .replace(" ?", "?")
            .replace(" !", "!")
            .replace(" ,", ",")
            .replace(" ' ", "'")
            .replace(" n't", "n't")
            .replace(" 'm", "'m")
            .replace(" 's", "'s")
            .replace(" 've", "'ve")
            .replace(" 're", "'re")
        )

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """SentencePiece detokenization of pieces (``▁`` becomes a space).

        Example::

            tokenizer.convert_tokens_to_string(["▁He", "ll", "o", "▁world"])  # 'Hello world'
        """
        return self._decode_pieces(list(tokens))
