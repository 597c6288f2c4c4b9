"""text_target -> labels, pad() of labels and every numeric key, transformers' data collators on our tokenizers,
the too-long warning and the fast pad() hint (transformers 4.57 as the oracle).

The collator tests run with NumPy here and with torch (``return_tensors_torch`` in their names) in the session
that has torch.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.oracle

TEXTS = ["Hello world, this is a test", "Hi", "Another sentence with several more words in it"]
TARGETS = ["Bonjour le monde", "Salut tout le monde ici", "x"]


def _as_lists(batch: Any) -> dict[str, Any]:
    return {k: (np.asarray(v).tolist() if not isinstance(v, list) else v) for k, v in batch.items()}


@pytest.mark.parametrize("which", ["slow", "fast"])
def test_text_target_gives_labels_as_the_reference(which, en_model, tokenizers_for, reference_slow, reference_fast):
    ours = tokenizers_for(en_model)[which == "fast"]
    reference = (reference_slow if which == "slow" else reference_fast)(en_model)
    for kwargs in ({}, {"padding": True}, {"padding": "max_length", "max_length": 12, "truncation": True}):
        expected = reference(TEXTS, text_target=TARGETS, **kwargs)
        got = ours(TEXTS, text_target=TARGETS, **kwargs)
        assert dict(got) == dict(expected), kwargs
        assert dict(ours(TEXTS[0], text_target=TARGETS[0], **kwargs)) == dict(
            reference(TEXTS[0], text_target=TARGETS[0], **kwargs)
        )
        # targets alone: the targets' encoding; pairs of targets
        assert dict(ours(text_target=TARGETS, **kwargs)) == dict(reference(text_target=TARGETS, **kwargs))
        if "truncation" in kwargs:
            continue  # longest_first cuts pairs differently in the reference's slow and fast tokenizers (ours: slow)
        assert dict(ours(TEXTS, TARGETS, text_target=TARGETS, text_pair_target=TEXTS, **kwargs)) == dict(
            reference(TEXTS, TARGETS, text_target=TARGETS, text_pair_target=TEXTS, **kwargs)
        )
    expected = reference(TEXTS, text_target=TARGETS, padding=True, return_tensors="np")
    got = ours(TEXTS, text_target=TARGETS, padding=True, return_tensors="np")
    assert set(got) == set(expected)
    for key in expected:
        assert got[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(got[key], expected[key])


def test_pad_labels_and_other_keys(en_model, tokenizers_for):
    for tok in tokenizers_for(en_model):
        features = [
            {"input_ids": [1000, 5, 6, 1001], "labels": [-100, 1, 2, -100], "label": 1, "score": 0.5},
            {"input_ids": [1000, 7, 1001], "labels": [-100, 3, -100], "label": 0, "score": 1.5},
        ]
        out = tok.pad(features, return_tensors="np")
        assert out["input_ids"].tolist() == [[1000, 5, 6, 1001], [1000, 7, 1001, tok.pad_token_id]]
        assert out["labels"].tolist() == [[-100, 1, 2, -100], [-100, 3, -100, -100]]  # token labels: -100
        assert out["label"].tolist() == [1, 0] and out["label"].dtype == np.int64
        assert out["score"].dtype == np.float64 and out["score"].tolist() == [0.5, 1.5]
        ragged = tok.pad(
            [{"input_ids": [5, 6], "labels": [1]}, {"input_ids": [7], "labels": [2, 3, 4]}], return_tensors="np"
        )
        assert ragged["labels"] == [[1], [2, 3, 4]]  # not token labels, not rectangular: kept as they are
        assert ragged["input_ids"].shape == (2, 2)


def _token_classification_features(tok: Any) -> list[dict[str, Any]]:
    words = [text.split() for text in TEXTS]
    enc = tok(words, is_split_into_words=True)
    features = []
    for row, sentence in enumerate(words):
        labels = [-100 if w is None else w % 3 for w in enc.word_ids(row)]
        features.append(
            {"input_ids": enc["input_ids"][row], "attention_mask": enc["attention_mask"][row], "labels": labels}
        )
        assert len(sentence) > 0
    return features


def _run_collators(tensors: str, en_model: Any, tokenizers_for: Any, reference_fast: Any) -> None:
    transformers = pytest.importorskip("transformers")
    _, ours = tokenizers_for(en_model)
    reference = reference_fast(en_model)
    for kwargs in ({}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 24}):
        results = []
        for tok in (reference, ours):
            token_collator = transformers.DataCollatorForTokenClassification(tok, return_tensors=tensors, **kwargs)
            padding_collator = transformers.DataCollatorWithPadding(tok, return_tensors=tensors, **kwargs)
            features = _token_classification_features(ours)
            sequence_features = [
                {"input_ids": f["input_ids"], "token_type_ids": [0] * len(f["input_ids"]), "label": i % 2}
                for i, f in enumerate(features)
            ]
            results.append((token_collator(features), padding_collator(sequence_features)))
        (expected_tokens, expected_sequences), (got_tokens, got_sequences) = results
        for expected, got in ((expected_tokens, got_tokens), (expected_sequences, got_sequences)):
            assert set(got) == set(expected), kwargs
            for key in expected:
                assert type(got[key]) is type(expected[key]), key
                assert str(got[key].dtype) == str(expected[key].dtype), key
                assert np.asarray(got[key]).tolist() == np.asarray(expected[key]).tolist(), (key, kwargs)


def test_data_collators_numpy(en_model, tokenizers_for, reference_fast):
    _run_collators("np", en_model, tokenizers_for, reference_fast)


def test_data_collators_return_tensors_torch(en_model, tokenizers_for, reference_fast):
    pytest.importorskip("torch")
    _run_collators("pt", en_model, tokenizers_for, reference_fast)


def test_too_long_warning_once(en_model, caplog):
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    text = "one two three four five six seven eight nine ten"
    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        tok = cls(en_model, model_max_length=8)
        n = len(tok(text, verbose=False)["input_ids"])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rembert_tokenizers"):
            tok(text, truncation=True)  # truncated: no warning
            tok(text, verbose=False)
            assert not caplog.records
            tok(text)
            tok([text, text])
        records = [r for r in caplog.records if r.name.startswith("rembert_tokenizers")]
        assert [r.getMessage() for r in records] == [
            "Token indices sequence length is longer than the specified maximum sequence length for this model "
            f"({n} > 8). Running this sequence through the model will result in indexing errors"
        ]
        assert tok.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] is True


def test_fast_pad_hint_once_and_silenced_by_collators(en_model, caplog):
    transformers = pytest.importorskip("transformers")
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    features = [{"input_ids": [1000, 5, 1001]}, {"input_ids": [1000, 1001]}]
    fast, slow = RemBertTokenizerFast(en_model), RemBertTokenizer(en_model)
    with caplog.at_level(logging.WARNING, logger="rembert_tokenizers"):
        transformers.DataCollatorWithPadding(fast, return_tensors="np")(features)
        assert not caplog.records  # the collators silence it, as with transformers' tokenizers
        slow.pad(features)
        assert not caplog.records  # the slow tokenizer has no faster path
        fast.pad(features)
        fast.pad(features)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "You're using a RemBertTokenizerFast tokenizer. Please note that with a fast tokenizer, using the "
        "`__call__` method is faster than using a method to encode the text followed by a call to the `pad` "
        "method to get a padded encoding."
    ]
