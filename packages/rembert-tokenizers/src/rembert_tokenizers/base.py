"""The API both RemBERT tokenizers share: one implementation of everything but the piece encoder.

A tokenizer call runs the same steps in :class:`RemBertTokenizer` and
:class:`RemBertTokenizerFast`, each in its own module of this package:

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

Where each step lives (each module holds one mixin; :class:`RemBertTokenizerBase` composes them):

* :mod:`~rembert_tokenizers.normalization`: steps 1-3;
* :mod:`~rembert_tokenizers.segmentation`: step 4, texts -> pieces -> ids;
* :mod:`~rembert_tokenizers.special_tokens`: added and special tokens, ``[CLS] A [SEP] B [SEP]``;
* :mod:`~rembert_tokenizers.truncation_padding`: step 5's length rules, ``pad()``;
* :mod:`~rembert_tokenizers.outputs`: step 5 assembled into a ``BatchEncoding``, alignment, ``decode``;
* :mod:`~rembert_tokenizers.files`: ``save_pretrained`` and the files ``from_pretrained`` reads;
* :mod:`~rembert_tokenizers.vocabulary`: what they all read (pieces, added tokens, ids), and the
  subclass hooks.

This module holds the constructor and the entry points (``__call__``, ``encode``, ``encode_plus``, ...).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rembert_core import CheckpointError, InputError
from rembert_core.tokens import CLS_TOKEN, MASK_TOKEN, PAD_TOKEN, SEP_TOKEN, UNK_TOKEN
from rembert_tokenizers.encoding import BatchEncoding
from rembert_tokenizers.files import ADDED_TOKENS_FILE as ADDED_TOKENS_FILE
from rembert_tokenizers.files import SPECIAL_TOKENS_MAP_FILE as SPECIAL_TOKENS_MAP_FILE
from rembert_tokenizers.files import TOKENIZER_CONFIG_FILE as TOKENIZER_CONFIG_FILE
from rembert_tokenizers.files import VOCAB_FILE as VOCAB_FILE
from rembert_tokenizers.files import FilesMixin
from rembert_tokenizers.normalization import NormalizationMixin, _check_text, _preview
from rembert_tokenizers.outputs import OutputsMixin
from rembert_tokenizers.segmentation import SegmentationMixin
from rembert_tokenizers.special_tokens import SPECIAL_TOKEN_ATTRIBUTES, SpecialTokensMixin
from rembert_tokenizers.truncation_padding import MAX_PADDED_LENGTH as MAX_PADDED_LENGTH
from rembert_tokenizers.truncation_padding import VERY_LARGE_INTEGER, TruncationPaddingMixin
from rembert_tokenizers.vocabulary import SPIECE_UNDERLINE, AddedToken, Vocabulary, _short_repr
from rembert_tokenizers.vocabulary import _Sequence as _Sequence

__all__ = [
    "SPECIAL_TOKEN_ATTRIBUTES",
    "SPIECE_UNDERLINE",
    "VERY_LARGE_INTEGER",
    "AddedToken",
    "RemBertTokenizerBase",
]
# The file names, MAX_PADDED_LENGTH and _Sequence were defined here before the step modules existed: the
# "X as X" imports above keep them importable from here.


@contextlib.contextmanager
def _file_errors(source: str | None) -> Iterator[None]:
    """An :class:`InputError` about what a file holds becomes a :class:`CheckpointError` naming the file."""
    if source is None:
        yield
        return
    try:
        yield
    except InputError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc


# Each step's mixin builds on the ones it calls, so Python wants the later steps listed first.
class RemBertTokenizerBase(
    FilesMixin,  # save_pretrained, save_vocabulary, the files from_pretrained reads
    OutputsMixin,  # 5. rows -> BatchEncoding; word/offset alignment; decode
    TruncationPaddingMixin,  # 5. truncation and padding rules, pad()
    SegmentationMixin,  # 4. texts -> pieces -> ids (the subclass's _encode_chunks)
    NormalizationMixin,  # 1-3. validation, lowercasing, the split on added tokens, accents
    SpecialTokensMixin,  # added and special tokens, [CLS] A [SEP] B [SEP]
    Vocabulary,  # pieces and added tokens, tokens <-> ids, the subclass hooks
):
    """Shared implementation of :class:`RemBertTokenizer` and :class:`RemBertTokenizerFast`.

    Subclasses provide the SentencePiece pieces (:meth:`_load_model`) and the
    piece encoder (:meth:`_encode_chunks`), plus :meth:`_decode_pieces` and
    :meth:`_model_proto_bytes` (all four declared in :class:`~rembert_tokenizers.vocabulary.Vocabulary`);
    everything else lives in the step mixins.
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
        given_max_length = model_max_length
        if model_max_length is None:
            model_max_length = VERY_LARGE_INTEGER
        if not isinstance(model_max_length, int) or model_max_length <= 0:
            raise InputError(f"model_max_length must be a positive int, got {model_max_length!r}")
        self.model_max_length = model_max_length
        # Set by from_pretrained: the file the added tokens come from (its errors are CheckpointErrors naming it).
        added_tokens_source = kwargs.pop("_added_tokens_source", None)
        # Options kept for the config file; the reference stores unknown keys the same way.
        self.init_kwargs = {
            k: v
            for k, v in kwargs.items()
            if k not in ("tokenizer_class", "name_or_path", "vocab_file", "tokenizer_file")
        }
        # Keys tokenizer_config.json carries as they came (unknown options); the named ones are written from the
        # attributes they set (files.py), so what init_kwargs also records below never changes the file.
        self._extra_init_kwargs = dict(self.init_kwargs)
        specials: dict[str, Any] = {
            "bos_token": bos_token,
            "eos_token": eos_token,
            "unk_token": unk_token,
            "sep_token": sep_token,
            "pad_token": pad_token,
            "cls_token": cls_token,
            "mask_token": mask_token,
        }
        named: dict[str, Any] = {
            "do_lower_case": self.do_lower_case,
            "remove_space": self.remove_space,
            "keep_accents": self.keep_accents,
            **specials,
        }
        if additional_special_tokens is not None:
            named["additional_special_tokens"] = list(additional_special_tokens)
        if given_max_length is not None:
            named["model_max_length"] = given_max_length
        if padding_side != "right":
            named["padding_side"] = padding_side
        if truncation_side != "right":
            named["truncation_side"] = truncation_side
        if clean_up_tokenization_spaces:
            named["clean_up_tokenization_spaces"] = True
        #: The constructor's options, as transformers' ``init_kwargs`` records them (named and unknown ones).
        self.init_kwargs = {**named, **self._extra_init_kwargs}
        self.name_or_path = str(kwargs.get("name_or_path", ""))
        self.deprecation_warnings = {}
        split_special_tokens = kwargs.get("split_special_tokens", False)
        if not isinstance(split_special_tokens, (bool, np.bool_)):
            raise InputError(f"split_special_tokens must be a bool, got {split_special_tokens!r}")
        self._split_special = bool(split_special_tokens)  # kept in init_kwargs too: saved, as the reference
        self._lock = threading.RLock()

        self._pieces = []
        self._piece_ids = {}
        self._sp_unk_id = 0
        self._load_model()

        # Added tokens: id -> token and content -> id, like the reference's _added_tokens_decoder/encoder.
        self._added_tokens = {}
        self._added_ids = {}
        self._special = {}
        self._additional_special = []
        with _file_errors(added_tokens_source):
            self._set_added_tokens(
                added_tokens_decoder if added_tokens_decoder is not None else {},
                argument="added_tokens_decoder" if added_tokens_source is None else "added tokens",
            )
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
        if additional_special_tokens is not None and not isinstance(additional_special_tokens, (list, tuple)):
            # A str would be split into its characters (as this class did); transformers refuses it too.
            raise InputError(
                "additional_special_tokens must be a list of tokens, "
                f"got {type(additional_special_tokens).__name__} {_short_repr(additional_special_tokens)}"
            )
        for value in additional_special_tokens or ():
            token = AddedToken.from_value(value, special=True, argument="additional_special_tokens")
            if token.content in self._added_ids:
                token = self._added_tokens[self._added_ids[token.content]]
            if token.content not in [t.content for t in self._additional_special]:
                self._additional_special.append(token)
        with _file_errors(added_tokens_source):
            self._register(self._all_special_extended(), special=True)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"len={len(self)}, do_lower_case={self.do_lower_case}, remove_space={self.remove_space}, "
            f"keep_accents={self.keep_accents}, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})"
        )

    # ------------------------------------------------------------------ entry points

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
        text_target: Any = None,
        text_pair_target: Any = None,
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
            return_overflowing_tokens (bool): with truncation, the fast tokenizer returns one row per window of
                ``max_length`` tokens overlapping by ``stride`` and ``overflow_to_sample_mapping`` (the row's text);
                the slow one ``overflowing_tokens`` and ``num_truncated_tokens``, as the reference's.
            verbose (bool): warn (``logging``, once) when a row is longer than ``model_max_length`` untruncated.
            text_target, text_pair_target: target texts, encoded with the same options; their ``input_ids``
                become ``labels`` (alone, the targets' encoding is returned).

        Returns:
            BatchEncoding: ``input_ids``, ``token_type_ids``, ``attention_mask`` and the requested extras;
            lists of shape (seq,) for one text, (batch, seq) for a batch.

        Example::

            tokenizer("Hello world", "second", padding="max_length", max_length=12, return_tensors="np")
        """
        if kwargs:
            raise InputError(f"unexpected keyword argument(s): {sorted(kwargs)}")
        options = {
            "add_special_tokens": add_special_tokens,
            "padding": padding,
            "truncation": truncation,
            "max_length": max_length,
            "stride": stride,
            "is_split_into_words": is_split_into_words,
            "pad_to_multiple_of": pad_to_multiple_of,
            "padding_side": padding_side,
            "return_tensors": return_tensors,
            "return_token_type_ids": return_token_type_ids,
            "return_attention_mask": return_attention_mask,
            "return_overflowing_tokens": return_overflowing_tokens,
            "return_special_tokens_mask": return_special_tokens_mask,
            "return_offsets_mapping": return_offsets_mapping,
            "return_length": return_length,
            "verbose": verbose,
        }
        if text_target is not None:
            targets = self._call_one(text_target, text_pair_target, **options)
            if text is None:
                return targets
            encodings = self._call_one(text, text_pair, **options)
            encodings["labels"] = targets["input_ids"]
            return encodings
        if text_pair_target is not None:
            raise InputError("text_pair_target needs text_target")
        return self._call_one(text, text_pair, **options)

    def _call_one(self, text: Any, text_pair: Any, *, is_split_into_words: bool, **options: Any) -> BatchEncoding:
        if text is None:
            raise InputError(
                "text: expected a str, a list of str or (is_split_into_words=True) lists of words, got None "
                "(or give text_target)"
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
        return self._encode_batch(texts, pairs, batched=batched, is_split_into_words=is_split_into_words, **options)

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
