"""The reference API on both tokenizers: shapes, tensors, alignment, special tokens, pickling, threads."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

from rembert_core import InputError


@pytest.fixture(params=["slow", "fast"])
def tok(request, en_model, tokenizers_for):
    slow, fast = tokenizers_for(en_model)
    return slow if request.param == "slow" else fast


@pytest.fixture
def fresh(en_model):
    """A new (mutable) pair of tokenizers."""
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    return RemBertTokenizer(en_model), RemBertTokenizerFast(en_model)


def test_single_and_batch_shapes(tok):
    single = tok("Hello world")
    assert single["input_ids"][0] == tok.cls_token_id
    assert single["input_ids"][-1] == tok.sep_token_id
    assert single["token_type_ids"] == [0] * len(single["input_ids"])
    assert single["attention_mask"] == [1] * len(single["input_ids"])
    batch = tok(["Hello world", "Hi"])
    assert batch["input_ids"][0] == single["input_ids"]
    assert single.input_ids == single["input_ids"]
    assert tok.encode("Hello world") == single["input_ids"]
    assert tok.encode("Hello world", add_special_tokens=False) == single["input_ids"][1:-1]
    assert tok(["Hello world"], add_special_tokens=False)["input_ids"][0] == single["input_ids"][1:-1]


def test_pairs_token_types(tok):
    out = tok("first part", "second")
    first = tok.encode("first part", add_special_tokens=False)
    second = tok.encode("second", add_special_tokens=False)
    assert out["input_ids"] == [tok.cls_token_id, *first, tok.sep_token_id, *second, tok.sep_token_id]
    assert out["token_type_ids"] == [0] * (len(first) + 2) + [1] * (len(second) + 1)
    assert tok.batch_encode_plus([("first part", "second")])["input_ids"][0] == out["input_ids"]


def test_padding_variants(tok):
    texts = ["a b c d e f g", "a"]
    longest = tok(texts, padding=True)
    assert len({len(r) for r in longest["input_ids"]}) == 1
    assert longest["attention_mask"][1].count(0) == len(longest["input_ids"][0]) - len(tok.encode("a"))
    multiple = tok(texts, padding=True, pad_to_multiple_of=8)
    assert all(len(r) % 8 == 0 for r in multiple["input_ids"])
    fixed = tok(texts, padding="max_length", max_length=20)
    assert all(len(r) == 20 for r in fixed["input_ids"])
    left = tok(texts, padding=True, padding_side="left")
    assert left["input_ids"][1][0] == tok.pad_token_id
    assert left["attention_mask"][1][-1] == 1
    right = tok(texts, padding=True, return_special_tokens_mask=True)
    assert right["special_tokens_mask"][1][-1] == 1


def test_return_tensors_numpy(tok):
    out = tok(["Hello world", "Hi"], padding=True, return_tensors="np")
    assert isinstance(out["input_ids"], np.ndarray)
    assert out["input_ids"].dtype == np.int64
    assert out["input_ids"].shape == out["attention_mask"].shape == out["token_type_ids"].shape
    single = tok("Hello world", return_tensors="np")
    assert single["input_ids"].shape == (1, len(tok.encode("Hello world")))
    encoded = tok.encode("Hello", return_tensors="np")
    assert encoded.shape == (1, len(tok.encode("Hello")))


def test_return_tensors_torch(tok):
    torch = pytest.importorskip("torch")
    out = tok(["Hello world", "Hi"], padding=True, return_tensors="pt")
    assert isinstance(out["input_ids"], torch.Tensor)
    assert out["input_ids"].dtype == torch.int64
    assert tok.decode(out["input_ids"][0], skip_special_tokens=True) == "Hello world"
    assert out.to("cpu")["input_ids"].device.type == "cpu"


def test_return_tensors_tensorflow(tok):
    tf = pytest.importorskip("tensorflow")
    out = tok(["Hello world", "Hi"], padding=True, return_tensors="tf")
    assert isinstance(out["input_ids"], tf.Tensor)
    assert out["input_ids"].dtype == tf.int32  # as the reference (tf.constant of Python ints)
    assert tuple(out["input_ids"].shape) == (2, len(out["attention_mask"][0]))
    assert tok.batch_decode(out["input_ids"], skip_special_tokens=True) == ["Hello world", "Hi"]


def test_unpadded_ragged_tensors_error(tok):
    with pytest.raises(InputError, match="padding"):
        tok(["Hello world", "Hi"], return_tensors="np")


def test_truncation_and_overflow(tok):
    text = "the quick brown fox jumps over the lazy dog " * 3
    ids = tok.encode(text, add_special_tokens=False)
    out = tok(text, truncation=True, max_length=10, stride=2, return_overflowing_tokens=True)
    if tok.is_fast:  # one row per window of 8 tokens overlapping by 2, as the reference fast tokenizer
        starts = range(0, len(ids), 6)
        assert out["input_ids"][0] == [tok.cls_token_id, *ids[:8], tok.sep_token_id]
        assert out["input_ids"][1] == [tok.cls_token_id, *ids[6:14], tok.sep_token_id]
        assert [row[1:-1] for row in out["input_ids"]] == [ids[s : s + 8] for s in starts][: len(out["input_ids"])]
        assert out["overflow_to_sample_mapping"] == [0] * len(out["input_ids"])
    else:
        assert out["input_ids"] == [tok.cls_token_id, *ids[:8], tok.sep_token_id]
        assert out["overflowing_tokens"] == ids[6:]
        assert out["num_truncated_tokens"] == len(ids) + 2 - 10
    # max_length alone turns on longest_first truncation, as in the reference
    assert len(tok(text, max_length=7)["input_ids"]) == 7


def test_offsets_and_word_ids_fast(en_model, tokenizers_for):
    _, fast = tokenizers_for(en_model)
    text = "Hello  wonderful\u3000world [MASK] ｶﾞ!"
    out = fast(text, return_offsets_mapping=True)
    tokens = out.tokens()
    assert tokens[0] == "[CLS]"
    assert tokens[-1] == "[SEP]"
    for (start, end), token in zip(out["offset_mapping"], tokens, strict=True):
        if token in ("[CLS]", "[SEP]"):
            assert (start, end) == (0, 0)
            continue
        assert 0 <= start <= end <= len(text)
    spans = [text[s:e] for s, e in out["offset_mapping"][1:-1]]
    assert "Hello" in "".join(spans)
    assert "[MASK]" in spans
    assert any("ｶﾞ" in s for s in spans)
    words = out.word_ids()
    assert words[0] is None
    assert words[-1] is None
    assert words[1:-1] == sorted(words[1:-1])
    assert max(w for w in words if w is not None) == 4  # Hello, wonderful, world, [MASK], ｶﾞ!
    batch = fast(["a b", "c"], ["d", "e f"], padding=True)
    assert batch.word_ids(1)[-1] is None
    assert batch.sequence_ids(0) == [None, 0, 0, None, 1, None]
    split = fast(["Hello", "world"], is_split_into_words=True)
    assert split.word_ids() == [
        None,
        *[0] * (len(split["input_ids"]) - 2 - len(fast.tokenize("world"))),
        *[1] * len(fast.tokenize("world")),
        None,
    ]


def test_slow_has_no_offsets(en_model, tokenizers_for):
    slow, _ = tokenizers_for(en_model)
    with pytest.raises(InputError, match="RemBertTokenizerFast"):
        slow("Hello", return_offsets_mapping=True)
    with pytest.raises(InputError, match="RemBertTokenizerFast"):
        slow("Hello").word_ids()


def test_tokenize_and_conversion(tok):
    pieces = tok.tokenize("Hello [MASK] world")
    assert "[MASK]" in pieces
    ids = tok.convert_tokens_to_ids(pieces)
    assert tok.convert_ids_to_tokens(ids) == pieces
    assert tok.convert_tokens_to_string(tok.tokenize("Hello world")) == "Hello world"
    assert tok.tokenize("a", "b", add_special_tokens=True) == [
        "[CLS]",
        *tok.tokenize("a"),
        "[SEP]",
        *tok.tokenize("b"),
        "[SEP]",
    ]


def test_decode_options(tok):
    ids = tok.encode("Hello , world !")
    assert tok.decode(ids, skip_special_tokens=True) == "Hello , world !"
    assert tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True) == "Hello, world!"
    assert tok.decode(np.asarray(ids)).startswith("[CLS]")
    assert tok.batch_decode(np.asarray([ids, ids]), skip_special_tokens=True) == ["Hello , world !"] * 2


def test_mask_lstrip(tok):
    assert tok.tokenize("a [MASK]") == tok.tokenize("a[MASK]")
    assert tok.mask_token == "[MASK]"


def test_special_token_properties(tok):
    assert tok.cls_token == tok.bos_token == "[CLS]"
    assert tok.sep_token == tok.eos_token == "[SEP]"
    assert tok.pad_token == "[PAD]"
    assert tok.unk_token == "[UNK]"
    assert tok.num_special_tokens_to_add() == 2
    assert tok.num_special_tokens_to_add(pair=True) == 3
    assert tok.special_tokens_map["mask_token"] == "[MASK]"


def test_add_tokens_both(fresh):
    from rembert_tokenizers import AddedToken

    results = []
    for tok in fresh:
        assert tok.add_tokens(["<ent>", AddedToken("<rel>", lstrip=True)]) == 2
        assert tok.add_tokens("<ent>") == 0
        assert tok.add_special_tokens({"additional_special_tokens": ["<x>"]}) == 1
        assert "<x>" in tok.all_special_tokens
        out = tok(["an <ent> and <rel> <x>"], return_special_tokens_mask=True)
        results.append(dict(out))
        assert tok.decode(out["input_ids"][0], skip_special_tokens=True).count("<x>") == 0
    assert results[0] == results[1]


def test_is_split_into_words(tok):
    words = ["Hello", "wonderful", "world"]
    out = tok(words, is_split_into_words=True)
    expected = [tok.cls_token_id] + [i for w in words for i in tok.encode(w, add_special_tokens=False)]
    assert out["input_ids"] == [*expected, tok.sep_token_id]
    batch = tok([words, ["x"]], is_split_into_words=True, padding=True)
    assert batch["input_ids"][0] == out["input_ids"]


def test_pickle_roundtrip(tok):
    clone = pickle.loads(pickle.dumps(tok))
    texts = ["Hello world", "ｶﾞ [MASK]"]
    assert dict(clone(texts)) == dict(tok(texts))
    encoded = tok(texts, padding=True, return_tensors="np")
    restored = pickle.loads(pickle.dumps(encoded))
    np.testing.assert_array_equal(restored["input_ids"], encoded["input_ids"])


def test_thread_safety(tok, corpus):
    lines = corpus("en")[:400]
    expected = tok(lines)["input_ids"]
    errors: list[BaseException] = []
    results: list[list[list[int]]] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(tok(lines)["input_ids"])
        except BaseException as exc:  # pragma: no cover - only on failure
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 12
    assert all(r == expected for r in results)


def test_save_and_reload_both(fresh, tmp_path):
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    slow, fast = fresh
    slow.add_tokens(["<ent>"])
    fast.add_tokens(["<ent>"])
    texts = ["Hello <ent> world [MASK]", "ｶﾞ"]
    for tok, folder in ((slow, tmp_path / "slow"), (fast, tmp_path / "fast")):
        files = tok.save_pretrained(folder)
        assert all(
            (folder / name).exists()
            for name in ("tokenizer_config.json", "special_tokens_map.json", "sentencepiece.model")
        )
        assert files
        for cls in (RemBertTokenizer, RemBertTokenizerFast):
            loaded = cls.from_pretrained(folder)
            assert dict(loaded(texts)) == dict(tok(texts))
            assert len(loaded) == len(tok)
    assert (tmp_path / "fast" / "tokenizer.json").exists()
    only_json = RemBertTokenizerFast(tokenizer_file=tmp_path / "fast" / "tokenizer.json")
    assert only_json(texts)["input_ids"] == fast(texts)["input_ids"]
    assert only_json.decode(fast(texts)["input_ids"][0]) == fast.decode(fast(texts)["input_ids"][0])
    (tmp_path / "vocab").mkdir()
    assert slow.save_vocabulary(tmp_path / "vocab", filename_prefix="x")[0].endswith("x-sentencepiece.model")


def test_options_are_applied(en_model):
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        assert cls(en_model, do_lower_case=True).tokenize("HELLO") == cls(en_model).tokenize("hello")
        assert cls(en_model, keep_accents=False).tokenize("café") == cls(en_model).tokenize("cafe")
        spaced = cls(en_model, remove_space=False).tokenize("a  b")
        assert spaced.count("▁") + sum(p.startswith("▁") for p in spaced if p != "▁") >= 3
        assert cls(en_model).tokenize("a  b") == cls(en_model).tokenize("a b")


def test_pad_examples(tok):
    examples = [
        {"input_ids": [1000, 5, 6, 1001], "token_type_ids": [0, 0, 0, 0]},
        {"input_ids": [1000, 1001], "token_type_ids": [0, 0]},
    ]
    out = tok.pad(examples, pad_to_multiple_of=8, padding_side="left", return_tensors="np")
    assert out["input_ids"].shape == (2, 8)
    assert out["input_ids"][1].tolist() == [tok.pad_token_id] * 6 + [1000, 1001]
    assert out["attention_mask"][1].tolist() == [0] * 6 + [1, 1]
    single = tok.pad({"input_ids": [1000, 1001]}, padding="max_length", max_length=4)
    assert single["input_ids"] == [1000, 1001, tok.pad_token_id, tok.pad_token_id]
    with pytest.raises(InputError, match="keys"):
        tok.pad([{"input_ids": [1]}, {"input_ids": [2], "attention_mask": [1]}])


def test_encode_plus_with_given_ids(tok):
    assert tok.encode_plus([151, 88, 21], [887])["input_ids"] == [1000, 151, 88, 21, 1001, 887, 1001]
    assert tok.encode(["▁He", "ll", "o"]) == [1000, 151, 88, 21, 1001]
    out = tok.prepare_for_model([151, 88, 21, 5, 6], [887], truncation=True, max_length=6)
    assert out["input_ids"] == [1000, 151, 88, 1001, 887, 1001]
    assert out["token_type_ids"] == [0, 0, 0, 0, 1, 1]
    with pytest.raises(InputError, match="ids"):
        tok.prepare_for_model(["x"])


def test_token_trie_semantics():
    from rembert_tokenizers._trie import TokenTrie

    assert TokenTrie(["[CLS]", "[SEP]"]).split("[CLS] hello [SEP]") == ["[CLS]", " hello ", "[SEP]"]
    assert TokenTrie(["ab", "abc"]).split("xabcd") == ["x", "abc", "d"]  # longest match
    # The reference's scan does not restart inside an abandoned longer match ("aba" hides the second "b").
    assert TokenTrie(["abbc", "b", "aba"]).split("babca") == ["b", "abca"]
    assert TokenTrie([]).split("text") == ["text"]
    assert TokenTrie(["x"]).split("") == []
