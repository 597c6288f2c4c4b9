"""Reading SentencePiece model files: validated loading, option overrides, piece tables.

Both tokenizers start here. ``sentencepiece`` ships the protobuf module
(``sentencepiece.sentencepiece_model_pb2``) used to read and rewrite the model.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from rembert_core import CheckpointError, InputError
from rembert_core.serialization import check_file

__all__ = [
    "PIECE_BYTE",
    "PIECE_CONTROL",
    "PIECE_NORMAL",
    "PIECE_UNKNOWN",
    "PIECE_UNUSED",
    "PIECE_USER_DEFINED",
    "SentencePieceModel",
    "build_model_proto",
    "charsmap_keeps_ascii",
    "load_model_file",
    "parse_model",
]

# ModelProto.SentencePiece.Type values.
PIECE_NORMAL = 1
PIECE_UNKNOWN = 2
PIECE_CONTROL = 3
PIECE_USER_DEFINED = 4
PIECE_UNUSED = 5
PIECE_BYTE = 6

_UNIGRAM = 1


def _pb2() -> Any:
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2


@dataclass(frozen=True)
class SentencePieceModel:
    """A parsed SentencePiece Unigram model.

    Attributes:
        proto_bytes: the serialized ``ModelProto`` (exactly as read).
        pieces: piece strings by id.
        scores: piece log-probabilities by id.
        types: piece types by id (``PIECE_*`` constants).
        unk_id: id of the unknown piece.
        charsmap: the precompiled normalization charsmap (``b""``: identity normalization).
        add_dummy_prefix / remove_extra_whitespaces / escape_whitespaces: the model's normalizer flags.
        byte_fallback: whether unknown characters become byte pieces.
        source: where the model was read from (named in error messages).
    """

    proto_bytes: bytes
    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[int, ...]
    unk_id: int
    charsmap: bytes
    normalizer_name: str
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool
    byte_fallback: bool
    source: str = field(default="", compare=False)

    def processor(self, *, remove_space: bool) -> Any:
        """A ``sentencepiece.SentencePieceProcessor`` of the model; :class:`CheckpointError` if it refuses it."""
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(self.processor_bytes(remove_space=remove_space))
        except (RuntimeError, OSError) as exc:
            raise CheckpointError(f"sentencepiece cannot load {self.source or 'the model'}: {exc}") from exc
        return processor

    def processor_bytes(self, *, remove_space: bool) -> bytes:
        """The model with ``remove_extra_whitespaces`` switched off when ``remove_space`` is False."""
        if remove_space or not self.remove_extra_whitespaces:
            return self.proto_bytes
        model = _pb2().ModelProto()
        model.ParseFromString(self.proto_bytes)
        model.normalizer_spec.remove_extra_whitespaces = False
        return bytes(model.SerializeToString())

    def charsmap_normalizer(self) -> Any:
        """A ``sentencepiece.SentencePieceNormalizer`` applying only the charsmap (no whitespace handling).

        Returns ``None`` for identity normalization (empty charsmap).
        """
        if not self.charsmap:
            return None
        import sentencepiece

        spec = _pb2().NormalizerSpec()
        spec.name = self.normalizer_name or "custom"
        spec.precompiled_charsmap = self.charsmap
        spec.add_dummy_prefix = False
        spec.remove_extra_whitespaces = False
        spec.escape_whitespaces = False
        try:
            return sentencepiece.SentencePieceNormalizer(normalizer_spec=spec)
        except (RuntimeError, OSError) as exc:
            raise CheckpointError(
                f"{self.source or 'the model'}: its precompiled_charsmap is not a valid normalization table ({exc})"
            ) from exc


_ASCII_CACHE: dict[str, bool] = {}
_ASCII_LOCK = threading.Lock()


def charsmap_keeps_ascii(normalizer: Any, charsmap: bytes) -> bool:
    """Whether the charsmap leaves every pure-ASCII text unchanged (no rule's key is pure ASCII).

    SentencePiece replaces the longest key matching at each position, so if no key is
    pure ASCII, no key can match inside an ASCII text. Decided once per charsmap (listing
    the rules takes a fraction of a second) and cached for the process.
    """
    digest = hashlib.sha256(charsmap).hexdigest()
    with _ASCII_LOCK:
        if digest not in _ASCII_CACHE:
            decompile = getattr(normalizer, "Decompile", None)
            if decompile is None:  # older sentencepiece: no fast path
                _ASCII_CACHE[digest] = False
            else:
                _ASCII_CACHE[digest] = not any(str(key).isascii() for key, _ in decompile())
        return _ASCII_CACHE[digest]


def parse_model(data: bytes, *, source: str) -> SentencePieceModel:
    """Parse serialized ``ModelProto`` bytes; :class:`CheckpointError` naming ``source`` if they are not a model."""
    from google.protobuf.message import DecodeError

    model = _pb2().ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{source} is not a SentencePiece model (cannot parse the protobuf: {exc})") from exc
    if len(model.pieces) == 0:
        raise CheckpointError(f"{source} is not a SentencePiece model (it has no pieces)")
    model_type = model.trainer_spec.model_type if model.trainer_spec.HasField("model_type") else _UNIGRAM
    if model_type != _UNIGRAM:
        raise CheckpointError(f"{source}: RemBERT needs a Unigram SentencePiece model, got model_type={model_type}")
    types = tuple(int(p.type) for p in model.pieces)
    unknown = [i for i, t in enumerate(types) if t == PIECE_UNKNOWN]
    if len(unknown) != 1:
        raise CheckpointError(f"{source}: expected exactly one unknown piece, found {len(unknown)}")
    pieces = tuple(p.piece for p in model.pieces)
    scores = tuple(float(p.score) for p in model.pieces)
    _check_pieces(pieces, scores, types, source=source)
    spec = model.normalizer_spec
    return SentencePieceModel(
        proto_bytes=bytes(data),
        pieces=pieces,
        scores=scores,
        types=types,
        unk_id=unknown[0],
        charsmap=bytes(spec.precompiled_charsmap),
        normalizer_name=str(spec.name),
        add_dummy_prefix=bool(spec.add_dummy_prefix),
        remove_extra_whitespaces=bool(spec.remove_extra_whitespaces),
        escape_whitespaces=bool(spec.escape_whitespaces),
        byte_fallback=bool(model.trainer_spec.byte_fallback),
        source=source,
    )


def _check_pieces(pieces: tuple[str, ...], scores: tuple[float, ...], types: tuple[int, ...], *, source: str) -> None:
    """What ``sentencepiece`` checks when it loads a model, as a :class:`CheckpointError` naming the piece.

    Every piece is non-empty with a finite score, and no piece is defined twice (normal, user-defined and
    unused pieces share one table, control, unknown and byte pieces another, as in ``sentencepiece``).
    """
    if all(pieces) and len(set(pieces)) == len(pieces) and all(map(math.isfinite, scores)):
        return  # the common case, checked at C speed (a 250,000-piece vocabulary in a few milliseconds)
    reserved = (PIECE_CONTROL, PIECE_UNKNOWN, PIECE_BYTE)
    seen: tuple[dict[str, int], dict[str, int]] = ({}, {})
    for index, (piece, score, kind) in enumerate(zip(pieces, scores, types, strict=True)):
        if not piece:
            raise CheckpointError(f"{source}: piece {index} is empty")
        if not math.isfinite(score):
            raise CheckpointError(f"{source}: piece {index} ({piece!r}) has the score {score}, not a finite number")
        table = seen[kind in reserved]
        if piece in table:
            raise CheckpointError(f"{source}: piece {index} ({piece!r}) is already defined as piece {table[piece]}")
        table[piece] = index


def load_model_file(vocab_file: Any, *, argument: str = "vocab_file") -> SentencePieceModel:
    """Read and parse a ``sentencepiece.model`` file with clear errors for missing or corrupt files."""
    if vocab_file is None:
        raise InputError(f"{argument} is required: the path of a SentencePiece model (sentencepiece.model)")
    if not isinstance(vocab_file, (str, os.PathLike)):
        raise InputError(f"{argument} must be a path, got {type(vocab_file).__name__} {vocab_file!r}")
    path = os.fspath(vocab_file)
    if os.path.isdir(path):
        raise CheckpointError(f"{argument} {path!r} is a directory; use from_pretrained() for directories")
    try:
        check_file(path)  # a regular file (a FIFO would block the read, a device would never end)
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read SentencePiece model {path!r}: {exc}") from exc
    return parse_model(data, source=repr(path))


def build_model_proto(
    pieces: list[tuple[str, float, int]],
    *,
    charsmap: bytes,
    normalizer_name: str,
    byte_fallback: bool,
    unk_id: int,
) -> bytes:
    """Serialize a Unigram ``ModelProto`` from (piece, score, type) triples (used when reading a ``tokenizer.json``)."""
    pb2 = _pb2()
    model = pb2.ModelProto()
    for piece, score, kind in pieces:
        entry = model.pieces.add()
        entry.piece = piece
        entry.score = score
        entry.type = kind
    model.trainer_spec.model_type = _UNIGRAM
    model.trainer_spec.vocab_size = len(pieces)
    model.trainer_spec.byte_fallback = byte_fallback
    model.trainer_spec.unk_id = unk_id
    model.trainer_spec.bos_id = -1
    model.trainer_spec.eos_id = -1
    model.trainer_spec.pad_id = -1
    for index, (piece, _, kind) in enumerate(pieces):
        if kind == PIECE_CONTROL and piece == "<s>":
            model.trainer_spec.bos_id = index
        elif kind == PIECE_CONTROL and piece == "</s>":
            model.trainer_spec.eos_id = index
    spec = model.normalizer_spec
    spec.name = normalizer_name if charsmap else "identity"
    spec.precompiled_charsmap = charsmap
    spec.add_dummy_prefix = True
    spec.remove_extra_whitespaces = True
    spec.escape_whitespaces = True
    return bytes(model.SerializeToString())
