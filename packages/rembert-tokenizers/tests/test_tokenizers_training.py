"""train_new_from_iterator: a new Unigram vocabulary learnt with tokenizers, RemBERT's normaliser, special tokens and
post-processing kept; saved, then loaded by both classes (same ids) and by transformers 4.57."""

from __future__ import annotations

import pytest

from rembert_core import InputError


@pytest.fixture(scope="module")
def trained(en_model, corpus):
    from rembert_tokenizers import RemBertTokenizerFast

    original = RemBertTokenizerFast(en_model)
    lines = corpus("en")
    batches = (lines[i : i + 500] for i in range(0, len(lines), 500))  # batches of texts, as the reference takes
    return original, original.train_new_from_iterator(batches, vocab_size=600), lines


def test_new_vocabulary_keeps_the_tokenizer(trained):
    original, new, lines = trained
    assert new.vocab_size == 600 and len(new) == 605
    assert new.special_tokens_map == original.special_tokens_map
    assert new.convert_ids_to_tokens([0, 1, 2]) == original.convert_ids_to_tokens([0, 1, 2])  # <unk> <s> </s>
    out = new("Hello world", "second")
    assert out["input_ids"][0] == new.cls_token_id and out["input_ids"].count(new.sep_token_id) == 2
    assert out.sequence_ids() == [
        None,
        *[0] * (len(new.tokenize("Hello world"))),
        None,
        *[1] * len(new.tokenize("second")),
        None,
    ]
    text = lines[40]
    assert new.decode(new(text)["input_ids"], skip_special_tokens=True) == " ".join(text.split())
    assert new.vocab_size != original.vocab_size and new.tokenize(text) != original.tokenize(text)


def test_saved_and_loaded_by_both_classes(trained, tmp_path):
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    _, new, lines = trained
    new.save_pretrained(tmp_path)
    assert {"sentencepiece.model", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    expected = new(lines)["input_ids"]
    assert RemBertTokenizerFast.from_pretrained(tmp_path)(lines)["input_ids"] == expected
    assert RemBertTokenizer.from_pretrained(tmp_path)(lines)["input_ids"] == expected  # sentencepiece, same ids


def test_loaded_by_transformers(trained, tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    _, new, lines = trained
    new.save_pretrained(tmp_path)
    sample = [line for line in lines[:400] if line.strip()]
    slow = transformers.RemBertTokenizer.from_pretrained(str(tmp_path))
    assert slow(sample)["input_ids"] == new(sample)["input_ids"]
    fast = transformers.RemBertTokenizerFast.from_pretrained(str(tmp_path))
    agree = sum(a == b for a, b in zip(fast(sample)["input_ids"], new(sample)["input_ids"], strict=True))
    assert agree >= 0.95 * len(sample)  # (as for the original model: whitespace runs differ in its fast class)


def test_new_and_renamed_special_tokens(en_model, corpus):
    from rembert_tokenizers import RemBertTokenizerFast

    lines = corpus("en")[:1500]
    new = RemBertTokenizerFast(en_model).train_new_from_iterator(
        iter(lines), vocab_size=400, new_special_tokens=["<ent>"], special_tokens_map={"[CLS]": "<cls>"}
    )
    assert new.cls_token == "<cls>" and new.bos_token == "<cls>" and new.additional_special_tokens == ["<ent>"]
    assert new("a <ent> b")["input_ids"][0] == new.cls_token_id
    assert new.convert_tokens_to_ids("<ent>") in new("a <ent> b")["input_ids"]
    with pytest.raises(InputError, match="vocab_size"):
        RemBertTokenizerFast(en_model).train_new_from_iterator(lines, vocab_size=2)
