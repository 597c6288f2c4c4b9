"""Steps 1-3 of a call: validate the input, lowercase, split on the added tokens, strip accents.

Everything here runs before the SentencePiece model and is shared by both tokenizers:

1. validate the input (``str``, list of ``str``, words with ``is_split_into_words``);
2. lowercase it when ``do_lower_case`` (special tokens kept), split it on the added tokens with their
   ``lstrip``/``rstrip``/``single_word`` rules, exactly as the reference slow tokenizer;
3. strip accents from the plain chunks when ``keep_accents=False``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from rembert_core import InputError
from rembert_tokenizers.vocabulary import Vocabulary, _Sequence

__all__ = ["NormalizationMixin"]


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


class NormalizationMixin(Vocabulary):
    """Input validation, lowercasing, the split on added tokens and accent stripping."""

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
        added_ids = self._split_ids  # the added tokens matched in text (split_special_tokens leaves some out)
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

    def _preprocess_chunk(self, chunk: str) -> str:
        return chunk if self.keep_accents else _strip_accents(chunk)
