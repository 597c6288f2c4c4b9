"""Token <-> word <-> character alignment of the fast tokenizer's outputs, with the reference's API.

:class:`Encoding` is one output row as HF ``tokenizers`` describes it (``tokenizers.Encoding``): ids, tokens,
word ids, character offsets and the token range of each sequence, with the same lookup methods and the same
answers (ranges, ``None`` for special and padding tokens, the first match for a character). The fast
tokenizer builds one per row (per window with ``return_overflowing_tokens``) and
:class:`~rembert_tokenizers.BatchEncoding` answers ``word_ids()``, ``token_to_chars()``,
``char_to_token()``, ... from them through ``AlignmentMixin``, with the batch-index forms of the
reference's ``BatchEncoding``. The slow tokenizer has no alignment: the methods raise the reference's error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from rembert_core import InputError

__all__ = ["AlignmentMixin", "CharSpan", "Encoding", "TokenSpan"]


class CharSpan(NamedTuple):
    """Character span in the original string: ``start`` (first character) and ``end`` (one past the last)."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Token span in an encoded row: ``start`` (first token) and ``end`` (one past the last)."""

    start: int
    end: int


Offsets = list[tuple[int, int]]


class Encoding:
    """One encoded row (a text, a pair, or one window of them): the ``tokenizers.Encoding`` API.

    ``sequence_ranges`` maps a sequence index (0, and 1 for the second text of a pair) to the token range
    ``(start, stop)`` of its tokens, special and padding tokens excluded. Offsets are computed on first use
    when the call did not ask for them (``offsets_of``).

    Example::

        enc = tokenizer_fast("Hello world").encodings[0]
        enc.word_to_tokens(1)  # (4, 5)
    """

    __slots__ = (
        "_char_maps",
        "_offsets",
        "_offsets_of",
        "attention_mask",
        "ids",
        "overflowing",
        "sequence_ranges",
        "special_tokens_mask",
        "tokens",
        "type_ids",
        "word_ids",
    )

    def __init__(
        self,
        *,
        ids: list[int],
        type_ids: list[int],
        tokens: list[str],
        word_ids: list[int | None],
        sequence_ranges: dict[int, tuple[int, int]],
        offsets: Offsets | None = None,
        offsets_of: Callable[[], Offsets] | None = None,
        attention_mask: list[int] | None = None,
        special_tokens_mask: list[int] | None = None,
    ) -> None:
        self.ids = ids
        self.type_ids = type_ids
        self.tokens = tokens
        self.word_ids = word_ids
        self.sequence_ranges = sequence_ranges
        self._offsets = offsets
        self._offsets_of = offsets_of
        in_sequence = self.sequence_ids
        self.attention_mask = attention_mask if attention_mask is not None else [1] * len(ids)
        self.special_tokens_mask = (
            special_tokens_mask if special_tokens_mask is not None else [int(s is None) for s in in_sequence]
        )
        self.overflowing: list[Encoding] = []
        self._char_maps: dict[int, dict[int, int]] = {}

    def __repr__(self) -> str:
        return f"Encoding(num_tokens={len(self.ids)}, attributes=[ids, type_ids, tokens, offsets, word_ids])"

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:
        state = {
            name: getattr(self, name)
            for name in self.__slots__
            if name not in ("_offsets", "_offsets_of", "_char_maps")
        }
        state["_offsets"] = self.offsets
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._offsets_of = None
        self._char_maps = {}

    @property
    def offsets(self) -> Offsets:
        """``(start, end)`` characters of every token in its own text; ``(0, 0)`` for special and padding tokens."""
        if self._offsets is None:
            self._offsets = self._offsets_of() if self._offsets_of is not None else [(0, 0)] * len(self.ids)
            self._offsets_of = None
        return self._offsets

    @property
    def words(self) -> list[int | None]:
        """The word ids (the reference's deprecated name)."""
        return self.word_ids

    @property
    def n_sequences(self) -> int:
        """How many texts this row was built from (1, or 2 for a pair)."""
        return len(self.sequence_ranges) or 1

    @property
    def sequence_ids(self) -> list[int | None]:
        """The sequence index of every token, ``None`` for special and padding tokens."""
        if not self.sequence_ranges:
            return [0] * len(self.ids)
        out: list[int | None] = [None] * len(self.ids)
        for sequence, (start, stop) in self.sequence_ranges.items():
            out[start:stop] = [sequence] * (stop - start)
        return out

    def _range(self, sequence_index: int) -> tuple[int, int]:
        return self.sequence_ranges.get(sequence_index, (0, len(self.ids)))

    def token_to_sequence(self, token_index: int) -> int | None:
        """The sequence (0 or 1) of a token; ``None`` for special and padding tokens and past the end."""
        if token_index > len(self.ids):
            return None
        if not self.sequence_ranges:
            return 0
        for sequence, (start, stop) in self.sequence_ranges.items():
            if start <= token_index < stop:
                return sequence
        return None

    def token_to_word(self, token_index: int) -> int | None:
        """The word of a token in its sequence; ``None`` for special and padding tokens."""
        if self.token_to_sequence(token_index) is None or token_index >= len(self.word_ids):
            return None
        return self.word_ids[token_index]

    def token_to_chars(self, token_index: int) -> tuple[int, int] | None:
        """The ``(start, end)`` characters of a token; ``None`` for special and padding tokens."""
        if self.token_to_sequence(token_index) is None or token_index >= len(self.ids):
            return None
        return self.offsets[token_index]

    def word_to_tokens(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        """The ``(start, end)`` tokens of a word of sequence ``sequence_index``; ``None`` if it has none."""
        start, stop = self._range(sequence_index)
        if stop > len(self.word_ids):
            return None
        first = last = None
        for index in range(start, stop):
            word = self.word_ids[index]
            if word is not None and word > word_index:
                break  # words are in order: the reference stops at the first later word
            if word == word_index:
                if first is None:
                    first = index
                last = index + 1
        if first is None or last is None:
            return None
        return first, last

    def word_to_chars(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        """The ``(start, end)`` characters of a word of sequence ``sequence_index``; ``None`` if it has no token."""
        span = self.word_to_tokens(word_index, sequence_index)
        if span is None or span[1] == 0:
            return None
        offsets = self.offsets
        return offsets[span[0]][0], offsets[span[1] - 1][1]

    def char_to_token(self, char_pos: int, sequence_index: int = 0) -> int | None:
        """The first token of sequence ``sequence_index`` whose span holds character ``char_pos``, else ``None``."""
        chars = self._char_maps.get(sequence_index)
        if chars is None:  # character -> first token holding it, built once per sequence
            chars = {}
            start, stop = self._range(sequence_index)
            offsets = self.offsets
            if stop <= len(offsets):
                for index in range(start, stop):
                    begin, end = offsets[index]
                    for char in range(begin, end):
                        chars.setdefault(char, index)
            self._char_maps[sequence_index] = chars
        return chars.get(char_pos)

    def char_to_word(self, char_pos: int, sequence_index: int = 0) -> int | None:
        """The word holding character ``char_pos`` of sequence ``sequence_index``, else ``None``."""
        token = self.char_to_token(char_pos, sequence_index)
        return None if token is None else self.token_to_word(token)


def _not_available(method: str) -> InputError:
    """The reference's error for an alignment method on a Python (slow) tokenizer's output."""
    if method in ("tokens", "sequence_ids", "words", "word_ids"):
        return InputError(
            f"{method}() is not available when using non-fast tokenizers "
            "(e.g. instance of a `RemBertTokenizerFast` class)."
        )
    return InputError(
        f"{method}() is not available when using Python based tokenizers (use RemBertTokenizerFast's outputs)"
    )


def _index(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{argument} must be an int, got {type(value).__name__} {value!r}")
    return value


class AlignmentMixin:
    """The reference ``BatchEncoding``'s alignment methods, answered from the rows' ``Encoding`` objects.

    With one index (``token_to_word(3)``) it is a position in the first row; with two
    (``token_to_word(1, 3)``) the first is the row. Negative indexes count from the end, as in lists.
    """

    def _encodings_or_none(self) -> list[Encoding] | None:
        raise NotImplementedError

    @property
    def encodings(self) -> list[Encoding] | None:
        """One :class:`~rembert_tokenizers.alignment.Encoding` per row (fast tokenizer); ``None`` for the slow one."""
        return self._encodings_or_none()

    @property
    def n_sequences(self) -> int | None:
        """How many texts each row was built from (1, or 2 for pairs); ``None`` for the slow tokenizer's outputs."""
        encodings = self._encodings_or_none()
        return encodings[0].n_sequences if encodings else None

    def _encoding(self, method: str, batch_index: Any) -> Encoding:
        encodings = self._encodings_or_none()
        if not encodings:
            raise _not_available(method)
        index = _index(batch_index, "batch_index")
        if not -len(encodings) <= index < len(encodings):
            raise InputError(f"batch_index={index} is out of range for a batch of {len(encodings)}")
        return encodings[index]

    @staticmethod
    def _split(first: Any, second: Any, what: str) -> tuple[int, int]:
        if second is None:
            return 0, _index(first, f"batch_or_{what}_index")
        return _index(first, f"batch_or_{what}_index"), _index(second, f"{what}_index")

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of row ``batch_index``, special and padding tokens included.

        Example::

            tokenizer_fast("Hello").tokens()  # ['[CLS]', '▁He', 'll', 'o', '[SEP]']
        """
        return list(self._encoding("tokens", batch_index).tokens)

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """Word index of every token of row ``batch_index`` (``None`` for special and padding tokens).

        Words are the whitespace-separated words of the text (or the given words with
        ``is_split_into_words=True``); an added token is a word of its own.

        Example::

            tokenizer_fast("Hello world").word_ids()  # [None, 0, 0, 0, 1, None]
        """
        return list(self._encoding("word_ids", batch_index).word_ids)

    def words(self, batch_index: int = 0) -> list[int | None]:
        """Deprecated name of ``word_ids()`` (a ``FutureWarning``, as in the reference)."""
        self._encoding("words", batch_index)
        warnings.warn(
            "`BatchEncoding.words()` property is deprecated and should be replaced with the identical, "
            "but more self-explanatory `BatchEncoding.word_ids()` property.",
            FutureWarning,
            stacklevel=2,
        )
        return self.word_ids(batch_index)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """0/1 for tokens of the first/second sequence, ``None`` for special and padding tokens.

        Example::

            tokenizer_fast("a b", "c").sequence_ids()  # [None, 0, 0, None, 1, None]
        """
        return self._encoding("sequence_ids", batch_index).sequence_ids

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The sequence (0 or 1) of a token, ``None`` for special and padding tokens.

        Example::

            tokenizer_fast("a b", "c").token_to_sequence(4)  # 1
        """
        batch, token = self._split(batch_or_token_index, token_index, "token")
        encoding = self._encoding("token_to_sequence", batch)
        return encoding.token_to_sequence(token + len(encoding) if token < 0 else token)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The word (in its sequence) of a token, ``None`` for special and padding tokens.

        Example::

            tokenizer_fast("Hello world").token_to_word(4)  # 1
        """
        batch, token = self._split(batch_or_token_index, token_index, "token")
        encoding = self._encoding("token_to_word", batch)
        return encoding.token_to_word(token + len(encoding) if token < 0 else token)

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        """The :class:`~rembert_tokenizers.alignment.CharSpan` of a token, ``None`` for special and padding tokens.

        Example::

            tokenizer_fast("Hello world").token_to_chars(4)  # CharSpan(start=5, end=11)
        """
        batch, token = self._split(batch_or_token_index, token_index, "token")
        encoding = self._encoding("token_to_chars", batch)
        span = encoding.token_to_chars(token + len(encoding) if token < 0 else token)
        return CharSpan(*span) if span is not None else None

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        """The :class:`~rembert_tokenizers.alignment.TokenSpan` of a word of a sequence, ``None`` if it has no token.

        Example::

            tokenizer_fast("Hello world").word_to_tokens(0)  # TokenSpan(start=1, end=4)
        """
        batch, word = self._split(batch_or_word_index, word_index, "word")
        encoding = self._encoding("word_to_tokens", batch)
        span = encoding.word_to_tokens(word, _index(sequence_index, "sequence_index"))
        return TokenSpan(*span) if span is not None else None

    def word_to_chars(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> CharSpan:
        """The :class:`~rembert_tokenizers.alignment.CharSpan` of a word of sequence ``sequence_index``.

        As in the reference, a word without tokens raises (a ``TypeError``: there is no span to build).

        Example::

            tokenizer_fast("Hello world").word_to_chars(1)  # CharSpan(start=5, end=11)
        """
        batch, word = self._split(batch_or_word_index, word_index, "word")
        span = self._encoding("word_to_chars", batch).word_to_chars(word, _index(sequence_index, "sequence_index"))
        if span is None:
            raise TypeError(f"word {word} of sequence {sequence_index} has no tokens in row {batch}: no character span")
        return CharSpan(*span)

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        """The token holding a character of sequence ``sequence_index``, ``None`` if none does (e.g. a space).

        Example::

            tokenizer_fast("Hello world").char_to_token(6)  # 4
        """
        batch, char = self._split(batch_or_char_index, char_index, "char")
        return self._encoding("char_to_token", batch).char_to_token(char, _index(sequence_index, "sequence_index"))

    def char_to_word(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        """The word holding a character of sequence ``sequence_index``, ``None`` if none does.

        Example::

            tokenizer_fast("Hello world").char_to_word(6)  # 1
        """
        batch, char = self._split(batch_or_char_index, char_index, "char")
        return self._encoding("char_to_word", batch).char_to_word(char, _index(sequence_index, "sequence_index"))
