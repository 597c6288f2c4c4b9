"""``RemBertTokenizer``: the SentencePiece tokenizer, the reference slow tokenizer's ids."""

from __future__ import annotations

import os
from typing import Any

from rembert_core import CheckpointError
from rembert_core.serialization import recover_interrupted_save
from rembert_core.tokens import CLS_TOKEN, MASK_TOKEN, PAD_TOKEN, SEP_TOKEN, UNK_TOKEN
from rembert_tokenizers.base import RemBertTokenizerBase
from rembert_tokenizers.files import VOCAB_FILE, directory_file
from rembert_tokenizers.spmodel import SentencePieceModel, load_model_file
from rembert_tokenizers.vocabulary import _Sequence

__all__ = ["RemBertTokenizer"]


class RemBertTokenizer(RemBertTokenizerBase):
    """RemBERT tokenizer on ``sentencepiece``: pieces from ``EncodeAsPieces``, as the reference slow tokenizer.

    Args:
        vocab_file (str | os.PathLike): the SentencePiece model (``sentencepiece.model``).
        do_lower_case (bool): lowercase the text (special tokens excepted) before encoding. Default False.
        remove_space (bool): strip and collapse whitespace (the model's own rule). False keeps every space
            as a ``▁``. Default True.
        keep_accents (bool): False decomposes (NFKD) and drops combining marks. Default True.
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token (str | AddedToken):
            special tokens (``[CLS]``, ``[SEP]``, ``[UNK]``, ``[SEP]``, ``[PAD]``, ``[CLS]``, ``[MASK]``);
            the mask token strips the space on its left. A token already in the vocabulary keeps its id
            (``[CLS]`` 312 in google/rembert); others are added after it.
        model_max_length (int | None): default truncation length (None: unlimited).
        **kwargs: further reference options stored in ``tokenizer_config.json``.

    The defaults reproduce ``transformers.RemBertTokenizer`` ids exactly; unlike it,
    ``remove_space`` and ``keep_accents`` take effect when set (identically in
    :class:`RemBertTokenizerFast`).

    Example (the SentencePiece test model of the repository; ``google/rembert``'s works the same):
        >>> from rembert_tokenizers import RemBertTokenizer
        >>> tok = RemBertTokenizer("tests/fixtures/sentencepiece/test_model.model")
        >>> tok("Hello world")["input_ids"]
        [1000, 151, 88, 21, 887, 1001]
        >>> tok.convert_ids_to_tokens([151, 88, 21, 887])
        ['▁He', 'll', 'o', '▁world']
        >>> tok.decode([1000, 151, 88, 21, 887, 1001], skip_special_tokens=True)
        'Hello world'
    """

    _class_name = "RemBertTokenizer"

    def __init__(
        self,
        vocab_file: str | os.PathLike[str],
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
        self._model: SentencePieceModel = load_model_file(vocab_file)
        self.vocab_file = os.fspath(vocab_file)
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
        self._sp = self._model.processor(remove_space=self.remove_space)
        self._pieces = list(self._model.pieces)
        self._piece_ids = {}
        for index, piece in enumerate(self._pieces):
            self._piece_ids.setdefault(piece, index)
        self._sp_unk_id = self._model.unk_id

    def _encode_chunks(self, chunks: list[str], *, offsets: bool = False, pieces: bool = True) -> list[_Sequence]:
        return [self._sequence_of_pieces(list(encoded)) for encoded in self._sp.EncodeAsPieces(chunks)]

    def _decode_pieces(self, pieces: list[str]) -> str:
        return str(self._sp.DecodePieces(pieces))

    def _model_proto_bytes(self) -> bytes:
        return self._model.proto_bytes

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_sp", None)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._load_model()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> RemBertTokenizer:
        """Load from a directory written by :meth:`save_pretrained` (ours or ``transformers``'), or a ``.model`` file.

        Example::

            tok = RemBertTokenizer.from_pretrained("out/")
        """
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.isfile(path):
            return cls(path, **kwargs)
        if not os.path.isdir(path):
            raise CheckpointError(
                f"{path!r} is neither a directory nor a file (hub downloads are not supported; pass a local path)"
            )
        recover_interrupted_save(path)  # a save killed after its commit point is finished first
        vocab = directory_file(path, VOCAB_FILE)  # every file is read under the file policy (check_file)
        if vocab is None:
            raise CheckpointError(f"{path!r} has no {VOCAB_FILE}")
        return cls(vocab, **cls._pretrained_kwargs(path, kwargs))
