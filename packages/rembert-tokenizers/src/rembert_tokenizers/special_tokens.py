"""Special and added tokens: the registry, the special-token attributes, and ``[CLS] A [SEP] B [SEP]``.

Added tokens (``add_tokens``, ``add_special_tokens``, the special tokens given to the constructor) get
ids as in the reference: an existing piece keeps its id, a new token gets the next one. Each change
rebuilds the matchers normalization splits the text with. The methods that format sequences with
``[CLS]``/``[SEP]`` (ids, special-token masks, token types) follow the reference's rules; the batch
path (:mod:`rembert_tokenizers.outputs`) builds the same rows directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from rembert_core import InputError
from rembert_tokenizers._trie import TokenTrie
from rembert_tokenizers.vocabulary import AddedToken, Vocabulary, _short_repr

__all__ = ["SPECIAL_TOKEN_ATTRIBUTES", "SpecialTokensMixin"]

#: Special-token attributes in the reference's registration order (this order fixes new token ids).
SPECIAL_TOKEN_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _token_id(key: Any) -> int | None:
    """An ``added_tokens_decoder`` key as an id (JSON object keys are strings: ``"1000"``); None if it is not one."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and re.fullmatch(r"-?[0-9]{1,19}", key.strip()):
        return int(key)
    return None


class SpecialTokensMixin(Vocabulary):
    """Added and special tokens: registration, the ``*_token``/``*_token_id`` attributes, special-token formats."""

    # ------------------------------------------------------------------ registry

    def _all_special_extended(self) -> list[AddedToken]:
        seen: dict[str, AddedToken] = {}
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            token = self._special.get(name)
            if token is not None and token.content not in seen:
                seen[token.content] = token
        for token in self._additional_special:
            seen.setdefault(token.content, token)
        return list(seen.values())

    def _set_added_tokens(self, decoder: Mapping[Any, Any], *, argument: str = "added_tokens_decoder") -> None:
        """Start from the added tokens of a saved tokenizer (``added_tokens_decoder``: id -> token).

        The ids are checked, so that no file moves another token's id (transformers' slow and fast
        tokenizers disagree on such files, or give one id to two tokens): an id is a non-negative
        integer, an id inside the vocabulary names that very piece (``<s>``, or ``[CLS]`` 312 in
        ``google/rembert``), and no id or token is listed twice. :class:`~rembert_core.InputError` otherwise.
        """
        if not isinstance(decoder, Mapping):
            raise InputError(f"{argument}: expected a dict of id -> token, got {_short_repr(decoder)}")
        vocab_size = len(self._pieces)
        for key, value in decoder.items():
            index = _token_id(key)
            token = AddedToken.from_value(value, special=False, argument=argument)
            where = f"{argument}: token {token.content!r}"
            if index is None:
                raise InputError(f"{where} has the id {_short_repr(key)}, not an integer")
            if index < 0:
                raise InputError(f"{where} has the negative id {index}")
            if index < vocab_size and self._pieces[index] != token.content:
                raise InputError(
                    f"{where} has the id {index}, which is the SentencePiece piece {self._pieces[index]!r}: "
                    f"an added token with an id inside the vocabulary (0..{vocab_size - 1}) must be that piece "
                    "(refused rather than moving the ids of [CLS], [SEP] and the other added tokens)"
                )
            if index in self._added_tokens:
                raise InputError(f"{where} has the id {index}, already given to {self._added_tokens[index].content!r}")
            if token.content in self._added_ids:
                raise InputError(f"{where} is listed twice, with the ids {self._added_ids[token.content]} and {index}")
            self._added_tokens[index] = token
            self._added_ids[token.content] = index

    def _register(self, tokens: Iterable[AddedToken], *, special: bool) -> int:
        """Add tokens like the reference: an existing piece keeps its id, a new token gets the next id.

        The next id is the size of the vocabulary, as in the reference. When the added tokens leave a
        gap after the vocabulary, that id may already belong to an added token: the reference then gives
        it to both; here nothing is changed and :class:`~rembert_core.InputError` says so.
        """
        added = 0
        with self._lock:
            added_tokens, added_ids = dict(self._added_tokens), dict(self._added_ids)
            size = len(self.get_vocab())
            for token in tokens:
                if token.content in added_ids and added_tokens[added_ids[token.content]] == token:
                    continue
                if not special and token.content in added_ids:
                    continue
                if self.do_lower_case and not token.special and token.normalized:
                    token = AddedToken(**{**asdict(token), "content": token.content.lower()})
                if token.content in added_ids:
                    index = added_ids[token.content]
                elif token.content in self._piece_ids:
                    index = self._piece_ids[token.content]
                else:
                    index = size + added
                    if index in added_tokens:
                        raise InputError(
                            f"cannot add {token.content!r}: its id would be {index} (the vocabulary's size), which the "
                            f"added token {added_tokens[index].content!r} already has (the added token ids leave a gap "
                            "after the vocabulary)"
                        )
                    added += 1
                added_tokens[index] = token
                added_ids[token.content] = index
            self._added_tokens, self._added_ids = added_tokens, added_ids
            self._rebuild_matcher()
        return added

    @property
    def split_special_tokens(self) -> bool:
        """Encode special tokens written in the text as plain text (``split_special_tokens=True``), as the reference:
        the fast tokenizer still matches the added tokens that are not special, the slow one no added token."""
        return getattr(self, "_split_special", False)

    @split_special_tokens.setter
    def split_special_tokens(self, value: Any) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise InputError(f"split_special_tokens must be a bool, got {type(value).__name__} {value!r}")
        with self._lock:
            self._split_special = bool(value)
            self._rebuild_matcher()

    def _rebuild_matcher(self) -> None:
        if self.split_special_tokens:
            self._split_ids = {
                c: i for c, i in self._added_ids.items() if self.is_fast and not self._added_tokens[i].special
            }
        else:
            self._split_ids = self._added_ids
        contents = sorted(self._split_ids, key=lambda c: (-len(c), c))
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

    # ------------------------------------------------------------------ attributes

    @property
    def bos_token(self) -> str | None:
        """Beginning-of-sequence token (``[CLS]``)."""
        return self._special_value("bos_token")

    @bos_token.setter
    def bos_token(self, value: Any) -> None:
        self._set_special("bos_token", value)

    @property
    def eos_token(self) -> str | None:
        """End-of-sequence token (``[SEP]``)."""
        return self._special_value("eos_token")

    @eos_token.setter
    def eos_token(self, value: Any) -> None:
        self._set_special("eos_token", value)

    @property
    def unk_token(self) -> str | None:
        """Unknown token (``[UNK]``). Unknown text maps to the SentencePiece unknown piece, as in the reference."""
        return self._special_value("unk_token")

    @unk_token.setter
    def unk_token(self, value: Any) -> None:
        self._set_special("unk_token", value)

    @property
    def sep_token(self) -> str | None:
        """Separator token (``[SEP]``), ends each segment."""
        return self._special_value("sep_token")

    @sep_token.setter
    def sep_token(self, value: Any) -> None:
        self._set_special("sep_token", value)

    @property
    def pad_token(self) -> str | None:
        """Padding token (``[PAD]``)."""
        return self._special_value("pad_token")

    @pad_token.setter
    def pad_token(self, value: Any) -> None:
        self._set_special("pad_token", value)

    @property
    def cls_token(self) -> str | None:
        """Classifier token (``[CLS]``), starts every sequence."""
        return self._special_value("cls_token")

    @cls_token.setter
    def cls_token(self, value: Any) -> None:
        self._set_special("cls_token", value)

    @property
    def mask_token(self) -> str | None:
        """Mask token (``[MASK]``, strips the space on its left)."""
        return self._special_value("mask_token")

    @mask_token.setter
    def mask_token(self, value: Any) -> None:
        self._set_special("mask_token", value)

    @property
    def bos_token_id(self) -> int | None:
        """Id of :attr:`bos_token`."""
        return self._special_id("bos_token")

    @bos_token_id.setter
    def bos_token_id(self, value: Any) -> None:
        self._set_special("bos_token", self._id_as_token(value, "bos_token_id"))

    @property
    def eos_token_id(self) -> int | None:
        """Id of :attr:`eos_token`."""
        return self._special_id("eos_token")

    @eos_token_id.setter
    def eos_token_id(self, value: Any) -> None:
        self._set_special("eos_token", self._id_as_token(value, "eos_token_id"))

    @property
    def unk_token_id(self) -> int | None:
        """Id of :attr:`unk_token`."""
        return self._special_id("unk_token")

    @unk_token_id.setter
    def unk_token_id(self, value: Any) -> None:
        self._set_special("unk_token", self._id_as_token(value, "unk_token_id"))

    @property
    def sep_token_id(self) -> int | None:
        """Id of :attr:`sep_token`."""
        return self._special_id("sep_token")

    @sep_token_id.setter
    def sep_token_id(self, value: Any) -> None:
        self._set_special("sep_token", self._id_as_token(value, "sep_token_id"))

    @property
    def pad_token_id(self) -> int | None:
        """Id of :attr:`pad_token`."""
        return self._special_id("pad_token")

    @pad_token_id.setter
    def pad_token_id(self, value: Any) -> None:
        self._set_special("pad_token", self._id_as_token(value, "pad_token_id"))

    @property
    def cls_token_id(self) -> int | None:
        """Id of :attr:`cls_token`."""
        return self._special_id("cls_token")

    @cls_token_id.setter
    def cls_token_id(self, value: Any) -> None:
        self._set_special("cls_token", self._id_as_token(value, "cls_token_id"))

    @property
    def mask_token_id(self) -> int | None:
        """Id of :attr:`mask_token`."""
        return self._special_id("mask_token")

    @mask_token_id.setter
    def mask_token_id(self, value: Any) -> None:
        self._set_special("mask_token", self._id_as_token(value, "mask_token_id"))

    @property
    def pad_token_type_id(self) -> int:
        """Token type id of padding (0)."""
        return 0

    @property
    def additional_special_tokens(self) -> list[str]:
        """Extra special tokens given to the constructor or :meth:`add_special_tokens` (settable, as the reference's:
        setting replaces the list and, as there, adds no token to the vocabulary)."""
        return [t.content for t in self._additional_special]

    @additional_special_tokens.setter
    def additional_special_tokens(self, value: Any) -> None:
        if not isinstance(value, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in value):
            raise InputError(f"additional_special_tokens must be a list of str or AddedToken, got {value!r}")
        with self._lock:
            tokens: list[AddedToken] = []
            for item in value:
                token = AddedToken.from_value(item, special=True, argument="additional_special_tokens")
                if token.content in self._added_ids:
                    token = self._added_tokens[self._added_ids[token.content]]
                if token.content not in [t.content for t in tokens]:
                    tokens.append(token)
            self._additional_special = tokens
            self._rebuild_matcher()

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        """Ids of :attr:`additional_special_tokens`."""
        ids = self.convert_tokens_to_ids(self.additional_special_tokens)
        assert isinstance(ids, list)
        return ids

    @additional_special_tokens_ids.setter
    def additional_special_tokens_ids(self, value: Any) -> None:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"additional_special_tokens_ids must be a list of ids, got {value!r}")
        self.additional_special_tokens = [self._id_as_token(v, "additional_special_tokens_ids") for v in value]

    def _set_special(self, name: str, value: Any) -> None:
        """Set a special-token attribute as the reference does: the token (or ``None``) becomes the attribute;
        as there, a token that is not in the vocabulary is not added (its id is the unknown token's)."""
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise InputError(f"Cannot set a non-string value as the {name}, got {type(value).__name__} {value!r}")
        with self._lock:
            if value is None:
                self._special[name] = None
            else:
                token = AddedToken.from_value(value, special=True, argument=name)
                if token.content in self._added_ids:
                    token = self._added_tokens[self._added_ids[token.content]]
                self._special[name] = token
            self._rebuild_matcher()

    def _id_as_token(self, value: Any, argument: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{argument} must be an int id or None, got {type(value).__name__} {value!r}")
        token = self.convert_ids_to_tokens(value)
        assert isinstance(token, str)
        return token

    @property
    def max_len_single_sentence(self) -> int:
        """The most tokens one text may have: ``model_max_length`` less its special tokens."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @max_len_single_sentence.setter
    def max_len_single_sentence(self, value: int) -> None:
        if value != self.max_len_single_sentence:  # the reference accepts only the value it computes
            raise InputError("Setting 'max_len_single_sentence' is now deprecated. This value is automatically set up.")

    @property
    def max_len_sentences_pair(self) -> int:
        """The most tokens a pair may have together: ``model_max_length`` less its special tokens."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    @max_len_sentences_pair.setter
    def max_len_sentences_pair(self, value: int) -> None:
        if value != self.max_len_sentences_pair:
            raise InputError("Setting 'max_len_sentences_pair' is now deprecated. This value is automatically set up.")

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

    # ------------------------------------------------------------------ adding tokens

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
