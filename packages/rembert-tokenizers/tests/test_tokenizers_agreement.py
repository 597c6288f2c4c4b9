"""RemBertTokenizer (sentencepiece) == RemBertTokenizerFast (tokenizers) on whole corpora and adversarial text."""

from __future__ import annotations

import numpy as np
import pytest

OPTIONS = [
    {},
    {"remove_space": False},
    {"keep_accents": False},
    {"do_lower_case": True},
    {"do_lower_case": True, "keep_accents": False, "remove_space": False},
]


def _assert_same(slow_out, fast_out, texts):
    assert set(slow_out) == set(fast_out)
    for key in slow_out:
        for index, (a, b) in enumerate(zip(slow_out[key], fast_out[key], strict=True)):
            assert a == b, f"{key} differs on line {index}: {texts[index]!r}"


@pytest.mark.parametrize("name", ["en", "ja"])
def test_corpus_slow_equals_fast(name, corpus, fixtures_dir, tokenizers_for):
    from_conf = {"en": "test_model.model", "ja": "test_ja_model.model"}[name]
    slow, fast = tokenizers_for(fixtures_dir / from_conf)
    lines = corpus(name)
    slow_out = slow(lines, return_special_tokens_mask=True)
    fast_out = fast(lines, return_special_tokens_mask=True)
    _assert_same(slow_out, fast_out, lines)
    decoded_slow = slow.batch_decode(slow_out["input_ids"])
    decoded_fast = fast.batch_decode(slow_out["input_ids"])
    assert decoded_slow == decoded_fast
    assert slow.batch_decode(slow_out["input_ids"], skip_special_tokens=True) == fast.batch_decode(
        slow_out["input_ids"], skip_special_tokens=True
    )


@pytest.mark.parametrize("name", ["en", "ja"])
def test_corpus_pairs_slow_equals_fast(name, corpus, fixtures_dir, tokenizers_for):
    model = fixtures_dir / {"en": "test_model.model", "ja": "test_ja_model.model"}[name]
    slow, fast = tokenizers_for(model)
    lines = corpus(name)
    first, second = lines[:-1], lines[1:]
    for kwargs in (
        {"padding": True},
        {"padding": "max_length", "max_length": 24, "truncation": True},
        {"padding": "longest", "pad_to_multiple_of": 8, "padding_side": "left", "return_special_tokens_mask": True},
    ):
        for start in range(0, len(first), 128):
            a, b = first[start : start + 128], second[start : start + 128]
            _assert_same(slow(a, b, **kwargs), fast(a, b, **kwargs), a)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
@pytest.mark.parametrize("model_name", ["test_model.model", "test_ja_model.model"])
def test_adversarial_slow_equals_fast(options, model_name, fixtures_dir, tokenizers_for, adversarial):
    slow, fast = tokenizers_for(fixtures_dir / model_name, **options)
    for text in adversarial:
        assert slow.tokenize(text) == fast.tokenize(text), repr(text)
    slow_out = slow(adversarial, return_special_tokens_mask=True)
    fast_out = fast(adversarial, return_special_tokens_mask=True)
    _assert_same(slow_out, fast_out, adversarial)
    assert slow.batch_decode(slow_out["input_ids"]) == fast.batch_decode(slow_out["input_ids"])


@pytest.mark.parametrize("name", ["identity", "specials_control", "specials_user", "keep_spaces", "custom_rules"])
def test_derived_models_slow_equals_fast(name, derived_models, tokenizers_for, adversarial, corpus):
    slow, fast = tokenizers_for(derived_models[name])
    texts = adversarial + corpus("en")[:800]
    _assert_same(slow(texts), fast(texts), texts)


def test_special_tokens_already_in_vocab_keep_their_ids(derived_models, tokenizers_for):
    for name in ("specials_control", "specials_user"):
        slow, fast = tokenizers_for(derived_models[name])
        for tok in (slow, fast):
            assert tok.cls_token_id == 312
            assert tok.sep_token_id == 313
            assert tok.mask_token_id == 1002  # [CLS], [SEP] reuse pieces; [UNK], [PAD], [MASK] are appended
            assert tok.vocab_size == 1000
            assert len(tok) == 1003
            assert tok("a [CLS] b")["input_ids"][0] == 312


def test_identity_model_does_not_normalize(derived_models, tokenizers_for):
    slow, fast = tokenizers_for(derived_models["identity"])
    # With identity normalization the fullwidth letters stay unknown instead of becoming ASCII.
    assert slow.tokenize("ＡＢ") == fast.tokenize("ＡＢ")
    assert slow("ＡＢ")["input_ids"] == fast("ＡＢ")["input_ids"]
    assert "ＡＢ" in "".join(slow.tokenize("ＡＢ"))


def test_padded_numpy_equals_lists(fixtures_dir, tokenizers_for, corpus):
    slow, fast = tokenizers_for(fixtures_dir / "test_model.model")
    lines = corpus("en")[:300]
    for side in ("left", "right"):
        as_lists = slow(lines, padding=True, padding_side=side, return_special_tokens_mask=True)
        as_numpy = fast(lines, padding=True, padding_side=side, return_special_tokens_mask=True, return_tensors="np")
        for key, value in as_lists.items():
            np.testing.assert_array_equal(np.asarray(value), as_numpy[key])


def test_custom_charsmap_rules_apply(derived_models, tokenizers_for, en_model):
    from rembert_tokenizers.spmodel import charsmap_keeps_ascii, load_model_file

    slow, fast = tokenizers_for(derived_models["custom_rules"])
    text = "An ab\u3000AB cab"
    assert slow.tokenize(text) == fast.tokenize(text)
    assert slow(text)["input_ids"] == fast(text)["input_ids"]
    assert "A" not in "".join(slow.tokenize(text))  # A -> a applied
    model = load_model_file(derived_models["custom_rules"])
    assert not charsmap_keeps_ascii(model.charsmap_normalizer(), model.charsmap)
    nfkc = load_model_file(en_model)
    assert charsmap_keeps_ascii(nfkc.charsmap_normalizer(), nfkc.charsmap)


def test_fast_plain_call_defers_unknown_surfaces_until_asked(fixtures_dir, corpus, monkeypatch):
    """A plain call encodes each row once; the surfaces of unknown pieces (for tokens() and word_ids()) are
    computed when first asked for, and then equal what tokenize() gives."""
    from rembert_tokenizers import RemBertTokenizerFast

    tok = RemBertTokenizerFast(fixtures_dir / "test_ja_model.model")
    lines = corpus("ja")[:400]
    calls: list[str] = []
    surfaces = tok._surfaces
    monkeypatch.setattr(tok, "_surfaces", lambda text: calls.append(text) or surfaces(text))
    encoding = tok(lines)
    assert calls == []  # ids alone: no second encoding
    with_unknown = [i for i, ids in enumerate(encoding["input_ids"]) if tok._sp_unk_id in ids]
    assert len(with_unknown) >= 20  # the corpus has plenty of characters the model does not know
    for i, line in enumerate(lines):
        assert encoding.tokens(i) == [tok.cls_token, *tok.tokenize(line), tok.sep_token], line
    assert len(calls) == len(with_unknown)  # each such row encoded once more, when its tokens were asked for
    word_ids = encoding.word_ids(with_unknown[0])
    assert word_ids == tok(lines[with_unknown[0]]).word_ids()


def _texts_with_runs(lines, seed, n):
    """Corpus snippets around runs of one character, where segmentations tie ("0" "00" vs "00" "0")."""
    import random

    rng = random.Random(seed)
    runs = ["000", "0000", "……", "………", "ーーー", "!!!", "...", "――――", "ｗｗｗ", "ははは", "1111", "  "]
    runs.append("\u3000\u3000")
    texts = []
    for _ in range(n):
        parts = [rng.choice(lines)[: rng.randint(0, 120)] for _ in range(rng.randint(0, 3))]
        parts.insert(rng.randint(0, len(parts)), rng.choice(runs) * rng.randint(1, 3))
        texts.append(rng.choice(["", " ", "\x1f"]).join(parts))  # "\x1f": an unknown character before the run
    return texts


@pytest.mark.parametrize("options", OPTIONS[:2], ids=["defaults", "remove_space=False"])
@pytest.mark.parametrize("name", ["en", "ja"])
def test_tied_segmentations_are_sentencepiece_s(name, options, corpus, fixtures_dir, tokenizers_for):
    """Where two segmentations score the same, the fast tokenizer returns SentencePiece's (float32) choice.

    Before, tokenizers' float64 Viterbi picked the other one on 110 of 3,000 such English texts
    (``"………"`` -> ``"." "." "......" "."`` vs ``"." "." "." "......"``).
    """
    model = {"en": "test_model.model", "ja": "test_ja_model.model"}[name]
    slow, fast = tokenizers_for(fixtures_dir / model, **options)
    texts = [*_texts_with_runs(corpus(name), seed=7, n=600), "「何ですって」000000000", "0\x1f]000", "a ………"]
    expected = slow(texts)["input_ids"]
    assert fast(texts)["input_ids"] == expected
    with_offsets = fast(texts, return_offsets_mapping=True)
    assert with_offsets["input_ids"] == expected
    ties = fast._tie_rows([ids[1:-1] for ids in expected])
    assert len(ties) >= 30  # the texts do exercise the tie rule
    for i in sorted(ties)[:50]:
        assert fast.tokenize(texts[i]) == slow.tokenize(texts[i]), texts[i]
        assert with_offsets.tokens(i) == [fast.cls_token, *slow.tokenize(texts[i]), fast.sep_token]
        spans = with_offsets["offset_mapping"][i]
        assert all(0 <= s <= e <= len(texts[i]) for s, e in spans)
        assert [s for s, _ in spans[1:-1]] == sorted(s for s, _ in spans[1:-1])


def test_tie_rows_marks_adjacent_commuting_pieces_within_a_row(fixtures_dir, tokenizers_for):
    _, fast = tokenizers_for(fixtures_dir / "test_ja_model.model")
    zero, zeros = fast._piece_ids["0"], fast._piece_ids["00"]
    other = fast._piece_ids["何"]
    rows = [[], [zero, zeros], [zero], [zeros], [zero, zero, other], [], [other, zeros, other, zero]]
    # row 1: "0" "00" commute; rows 2/3 would only tie across the row boundary; row 4: equal pieces swap
    # to the same segmentation; row 6: separated by another piece.
    assert fast._tie_rows(rows) == {1}
    assert fast._tie_rows([[zeros, zero]]) == {0}
    assert fast._tie_rows([[], []]) == set()
    assert fast._tie_rows([]) == set()
