"""return_overflowing_tokens on the fast tokenizer == transformers 4.57's fast tokenizer, window for window.

One row per window of ``max_length`` tokens overlapping by ``stride``, ``overflow_to_sample_mapping``, offsets
and sequence_ids per row, for single texts and pairs under only_first, only_second and longest_first, both
truncation sides, with the reference's errors. (The slow tokenizer keeps the slow layout:
test_tokenizers_oracle.py.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rembert_core import InputError

pytestmark = pytest.mark.oracle

MODELS = {"en": "test_model.model", "ja": "test_ja_model.model"}


def _rows(value: Any) -> list[Any]:
    return [[tuple(x) if isinstance(x, (list, tuple)) else x for x in row] for row in value]


def _assert_same_windows(expected: Any, got: Any, label: Any) -> None:
    assert set(got) == set(expected), (label, set(got) ^ set(expected))
    for key in expected:
        if key in ("overflow_to_sample_mapping", "length"):
            assert list(got[key]) == list(expected[key]), label
        else:
            assert _rows(got[key]) == _rows(expected[key]), (label, key)
    for row in range(len(expected["input_ids"])):
        assert got.sequence_ids(row) == expected.sequence_ids(row), (label, row)
        assert got.word_ids(row) == expected.word_ids(row), (label, row)


def _outcome(tokenizer: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return tokenizer(*args, **kwargs)
    except BaseException as exc:  # the reference raises PanicException (a BaseException) for some strides
        if isinstance(exc, KeyboardInterrupt):
            raise
        return exc


@pytest.mark.parametrize("name", ["en", "ja"])
@pytest.mark.parametrize(("max_length", "stride"), [(12, 0), (16, 3), (32, 8), (64, 20)])
def test_single_text_windows_match_reference_fast(name, max_length, stride, corpus, fixtures_dir, reference_fast):
    from rembert_tokenizers import RemBertTokenizerFast

    model = fixtures_dir / MODELS[name]
    reference, ours = reference_fast(model), RemBertTokenizerFast(model)
    lines = [line for line in corpus(name) if line.strip() and "\u3000\u3000" not in line][:250]
    for side in ("right", "left"):
        reference.truncation_side = ours.truncation_side = side
        try:
            kwargs = {
                "truncation": True,
                "max_length": max_length,
                "stride": stride,
                "return_overflowing_tokens": True,
                "return_offsets_mapping": True,
                "return_special_tokens_mask": True,
                "return_length": True,
            }
            _assert_same_windows(reference(lines, **kwargs), ours(lines, **kwargs), (side, max_length, stride))
            padded = {**kwargs, "padding": "max_length"}
            _assert_same_windows(reference(lines, **padded), ours(lines, **padded), (side, "padded"))
            for line in lines[:40]:  # one text: the rows of its windows, a batch of them
                _assert_same_windows(reference(line, **kwargs), ours(line, **kwargs), line)
        finally:
            reference.truncation_side = ours.truncation_side = "right"


@pytest.mark.parametrize("strategy", ["only_first", "only_second", "longest_first"])
@pytest.mark.parametrize(("max_length", "stride"), [(24, 2), (40, 6), (64, 16)])
def test_pair_windows_match_reference_fast(strategy, max_length, stride, corpus, fixtures_dir, reference_fast):
    """Question/context pairs: a short and a long corpus line, in both orders; each pair alone, errors included."""
    from rembert_tokenizers import RemBertTokenizerFast

    model = fixtures_dir / MODELS["en"]
    reference, ours = reference_fast(model), RemBertTokenizerFast(model)
    lines = [line for line in corpus("en") if line.strip()]
    short = [line for line in lines if len(line) < 30][:60]
    long = [line + " " + other for line, other in zip(lines[200:260], lines[300:360], strict=True)]
    kwargs = {
        "truncation": strategy,
        "max_length": max_length,
        "stride": stride,
        "return_overflowing_tokens": True,
        "return_offsets_mapping": True,
    }
    agreed = 0
    for side in ("right", "left"):
        reference.truncation_side = ours.truncation_side = side
        try:
            for first, second in ((short, long), (long, short), (long, long[::-1])):
                for a, b in zip(first, second, strict=True):
                    expected, got = _outcome(reference, a, b, **kwargs), _outcome(ours, a, b, **kwargs)
                    if isinstance(expected, BaseException):
                        assert isinstance(got, InputError), (a, b, got)
                        assert str(got).split(" (")[0].startswith(str(expected).split(" (")[0][:40]), (expected, got)
                        continue
                    assert not isinstance(got, BaseException), (a, b, got)
                    _assert_same_windows(expected, got, (a, b, side))
                    agreed += 1
        finally:
            reference.truncation_side = ours.truncation_side = "right"
    assert agreed >= 50, agreed  # many pairs fit and give windows (the others: the same error)


def test_batched_pair_windows_and_tensors_match_reference_fast(corpus, en_model, reference_fast):
    from rembert_tokenizers import RemBertTokenizerFast

    reference, ours = reference_fast(en_model), RemBertTokenizerFast(en_model)
    lines = [line for line in corpus("en") if len(line) > 60 and line == line.lstrip()][:80]
    questions = [line[:20].strip() for line in lines]  # (a trailing space: the reference fast keeps a "▁")
    kwargs = {
        "truncation": "only_second",
        "max_length": 48,
        "stride": 8,
        "return_overflowing_tokens": True,
        "return_offsets_mapping": True,
        "padding": "max_length",
    }
    expected, got = reference(questions, lines, **kwargs), ours(questions, lines, **kwargs)
    _assert_same_windows(expected, got, "batch")
    expected_np = reference(questions, lines, return_tensors="np", **kwargs)
    got_np = ours(questions, lines, return_tensors="np", **kwargs)
    for key in expected_np:
        assert got_np[key].dtype == expected_np[key].dtype, key
        np.testing.assert_array_equal(got_np[key], expected_np[key])


def test_windows_without_truncation_and_errors(en_model, reference_fast):
    from rembert_tokenizers import RemBertTokenizerFast

    reference, ours = reference_fast(en_model), RemBertTokenizerFast(en_model)
    texts = ["a b c d e f g h i j k l m n o p", "short"]
    expected = reference(texts, return_overflowing_tokens=True)  # nothing to cut: one row per text
    got = ours(texts, return_overflowing_tokens=True)
    _assert_same_windows(expected, got, "no truncation")
    with pytest.raises(ValueError, match="stride set to 5, which is greater than or equal to its effective max"):
        reference(texts, truncation=True, max_length=6, stride=5, return_overflowing_tokens=True)
    with pytest.raises(InputError, match="stride set to 5, which is greater than or equal to its effective max"):
        ours(texts, truncation=True, max_length=6, stride=5, return_overflowing_tokens=True)
    with pytest.raises(BaseException, match="must be strictly less than `max_len=4`"):  # a Rust panic
        reference(texts, truncation=True, max_length=6, stride=4, return_overflowing_tokens=True)
    with pytest.raises(InputError, match="must be strictly less than `max_len=4`"):
        ours(texts, truncation=True, max_length=6, stride=4, return_overflowing_tokens=True)
    with pytest.raises(Exception, match="Second sequence not provided"):
        reference(texts[0], truncation="only_second", max_length=6, return_overflowing_tokens=True)
    with pytest.raises(InputError, match="Second sequence not provided"):
        ours(texts[0], truncation="only_second", max_length=6, return_overflowing_tokens=True)
    # The slow tokenizer keeps the slow layout, as the reference's
    from rembert_tokenizers import RemBertTokenizer

    slow = RemBertTokenizer(en_model)(texts[0], truncation=True, max_length=8, stride=2, return_overflowing_tokens=True)
    assert "overflowing_tokens" in slow and "overflow_to_sample_mapping" not in slow


def test_windows_return_tensors_torch(corpus, en_model, reference_fast):
    torch = pytest.importorskip("torch")
    from rembert_tokenizers import RemBertTokenizerFast

    reference, ours = reference_fast(en_model), RemBertTokenizerFast(en_model)
    lines = [line for line in corpus("en") if len(line) > 60][:20]
    kwargs = {
        "truncation": "only_second",
        "max_length": 24,
        "stride": 4,
        "return_overflowing_tokens": True,
        "padding": True,
        "return_tensors": "pt",
    }
    expected, got = (
        reference(["a question"] * len(lines), lines, **kwargs),
        ours(["a question"] * len(lines), lines, **kwargs),
    )
    for key in expected:
        assert isinstance(got[key], torch.Tensor) and got[key].dtype == expected[key].dtype, key
        assert torch.equal(got[key], expected[key]), key
