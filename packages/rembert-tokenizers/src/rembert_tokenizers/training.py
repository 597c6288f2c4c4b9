"""``RemBertTokenizerFast.train_new_from_iterator``: a new Unigram vocabulary trained on the user's texts.

The texts go through the tokenizer's own steps 1-3 (the split on added tokens, lowercasing and accents as
configured, the SentencePiece charsmap and whitespace rules), so the new pieces are learnt on exactly what
the tokenizer will segment. ``tokenizers``' ``UnigramTrainer`` learns the pieces and their scores; they are
written as a SentencePiece ``ModelProto`` with the original model's normalizer (charsmap and whitespace
flags) and control/unknown pieces first, at their ids. The result is an ordinary RemBERT tokenizer: same
normaliser, special tokens and ``[CLS] A [SEP] B [SEP]`` post-processing, and its ``save_pretrained`` writes a
``sentencepiece.model`` that the slow :class:`~rembert_tokenizers.RemBertTokenizer` loads too (with the same
ids), as well as ``tokenizer.json``. (transformers' version gives a fast tokenizer only: its
``tokenizer.json`` has no SentencePiece model for the slow class.)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rembert_core import InputError
from rembert_tokenizers.special_tokens import SPECIAL_TOKEN_ATTRIBUTES
from rembert_tokenizers.spmodel import PIECE_CONTROL, PIECE_NORMAL, PIECE_UNKNOWN, build_model_proto
from rembert_tokenizers.vocabulary import SPIECE_UNDERLINE, AddedToken

if TYPE_CHECKING:
    from rembert_tokenizers.fast import RemBertTokenizerFast

__all__ = ["train_new_from_iterator"]


def _prepared(tokenizer: RemBertTokenizerFast, texts: Iterable[Any]) -> Iterator[str]:
    """The plain chunks of every text, as the tokenizer hands them to its Unigram lattice."""
    for item in texts:
        batch = [item] if isinstance(item, str) else list(item)
        for text in batch:
            if not isinstance(text, str):
                raise InputError(f"text_iterator: expected str or lists of str, got {type(text).__name__}")
            _, chunks = tokenizer._split_on_added(text)
            plain = [tokenizer._preprocess_chunk(chunk) for chunk, index in chunks if index < 0]
            for chunk in tokenizer._normalize(plain):
                prepared = tokenizer._whitespace(chunk)
                if prepared:
                    yield prepared


def train_new_from_iterator(
    tokenizer: RemBertTokenizerFast,
    text_iterator: Iterable[Any],
    vocab_size: int,
    length: int | None = None,
    new_special_tokens: list[Any] | None = None,
    special_tokens_map: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> RemBertTokenizerFast:
    """A tokenizer like ``tokenizer`` with a Unigram vocabulary of ``vocab_size`` pieces learnt on the texts.

    ``kwargs`` go to ``tokenizers.trainers.UnigramTrainer`` (``shrinking_factor``, ``max_piece_length``,
    ``n_sub_iterations``, ...); ``new_special_tokens`` are added as additional special tokens and
    ``special_tokens_map`` renames special tokens (``{"[CLS]": "<cls>"}``), as in the reference.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 0:
        raise InputError(f"vocab_size must be a positive int, got {vocab_size!r}")
    model = tokenizer._model
    specials = [(p, k) for p, k in zip(model.pieces, model.types, strict=True) if k in (PIECE_CONTROL, PIECE_UNKNOWN)]
    if vocab_size <= len(specials):
        raise InputError(f"vocab_size={vocab_size} leaves no room beside the model's {len(specials)} special pieces")
    unk = model.pieces[model.unk_id]
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=[p for p, _ in specials],
        unk_token=unk,
        show_progress=False,
        **kwargs,
    )
    core = Tokenizer(models.Unigram())
    # The chunks already carry "▁" for every space (and the dummy prefix): words are split at each "▁".
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="never", split=True)
    core.train_from_iterator(_prepared(tokenizer, text_iterator), trainer=trainer, length=length)
    trained = json.loads(core.to_str())["model"]
    kinds = dict(specials)
    pieces = [(str(p), float(s), kinds.get(p, PIECE_NORMAL)) for p, s in trained["vocab"]]
    proto = build_model_proto(
        pieces,
        charsmap=model.charsmap,
        normalizer_name=model.normalizer_name,
        byte_fallback=False,
        unk_id=[p for p, _, _ in pieces].index(unk),
    )

    def renamed(token: Any) -> Any:
        if special_tokens_map and token is not None:
            content = token.content if isinstance(token, AddedToken) else str(token)
            if content in special_tokens_map:
                return special_tokens_map[content]
        return token

    options: dict[str, Any] = {name: renamed(tokenizer._special.get(name)) for name in SPECIAL_TOKEN_ATTRIBUTES}
    options["additional_special_tokens"] = [renamed(t) for t in tokenizer._additional_special] + list(
        new_special_tokens or []
    )
    handle, path = tempfile.mkstemp(suffix=".model")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(proto)
        new = type(tokenizer)(
            vocab_file=path,
            do_lower_case=tokenizer.do_lower_case,
            remove_space=tokenizer.remove_space,
            keep_accents=tokenizer.keep_accents,
            model_max_length=tokenizer.model_max_length,
            padding_side=tokenizer.padding_side,
            truncation_side=tokenizer.truncation_side,
            clean_up_tokenization_spaces=tokenizer.clean_up_tokenization_spaces,
            **options,
        )
    finally:
        os.remove(path)
    new.vocab_file = None  # the model lives in memory; save_pretrained writes it
    return new
