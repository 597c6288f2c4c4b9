"""Both tokenizers on arbitrary Unicode, pathological lengths and hostile arguments, in a worker process."""

from __future__ import annotations

from typing import Any

import pytest
from _util import SP_MODEL, fuzz_settings
from _worker import Worker, check
from hypothesis import given
from hypothesis import strategies as st

CATEGORY = "fuzz: tokenizers"
KINDS = ["slow", "fast"]
VOCAB = 1000  # tests/fixtures/sentencepiece/test_model.model


def tokenize(worker: Worker, kind: str, text: Any, pair: Any = None, timeout: float = 60, **kwargs: Any) -> Any:
    reply = worker.call(
        "tokenize", timeout=timeout, kind=kind, model=str(SP_MODEL), text=text, pair=pair, kwargs=kwargs
    )
    check(reply, f"{kind} tokenizer on {str(text)[:200]!r} (pair {str(pair)[:100]!r}, {kwargs})")
    if reply["status"] == "ok":
        ids, decoded, size = reply["value"]
        flat = [i for row in ids for i in row] if ids and isinstance(ids[0], list) else ids
        assert all(isinstance(i, int) and 0 <= i < size for i in flat), ids
        assert isinstance(decoded, str)
    else:
        assert reply["type"] == "InputError", reply
    return reply


unicode_text = st.text(st.characters(codec=None), max_size=300)  # every code point, surrogates included


@pytest.mark.parametrize("kind", KINDS)
def test_arbitrary_unicode(kind: str, worker: Worker, cases: Any) -> None:
    @fuzz_settings(250)
    @given(text=unicode_text, pair=st.none() | unicode_text)
    def fuzz(text: str, pair: str | None) -> None:
        tokenize(worker, kind, text, pair)
        cases.add(kind=f"arbitrary Unicode ({kind})")

    fuzz()


@pytest.mark.parametrize("kind", KINDS)
def test_arbitrary_arguments(kind: str, worker: Worker, cases: Any) -> None:
    ints = st.none() | st.integers(-3, 40) | st.sampled_from([0, -(2**63), 2**63, 10**12])

    @fuzz_settings(250)
    @given(
        text=st.one_of(
            unicode_text, st.lists(unicode_text, max_size=4), st.lists(st.lists(unicode_text, max_size=3), max_size=3)
        ),
        pair=st.none() | unicode_text | st.lists(unicode_text, max_size=4),
        padding=st.sampled_from([False, True, "longest", "max_length", "do_not_pad", "bogus", 3]),
        truncation=st.sampled_from([None, False, True, "longest_first", "only_first", "only_second", "bogus"]),
        max_length=ints,
        stride=ints,
        pad_to_multiple_of=ints,
        is_split_into_words=st.booleans(),
        return_overflowing_tokens=st.booleans(),
    )
    def fuzz(text: Any, pair: Any, **kwargs: Any) -> None:
        tokenize(worker, kind, text, pair, **kwargs)
        cases.add(kind=f"arbitrary arguments ({kind})")

    fuzz()


LONG = {
    "1 MB of 'a'": "a" * 2**20,
    "1 MB of spaces": " " * 2**20,
    "1 MB of newlines": "\n" * 2**20,
    "1 MB of 'あ'": "あ" * 2**20,
    "1 MB of an emoji": "😀" * 2**20,
    "1 MB of a combining mark": "\u0301" * 2**20,
    "1 MB of NUL": "\0" * 2**20,
    "1 MB of a private-use character": "\ue000" * 2**20,
    "1 MB of [CLS]": "[CLS]" * (2**20 // 5),
    "1 MB of alternating words": "ab " * (2**20 // 3),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("what", sorted(LONG))
def test_pathological_lengths(kind: str, what: str, worker: Worker, cases: Any) -> None:
    reply = tokenize(worker, kind, LONG[what], timeout=120)
    assert reply["status"] == "ok", reply
    reply = tokenize(worker, kind, LONG[what], timeout=120, truncation=True, max_length=16)
    assert reply["status"] == "ok" and len(reply["value"][0]) <= 16, reply
    cases.add(2, kind="1 MB inputs")


@pytest.mark.parametrize("kind", KINDS)
def test_decode_arbitrary_ids(kind: str, worker: Worker, cases: Any) -> None:
    @fuzz_settings(150)
    @given(ids=st.lists(st.integers(-(2**64), 2**64) | st.integers(-2, VOCAB + 2), max_size=20))
    def fuzz(ids: list[int]) -> None:
        reply = worker.call("decode", timeout=30, kind=kind, model=str(SP_MODEL), ids=ids)
        check(reply, f"{kind} decode of {ids}")
        if reply["status"] == "library_error":
            assert reply["type"] == "InputError", reply
            assert any(not 0 <= i < VOCAB + 2 for i in ids), reply  # + [CLS], [SEP]... added tokens
        cases.add(kind=f"decode ({kind})")

    fuzz()
