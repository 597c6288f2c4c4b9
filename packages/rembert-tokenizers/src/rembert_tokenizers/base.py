"""The API both RemBERT tokenizers share: one implementation of everything but the piece encoder.

A tokenizer call runs the same steps in :class:`RemBertTokenizer` and
:class:`RemBertTokenizerFast`, all of them here:

1. validate the input (``str``, list of ``str``, words with ``is_split_into_words``);
2. lowercase it when ``do_lower_case`` (special tokens kept), split it on the added
   tokens (``[CLS]``, ``[MASK]``, tokens from :meth:`add_tokens`) with their
   ``lstrip``/``rstrip``/``single_word`` rules, exactly as the reference slow tokenizer;
3. strip accents from the plain chunks when ``keep_accents=False``;
4. encode the plain chunks with the SentencePiece model: the *only* step that differs,
   :meth:`_encode_chunks` (``sentencepiece`` in the slow class, ``tokenizers`` in the fast one);
5. add ``[CLS]``/``[SEP]``, truncate, pad and convert to tensors with the reference rules.

Because steps 1-3 and 5 are shared, the two tokenizers can only disagree in step 4,
which the tests check on whole corpora and on adversarial and generated text.
"""

from __future__ import annotations

import abc
import json
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from rembert_core import CheckpointError, InputError
from rembert_core.serialization import atomic_write_bytes, atomic_write_files
from rembert_core.tokens import CLS_TOKEN, MASK_TOKEN, PAD_TOKEN, SEP_TOKEN, UNK_TOKEN
from rembert_tokenizers._trie import TokenTrie
from rembert_tokenizers.encoding import BatchEncoding, check_tensor_type

__all__ = [
    "SPECIAL_TOKEN_ATTRIBUTES",
    "SPIECE_UNDERLINE",
    "VERY_LARGE_INTEGER",
    "AddedToken",
    "RemBertTokenizerBase",
]

#: The SentencePiece whitespace symbol.
SPIECE_UNDERLINE = "\u2581"

#: ``model_max_length`` when the model declares none (the reference value).
VERY_LARGE_INTEGER = int(1e30)

#: Special-token attributes in the reference's registration order (this order fixes new token ids).
SPECIAL_TOKEN_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
VOCAB_FILE = "sentencepiece.model"

_PADDING = ("longest", "max_length", "do_not_pad")

#: Longest row padding may produce (2**24 tokens): a larger ``max_length`` or ``pad_to_multiple_of``
#: is refused rather than building rows that cannot fit in memory.
MAX_PADDED_LENGTH = 2**24
#: from_pretrained arguments of the reference that concern hub downloads; accepted and ignored.
_HUB_ARGUMENTS = (
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "subfolder",
    "trust_remote_code",
    "use_fast",
    "proxies",
    "_from_auto",
)
_TRUNCATION = ("longest_first", "only_first", "only_second", "do_not_truncate")


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
                raise InputError(f"{argument}: {value!r} has no non-empty 'content'")
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
        raise InputError(f"{argument}: expected a str or AddedToken, got {type(value).__name__} {value!r}")


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


def _check_text(value: Any, argument: str, *, words: bool) -> None:
    if isinstance(value, _Sequence):
        return
    if words:
        if not isinstance(value, (list, tuple)) or not all(isinstance(w, str) for w in value):
            raise InputError(
                f"{argument}: with is_split_into_words=True each text must be a list of str words, "
                f"got {type(value).__name__} {_preview(value)}"
            )
    elif not isinstance(value, str):
        raise InputError(f"{argument}: expected a str, got {type(value).__name__} {_preview(value)}")


def _check_encodable(texts: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the first text with an unpaired surrogate (not encodable as UTF-8)."""
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"text {index} contains an unpaired surrogate {text[exc.start]!r} at character {exc.start}: "
                "it is not valid Unicode text (decode bytes with errors='replace' first)"
            ) from None


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lower_per_char(text: str) -> str:
    """Lowercase character by character, as the reference does (no final-sigma context rule)."""
    lowered = text.lower()
    if len(lowered) == len(text) and "\u03a3" not in text:
        return lowered
    return "".join(ch.lower() for ch in text)


def _strip_accents(text: str) -> str:
    """NFKD, then drop combining marks (``keep_accents=False``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _check_padded_length(target: int | None) -> None:
    if target is not None and target > MAX_PADDED_LENGTH:
        raise InputError(
            f"padding to {target} tokens per row is refused (at most {MAX_PADDED_LENGTH}): check max_length "
            "and pad_to_multiple_of"
        )


class RemBertTokenizerBase(abc.ABC):
    """Shared implementation of :class:`RemBertTokenizer` and :class:`RemBertTokenizerFast`.

    Subclasses provide the SentencePiece pieces (:meth:`_load_model`) and the
    piece encoder (:meth:`_encode_chunks`); everything else lives here.
    """

    vocab_files_names: ClassVar[dict[str, str]] = {"vocab_file": VOCAB_FILE}
    model_input_names: ClassVar[list[str]] = ["input_ids", "token_type_ids", "attention_mask"]
    is_fast: ClassVar[bool] = False
    _class_name: ClassVar[str] = "RemBertTokenizer"

    def __init__(
        self,
        *,
        do_lower_case: bool = False,
        remove_space: bool = True,
        keep_accents: bool = True,
        bos_token: Any = CLS_TOKEN,
        eos_token: Any = SEP_TOKEN,
        unk_token: Any = UNK_TOKEN,
        sep_token: Any = SEP_TOKEN,
        pad_token: Any = PAD_TOKEN,
        cls_token: Any = CLS_TOKEN,
        mask_token: Any = MASK_TOKEN,
        additional_special_tokens: Sequence[Any] | None = None,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        added_tokens_decoder: Mapping[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for name, value in (
            ("do_lower_case", do_lower_case),
            ("remove_space", remove_space),
            ("keep_accents", keep_accents),
            ("clean_up_tokenization_spaces", clean_up_tokenization_spaces),
        ):
            if not isinstance(value, (bool, np.bool_)):
                raise InputError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
        self.do_lower_case = bool(do_lower_case)
        self.remove_space = bool(remove_space)
        self.keep_accents = bool(keep_accents)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.padding_side = self._check_side(padding_side, "padding_side")
        self.truncation_side = self._check_side(truncation_side, "truncation_side")
        if model_max_length is None:
            model_max_length = VERY_LARGE_INTEGER
        if not isinstance(model_max_length, int) or model_max_length <= 0:
            raise InputError(f"model_max_length must be a positive int, got {model_max_length!r}")
        self.model_max_length = model_max_length
        # Options kept for the config file; the reference stores unknown keys the same way.
        self.init_kwargs: dict[str, Any] = {
            k: v
            for k, v in kwargs.items()
            if k not in ("tokenizer_class", "name_or_path", "vocab_file", "tokenizer_file")
        }
        self.name_or_path = str(kwargs.get("name_or_path", ""))
        self._lock = threading.RLock()

        self._pieces: list[str] = []
        self._piece_ids: dict[str, int] = {}
        self._sp_unk_id = 0
        self._load_model()

        # Added tokens: id -> token and content -> id, like the reference's _added_tokens_decoder/encoder.
        self._added_tokens: dict[int, AddedToken] = {}
        self._added_ids: dict[str, int] = {}
        self._special: dict[str, AddedToken | None] = {}
        self._additional_special: list[AddedToken] = []
        for key, value in (added_tokens_decoder or {}).items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise InputError(f"added_tokens_decoder: key {key!r} is not a token id") from None
            token = AddedToken.from_value(value, special=False, argument="added_tokens_decoder")
            self._added_tokens[index] = token
            self._added_ids[token.content] = index
        specials: dict[str, Any] = {
            "bos_token": bos_token,
            "eos_token": eos_token,
            "unk_token": unk_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "cls_token": cls_token,
            "mask_token": mask_token,
        }
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            given = specials[name]
            if given is None:
                self._special[name] = None
                continue
            if name == "mask_token" and isinstance(given, str):
                # The mask token behaves like a word: it swallows the space on its left.
                given = AddedToken(given, lstrip=True, rstrip=False, normalized=True, special=True)
            token = AddedToken.from_value(given, special=True, argument=name)
            if token.content in self._added_ids:  # keep the stored flags (config files written by save_pretrained)
                token = self._added_tokens[self._added_ids[token.content]]
            self._special[name] = token
        for value in additional_special_tokens or ():
            token = AddedToken.from_value(value, special=True, argument="additional_special_tokens")
            if token.content in self._added_ids:
                token = self._added_tokens[self._added_ids[token.content]]
            if token.content not in [t.content for t in self._additional_special]:
                self._additional_special.append(token)
        self._register(self._all_special_extended(), special=True)

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

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"len={len(self)}, do_lower_case={self.do_lower_case}, remove_space={self.remove_space}, "
            f"keep_accents={self.keep_accents}, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})"
        )

    # ------------------------------------------------------------------ special tokens

    @staticmethod
    def _check_side(value: Any, argument: str) -> str:
        if value not in ("left", "right"):
            raise InputError(f"{argument} must be 'left' or 'right', got {value!r}")
        return str(value)

    def _all_special_extended(self) -> list[AddedToken]:
        seen: dict[str, AddedToken] = {}
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            token = self._special.get(name)
            if token is not None and token.content not in seen:
                seen[token.content] = token
        for token in self._additional_special:
            seen.setdefault(token.content, token)
        return list(seen.values())

    def _register(self, tokens: Iterable[AddedToken], *, special: bool) -> int:
        """Add tokens like the reference: an existing piece keeps its id, a new token gets the next id."""
        added = 0
        with self._lock:
            size = len(self.get_vocab())
            for token in tokens:
                if token.content in self._added_ids and self._added_tokens[self._added_ids[token.content]] == token:
                    continue
                if not special and token.content in self._added_ids:
                    continue
                if self.do_lower_case and not token.special and token.normalized:
                    token = AddedToken(**{**asdict(token), "content": token.content.lower()})
                if token.content in self._added_ids:
                    index = self._added_ids[token.content]
                elif token.content in self._piece_ids:
                    index = self._piece_ids[token.content]
                else:
                    index = size + added
                    added += 1
                self._added_tokens[index] = token
                self._added_ids[token.content] = index
            self._rebuild_matcher()
        return added

    def _rebuild_matcher(self) -> None:
        contents = sorted(self._added_ids, key=lambda c: (-len(c), c))
        self._added_re = re.compile("|".join(re.escape(c) for c in contents)) if contents else None
        self._trie = TokenTrie(contents)
        specials = self.all_special_tokens + [
            t.content for t in self._added_tokens.values() if not t.special and t.normalized
        ]
        # Same alternation order as the reference (the first listed token wins at a position).
        self._lower_re = re.compile("(" + "|".join(re.escape(s) for s in specials) + ")") if specials else None
        self._all_special_ids_cache = [self._token_to_id(t) for t in self.all_special_tokens]
        # The reference maps every piece through the added tokens first (an unknown span whose surface is an
        # added token's text gets that token's id). Only unknown pieces can differ, unless an added token
        # reuses a piece's text with another id (possible through added_tokens_decoder in a config file).
        self._remap_all_pieces = any(
            content in self._piece_ids and self._piece_ids[content] != index
            for content, index in self._added_ids.items()
        )

    def _special_value(self, name: str) -> str | None:
        token = self._special.get(name)
        return token.content if token is not None else None

    def _special_id(self, name: str) -> int | None:
        token = self._special.get(name)
        if token is None:
            return None
        result = self.convert_tokens_to_ids(token.content)
        assert isinstance(result, int)
        return result

    @property
    def bos_token(self) -> str | None:
        """Beginning-of-sequence token (``[CLS]``)."""
        return self._special_value("bos_token")

    @property
    def eos_token(self) -> str | None:
        """End-of-sequence token (``[SEP]``)."""
        return self._special_value("eos_token")

    @property
    def unk_token(self) -> str | None:
        """Unknown token (``[UNK]``). Unknown text maps to the SentencePiece unknown piece, as in the reference."""
        return self._special_value("unk_token")

    @property
    def sep_token(self) -> str | None:
        """Separator token (``[SEP]``), ends each segment."""
        return self._special_value("sep_token")

    @property
    def pad_token(self) -> str | None:
        """Padding token (``[PAD]``)."""
        return self._special_value("pad_token")

    @property
    def cls_token(self) -> str | None:
        """Classifier token (``[CLS]``), starts every sequence."""
        return self._special_value("cls_token")

    @property
    def mask_token(self) -> str | None:
        """Mask token (``[MASK]``, strips the space on its left)."""
        return self._special_value("mask_token")

    @property
    def bos_token_id(self) -> int | None:
        """Id of :attr:`bos_token`."""
        return self._special_id("bos_token")

    @property
    def eos_token_id(self) -> int | None:
        """Id of :attr:`eos_token`."""
        return self._special_id("eos_token")

    @property
    def unk_token_id(self) -> int | None:
        """Id of :attr:`unk_token`."""
        return self._special_id("unk_token")

    @property
    def sep_token_id(self) -> int | None:
        """Id of :attr:`sep_token`."""
        return self._special_id("sep_token")

    @property
    def pad_token_id(self) -> int | None:
        """Id of :attr:`pad_token`."""
        return self._special_id("pad_token")

    @property
    def cls_token_id(self) -> int | None:
        """Id of :attr:`cls_token`."""
        return self._special_id("cls_token")

    @property
    def mask_token_id(self) -> int | None:
        """Id of :attr:`mask_token`."""
        return self._special_id("mask_token")

    @property
    def pad_token_type_id(self) -> int:
        """Token type id of padding (0)."""
        return 0

    @property
    def additional_special_tokens(self) -> list[str]:
        """Extra special tokens given to the constructor or :meth:`add_special_tokens`."""
        return [t.content for t in self._additional_special]

    @property
    def special_tokens_map(self) -> dict[str, Any]:
        """Special-token attribute -> token text (``additional_special_tokens`` -> list)."""
        result: dict[str, Any] = {name: t.content for name, t in self._special.items() if t is not None}
        if self._additional_special:
            result["additional_special_tokens"] = self.additional_special_tokens
        return result

    @property
    def all_special_tokens(self) -> list[str]:
        """Every distinct special token, in registration order."""
        return [t.content for t in self._all_special_extended()]

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of :attr:`all_special_tokens`."""
        return list(self._all_special_ids_cache)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Id -> :class:`AddedToken` for every added (and special) token."""
        return dict(sorted(self._added_tokens.items()))

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """Token text -> id for every added (and special) token."""
        return {t.content: i for i, t in sorted(self._added_tokens.items())}

    # ------------------------------------------------------------------ vocabulary

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

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens matched before the SentencePiece model; returns how many new ids were created.

        Example::

            tokenizer.add_tokens(["<ent>", AddedToken("<rel>", lstrip=True)])  # 2
        """
        if isinstance(new_tokens, (str, AddedToken)):
            new_tokens = [new_tokens]
        if not isinstance(new_tokens, (list, tuple)):
            raise InputError(f"new_tokens: expected a token or a list of tokens, got {type(new_tokens).__name__}")
        tokens = []
        for value in new_tokens:
            if isinstance(value, str) and value == "":
                continue
            special = special_tokens or (isinstance(value, str) and value in self.all_special_tokens)
            tokens.append(AddedToken.from_value(value, special=special, argument="new_tokens"))
        if special_tokens:
            for token in tokens:
                if token.content not in self.all_special_tokens:
                    self._additional_special.append(token)
        return self._register(tokens, special=special_tokens)

    def add_special_tokens(
        self, special_tokens_dict: Mapping[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Set special tokens, e.g. ``{"cls_token": "<c>", "additional_special_tokens": [...]}``.

        Returns how many new ids were created.

        Example::

            tokenizer.add_special_tokens({"additional_special_tokens": ["<q>"]})  # 1
        """
        if not isinstance(special_tokens_dict, Mapping):
            raise InputError(f"special_tokens_dict: expected a dict, got {type(special_tokens_dict).__name__}")
        tokens: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key == "additional_special_tokens":
                if not isinstance(value, (list, tuple)):
                    raise InputError("additional_special_tokens must be a list of tokens")
                new = [AddedToken.from_value(v, special=True, argument=key) for v in value]
                if replace_additional_special_tokens:
                    self._additional_special = []
                for token in new:
                    if token.content not in [t.content for t in self._additional_special]:
                        self._additional_special.append(token)
                tokens.extend(new)
            elif key in SPECIAL_TOKEN_ATTRIBUTES:
                token = AddedToken.from_value(value, special=True, argument=key)
                self._special[key] = token
                tokens.append(token)
            else:
                raise InputError(
                    f"special_tokens_dict: unknown key {key!r}; "
                    f"use one of {[*SPECIAL_TOKEN_ATTRIBUTES, 'additional_special_tokens']}"
                )
        return self._register(tokens, special=True)

    # ------------------------------------------------------------------ text -> pieces

    def _split_on_added(self, text: str) -> tuple[str, list[tuple[str, int]]]:
        """Split ``text`` into plain chunks (id -1) and added tokens (their id), with the reference's strip rules.

        Returns the text after lowercasing (when ``do_lower_case``), whose substrings the chunks are.
        """
        if self.do_lower_case and self._lower_re is not None:
            pieces = self._lower_re.split(text)
            text = "".join(p if i % 2 else _lower_per_char(p) for i, p in enumerate(pieces))
        elif self.do_lower_case:
            text = _lower_per_char(text)
        matcher = self._added_re
        if matcher is None or matcher.search(text) is None:
            return text, ([(text, -1)] if text else [])
        # The reference's trie scan (not the regex, which differs on overlapping tokens); no empty parts.
        parts = self._trie.split(text)
        # The reference's strip rules, applied in order on the current list (a rule may change a neighbour
        # before it is visited; `left`/`right` are the neighbours' values before this token's rules).
        added_ids = self._added_ids
        for i in range(len(parts)):
            index = added_ids.get(parts[i])
            if index is None:
                continue
            token = self._added_tokens[index]
            left = parts[i - 1] if i > 0 else None
            right = parts[i + 1] if i < len(parts) - 1 else None
            if token.rstrip and right:
                parts[i + 1] = right.lstrip()
            if token.lstrip and left:
                parts[i - 1] = left.rstrip()
            if token.single_word and left and left[-1] != " ":
                parts[i - 1] += parts[i]
                parts[i] = ""
            elif token.single_word and right and right[0] != " ":
                parts[i + 1] = parts[i] + parts[i + 1]
                parts[i] = ""
        return text, [(part, added_ids.get(part, -1)) for part in parts if part]

    def _sequence_of_pieces(self, pieces: list[str]) -> _Sequence:
        """A chunk as SentencePiece's ``EncodeAsPieces`` gave it: each piece's id (unknown surfaces -> the
        unknown piece), then the added tokens' ids, as the reference does."""
        piece_ids, unk = self._piece_ids, self._sp_unk_id
        return _Sequence(self._piece_ids_of([piece_ids.get(p, unk) for p in pieces], pieces), pieces=pieces)

    def _piece_ids_of(self, ids: list[int], pieces: Sequence[str]) -> list[int]:
        """Final ids of encoded pieces, mapped through the added tokens as the reference does."""
        added = self._added_ids
        if self._remap_all_pieces:
            return [added.get(p, i) for i, p in zip(ids, pieces, strict=True)]
        unk = self._sp_unk_id
        if unk not in ids:
            return ids
        return [added.get(p, unk) if i == unk else i for i, p in zip(ids, pieces, strict=True)]

    def _encode_texts_plain(self, texts: list[str], *, offsets: bool, pieces: bool) -> list[_Sequence]:
        try:
            return self._encode_chunks(texts, offsets=offsets, pieces=pieces) if texts else []
        except Exception:
            _check_encodable(texts)  # the usual cause: an unpaired surrogate, which no encoder accepts
            raise

    def _preprocess_chunk(self, chunk: str) -> str:
        return chunk if self.keep_accents else _strip_accents(chunk)

    def _encode_texts(self, texts: Sequence[str], *, offsets: bool = False, pieces: bool = False) -> list[_Sequence]:
        """Encode whole texts (no special tokens): split on added tokens, encode the plain chunks in one batch."""
        matcher = self._added_re
        if (
            not self.do_lower_case
            and self.keep_accents
            and (matcher is None or not any(matcher.search(t) for t in texts))
        ):
            # The common case, without per-text bookkeeping: no added token anywhere, nothing to preprocess.
            non_empty = [t for t in texts if t]
            encoded = self._encode_texts_plain(non_empty, offsets=offsets, pieces=pieces)
            if len(non_empty) == len(texts):
                return encoded
            it = iter(encoded)
            return [
                next(it) if t else _Sequence([], offsets=[] if offsets else None, pieces=[] if pieces else None)
                for t in texts
            ]
        processed = [self._split_on_added(t) for t in texts]
        splits = [chunks for _, chunks in processed]
        plain: list[str] = []
        for split in splits:
            plain.extend(self._preprocess_chunk(c) for c, i in split if i < 0)
        try:
            encoded = self._encode_chunks(plain, offsets=offsets, pieces=pieces) if plain else []
        except Exception:
            _check_encodable(texts)  # the usual cause: an unpaired surrogate, which no encoder accepts
            raise
        results: list[_Sequence] = []
        cursor = 0
        for text, split in processed:
            if len(split) == 1 and split[0][1] < 0:
                results.append(encoded[cursor])
                cursor += 1
                continue
            seq = _Sequence([], offsets=[] if offsets else None, pieces=[])
            surfaces = pieces  # keep the pieces if asked for, or if a part has some (an unknown piece's surface)
            search_from = 0
            for chunk, index in split:
                start = max(text.find(chunk, search_from), 0) if offsets else 0
                assert seq.pieces is not None
                if index >= 0:
                    seq.ids.append(index)
                    seq.pieces.append(chunk)
                    if seq.offsets is not None:
                        seq.offsets.append((start, start + len(chunk)))
                else:
                    part = encoded[cursor]
                    cursor += 1
                    seq.ids.extend(part.ids)
                    surfaces = surfaces or _resolved(part) is not None
                    seq.pieces.extend(self._pieces_of(part))
                    if seq.offsets is not None and part.offsets is not None:
                        seq.offsets.extend((s + start, e + start) for s, e in part.offsets)
                if offsets:
                    search_from = start + len(chunk)
            if not surfaces:
                seq.pieces = None
            results.append(seq)
        return results

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        """The pieces of ``text`` (then of ``pair``), as the reference slow tokenizer's ``tokenize``.

        Unknown text keeps its surface form, like ``sentencepiece``'s ``EncodeAsPieces``;
        ``add_special_tokens=True`` adds ``[CLS]``/``[SEP]`` around them.

        Example::

            tokenizer.tokenize("Hello [MASK]")  # ['▁He', 'll', 'o', '[MASK]']
        """
        _check_text(text, "text", words=False)
        if pair is not None:
            _check_text(pair, "pair", words=False)
        seqs = self._encode_texts([text] if pair is None else [text, pair], pieces=True)
        first = list(seqs[0].pieces or [])
        second = list(seqs[1].pieces or []) if pair is not None else None
        if not add_special_tokens:
            return first + (second or [])
        head = [self.cls_token] if self.cls_token is not None else []
        tail = [self.sep_token] if self.sep_token is not None else []
        result = head + first + tail
        if second is not None:
            result += second + tail
        return [t for t in result if t is not None]

    # ------------------------------------------------------------------ special tokens around sequences

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

        Args:
            token_ids_0 (list[int]): ids of the first sequence.
            token_ids_1 (list[int] | None): ids of the second sequence.

        Returns:
            list[int]: the ids with ``[CLS]`` (1000 in the test model) and ``[SEP]`` (1001) added.

        Example:
            >>> from rembert_tokenizers import RemBertTokenizerFast
            >>> tokenizer = RemBertTokenizerFast("tests/fixtures/sentencepiece/test_model.model")
            >>> tokenizer.build_inputs_with_special_tokens([5, 6])
            [1000, 5, 6, 1001]
            >>> tokenizer.build_inputs_with_special_tokens([5, 6], [7])
            [1000, 5, 6, 1001, 7, 1001]
        """
        cls = [self.cls_token_id] if self.cls_token_id is not None else []
        sep = [self.sep_token_id] if self.sep_token_id is not None else []
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + list(token_ids_1) + sep

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 for the special tokens :meth:`build_inputs_with_special_tokens` adds, 0 for sequence tokens.

        Args:
            token_ids_0 (list[int]): ids of the first sequence (without special tokens, unless
                ``already_has_special_tokens``).
            token_ids_1 (list[int] | None): ids of the second sequence.
            already_has_special_tokens (bool): mark the ``[CLS]``/``[SEP]`` ids found in ``token_ids_0``
                instead (``token_ids_1`` must then be None).

        Returns:
            list[int]: one 0/1 per token of the formatted sequence.

        Example:
            >>> from rembert_tokenizers import RemBertTokenizerFast
            >>> tokenizer = RemBertTokenizerFast("tests/fixtures/sentencepiece/test_model.model")
            >>> tokenizer.get_special_tokens_mask([5, 6], [7])
            [1, 0, 0, 1, 0, 1]
            >>> tokenizer.get_special_tokens_mask([1000, 5, 6, 1001], already_has_special_tokens=True)
            [1, 0, 0, 1]
        """
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise InputError(
                    "token_ids_1 must be None when already_has_special_tokens=True "
                    "(the ids are already formatted with special tokens)"
                )
            marked = {self.sep_token_id, self.cls_token_id}
            return [1 if x in marked else 0 for x in token_ids_0]
        if token_ids_1 is not None:
            return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]
        return [1] + [0] * len(token_ids_0) + [1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``.

        Args:
            token_ids_0 (list[int]): ids of the first sequence.
            token_ids_1 (list[int] | None): ids of the second sequence.

        Returns:
            list[int]: the segment id of every token of the formatted sequence.

        Example:
            >>> from rembert_tokenizers import RemBertTokenizerFast
            >>> tokenizer = RemBertTokenizerFast("tests/fixtures/sentencepiece/test_model.model")
            >>> tokenizer.create_token_type_ids_from_sequences([5, 6], [7])
            [0, 0, 0, 0, 1, 1]
        """
        cls_len = int(self.cls_token_id is not None)
        sep_len = int(self.sep_token_id is not None)
        if token_ids_1 is None:
            return [0] * (cls_len + len(token_ids_0) + sep_len)
        return [0] * (cls_len + len(token_ids_0) + sep_len) + [1] * (len(token_ids_1) + sep_len)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens a single sequence (2) or a pair (3) gets.

        Example::

            tokenizer.num_special_tokens_to_add(pair=True)  # 3
        """
        return len(self.build_inputs_with_special_tokens([], [] if pair else None))

    # ------------------------------------------------------------------ __call__

    def __call__(
        self,
        text: Any = None,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: Any = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Encode one text, a pair, or a batch, with the reference arguments.

        Args:
            text (str | list[str] | list[list[str]]): a text, a batch of texts, or (with
                ``is_split_into_words=True``) a list of words / a batch of lists of words.
            text_pair: the second sequence(s), same structure as ``text``.
            add_special_tokens (bool): add ``[CLS]``/``[SEP]``.
            padding (bool | str): ``True``/``"longest"``, ``"max_length"``, ``False``/``"do_not_pad"``.
            truncation (bool | str | None): ``True``/``"longest_first"``, ``"only_first"``, ``"only_second"``.
            max_length (int | None): length limit for truncation/padding (special tokens included).
            stride (int): overlap kept in ``overflowing_tokens``.
            pad_to_multiple_of (int | None): round the padded length up to a multiple.
            padding_side (str | None): ``"left"`` or ``"right"`` (default: :attr:`padding_side`).
            return_tensors (str | None): ``"np"``, ``"pt"`` or ``"tf"`` for (batch, seq) tensors.
            return_offsets_mapping (bool): (start, end) character spans (fast tokenizer only).

        Returns:
            BatchEncoding: ``input_ids``, ``token_type_ids``, ``attention_mask`` and the requested extras;
            lists of shape (seq,) for one text, (batch, seq) for a batch.

        Example::

            tokenizer("Hello world", "second", padding="max_length", max_length=12, return_tensors="np")
        """
        if kwargs:
            raise InputError(f"unexpected keyword argument(s): {sorted(kwargs)}")
        if text is None:
            raise InputError(
                "text: expected a str, a list of str or (is_split_into_words=True) lists of words, got None"
            )
        batched = self._is_batched(text, is_split_into_words, "text")
        if batched:
            if text_pair is not None:
                if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
                    raise InputError(
                        f"text_pair: expected a list of {len(text)} items to pair with the batch of {len(text)} texts, "
                        f"got {type(text_pair).__name__} {_preview(text_pair)}"
                    )
                for item in text_pair:
                    _check_text(item, "text_pair", words=is_split_into_words)
            for item in text:
                _check_text(item, "text", words=is_split_into_words)
            texts = list(text)
            pairs = list(text_pair) if text_pair is not None else None
        else:
            _check_text(text, "text", words=is_split_into_words)
            if text_pair is not None:
                _check_text(text_pair, "text_pair", words=is_split_into_words)
            texts = [text]
            pairs = [text_pair] if text_pair is not None else None
        return self._encode_batch(
            texts,
            pairs,
            batched=batched,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            is_split_into_words=is_split_into_words,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_tensors=return_tensors,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_length=return_length,
        )

    @staticmethod
    def _is_batched(text: Any, is_split_into_words: bool, argument: str) -> bool:
        if isinstance(text, _Sequence):
            return False
        if isinstance(text, str):
            if is_split_into_words:
                raise InputError(f"{argument}: with is_split_into_words=True pass a list of words, not a str")
            return False
        if isinstance(text, (bytes, bytearray)):
            raise InputError(
                f"{argument}: expected str, got bytes {_preview(text)}; decode it first (text.decode('utf-8'))"
            )
        if not isinstance(text, (list, tuple)):
            raise InputError(f"{argument}: expected a str or a list of str, got {type(text).__name__} {_preview(text)}")
        if is_split_into_words:
            return len(text) > 0 and isinstance(text[0], (list, tuple))
        return True

    def _as_given_ids(self, value: Any, argument: str) -> Any:
        """A list of ids (or of token strings) given instead of text, as the reference's encode_plus accepts."""
        if isinstance(value, (list, tuple)) and value:
            if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
                return _Sequence([int(v) for v in value])
            if all(isinstance(v, str) for v in value):
                ids = self.convert_tokens_to_ids(list(value))
                assert isinstance(ids, list)
                return _Sequence(ids)
            raise InputError(
                f"{argument}: expected a str, a list of int ids or a list of str tokens, got {_preview(value)}"
            )
        return value

    def encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        """Encode one text or pair (same arguments as :meth:`__call__`).

        As in the reference, ``text``/``text_pair`` may also be a list of token strings
        or of ids (without ``is_split_into_words``): they are used as they are.

        Example::

            tokenizer.encode_plus([151, 88, 21], [887])["input_ids"]  # [1000, 151, 88, 21, 1001, 887, 1001]
        """
        if not kwargs.get("is_split_into_words", False):
            text = self._as_given_ids(text, "text")
            text_pair = self._as_given_ids(text_pair, "text_pair")
        return self(text, text_pair, **kwargs)

    def prepare_for_model(self, ids: list[int], pair_ids: list[int] | None = None, **kwargs: Any) -> BatchEncoding:
        """Add special tokens, truncate and pad already-encoded ids (same options as :meth:`__call__`).

        Example::

            tokenizer.prepare_for_model([151, 88], [887], truncation=True, max_length=5)["input_ids"]
        """
        for name, value in (("ids", ids), ("pair_ids", pair_ids)):
            if value is not None and (
                not isinstance(value, (list, tuple))
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
            ):
                raise InputError(f"{name}: expected a list of int ids, got {_preview(value)}")
        first = _Sequence([int(v) for v in ids])
        second = _Sequence([int(v) for v in pair_ids]) if pair_ids is not None else None
        return self(first, second, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence[Any], **kwargs: Any) -> BatchEncoding:
        """Encode a batch of texts or of ``(text, pair)`` tuples (same arguments as :meth:`__call__`).

        Example::

            tokenizer.batch_encode_plus([("question", "context"), ("q2", "c2")], padding=True)
        """
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise InputError(
                f"batch_text_or_text_pairs: expected a list, got {type(batch_text_or_text_pairs).__name__}"
            )
        split = kwargs.get("is_split_into_words", False)
        items = list(batch_text_or_text_pairs)
        if (
            items
            and all(isinstance(x, tuple) and len(x) == 2 for x in items)
            and not (split and isinstance(items[0][0], str))
        ):
            return self([x[0] for x in items], [x[1] for x in items], **kwargs)
        return self(items, **kwargs)

    def encode(
        self,
        text: Any,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        return_tensors: Any = None,
        **kwargs: Any,
    ) -> Any:
        """The ``input_ids`` of one text or pair (a list, or a (1, seq) tensor with ``return_tensors``).

        Example::

            tokenizer.encode("Hello")  # [1000, 151, 88, 21, 1001]
        """
        result = self.encode_plus(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            return_tensors=return_tensors,
            **kwargs,
        )
        return result["input_ids"]

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

    def _encode_inputs(self, texts: list[Any], *, is_split_into_words: bool, offsets: bool) -> list[_Sequence]:
        if any(isinstance(t, _Sequence) for t in texts):  # ids given by encode_plus / prepare_for_model
            return [
                t
                if isinstance(t, _Sequence)
                else self._encode_inputs([t], is_split_into_words=False, offsets=offsets)[0]
                for t in texts
            ]
        if not is_split_into_words:
            return self._encode_texts(texts, offsets=offsets)
        flat = [w for words in texts for w in words]
        encoded = self._encode_texts(flat, offsets=offsets)
        results = []
        cursor = 0
        for words in texts:
            parts = encoded[cursor : cursor + len(words)]
            cursor += len(words)
            # Pieces when some word has them (an unknown piece's surface); the others' come from their ids.
            have_pieces = any(_resolved(part) is not None for part in parts)
            seq = _Sequence([], words=[], offsets=[] if offsets else None, pieces=[] if have_pieces else None)
            for index, part in enumerate(parts):
                seq.ids.extend(part.ids)
                assert seq.words is not None
                seq.words.extend([index] * len(part.ids))
                if seq.pieces is not None:
                    seq.pieces.extend(self._pieces_of(part))
                if seq.offsets is not None and part.offsets is not None:
                    seq.offsets.extend(part.offsets)
            results.append(seq)
        return results

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
        if return_overflowing_tokens and trunc == "longest_first" and is_pair:
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
        spans: list[tuple[tuple[int, int], tuple[int, int]]] = []
        overflows: list[list[int]] = []
        truncated: list[int] = []
        limit = max_len or 0
        truncating = trunc != "do_not_truncate" and limit > 0
        n_head, n_tail = len(head), len(tail)
        for index, first in enumerate(firsts):
            second = seconds[index] if seconds is not None else None
            ids = first.ids
            pair_ids = second.ids if second is not None else None
            span1, span2 = (0, len(ids)), (0, len(pair_ids) if pair_ids is not None else 0)
            total = span1[1] + span2[1] + n_special
            overflow: list[int] = []
            if truncating and total > limit:
                span1, span2, overflow = self._truncate(ids, pair_ids, total - limit, trunc, int(stride))
                ids = ids[span1[0] : span1[1]]
                if pair_ids is not None:
                    pair_ids = pair_ids[span2[0] : span2[1]]
            spans.append((span1, span2))
            if return_overflowing_tokens:
                overflows.append(overflow)
                truncated.append(total - max_len if max_len else 0)
            if pair_ids is None:
                sequence = head + ids + tail
                rows_ids.append(sequence)
                if want_types:
                    rows_types.append([0] * len(sequence))
                if want_special:
                    rows_special.append(
                        [1] * n_head + [0] * len(ids) + [1] * n_tail if add_special_tokens else [0] * len(sequence)
                    )
            else:
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

        def make_rows() -> list[_Row]:
            rows = []
            for index, (first, n) in enumerate(zip(firsts, lengths, strict=True)):
                span1, span2 = spans[index]
                second = seconds[index] if seconds is not None else None
                extra = target - n if target is not None and target > n else 0
                rows.append(
                    _Row(
                        first,
                        span1,
                        second,
                        span2,
                        special=add_special_tokens,
                        pad_left=extra if side == "left" else 0,
                        pad_right=extra if side == "right" else 0,
                    )
                )
            return rows

        if return_overflowing_tokens:
            data["overflowing_tokens"] = overflows
            data["num_truncated_tokens"] = truncated
        if return_offsets_mapping:
            data["offset_mapping"] = [self._row_offsets(r) for r in make_rows()]
        if return_length:
            data["length"] = (
                lengths if batched else [target if target is not None and target > lengths[0] else lengths[0]]
            )
        if tensor_type is None and not batched:
            data = {k: v[0] for k, v in data.items()}
        result = BatchEncoding(data, is_batched=batched or tensor_type is not None)
        if tensor_type is not None:
            result.convert_to_tensors(tensor_type)
        if self.is_fast:
            result._set_alignment(lambda: self._alignment(make_rows()))
        return result

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
        with 1, and builds/pads ``attention_mask``; other keys are kept. This is what data
        collators call.

        Example::

            tokenizer.pad([{"input_ids": [1000, 5, 1001]}, {"input_ids": [1000, 1001]}], return_tensors="np")
        """
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
        return self._row_parts(row, lambda s: s.offsets or [], (0, 0), (0, 0), (0, 0))

    def _pieces_of(self, seq: _Sequence) -> list[str]:
        pieces = _resolved(seq)
        return pieces if pieces is not None else [self._id_to_token(i) for i in seq.ids]

    def _alignment(self, rows: list[_Row]) -> tuple[list[list[int | None]], list[list[str]]]:
        words = [self._row_parts(r, self._words_of, None, None, None) for r in rows]
        tokens = [
            self._row_parts(r, self._pieces_of, self.cls_token or "", self.sep_token or "", self.pad_token or "")
            for r in rows
        ]
        return words, tokens

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

    # ------------------------------------------------------------------ files

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = dict(self.init_kwargs)
        config["added_tokens_decoder"] = {str(i): t.to_dict() for i, t in sorted(self._added_tokens.items())}
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            value = self._special_value(name)
            if value is not None:
                config[name] = value
        if self._additional_special:
            config["additional_special_tokens"] = self.additional_special_tokens
        config.update(
            {
                "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
                "do_lower_case": self.do_lower_case,
                "extra_special_tokens": {},
                "keep_accents": self.keep_accents,
                "model_max_length": self.model_max_length,
                "remove_space": self.remove_space,
                "tokenizer_class": self._class_name,
            }
        )
        if self.padding_side != "right":
            config["padding_side"] = self.padding_side
        if self.truncation_side != "right":
            config["truncation_side"] = self.truncation_side
        return dict(sorted(config.items()))

    def _special_tokens_map_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            token = self._special.get(name)
            if token is None:
                continue
            default_flags = AddedToken(token.content, special=True, normalized=False)
            if token == default_flags:
                result[name] = token.content
            else:
                result[name] = {k: v for k, v in token.to_dict().items() if k != "special"}
        if self._additional_special:
            result["additional_special_tokens"] = self.additional_special_tokens
        return dict(sorted(result.items()))

    def save_vocabulary(self, save_directory: str | os.PathLike[str], filename_prefix: str | None = None) -> tuple[str]:
        """Write the SentencePiece model as ``[prefix-]sentencepiece.model`` in ``save_directory``.

        Args:
            save_directory (str | os.PathLike): an existing directory.
            filename_prefix (str | None): prefix of the file name.

        Returns:
            tuple[str]: the path written.

        Raises:
            rembert_core.CheckpointError: ``save_directory`` is not a directory.

        Example:
            >>> from rembert_tokenizers import RemBertTokenizerFast
            >>> tokenizer = RemBertTokenizerFast("tests/fixtures/sentencepiece/test_model.model")
            >>> import os, tempfile
            >>> directory = tempfile.mkdtemp()
            >>> (path,) = tokenizer.save_vocabulary(directory)
            >>> os.path.basename(path)
            'sentencepiece.model'
            >>> RemBertTokenizerFast(path)("Hello world")["input_ids"]
            [1000, 151, 88, 21, 887, 1001]
        """
        directory = os.fspath(save_directory)
        if not os.path.isdir(directory):
            raise CheckpointError(f"save_directory {directory!r} is not a directory")
        path = os.path.join(directory, (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILE)
        atomic_write_bytes(path, self._model_proto_bytes())
        return (path,)

    def _extra_payloads(self, directory: str, filename_prefix: str | None) -> dict[str, bytes]:
        """Files beyond the SentencePiece model and the JSON configs (the fast tokenizer's tokenizer.json)."""
        return {}

    def save_pretrained(
        self, save_directory: str | os.PathLike[str], filename_prefix: str | None = None, **kwargs: Any
    ) -> tuple[str, ...]:
        """Write ``tokenizer_config.json``, ``special_tokens_map.json``, ``sentencepiece.model``
        (and ``tokenizer.json`` for the fast tokenizer) in the reference formats.

        Example::

            tokenizer.save_pretrained("out/")
            transformers.RemBertTokenizer.from_pretrained("out/")  # reads the same files
        """
        directory = os.fspath(save_directory)
        if os.path.isfile(directory):
            raise CheckpointError(f"save_directory {directory!r} is a file, not a directory")
        os.makedirs(directory, exist_ok=True)
        prefix = filename_prefix + "-" if filename_prefix else ""

        def encode(payload: Any) -> bytes:
            return (json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

        # Every file is staged first and all are renamed together at the end (atomic_write_files), so a
        # crash while saving over a previous tokenizer leaves its files, not a mix of old and new ones.
        files: dict[str, bytes] = {
            os.path.join(directory, prefix + SPECIAL_TOKENS_MAP_FILE): encode(self._special_tokens_map_json()),
        }
        added = {t.content: i for i, t in sorted(self._added_tokens.items()) if i >= self.vocab_size}
        added_path = os.path.join(directory, prefix + ADDED_TOKENS_FILE)
        if added:
            files[added_path] = encode(added)
        files[os.path.join(directory, prefix + VOCAB_FILE)] = self._model_proto_bytes()
        files.update(self._extra_payloads(directory, filename_prefix))
        files[os.path.join(directory, prefix + TOKENIZER_CONFIG_FILE)] = encode(self._config())
        # A previous save's added_tokens.json would otherwise add its tokens to this tokenizer on loading.
        atomic_write_files(files, remove=() if added else (added_path,))
        written = [os.path.join(directory, prefix + name) for name in (TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE)]
        written += [path for path in files if path not in written]
        return tuple(written)

    @staticmethod
    def _read_json(path: str) -> dict[str, Any]:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return data

    @classmethod
    def _pretrained_kwargs(cls, directory: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments from ``tokenizer_config.json``/``special_tokens_map.json``; ``kwargs`` win."""
        config_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
        config = cls._read_json(config_path) if os.path.isfile(config_path) else {}
        for key in (
            "tokenizer_class",
            "auto_map",
            "processor_class",
            "extra_special_tokens",
            "tokenizer_file",
            "vocab_file",
            "name_or_path",
            "legacy",
            "sp_model_kwargs",
            "split_special_tokens",
        ):
            config.pop(key, None)
        special_path = os.path.join(directory, SPECIAL_TOKENS_MAP_FILE)
        if os.path.isfile(special_path):
            for key, value in cls._read_json(special_path).items():
                if (key in SPECIAL_TOKEN_ATTRIBUTES or key == "additional_special_tokens") and key not in config:
                    config[key] = value
        added_path = os.path.join(directory, ADDED_TOKENS_FILE)
        if os.path.isfile(added_path) and "added_tokens_decoder" not in config:
            added = cls._read_json(added_path)
            config["added_tokens_decoder"] = {
                int(i): {"content": c, "special": c in {str(config.get(k)) for k in SPECIAL_TOKEN_ATTRIBUTES}}
                for c, i in added.items()
            }
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            value = config.get(name)
            if isinstance(value, Mapping):
                config[name] = AddedToken.from_value(value, special=True, argument=name)
        for key in _HUB_ARGUMENTS:  # accepted for compatibility; only local directories are read
            kwargs.pop(key, None)
        config.update(kwargs)
        config["name_or_path"] = directory
        return config
