"""BatchEncoding's alignment methods == transformers 4.57's fast tokenizer, over every token of both corpora.

Rows are compared where the ids agree (all English lines; all but 8 Japanese lines with runs of ideographic
spaces, where the reference fast tokenizer keeps one "▁" per space and the reference slow tokenizer, whose ids
we give, one per run). Offsets agree on every one of those rows, leading whitespace included (the first
word's span starts at the space its "▁" stands for, as the reference's), so the character-based methods
(token_to_chars, word_to_chars, char_to_token, char_to_word) are compared on all of them too.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from rembert_core import InputError

pytestmark = pytest.mark.oracle

MODELS = {"en": "test_model.model", "ja": "test_ja_model.model"}


def _call(method: Any, *args: Any) -> Any:
    try:
        return ("ok", method(*args))
    except TypeError:  # word_to_chars of a word without tokens: the reference builds CharSpan(*None)
        return ("TypeError", None)


def _same_offsets(expected: Any, got: Any, row: int) -> bool:
    return [tuple(x) for x in expected["offset_mapping"][row]] == [tuple(x) for x in got["offset_mapping"][row]]


def _compare_row(expected: Any, got: Any, row: int, lengths: list[int], *, chars: bool, batch_form: bool) -> None:
    """Every alignment method on every token, word and character of one row (``lengths``: characters per text)."""

    def both(name: str, *args: Any) -> None:
        full = (row, *args) if batch_form else args
        a = _call(getattr(expected, name), *full)
        b = _call(getattr(got, name), *full)
        assert a == b, (name, row, args)

    assert got.tokens(row) == expected.tokens(row)
    assert got.word_ids(row) == expected.word_ids(row)
    assert got.sequence_ids(row) == expected.sequence_ids(row)
    n_tokens = len(expected["input_ids"][row] if batch_form else expected["input_ids"])
    for token in range(n_tokens + 1):
        both("token_to_sequence", token)
        both("token_to_word", token)
        if chars:
            both("token_to_chars", token)
    words = [w for w in expected.word_ids(row) if w is not None]
    for sequence, length in enumerate(lengths):
        for word in range(max(words, default=0) + 2):
            methods = ("word_to_tokens", "word_to_chars") if chars else ("word_to_tokens",)
            for method in methods:
                if batch_form:
                    both(method, word, sequence)
                else:
                    both(method, word, None, sequence)
        if chars:
            for char in range(length + 1):
                if batch_form:
                    both("char_to_token", char, sequence)
                    both("char_to_word", char, sequence)
                else:
                    both("char_to_token", char, None, sequence)
                    both("char_to_word", char, None, sequence)


def _compare_batch(expected: Any, got: Any, lengths: list[list[int]]) -> tuple[list[int], int]:
    """All rows whose ids agree; the character methods where the offsets agree too.

    Returns the rows skipped (ids differ) and the number of rows compared with the character methods.
    """
    skipped = []
    with_chars = 0
    for row in range(len(expected["input_ids"])):
        if expected["input_ids"][row] != got["input_ids"][row]:
            skipped.append(row)
            continue
        chars = _same_offsets(expected, got, row)
        _compare_row(expected, got, row, lengths[row], chars=chars, batch_form=True)
        with_chars += chars
    return skipped, with_chars


def _ideographic_lead(*texts: Any) -> bool:
    """Whether a text has a run of ideographic spaces (the only rows whose ids differ from the reference fast's)."""
    return any("\u3000\u3000" in (" ".join(t) if isinstance(t, list) else t) for t in texts)


@pytest.mark.parametrize("name", ["en", "ja"])
def test_alignment_of_every_corpus_line_matches_reference_fast(name, corpus, fixtures_dir, reference_fast):
    from rembert_tokenizers import RemBertTokenizerFast

    model = fixtures_dir / MODELS[name]
    reference, ours = reference_fast(model), RemBertTokenizerFast(model)
    lines = corpus(name)
    kwargs = {"return_offsets_mapping": True}
    expected, got = reference(lines, **kwargs), ours(lines, **kwargs)
    skipped, with_chars = _compare_batch(expected, got, [[len(line)] for line in lines])
    assert len(skipped) <= 8 and all(_ideographic_lead(lines[row]) for row in skipped), skipped
    assert with_chars == len(lines) - len(skipped)


@pytest.mark.parametrize("name", ["en", "ja"])
def test_alignment_of_pairs_matches_reference_fast(name, corpus, fixtures_dir, reference_fast):
    """Consecutive corpus lines as pairs, padded (right, then left: the sequence ranges move with the padding)."""
    from rembert_tokenizers import RemBertTokenizerFast

    model = fixtures_dir / MODELS[name]
    reference, ours = reference_fast(model), RemBertTokenizerFast(model)
    lines = [line for line in corpus(name) if line.strip()][:401]
    first, second = lines[:-1], lines[1:]
    for start in range(0, len(first), 200):
        kwargs = {"return_offsets_mapping": True, "padding": True, "padding_side": ("right", "left")[start // 200 % 2]}
        a, b = first[start : start + 200], second[start : start + 200]
        expected, got = reference(a, b, **kwargs), ours(a, b, **kwargs)
        skipped, with_chars = _compare_batch(expected, got, [[len(x), len(y)] for x, y in zip(a, b, strict=True)])
        assert all(_ideographic_lead(a[row], b[row]) for row in skipped), skipped
        assert with_chars == len(a) - len(skipped)


@pytest.mark.parametrize("name", ["en", "ja"])
def test_alignment_of_split_words_matches_reference_fast(name, corpus, fixtures_dir, reference_fast):
    """Pre-split words (is_split_into_words=True): word indexes are the given words; offsets are per word."""
    from rembert_tokenizers import RemBertTokenizerFast

    model = fixtures_dir / MODELS[name]
    reference, ours = reference_fast(model), RemBertTokenizerFast(model)
    batch = [line.split() for line in corpus(name) if line.split()][:1500]
    kwargs = {"is_split_into_words": True, "return_offsets_mapping": True}
    expected, got = reference(batch, **kwargs), ours(batch, **kwargs)
    skipped, _ = _compare_batch(expected, got, [[max(map(len, words)) + 1] for words in batch])
    assert len(skipped) <= 0.1 * len(batch)
    pairs = [(words[: len(words) // 2 + 1], words[len(words) // 2 :]) for words in batch[:400]]
    expected = reference([a for a, _ in pairs], [b for _, b in pairs], **kwargs)
    got = ours([a for a, _ in pairs], [b for _, b in pairs], **kwargs)
    lengths = [[max(map(len, a)) + 1, max(map(len, b)) + 1] for a, b in pairs]
    skipped, _ = _compare_batch(expected, got, lengths)
    assert len(skipped) <= 0.1 * len(pairs)


def test_single_text_index_forms_match_reference_fast(corpus, fixtures_dir, reference_fast):
    """One text (or pair): one index is the position in the only row, as in the reference."""
    from rembert_tokenizers import RemBertTokenizerFast

    model = fixtures_dir / MODELS["en"]
    reference, ours = reference_fast(model), RemBertTokenizerFast(model)
    lines = [line for line in corpus("en") if line.strip()][::40]
    for text, pair in zip(lines, [None, *lines[:-1]], strict=True):
        expected = reference(text, pair, return_offsets_mapping=True)
        got = ours(text, pair)  # offsets not asked for: computed on first use
        lengths = [len(text)] if pair is None else [len(text), len(pair)]
        _compare_row(expected, got, 0, lengths, chars=True, batch_form=False)
        assert got.n_sequences == expected.n_sequences
        assert got.encodings[0].offsets == [tuple(x) for x in expected["offset_mapping"]]


def test_encodings_api(en_model, reference_fast):
    from rembert_tokenizers import RemBertTokenizerFast
    from rembert_tokenizers.alignment import CharSpan, TokenSpan

    reference, ours = reference_fast(en_model), RemBertTokenizerFast(en_model)
    texts, pairs = ["Hello world", "Hi there friend"], ["a pair", "b"]
    expected, got = reference(texts, pairs, padding=True), ours(texts, pairs, padding=True)
    assert got.is_fast and expected.is_fast
    assert got.n_sequences == expected.n_sequences == 2
    assert ours("Hello").n_sequences == reference("Hello").n_sequences == 1
    assert len(got.encodings) == len(expected.encodings) == 2
    for mine, theirs in zip(got.encodings, expected.encodings, strict=True):
        for attribute in ("ids", "type_ids", "tokens", "word_ids", "sequence_ids", "attention_mask", "n_sequences"):
            assert getattr(mine, attribute) == getattr(theirs, attribute), attribute
        assert mine.special_tokens_mask == theirs.special_tokens_mask
        assert len(mine) == len(theirs)
    assert got[1].tokens == expected[1].tokens  # an int index is the row's Encoding
    assert got[:1] == {k: v[:1] for k, v in got.items()}
    assert isinstance(got.token_to_chars(0, 1), CharSpan) and got.token_to_chars(0, 1) == (0, 2)
    assert isinstance(got.word_to_tokens(1, 0, 1), TokenSpan)
    assert got.token_to_word(-2) == got.token_to_word(len(got["input_ids"][0]) - 2)  # negative: from the end
    restored = pickle.loads(pickle.dumps(got))
    assert restored.word_ids(1) == got.word_ids(1) and restored.char_to_token(1, 3) == got.char_to_token(1, 3)
    with pytest.warns(FutureWarning, match="word_ids"):
        assert got.words(1) == got.word_ids(1)
    with pytest.raises(InputError, match="batch_index"):
        got.word_ids(5)
    with pytest.raises(TypeError):
        got.word_to_chars(0, 40)  # no such word: the reference fails to build the span as well
    with pytest.raises(TypeError):
        expected.word_to_chars(0, 40)


def test_alignment_after_tensors_and_truncation_matches_reference_fast(corpus, en_model, reference_fast):
    from rembert_tokenizers import RemBertTokenizerFast

    reference, ours = reference_fast(en_model), RemBertTokenizerFast(en_model)
    lines = [line for line in corpus("en") if line.strip() and line == line.lstrip()][:120]
    # only_second: longest_first truncation of pairs differs between the reference's slow and fast tokenizers
    # (which sequence loses the odd token); without overflow ours follows the slow one, whose ids it gives.
    kwargs = {"padding": "max_length", "truncation": "only_second", "max_length": 40, "return_tensors": "np"}
    lines = [line for line in lines if len(ours.tokenize(line)) < 30]
    expected, got = reference(lines, lines[::-1], **kwargs), ours(lines, lines[::-1], **kwargs)
    for row in range(len(lines)):
        _compare_row(expected, got, row, [len(lines[row]), len(lines[::-1][row])], chars=True, batch_form=True)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("tokens", ()),
        ("word_ids", ()),
        ("sequence_ids", ()),
        ("words", ()),
        ("token_to_sequence", (1,)),
        ("token_to_word", (1,)),
        ("token_to_chars", (1,)),
        ("word_to_tokens", (0,)),
        ("word_to_chars", (0,)),
        ("char_to_token", (0,)),
        ("char_to_word", (0,)),
    ],
)
def test_slow_outputs_raise_the_reference_error(method, args, en_model, tokenizers_for, reference_slow):
    slow, _ = tokenizers_for(en_model)
    out = slow("Hello world")
    assert not out.is_fast and out.encodings is None and out.n_sequences is None
    with pytest.raises(ValueError, match="is not available when using") as reference_error:
        getattr(reference_slow(en_model)("Hello world"), method)(*args)
    with pytest.raises(InputError) as ours_error:
        getattr(out, method)(*args)
    message = str(reference_error.value).replace("XxxTokenizerFast", "RemBertTokenizerFast")
    assert str(ours_error.value).startswith(message)
