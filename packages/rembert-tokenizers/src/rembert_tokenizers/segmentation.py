"""Step 4 of a call: texts -> plain chunks -> SentencePiece pieces -> ids, one :class:`_Sequence` per text.

The plain chunks of a whole batch go to the subclass's :meth:`~rembert_tokenizers.vocabulary.Vocabulary._encode_chunks`
in one call (``sentencepiece`` in :class:`~rembert_tokenizers.RemBertTokenizer`, ``tokenizers`` in
:class:`~rembert_tokenizers.RemBertTokenizerFast`): the only step that differs between the two. The added
tokens found by normalization are put back between the encoded chunks, with their ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rembert_tokenizers.normalization import NormalizationMixin, _check_encodable, _check_text
from rembert_tokenizers.special_tokens import SpecialTokensMixin
from rembert_tokenizers.vocabulary import SPIECE_UNDERLINE, _resolved, _Sequence

__all__ = ["SegmentationMixin"]


class SegmentationMixin(NormalizationMixin, SpecialTokensMixin):
    """Whole texts (or lists of words, or given ids) -> :class:`_Sequence` objects, and ``tokenize``."""

    def _encode_texts(self, texts: Sequence[str], *, offsets: bool = False, pieces: bool = False) -> list[_Sequence]:
        """Encode whole texts (no special tokens): split on added tokens, encode the plain chunks in one batch."""
        results = self._encode_texts_unaligned(texts, offsets=offsets, pieces=pieces)
        if offsets:
            added = self._added_tokens
            bare = self._piece_ids.get(SPIECE_UNDERLINE)
            for text, seq in zip(texts, results, strict=True):
                # The reference fast tokenizer starts a text's first word at the last whitespace before it (the
                # space its "▁" stands for), as it does for every later word; a lone "▁" is that space.
                if seq.offsets and seq.ids[0] not in added:
                    start, end = seq.offsets[0]
                    if start > 0 and text[:start].isspace():
                        seq.offsets[0] = (start - 1, start if seq.ids[0] == bare else end)
        return results

    def _encode_texts_unaligned(
        self, texts: Sequence[str], *, offsets: bool = False, pieces: bool = False
    ) -> list[_Sequence]:
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

    def _encode_texts_plain(self, texts: list[str], *, offsets: bool, pieces: bool) -> list[_Sequence]:
        try:
            return self._encode_chunks(texts, offsets=offsets, pieces=pieces) if texts else []
        except Exception:
            _check_encodable(texts)  # the usual cause: an unpaired surrogate, which no encoder accepts
            raise

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

    def _pieces_of(self, seq: _Sequence) -> list[str]:
        pieces = _resolved(seq)
        return pieces if pieces is not None else [self._id_to_token(i) for i in seq.ids]

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
