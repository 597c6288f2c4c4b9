"""Bad input gives a clear rembert error naming the problem, from both tokenizers."""

from __future__ import annotations

import pytest

from rembert_core import CheckpointError, InputError


@pytest.fixture(params=["slow", "fast"])
def tok(request, en_model, tokenizers_for):
    slow, fast = tokenizers_for(en_model)
    return slow if request.param == "slow" else fast


@pytest.fixture(params=["RemBertTokenizer", "RemBertTokenizerFast"])
def cls(request):
    import rembert_tokenizers

    return getattr(rembert_tokenizers, request.param)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "got None"),
        (b"bytes", "bytes"),
        (42, "int"),
        (3.5, "float"),
        ({"a": 1}, "dict"),
        ([["nested"]], "text: expected a str, got list"),
        ([[["too", "deep"]]], "text: expected a str, got list"),
        (["ok", None], "got NoneType"),
        (["ok", b"x"], "got bytes"),
    ],
)
def test_bad_text(tok, text, match):
    with pytest.raises(InputError, match=match):
        tok(text)


def test_bad_words_and_pairs(tok):
    with pytest.raises(InputError, match="list of words"):
        tok("not words", is_split_into_words=True)
    with pytest.raises(InputError, match="is_split_into_words"):
        tok([["a", 1]], is_split_into_words=True)
    with pytest.raises(InputError, match="text_pair"):
        tok(["a", "b"], ["only one"])
    with pytest.raises(InputError, match="text_pair"):
        tok("a", 5)
    with pytest.raises(InputError, match="text"):
        tok.tokenize(None)


def test_max_length_too_small_for_special_tokens(tok):
    with pytest.raises(InputError, match="special tokens"):
        tok("Hello world", truncation=True, max_length=1)
    with pytest.raises(InputError, match="special tokens"):
        tok("Hello", "world", truncation="only_second", max_length=2)
    with pytest.raises(InputError, match="max_length"):
        tok("Hello", max_length=-3)
    with pytest.raises(InputError, match="max_length"):
        tok("Hello", max_length="10")


def test_impossible_truncation(tok):
    with pytest.raises(InputError, match="first sequence"):
        tok("a", "a much longer second sequence of words", truncation="only_first", max_length=6)
    with pytest.raises(InputError, match="second sequence"):
        tok("a much longer first sequence of words", "b", truncation="only_second", max_length=6)
    if not tok.is_fast:  # the fast tokenizer returns windows of both sequences, as the reference fast one
        with pytest.raises(InputError, match="longest_first"):
            tok("a", "b", truncation="longest_first", max_length=8, return_overflowing_tokens=True)


@pytest.mark.parametrize("value", ["jax", "numpy", "PT", 3])
def test_unknown_return_tensors(tok, value):
    with pytest.raises(InputError, match="return_tensors"):
        tok("Hello", return_tensors=value)


def test_bad_strategies(tok):
    with pytest.raises(InputError, match="padding"):
        tok("Hello", padding="sideways")
    with pytest.raises(InputError, match="truncation"):
        tok("Hello", truncation="middle")
    with pytest.raises(InputError, match="max_length"):
        tok("Hello", padding="max_length")
    with pytest.raises(InputError, match="padding_side"):
        tok("Hello", padding=True, padding_side="top")
    with pytest.raises(InputError, match="pad_to_multiple_of"):
        tok("Hello", padding=True, pad_to_multiple_of=0)
    with pytest.raises(InputError, match="stride"):
        tok("Hello", stride=-1)
    with pytest.raises(InputError, match="multiple"):
        tok("Hello", padding=True, truncation=True, max_length=10, pad_to_multiple_of=8)
    with pytest.raises(InputError, match="unexpected keyword"):
        tok("Hello", not_an_option=True)


def test_bad_ids(tok):
    with pytest.raises(InputError, match="out of range"):
        tok.decode([1, 2, 10**6])
    with pytest.raises(InputError, match="int ids"):
        tok.decode(["a"])
    with pytest.raises(InputError, match="token_ids"):
        tok.decode("text")
    with pytest.raises(InputError, match="out of range"):
        tok.convert_ids_to_tokens(-5)
    with pytest.raises(InputError, match="tokens"):
        tok.convert_tokens_to_ids([1])


def test_missing_and_corrupt_model_files(cls, tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        cls(tmp_path / "missing.model")
    corrupt = tmp_path / "corrupt.model"
    corrupt.write_bytes(b"\x00\xffnot a protobuf at all\x12\x99")
    with pytest.raises(CheckpointError, match="not a SentencePiece model"):
        cls(corrupt)
    empty = tmp_path / "empty.model"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a SentencePiece model"):
        cls(empty)
    with pytest.raises(CheckpointError, match="directory"):
        cls(tmp_path)
    with pytest.raises(InputError, match="path"):
        cls(1234)
    with pytest.raises(CheckpointError):
        cls.from_pretrained(tmp_path / "nowhere")


def test_fast_needs_a_file_and_reads_only_valid_json(tmp_path):
    from rembert_tokenizers import RemBertTokenizerFast

    with pytest.raises(InputError, match="vocab_file"):
        RemBertTokenizerFast()
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        RemBertTokenizerFast(tokenizer_file=bad)
    bad.write_text('{"model": {"type": "BPE", "vocab": {}}}')
    with pytest.raises(CheckpointError, match="Unigram"):
        RemBertTokenizerFast(tokenizer_file=bad)
    with pytest.raises(CheckpointError, match="neither"):
        RemBertTokenizerFast.from_pretrained(tmp_path / "empty_dir_missing")


def test_bad_options(cls, en_model):
    with pytest.raises(InputError, match="do_lower_case"):
        cls(en_model, do_lower_case="yes")
    with pytest.raises(InputError, match="model_max_length"):
        cls(en_model, model_max_length=0)
    with pytest.raises(InputError, match="mask_token"):
        cls(en_model, mask_token=7)


def test_bad_add_tokens(tok):
    with pytest.raises(InputError, match="new_tokens"):
        tok.add_tokens([3])
    with pytest.raises(InputError, match="unknown key"):
        tok.add_special_tokens({"not_a_token": "<x>"})


def test_unpaired_surrogates(tok):
    with pytest.raises(InputError, match="surrogate"):
        tok(["fine", "bad \ud800 text"])
    with pytest.raises(InputError, match="surrogate"):
        tok.tokenize("\udfff")
    with pytest.raises(InputError, match="surrogate"):
        tok("x [MASK] \ud83d")


def test_bad_side_attributes(en_model):
    from rembert_tokenizers import RemBertTokenizerFast

    tok = RemBertTokenizerFast(en_model)
    tok.truncation_side = "middle"
    with pytest.raises(InputError, match="truncation_side"):
        tok("a b c d e f", truncation=True, max_length=4)
    tok.truncation_side = "right"
    tok.padding_side = "up"
    with pytest.raises(InputError, match="padding_side"):
        tok(["a", "b c"], padding=True)
    with pytest.raises(InputError, match="padding_side"):
        RemBertTokenizerFast(en_model, padding_side="center")


# -- found by the robustness suite (tests/robustness/test_fuzz_tokenizers.py) ------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding": "max_length", "max_length": 2**63},
        {"padding": "max_length", "max_length": 10**12},
        {"padding": True, "pad_to_multiple_of": 2**40},
    ],
)
def test_padding_to_an_absurd_length_is_an_input_error(tok, kwargs):
    """padding="max_length" with max_length=2**63 used to build the padded rows until MemoryError."""
    with pytest.raises(InputError, match="padding to .* tokens per row is refused"):
        tok("hello", **kwargs)
    with pytest.raises(InputError, match="padding to .* tokens per row is refused"):
        tok.pad({"input_ids": [[5, 6]]}, **kwargs)
    assert len(tok("hello", padding="max_length", max_length=64)["input_ids"]) == 64
