"""Generated Unicode text: nothing crashes either tokenizer, and slow == fast (ids, masks, decode, offsets)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Characters that stress the conversion: spaces of every kind, combining marks, halfwidth kana with sound
# marks, Hangul jamo, ZWJ/variation selectors, the SentencePiece meta symbol, brackets of special tokens.
_TRICKY = " \u3000\t\n\r\u00a0\u2581\u200d\ufe0f\u0301\u0308\uff9e\uff9f\uff76\uff8a\u1100\u1161\u11a8[]<>"
_FRAGMENTS = ["[MASK]", "[CLS]", "[SEP]", "ｶﾞ", "e\u0301", "  ", "\u3000\u3000", "吾輩", " the ", "▁▁"]


def _text_of(characters: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(
        st.one_of(characters, st.sampled_from(list(_TRICKY)), st.sampled_from(_FRAGMENTS)), max_size=30
    ).map("".join)


_any_text = _text_of(st.characters())  # any code point, unpaired surrogates included
_text = _text_of(st.characters(codec="utf-8"))  # valid Unicode text

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("model_name", ["test_model.model", "test_ja_model.model"])
@_SETTINGS
@given(texts=st.lists(_any_text, min_size=1, max_size=4))
def test_generated_text_slow_equals_fast(model_name, texts, fixtures_dir, tokenizers_for):
    from rembert_core import InputError

    slow, fast = tokenizers_for(fixtures_dir / model_name)
    if any(0xD800 <= ord(c) <= 0xDFFF for t in texts for c in t):
        # Not Unicode text: both refuse it with an InputError (never a crash from the encoders).
        for tok in (slow, fast):
            with pytest.raises(InputError, match="surrogate"):
                tok(texts)
        return
    a = slow(texts, return_special_tokens_mask=True)
    b = fast(texts, return_special_tokens_mask=True, return_offsets_mapping=True)
    for key in a:
        assert a[key] == b[key], (key, texts)
    assert slow.batch_decode(a["input_ids"]) == fast.batch_decode(a["input_ids"])
    for text, offsets in zip(texts, b["offset_mapping"], strict=True):
        assert all(0 <= s <= e <= len(text) for s, e in offsets)
    for row in range(len(texts)):
        words = b.word_ids(row)
        assert len(words) == len(b["input_ids"][row])


@pytest.mark.parametrize("options", [{"remove_space": False}, {"keep_accents": False, "do_lower_case": True}])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_text, pair=_text)
def test_generated_pairs_with_options(options, text, pair, en_model, tokenizers_for):
    slow, fast = tokenizers_for(en_model, **options)
    kwargs = {"padding": "max_length", "max_length": 16, "truncation": "longest_first"}
    assert dict(slow(text, pair, **kwargs)) == dict(fast(text, pair, **kwargs))
    assert slow.tokenize(text) == fast.tokenize(text)


@pytest.mark.oracle
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_text)
def test_generated_text_matches_reference(text, ja_model, tokenizers_for, reference_slow):
    reference = reference_slow(ja_model)
    expected = reference(text)["input_ids"]
    for tok in tokenizers_for(ja_model):
        assert tok(text)["input_ids"] == expected
        assert tok.decode(expected) == reference.decode(expected)


@pytest.mark.parametrize("remove_space", [True, False])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=" \u2581ab\u3000\t", max_size=12))
def test_python_whitespace_rules_equal_tokenizers_normalizers(remove_space, text, en_model):
    from tokenizers import normalizers

    from rembert_tokenizers.convert import whitespace_function, whitespace_normalizers
    from rembert_tokenizers.spmodel import load_model_file

    model = load_model_file(en_model)
    sequence = normalizers.Sequence(whitespace_normalizers(model, remove_space=remove_space))
    assert whitespace_function(model, remove_space=remove_space)(text) == sequence.normalize_str(text)
