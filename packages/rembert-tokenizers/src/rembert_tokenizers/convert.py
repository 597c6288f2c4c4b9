"""SentencePiece model <-> ``tokenizers`` conversion (our own, on top of the ``tokenizers`` library).

Two ``tokenizers.Tokenizer`` objects come out of a SentencePiece Unigram model:

* the **file** tokenizer (:func:`build_file_tokenizer`), written as ``tokenizer.json`` in
  the reference format so that ``transformers`` reads it: Unigram pieces and scores,
  the model's ``Precompiled`` charsmap (omitted for identity models), whitespace
  handling, Metaspace decoder, ``[CLS] A [SEP] B [SEP]`` post-processor, added tokens;
* the **core** tokenizer (:func:`build_core_tokenizer`) that :class:`RemBertTokenizerFast`
  runs: the same Unigram lattice and whitespace handling, without the charsmap.

Why the core has no ``Precompiled`` step: ``tokenizers`` applies the charsmap per
grapheme cluster and takes the *shortest* matching rule, while SentencePiece takes the
*longest* match over the character stream. They differ on halfwidth katakana with
sound marks, NFD Hangul and combining sequences (e.g. ``ｶﾞ`` -> ``カ`` instead of
``ガ``). The fast tokenizer therefore applies the charsmap with SentencePiece's own
normalizer (C++, charsmap only) and hands the result to the core tokenizer, whose
normalizers reproduce SentencePiece's whitespace rules exactly:

* with ``remove_extra_whitespaces``: collapse runs of spaces, drop one leading space,
  drop trailing spaces and ``▁`` characters (SentencePiece strips trailing ``▁`` after
  escaping, so a literal ``▁`` at the end goes too);
* escape spaces as ``▁``; prepend ``▁`` to non-empty chunks (``Prepend`` rather than
  the Metaspace pre-tokenizer, which skips texts that already start with ``▁``).

Control, unknown and unused pieces can never be produced by SentencePiece's lattice;
the core renames them with a leading space (which its normalizer never leaves in the
text) so the ``tokenizers`` lattice cannot produce them either.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rembert_core import CheckpointError
from rembert_tokenizers.spmodel import (
    PIECE_CONTROL,
    PIECE_NORMAL,
    PIECE_UNKNOWN,
    PIECE_UNUSED,
    SentencePieceModel,
    build_model_proto,
    parse_model,
)
from rembert_tokenizers.vocabulary import _short_repr

__all__ = [
    "SPIECE_UNDERLINE",
    "build_core_tokenizer",
    "build_file_tokenizer",
    "model_from_tokenizer_json",
    "whitespace_function",
    "whitespace_normalizers",
]

SPIECE_UNDERLINE = "\u2581"
_UNREACHABLE = (PIECE_CONTROL, PIECE_UNKNOWN, PIECE_UNUSED)


def whitespace_normalizers(model: SentencePieceModel, *, remove_space: bool) -> list[Any]:
    """``tokenizers`` normalizers reproducing SentencePiece's whitespace handling of a normalized chunk."""
    from tokenizers import Regex, normalizers

    steps: list[Any] = []
    if remove_space and model.remove_extra_whitespaces:
        steps += [
            normalizers.Replace(Regex(" {2,}"), " "),
            normalizers.Replace(Regex(r"\A "), ""),
            normalizers.Replace(Regex("[ " + SPIECE_UNDERLINE + r"]+\z" if model.escape_whitespaces else r" +\z"), ""),
        ]
    if model.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPIECE_UNDERLINE))
    if model.add_dummy_prefix:
        steps.append(normalizers.Prepend(SPIECE_UNDERLINE if model.escape_whitespaces else " "))
    return steps


def whitespace_function(model: SentencePieceModel, *, remove_space: bool) -> Callable[[str], str]:
    """The same rules as :func:`whitespace_normalizers` as one Python function (C-speed ``str`` methods).

    The fast tokenizer's id-only path uses it with a normalizer-free core: ``tokenizers``
    tracks alignments through every normalizer, which costs more than the lattice on long texts.
    """
    collapse = remove_space and model.remove_extra_whitespaces
    escape = model.escape_whitespaces
    space = SPIECE_UNDERLINE if escape else " "
    trailing = " " + SPIECE_UNDERLINE if escape else " "
    prefix = model.add_dummy_prefix
    runs = re.compile(" {2,}")

    def apply(text: str) -> str:
        if collapse:
            if "  " in text:
                text = runs.sub(" ", text)
            if text.startswith(" "):
                text = text[1:]
            text = text.rstrip(trailing)
        if escape:
            text = text.replace(" ", space)
        if prefix and text:
            text = space + text
        return text

    return apply


def _unigram(model: SentencePieceModel, *, core: bool) -> Any:
    from tokenizers import models

    vocab = [
        ((" " + piece) if core and kind in _UNREACHABLE else piece, score)
        for piece, score, kind in zip(model.pieces, model.scores, model.types, strict=True)
    ]
    return models.Unigram(vocab, unk_id=model.unk_id, byte_fallback=model.byte_fallback)


def build_core_tokenizer(model: SentencePieceModel, *, remove_space: bool = True, whitespace: bool = True) -> Any:
    """The ``tokenizers.Tokenizer`` the fast tokenizer runs on charsmap-normalized chunks (see the module docs).

    With ``whitespace=False`` it has no normalizer at all: the input must already have gone
    through :func:`whitespace_function`.
    """
    from tokenizers import Tokenizer, normalizers

    tokenizer = Tokenizer(_unigram(model, core=True))
    steps = whitespace_normalizers(model, remove_space=remove_space) if whitespace else []
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    return tokenizer


def build_file_tokenizer(
    model: SentencePieceModel,
    *,
    added_tokens: Sequence[tuple[int, Mapping[str, Any]]],
    cls: tuple[str, int] | None,
    sep: tuple[str, int] | None,
    remove_space: bool = True,
) -> Any:
    """The reference-format ``tokenizers.Tokenizer`` saved as ``tokenizer.json``.

    Args:
        model: the SentencePiece model.
        added_tokens: (id, reference AddedToken dict) of every added token, in id order.
        cls / sep: (token, id) of ``[CLS]`` and ``[SEP]`` for the post-processor.
        remove_space: whitespace handling (the tokenizer's ``remove_space`` option).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors

    tokenizer = Tokenizer(_unigram(model, core=False))
    steps = []
    if model.charsmap:
        steps.append(normalizers.Precompiled(model.charsmap))
    steps += whitespace_normalizers(model, remove_space=remove_space)
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True)
    if cls is not None and sep is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls[0]}:0 $A:0 {sep[0]}:0",
            pair=f"{cls[0]}:0 $A:0 {sep[0]}:0 $B:1 {sep[0]}:1",
            special_tokens=[cls, sep],
        )
    # SentencePiece's own control/unknown pieces are listed as special added tokens, as the reference does.
    specials = [
        AddedToken(piece, special=True, normalized=False)
        for piece, kind in zip(model.pieces, model.types, strict=True)
        if kind in (PIECE_CONTROL, PIECE_UNKNOWN)
    ]
    if specials:
        tokenizer.add_special_tokens(specials)
    # Added tokens must get exactly their ids: tokenizers assigns new ids sequentially after the vocab.
    for index, token in sorted(added_tokens, key=lambda item: item[0]):
        expected = tokenizer.get_vocab_size(with_added_tokens=True)
        existing = tokenizer.token_to_id(token["content"])
        if (existing is None or existing != index) and index != expected:
            raise CheckpointError(
                f"cannot write tokenizer.json: added token {token['content']!r} has id {index} but the next free id "
                f"is {expected} (added token ids must be contiguous after the vocabulary)"
            )
        if token.get("special"):
            tokenizer.add_special_tokens([_hf_token(token)])
        else:
            tokenizer.add_tokens([_hf_token(token)])
    return tokenizer


def _hf_token(token: Mapping[str, Any]) -> Any:
    from tokenizers import AddedToken

    return AddedToken(
        token["content"],
        single_word=bool(token.get("single_word", False)),
        lstrip=bool(token.get("lstrip", False)),
        rstrip=bool(token.get("rstrip", False)),
        normalized=bool(token.get("normalized", not token.get("special", False))),
        special=bool(token.get("special", False)),
    )


def _find_charsmap(normalizer: Any, *, source: str) -> bytes | None:
    """The ``Precompiled`` charsmap of a ``tokenizer.json`` normalizer, searched through nested sequences."""
    pending = [normalizer]
    while pending:  # a loop, not recursion: a file may nest Sequences thousands deep
        item = pending.pop(0)
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "Precompiled":
            value = item.get("precompiled_charsmap")
            if value is None:
                return b""
            if isinstance(value, str):
                try:  # strict, as tokenizers reads it: other characters are not silently dropped
                    return base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise CheckpointError(
                        f"{source}: field 'normalizer' 'precompiled_charsmap' is not valid base64 ({exc})"
                    ) from exc
            if isinstance(value, list):  # older tokenizers versions wrote a list of bytes
                if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in value):
                    raise CheckpointError(f"{source}: field 'normalizer' 'precompiled_charsmap' is not a list of bytes")
                return bytes(value)
            raise CheckpointError(
                f"{source}: field 'normalizer' 'precompiled_charsmap' must be a base64 string, "
                f"got {type(value).__name__}"
            )
        if item.get("type") == "Sequence":
            children = item.get("normalizers", [])
            if not isinstance(children, list):
                raise CheckpointError(
                    f"{source}: field 'normalizer' 'normalizers' must be a list, got {_short_repr(children)}"
                )
            pending[:0] = children  # depth first, as the file reads
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def model_from_tokenizer_json(text: str, *, source: str) -> tuple[SentencePieceModel, list[tuple[int, dict[str, Any]]]]:
    """Rebuild the SentencePiece model and the added tokens from a ``tokenizer.json`` (ours or the reference's).

    Pieces listed as special added tokens with ids inside the vocabulary are
    SentencePiece control pieces; they are not returned as added tokens. A malformed
    file raises :class:`~rembert_core.CheckpointError` naming ``source`` and the field.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, a 5,000-digit number, nesting too deep
        raise CheckpointError(f"{source} is not valid JSON: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise CheckpointError(f"{source} is not a tokenizers tokenizer.json (no 'model' object)")
    model = data["model"]
    if model.get("type") != "Unigram":
        raise CheckpointError(f"{source}: RemBERT needs a Unigram model, got {_short_repr(model.get('type'))}")
    vocab = model.get("vocab")
    unk_id = model.get("unk_id")
    if not isinstance(vocab, list) or not vocab or not _is_int(unk_id) or not 0 <= unk_id < len(vocab):
        raise CheckpointError(
            f"{source}: the Unigram model has no vocab or no valid unk_id "
            f"(field 'model' 'unk_id': {_short_repr(unk_id)})"
        )
    byte_fallback = model.get("byte_fallback", False)
    if not isinstance(byte_fallback, bool) and byte_fallback is not None:
        raise CheckpointError(
            f"{source}: field 'model' 'byte_fallback' must be true or false, got {_short_repr(byte_fallback)}"
        )
    entries = data.get("added_tokens") or []
    if not isinstance(entries, list):
        raise CheckpointError(f"{source}: field 'added_tokens' must be a list, got {type(entries).__name__}")
    added: list[tuple[int, dict[str, Any]]] = []
    control: set[int] = set()
    for entry in entries:
        if not isinstance(entry, dict) or not _is_int(entry.get("id")) or not isinstance(entry.get("content"), str):
            raise CheckpointError(f"{source}: field 'added_tokens': malformed added token {_short_repr(entry)}")
        index = entry["id"]
        if (
            0 <= index < len(vocab)
            and entry.get("special")
            and isinstance(vocab[index], (list, tuple))
            and vocab[index][:1] == [entry["content"]]
            and (index == unk_id or entry["content"] in ("<s>", "</s>", "<pad>", "<unk>"))
        ):
            control.add(index)
            continue
        added.append((index, {k: entry[k] for k in entry if k != "id"}))
    pieces: list[tuple[str, float, int]] = []
    for index, item in enumerate(vocab):
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise CheckpointError(f"{source}: field 'model' 'vocab': malformed entry {index}: {_short_repr(item)}")
        score = item[1]
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            raise CheckpointError(
                f"{source}: field 'model' 'vocab': entry {index} ({item[0]!r}) has the score {_short_repr(score)}, "
                "not a number"
            )
        try:
            score = float(score)
        except OverflowError:
            score = math.inf  # refused as not finite by parse_model, naming the piece
        kind = PIECE_UNKNOWN if index == unk_id else PIECE_CONTROL if index in control else PIECE_NORMAL
        pieces.append((item[0], score, kind))
    charsmap = _find_charsmap(data.get("normalizer"), source=source) or b""
    try:
        proto = build_model_proto(
            pieces,
            charsmap=charsmap,
            normalizer_name="nmt_nfkc" if charsmap else "identity",
            byte_fallback=bool(byte_fallback),
            unk_id=unk_id,
        )
    except (ValueError, TypeError) as exc:  # e.g. a piece with a lone surrogate (not UTF-8)
        raise CheckpointError(f"{source}: field 'model' 'vocab' cannot be a SentencePiece model: {exc}") from exc
    return parse_model(proto, source=source), added
