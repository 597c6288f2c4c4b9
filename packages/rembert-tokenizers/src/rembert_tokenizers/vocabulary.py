"""What every step reads: the vocabulary, the encoded sequence, and the hooks a tokenizer class implements.

* :class:`AddedToken`: a token matched in the text before the SentencePiece model sees it (``[CLS]``,
  ``[MASK]``, tokens from ``add_tokens``); the added tokens extend the model's pieces.
* :class:`_Sequence`: one text encoded into ids, before special tokens (what segmentation produces).
* :class:`Vocabulary`: the root of the tokenizer classes. It declares the state the steps share (options,
  pieces, added tokens, the matchers built from them), converts between tokens and ids, and declares the
  four subclass hooks: :meth:`~Vocabulary._load_model`, :meth:`~Vocabulary._encode_chunks` (the only step
  that differs between the slow and the fast tokenizer), :meth:`~Vocabulary._decode_pieces` and
  :meth:`~Vocabulary._model_proto_bytes`.
"""

from __future__ import annotations

import abc
import re
import reprlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from rembert_core import InputError
from rembert_tokenizers._trie import TokenTrie

__all__ = ["SPIECE_UNDERLINE", "AddedToken", "Vocabulary"]

#: The SentencePiece whitespace symbol.
SPIECE_UNDERLINE = "\u2581"

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60

#: The flags of an added token (``AddedToken`` fields besides ``content``).
_FLAGS = ("lstrip", "rstrip", "single_word", "normalized", "special")


def _short_repr(value: Any) -> str:
    """A short ``repr`` for error messages: bounded on huge values and safe on deeply nested ones (files)."""
    return _REPR.repr(value)


@dataclass(frozen=True)
class AddedToken:
    """A token matched in the text before the SentencePiece model sees it (reference ``AddedToken`` fields).

    Args:
        content (str): the token text, e.g. ``"[MASK]"``.
        lstrip (bool): swallow the whitespace on its left.
        rstrip (bool): swallow the whitespace on its right.
        single_word (bool): match only when not inside a word.
        normalized (bool): kept for the file formats (the reference stores it; matching is on the raw text).
        special (bool): a special token (skipped by ``decode(skip_special_tokens=True)``).

    Example::

        tokenizer.add_tokens([AddedToken("<ent>", lstrip=True)])
    """

    content: str
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = True
    special: bool = False

    def __str__(self) -> str:
        return self.content

    def to_dict(self) -> dict[str, Any]:
        """The reference JSON form (content, lstrip, normalized, rstrip, single_word, special).

        Example::

            AddedToken("<ent>").to_dict()["content"]  # '<ent>'
        """
        return asdict(self)

    @classmethod
    def from_value(cls, value: Any, *, special: bool, argument: str) -> AddedToken:
        """An :class:`AddedToken` from a ``str``, an ``AddedToken`` (ours or the reference's) or its JSON dict.

        Example::

            AddedToken.from_value({"content": "[MASK]", "lstrip": True}, special=True, argument="mask_token")
        """
        if isinstance(value, AddedToken):
            return value if value.special or not special else cls(**{**asdict(value), "special": True})
        if isinstance(value, str):
            if not value:
                raise InputError(f"{argument}: a token cannot be the empty string")
            return cls(value, normalized=not special, special=special)
        if isinstance(value, Mapping):
            fields = {k: value[k] for k in ("content", "lstrip", "rstrip", "single_word", "normalized") if k in value}
            if not isinstance(fields.get("content"), str) or not fields["content"]:
                raise InputError(f"{argument}: {_short_repr(value)} has no non-empty 'content'")
            for flag in _FLAGS:
                if flag in value and not isinstance(value[flag], bool):
                    raise InputError(
                        f"{argument}: token {fields['content']!r}: {flag!r} must be true or false, "
                        f"got {_short_repr(value[flag])}"
                    )
            return cls(**fields, special=bool(value.get("special", special)) or special)
        content = getattr(value, "content", None)  # transformers / tokenizers AddedToken
        if isinstance(content, str) and content:
            return cls(
                content,
                lstrip=bool(getattr(value, "lstrip", False)),
                rstrip=bool(getattr(value, "rstrip", False)),
                single_word=bool(getattr(value, "single_word", False)),
                normalized=bool(getattr(value, "normalized", True)),
                special=special or bool(getattr(value, "special", False)),
            )
        raise InputError(f"{argument}: expected a str or AddedToken, got {type(value).__name__} {_short_repr(value)}")


@dataclass(slots=True)
class _Sequence:
    """One encoded text before special tokens: ids, and what the fast tokenizer aligns with them."""

    ids: list[int]
    words: list[int] | None = None  # explicit word index per token (is_split_into_words)
    offsets: list[tuple[int, int]] | None = None  # (start, end) characters in the original text
    pieces: list[str] | None = None
    deferred: Callable[[], list[str]] | None = None  # computes ``pieces`` on first use (see _resolved)


def _resolved(seq: _Sequence) -> list[str] | None:
    """``seq.pieces``, computed now if the encoder deferred them (most calls never look at them)."""
    if seq.pieces is None and seq.deferred is not None:
        seq.pieces = seq.deferred()
        seq.deferred = None
    return seq.pieces


class Vocabulary(abc.ABC):
    """The SentencePiece pieces and the added tokens, token <-> id conversion, and the subclass hooks.

    The attributes below are set by ``RemBertTokenizerBase.__init__`` (options), the subclass's
    :meth:`_load_model` (pieces) and :class:`~rembert_tokenizers.special_tokens.SpecialTokensMixin`
    (added tokens and the matchers built from them); every step's mixin reads them.
    """

    is_fast: ClassVar[bool]
    _class_name: ClassVar[str]

    # Options (RemBertTokenizerBase.__init__).
    do_lower_case: bool
    remove_space: bool
    keep_accents: bool
    clean_up_tokenization_spaces: bool
    padding_side: str
    truncation_side: str
    model_max_length: int
    init_kwargs: dict[str, Any]
    _extra_init_kwargs: dict[str, Any]
    deprecation_warnings: dict[str, bool]  # warnings given once per tokenizer (the reference's keys)
    name_or_path: str
    _lock: threading.RLock  # guards changes of the added tokens

    # The SentencePiece model (the subclass's _load_model): id -> piece, piece -> id, the unknown piece's id.
    _pieces: list[str]
    _piece_ids: dict[str, int]
    _sp_unk_id: int

    # Added tokens, like the reference's _added_tokens_decoder/encoder, and the special-token attributes.
    _added_tokens: dict[int, AddedToken]
    _added_ids: dict[str, int]
    _special: dict[str, AddedToken | None]
    _additional_special: list[AddedToken]

    # Built from the added tokens by SpecialTokensMixin._rebuild_matcher.
    _added_re: re.Pattern[str] | None
    _split_ids: dict[str, int]  # the added tokens matched in text: content -> id
    _split_special: bool
    _trie: TokenTrie
    _lower_re: re.Pattern[str] | None
    _all_special_ids_cache: list[int]
    _remap_all_pieces: bool

    # ------------------------------------------------------------------ subclass hooks

    @abc.abstractmethod
    def _load_model(self) -> None:
        """Load the SentencePiece model: fill ``_pieces``, ``_piece_ids`` and ``_sp_unk_id``."""

    @abc.abstractmethod
    def _encode_chunks(self, chunks: list[str], *, offsets: bool = False, pieces: bool = False) -> list[_Sequence]:
        """Encode plain text chunks (no added tokens in them) with the SentencePiece model.

        Returns, per chunk, the ids; with ``pieces``, the pieces (the normalized
        surface of each piece, as ``sentencepiece``'s ``EncodeAsPieces``); with
        ``offsets``, the character span of each piece in the chunk.
        """

    @abc.abstractmethod
    def _decode_pieces(self, pieces: list[str]) -> str:
        """SentencePiece detokenization of a list of pieces (``DecodePieces``)."""

    @abc.abstractmethod
    def _model_proto_bytes(self) -> bytes:
        """The serialized SentencePiece model (for ``save_vocabulary``)."""

    # ------------------------------------------------------------------ tokens <-> ids

    @property
    def vocab_size(self) -> int:
        """Number of SentencePiece pieces (added tokens not counted), as the reference."""
        return len(self._pieces)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included."""
        return len(self.get_vocab())

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for every piece and added token.

        Example::

            tokenizer.get_vocab()["[CLS]"]  # 1000 with the test model, 312 with google/rembert
        """
        vocab = dict(self._piece_ids)
        vocab.update({t.content: i for i, t in self._added_tokens.items()})
        return vocab

    def convert_tokens_to_ids(self, tokens: str | Sequence[str] | None) -> int | list[int] | None:
        """Id of a token (or list of ids of a list of tokens); unknown tokens map to the model's unknown piece.

        Example::

            tokenizer.convert_tokens_to_ids(["[CLS]", "▁the"])  # [1000, 9]
        """
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        if not isinstance(tokens, (list, tuple)):
            raise InputError(f"tokens: expected a str or a list of str, got {type(tokens).__name__}")
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token: Any) -> int:
        if not isinstance(token, str):
            raise InputError(f"tokens: expected str tokens, got {type(token).__name__} {token!r}")
        index = self._added_ids.get(token)
        if index is not None:
            return index
        return self._piece_ids.get(token, self._sp_unk_id)

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Token text of an id, or of each id of a list (``skip_special_tokens`` drops special ids from a list).

        Raises :class:`~rembert_core.InputError` for ids outside ``[0, len(tokenizer))``.

        Example::

            tokenizer.convert_ids_to_tokens([1000, 151, 1001], skip_special_tokens=True)  # ['▁He']
        """
        if isinstance(ids, (int, np.integer)):
            return self._id_to_token(int(ids))
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple)):
            raise InputError(f"ids: expected an int or a list of int, got {type(ids).__name__}")
        special = set(self._all_special_ids_cache) if skip_special_tokens else ()
        result = []
        for index in ids:
            if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
                raise InputError(f"ids: expected int ids, got {type(index).__name__} {index!r}")
            if int(index) in special:
                continue
            result.append(self._id_to_token(int(index)))
        return result

    def _id_to_token(self, index: int) -> str:
        token = self._added_tokens.get(index)
        if token is not None:
            return token.content
        if 0 <= index < len(self._pieces):
            return self._pieces[index]
        raise InputError(
            f"token id {index} is out of range for a vocabulary of {len(self)} (valid: 0..{len(self) - 1})"
        )
