"""``RemBertTokenizerFast``: the Unigram lattice of HF ``tokenizers`` (Rust, batched), same ids as the slow one.

Per batch: the shared code splits the texts on added tokens; the plain chunks go
through SentencePiece's charsmap (C++, no whitespace handling) and then through
one ``encode_batch`` of the core ``tokenizers.Tokenizer`` (whitespace rules and
Viterbi in Rust, in parallel); padding goes straight into NumPy arrays. See
:mod:`rembert_tokenizers.convert` for why the charsmap is not run by ``tokenizers``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import os
from typing import Any, ClassVar

import numpy as np

from rembert_core import CheckpointError, InputError
from rembert_core.serialization import check_file, recover_interrupted_save
from rembert_core.tokens import CLS_TOKEN, MASK_TOKEN, PAD_TOKEN, SEP_TOKEN, UNK_TOKEN
from rembert_tokenizers.base import RemBertTokenizerBase
from rembert_tokenizers.convert import (
    build_core_tokenizer,
    build_file_tokenizer,
    model_from_tokenizer_json,
    whitespace_function,
)
from rembert_tokenizers.files import VOCAB_FILE, directory_file
from rembert_tokenizers.spmodel import (
    PIECE_NORMAL,
    PIECE_USER_DEFINED,
    SentencePieceModel,
    charsmap_keeps_ascii,
    load_model_file,
)
from rembert_tokenizers.vocabulary import _Sequence

__all__ = ["TOKENIZER_FILE", "RemBertTokenizerFast"]

TOKENIZER_FILE = "tokenizer.json"


def _commuting_groups(model: SentencePieceModel, piece_ids: dict[str, int]) -> np.ndarray:
    """Per piece id: the group of pieces that are powers of the same string (``"0"``, ``"00"``), else -1.

    Two pieces commute (``a + b == b + a``) exactly when they are powers of one primitive string; only
    groups with at least two such pieces are numbered. A group is its repeated pieces plus their root
    when the root is a piece too, so only pieces that repeat their first character are examined.
    """
    reachable = (PIECE_NORMAL, PIECE_USER_DEFINED)
    types = model.types
    members: dict[str, list[int]] = {}
    for index, piece in enumerate(model.pieces):
        if len(piece) < 2 or piece.count(piece[0]) < 2 or types[index] not in reachable:
            continue  # not a power of a shorter string
        period = (piece + piece).find(piece, 1)  # the smallest period; len(piece) when it has none
        if period < len(piece):
            members.setdefault(piece[:period], []).append(index)
    for root, ids in members.items():
        root_id = piece_ids.get(root)
        if root_id is not None and types[root_id] in reachable:
            ids.append(root_id)
    groups = np.full(len(model.pieces), -1, dtype=np.intp)
    for number, ids in enumerate(ids for ids in members.values() if len(ids) > 1):
        groups[ids] = number
    return groups


def _respan(tokens: list[str], spans: list[tuple[int, int]], pieces: list[str]) -> list[tuple[int, int]]:
    """Spans of ``pieces`` from those of ``tokens``, another segmentation of the same text.

    A boundary both share keeps its span; one inside a token moves by its distance from the token's
    start when the token's span is as long as its text (otherwise it takes the token's edge).
    """
    if "".join(tokens) != "".join(pieces):  # not the same text: keep whole-row spans rather than guess
        start = spans[0][0] if spans else 0
        end = spans[-1][1] if spans else 0
        return [(start, end)] * len(pieces)
    starts = list(itertools.accumulate((len(t) for t in tokens), initial=0))

    def position(at: int, *, end: bool) -> int:
        found = bisect.bisect_left(starts, at) if end else bisect.bisect_right(starts, at)
        k = max(0, min(len(tokens) - 1, found - 1))
        s, e = spans[k]
        inside = at - starts[k]
        if e - s == len(tokens[k]):
            return int(s + inside)
        return int(e if end and inside > 0 else s)

    result = []
    at = 0
    for piece in pieces:
        result.append((position(at, end=False), position(at + len(piece), end=True)))
        at += len(piece)
    return result


class RemBertTokenizerFast(RemBertTokenizerBase):
    """RemBERT tokenizer on HF ``tokenizers``: the ids of :class:`RemBertTokenizer`, faster on batches.

    Args:
        vocab_file (str | os.PathLike | None): the SentencePiece model (``sentencepiece.model``).
        tokenizer_file (str | os.PathLike | None): a ``tokenizer.json`` (ours or ``transformers``');
            used when ``vocab_file`` is not given (the pieces, scores and charsmap are read from it).
        do_lower_case, remove_space, keep_accents, special tokens, model_max_length: as
            :class:`RemBertTokenizer` (same defaults, same effect).

    Also offers ``return_offsets_mapping=True`` (character spans in the input text)
    and ``BatchEncoding.word_ids()``.

    Example:
        >>> from rembert_tokenizers import RemBertTokenizerFast
        >>> tok = RemBertTokenizerFast("tests/fixtures/sentencepiece/test_model.model")
        >>> batch = tok(["Hello world", "Hi"], padding=True, return_tensors="np")
        >>> batch["input_ids"].shape  # (batch, seq)
        (2, 6)
        >>> batch["attention_mask"].tolist()
        [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]
        >>> tok("Hello world").word_ids()
        [None, 0, 0, 0, 1, None]
    """

    vocab_files_names: ClassVar[dict[str, str]] = {"vocab_file": VOCAB_FILE, "tokenizer_file": TOKENIZER_FILE}
    is_fast: ClassVar[bool] = True
    _class_name = "RemBertTokenizerFast"

    def __init__(
        self,
        vocab_file: str | os.PathLike[str] | None = None,
        tokenizer_file: str | os.PathLike[str] | None = None,
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
        **kwargs: Any,
    ) -> None:
        if vocab_file is None and tokenizer_file is None:
            raise InputError(
                "RemBertTokenizerFast needs vocab_file (sentencepiece.model) or tokenizer_file (tokenizer.json)"
            )
        file_added: list[tuple[int, dict[str, Any]]] = []
        if vocab_file is not None:
            model = load_model_file(vocab_file)
        if tokenizer_file is not None:
            if not isinstance(tokenizer_file, (str, os.PathLike)):
                raise InputError(f"tokenizer_file must be a path, got {type(tokenizer_file).__name__}")
            path = os.fspath(tokenizer_file)
            try:
                check_file(path)  # a regular file (a FIFO would block the read, a device would never end)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise CheckpointError(f"cannot read tokenizer file {path!r}: {exc}") from exc
            file_model, file_added = model_from_tokenizer_json(text, source=repr(path))
            if vocab_file is None:
                model = file_model
            elif file_model.pieces != model.pieces:
                raise CheckpointError(
                    f"tokenizer_file {path!r} and vocab_file {os.fspath(vocab_file)!r} have different pieces"
                )
        self._model: SentencePieceModel = model
        self.vocab_file = os.fspath(vocab_file) if vocab_file is not None else None
        if file_added and "added_tokens_decoder" not in kwargs:
            decoder: dict[int, dict[str, Any]] = {}
            for index, token in file_added:
                if index in decoder:
                    raise CheckpointError(
                        f"{path!r}: field 'added_tokens': the id {index} is given to both "
                        f"{decoder[index]['content']!r} and {token['content']!r}"
                    )
                decoder[index] = token
            kwargs["added_tokens_decoder"] = decoder
            kwargs["_added_tokens_source"] = f"{path!r} (field 'added_tokens')"
        super().__init__(
            do_lower_case=do_lower_case,
            remove_space=remove_space,
            keep_accents=keep_accents,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            sep_token=sep_token,
            pad_token=pad_token,
            cls_token=cls_token,
            mask_token=mask_token,
            **kwargs,
        )

    def _load_model(self) -> None:
        # The slow tokenizer's processor: decode() is exactly its, and so are the rows whose segmentation is a tie.
        # Loaded first: sentencepiece's checks of the model name the file (CheckpointError).
        self._sp = self._model.processor(remove_space=self.remove_space)
        self._charsmap = self._model.charsmap_normalizer()
        self._ascii_identity: bool | None = None  # decided on first use (charsmap_keeps_ascii)
        # Two cores share the lattice: one with the whitespace rules as tokenizers normalizers (offsets and
        # pieces are tracked through them), one without, fed by the same rules in Python (ids only, faster).
        try:
            self._core = build_core_tokenizer(self._model, remove_space=self.remove_space)
            self._core_ids = build_core_tokenizer(self._model, remove_space=self.remove_space, whitespace=False)
        except Exception as exc:  # tokenizers raises plain Exception for a model it refuses
            raise CheckpointError(f"tokenizers cannot build a Unigram model of {self._model.source}: {exc}") from exc
        self._whitespace = whitespace_function(self._model, remove_space=self.remove_space)
        self._pieces = list(self._model.pieces)
        self._piece_ids = {}
        for index, piece in enumerate(self._pieces):
            self._piece_ids.setdefault(piece, index)
        self._sp_unk_id = self._model.unk_id
        self._tie_groups = _commuting_groups(self._model, self._piece_ids)

    @property
    def backend_tokenizer(self) -> Any:
        """The reference-format ``tokenizers.Tokenizer`` (what ``tokenizer.json`` holds)."""
        cls_token, sep_token = self.cls_token, self.sep_token
        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        return build_file_tokenizer(
            self._model,
            added_tokens=[(i, t.to_dict()) for i, t in sorted(self._added_tokens.items())],
            cls=(cls_token, cls_id) if cls_token is not None and cls_id is not None else None,
            sep=(sep_token, sep_id) if sep_token is not None and sep_id is not None else None,
            remove_space=self.remove_space,
        )

    def _normalize(self, chunks: list[str]) -> list[str]:
        if self._charsmap is None:
            return chunks
        normalize = self._charsmap.Normalize
        return [normalize(c) for c in chunks]

    def _encode_chunks(self, chunks: list[str], *, offsets: bool = False, pieces: bool = False) -> list[_Sequence]:
        if not offsets and not pieces:
            whitespace = self._whitespace
            if self._charsmap is None:
                prepared = [whitespace(c) for c in chunks]
            else:
                normalize = self._charsmap.Normalize
                if self._ascii_identity is None:
                    self._ascii_identity = charsmap_keeps_ascii(self._charsmap, self._model.charsmap)
                if self._ascii_identity:  # ASCII text cannot match any rule: skip the C++ call
                    prepared = [whitespace(c if c.isascii() else normalize(c)) for c in chunks]
                else:
                    prepared = [whitespace(normalize(c)) for c in chunks]
            encodings = self._core_ids.encode_batch_fast(prepared, add_special_tokens=False)
            all_ids = [e.ids for e in encodings]
            results = [_Sequence(ids) for ids in all_ids]
            ties = self._tie_rows(all_ids)
            for i in ties:
                results[i] = self._exact_sequence(chunks[i])
            # encode_batch_fast gives no token strings. Rows whose ids depend on them are encoded again now:
            # every row when added tokens can replace any piece, else the rows with an unknown piece whose
            # text contains an added token's (the piece's surface may be that text, which maps to the added
            # token's id). Other rows with unknown pieces need their surfaces only for tokens() and word_ids(),
            # as the reference shows them: those are encoded again on first use.
            unk = self._sp_unk_id
            if self._remap_all_pieces:
                redo = [i for i in range(len(all_ids)) if i not in ties]
            else:
                contents = tuple(self._added_ids)
                redo = []
                for i, ids in enumerate(all_ids):
                    if unk not in ids or i in ties:
                        continue
                    if any(content in prepared[i] for content in contents):  # pieces are substrings of it
                        redo.append(i)
                    else:
                        results[i].deferred = functools.partial(self._surfaces, prepared[i])
            if redo:
                again = self._core_ids.encode_batch([prepared[i] for i in redo], add_special_tokens=False)
                for i, encoding in zip(redo, again, strict=True):
                    results[i] = _Sequence(self._piece_ids_of(all_ids[i], encoding.tokens), pieces=encoding.tokens)
            return results
        normalized = self._normalize(chunks)
        encodings = self._core.encode_batch(normalized, add_special_tokens=False)
        ties = self._tie_rows([e.ids for e in encodings])
        results = []
        for i, (chunk, norm, encoding) in enumerate(zip(chunks, normalized, encodings, strict=True)):
            tokens, spans = encoding.tokens, encoding.offsets
            if i in ties:
                seq = self._exact_sequence(chunk)
                assert seq.pieces is not None
                spans = _respan(tokens, spans, seq.pieces)
            else:
                seq = _Sequence(self._piece_ids_of(encoding.ids, tokens), pieces=tokens)
            if offsets:
                seq.offsets = self._original_offsets(chunk, norm, spans)
            results.append(seq)
        return results

    def _tie_rows(self, all_ids: list[list[int]]) -> set[int]:
        """Rows whose segmentation has two adjacent, different pieces that commute (``"0" "00"``).

        Swapping them gives a segmentation with exactly the same score. SentencePiece sums the scores
        along the lattice in float32, so which of the tied segmentations it returns depends on rounding
        (and on everything before the run, e.g. an unknown character's penalty); ``tokenizers`` sums in
        float64 and may return the other. Those rows are encoded again by SentencePiece itself.
        """
        if not all_ids:
            return set()
        lengths = np.fromiter(map(len, all_ids), dtype=np.intp, count=len(all_ids))
        flat = np.fromiter(itertools.chain.from_iterable(all_ids), dtype=np.intp, count=int(lengths.sum()))
        if flat.size < 2:
            return set()
        groups = self._tie_groups[flat]  # (tokens,) group of each piece, -1: commutes with no other piece
        hit = (groups[:-1] >= 0) & (groups[:-1] == groups[1:]) & (flat[:-1] != flat[1:])  # (tokens - 1,)
        ends = np.cumsum(lengths)
        inner = ends[:-1][(ends[:-1] > 0) & (ends[:-1] < flat.size)]  # where a row ends and a later one starts
        hit[inner - 1] = False  # pairs that straddle two rows
        if not hit.any():
            return set()
        return {int(r) for r in np.searchsorted(ends, np.flatnonzero(hit), side="right")}

    def _exact_sequence(self, chunk: str) -> _Sequence:
        """``chunk`` as the slow tokenizer encodes it: SentencePiece's own pieces."""
        return self._sequence_of_pieces(list(self._sp.EncodeAsPieces(chunk)))

    def _surfaces(self, prepared: str) -> list[str]:
        """The pieces of a prepared chunk (unknown pieces as their text), for a row encoded without them."""
        return list(self._core_ids.encode(prepared, add_special_tokens=False).tokens)

    def _original_offsets(self, chunk: str, norm: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Map character spans in the charsmap-normalized chunk back to the chunk."""
        if self._charsmap is None or norm == chunk:
            return [(int(s), int(e)) for s, e in spans]
        _, positions = self._charsmap.Normalize(chunk, with_offsets=True)
        positions = list(positions)
        last = len(positions) - 1
        result = []
        for start, end in spans:
            s = positions[min(start, last)]
            e = positions[min(end, last)] if end > start else s
            result.append((int(s), int(max(e, s))))
        return result

    def train_new_from_iterator(
        self,
        text_iterator: Any,
        vocab_size: int,
        length: int | None = None,
        new_special_tokens: list[Any] | None = None,
        special_tokens_map: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> RemBertTokenizerFast:
        """A new tokenizer with a Unigram vocabulary of ``vocab_size`` pieces learnt on ``text_iterator`` (texts or
        batches of texts), keeping this one's normaliser, special tokens and post-processing; both classes load
        what its ``save_pretrained`` writes (see the ``rembert_tokenizers.training`` module).

        Example::

            new = tokenizer.train_new_from_iterator(open("corpus.txt"), vocab_size=2000)
        """
        from rembert_tokenizers.training import train_new_from_iterator

        return train_new_from_iterator(
            self, text_iterator, vocab_size, length, new_special_tokens, special_tokens_map, **kwargs
        )

    def _decode_pieces(self, pieces: list[str]) -> str:
        return str(self._sp.DecodePieces(pieces))

    def _model_proto_bytes(self) -> bytes:
        return self._model.proto_bytes

    def _extra_payloads(self, directory: str, filename_prefix: str | None) -> dict[str, bytes]:
        path = os.path.join(directory, (filename_prefix + "-" if filename_prefix else "") + TOKENIZER_FILE)
        payload = json.loads(self.backend_tokenizer.to_str())
        return {path: (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode()}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_sp", "_tie_groups", "_lock", "_core", "_core_ids", "_whitespace", "_charsmap"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._load_model()

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any
    ) -> RemBertTokenizerFast:
        """Load from a directory with ``sentencepiece.model`` and/or ``tokenizer.json`` (ours or ``transformers``').

        Example::

            tok = RemBertTokenizerFast.from_pretrained("out/")
        """
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.isfile(path):
            if path.endswith(".json"):
                return cls(tokenizer_file=path, **kwargs)
            return cls(path, **kwargs)
        if not os.path.isdir(path):
            raise CheckpointError(
                f"{path!r} is neither a directory nor a file (hub downloads are not supported; pass a local path)"
            )
        recover_interrupted_save(path)  # a save killed after its commit point is finished first
        # Every file is read under the file policy (check_file); tokenizer.json only without sentencepiece.model.
        vocab = directory_file(path, VOCAB_FILE)
        tokenizer_json = directory_file(path, TOKENIZER_FILE) if vocab is None else None
        given = kwargs.pop("tokenizer_file", None)
        if given is not None:  # the reference's tokenizer_file=: this tokenizer.json instead of the directory's
            tokenizer_json, vocab = os.fspath(given), None
        if vocab is None and tokenizer_json is None:
            raise CheckpointError(f"{path!r} has neither {VOCAB_FILE} nor {TOKENIZER_FILE}")
        options = cls._pretrained_kwargs(path, kwargs)
        return cls(vocab_file=vocab, tokenizer_file=tokenizer_json, **options)
