"""Both tokenizers == transformers 4.57 RemBertTokenizer (the reference slow tokenizer) on every corpus line."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.oracle

MODELS = {"en": "test_model.model", "ja": "test_ja_model.model"}


def _compare(reference_out, ours, texts, keys=None):
    for key in keys or reference_out.keys():
        assert key in ours, key
        ref_rows, our_rows = reference_out[key], ours[key]
        assert len(ref_rows) == len(our_rows)
        for index, (a, b) in enumerate(zip(ref_rows, our_rows, strict=True)):
            assert a == b, f"{key} differs from the reference on line {index}: {texts[index]!r}"


@pytest.mark.parametrize("name", ["en", "ja"])
def test_corpus_ids_masks_decode(name, corpus, fixtures_dir, tokenizers_for, reference_slow):
    model = fixtures_dir / MODELS[name]
    reference = reference_slow(model)
    lines = corpus(name)
    expected = reference(lines, return_special_tokens_mask=True)
    expected_decoded = reference.batch_decode(expected["input_ids"])
    expected_skipped = reference.batch_decode(expected["input_ids"], skip_special_tokens=True)
    for tok in tokenizers_for(model):
        out = tok(lines, return_special_tokens_mask=True)
        _compare(expected, out, lines)
        assert tok.batch_decode(out["input_ids"]) == expected_decoded
        assert tok.batch_decode(out["input_ids"], skip_special_tokens=True) == expected_skipped
        assert [tok.tokenize(line) for line in lines[:400]] == [reference.tokenize(line) for line in lines[:400]]


@pytest.mark.parametrize("name", ["en", "ja"])
def test_corpus_pairs_padding_truncation(name, corpus, fixtures_dir, tokenizers_for, reference_slow):
    model = fixtures_dir / MODELS[name]
    reference = reference_slow(model)
    lines = [line for line in corpus(name) if line.strip()]
    first, second = lines[:-1], lines[1:]
    settings = [
        {"padding": True, "return_special_tokens_mask": True},
        {"padding": "max_length", "max_length": 48, "truncation": "longest_first"},
        {"padding": "longest", "pad_to_multiple_of": 8, "padding_side": "left"},
        {"truncation": True, "max_length": 17},
    ]
    tokenizers = tokenizers_for(model)
    for kwargs in settings:
        # Batches of 96 lines: every line is covered, padded to its batch's longest (as in training).
        for start in range(0, len(first), 96):
            a, b = first[start : start + 96], second[start : start + 96]
            expected = reference(a, b, **kwargs)
            for tok in tokenizers:
                _compare(expected, tok(a, b, **kwargs), a)


@pytest.mark.parametrize("name", ["en", "ja"])
def test_corpus_single_truncation_with_stride(name, corpus, fixtures_dir, tokenizers_for, reference_slow):
    model = fixtures_dir / MODELS[name]
    reference = reference_slow(model)
    lines = corpus(name)[:1500]
    kwargs = {"truncation": True, "max_length": 12, "stride": 3, "return_overflowing_tokens": True}
    expected = [reference(line, **kwargs) for line in lines]
    # The slow layout (overflowing_tokens, num_truncated_tokens) is the slow tokenizers'; the fast one returns
    # windows, compared with the reference fast tokenizer in test_tokenizers_windows.py.
    for tok in tokenizers_for(model)[:1]:
        for side in ("right", "left"):
            reference.truncation_side = side
            tok.truncation_side = side
            expected = [reference(line, **kwargs) for line in lines[:300]]
            got = [tok(line, **kwargs) for line in lines[:300]]
            for line, a, b in zip(lines, expected, got, strict=False):
                assert dict(a) == dict(b), line
        reference.truncation_side = "right"
        tok.truncation_side = "right"


def test_only_first_only_second_pairs(corpus, fixtures_dir, tokenizers_for, reference_slow):
    model = fixtures_dir / MODELS["en"]
    reference = reference_slow(model)
    lines = [line for line in corpus("en") if len(line) > 60][:300]
    short = ["a short one"] * len(lines)
    for strategy, first, second in (("only_first", lines, short), ("only_second", short, lines)):
        kwargs = {"truncation": strategy, "max_length": 16, "stride": 2, "return_overflowing_tokens": True}
        expected = reference(first, second, **kwargs)
        for tok in tokenizers_for(model)[:1]:  # the slow layout; windows: test_tokenizers_windows.py
            _compare(expected, tok(first, second, **kwargs), first)


@pytest.mark.parametrize("name", ["en", "ja"])
def test_adversarial_against_reference(name, fixtures_dir, tokenizers_for, reference_slow, adversarial):
    model = fixtures_dir / MODELS[name]
    reference = reference_slow(model)
    expected = reference(adversarial, return_special_tokens_mask=True)
    for tok in tokenizers_for(model):
        _compare(expected, tok(adversarial, return_special_tokens_mask=True), adversarial)
        assert tok.batch_decode(expected["input_ids"]) == reference.batch_decode(expected["input_ids"])


def test_do_lower_case_matches_reference(fixtures_dir, tokenizers_for, reference_slow, adversarial, corpus):
    model = fixtures_dir / MODELS["en"]
    reference = reference_slow(model, do_lower_case=True)
    texts = adversarial + corpus("en")[:500]
    expected = reference(texts)
    for tok in tokenizers_for(model, do_lower_case=True):
        _compare(expected, tok(texts), texts)


def test_derived_models_match_reference(derived_models, tokenizers_for, reference_slow, adversarial, corpus):
    texts = adversarial + corpus("en")[:300]
    for name, path in derived_models.items():
        if name == "keep_spaces":
            continue  # our remove_space=True default keeps the model's own (absent) cleanup: same as the reference
        expected = reference_slow(path)(texts, return_special_tokens_mask=True)
        for tok in tokenizers_for(path):
            _compare(expected, tok(texts, return_special_tokens_mask=True), texts)


def test_added_tokens_match_reference(fixtures_dir, reference_slow, tokenizers_for):
    from rembert_tokenizers import AddedToken, RemBertTokenizer, RemBertTokenizerFast

    transformers = pytest.importorskip("transformers")
    model = fixtures_dir / MODELS["en"]
    reference = transformers.RemBertTokenizer(str(model))
    reference.add_tokens(["<ent>", transformers.AddedToken("<rel>", lstrip=True, rstrip=True)])
    reference.add_special_tokens({"additional_special_tokens": ["<extra>"]})
    texts = ["an <ent> and a <rel> here", "<extra>x<ent>", "  <rel>  <rel>  ", "the [MASK] <extra> end"]
    expected = reference(texts, return_special_tokens_mask=True)
    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        tok = cls(model)
        assert tok.add_tokens(["<ent>", AddedToken("<rel>", lstrip=True, rstrip=True)]) == 2
        assert tok.add_special_tokens({"additional_special_tokens": ["<extra>"]}) == 1
        assert len(tok) == len(reference)
        assert tok.get_vocab() == reference.get_vocab()
        _compare(expected, tok(texts, return_special_tokens_mask=True), texts)
        for skip in (False, True):
            assert tok.batch_decode(expected["input_ids"], skip_special_tokens=skip) == reference.batch_decode(
                expected["input_ids"], skip_special_tokens=skip
            )


def test_vocabulary_api_matches_reference(fixtures_dir, tokenizers_for, reference_slow):
    model = fixtures_dir / MODELS["ja"]
    reference = reference_slow(model)
    for tok in tokenizers_for(model):
        assert tok.vocab_size == reference.vocab_size
        assert len(tok) == len(reference)
        assert tok.get_vocab() == reference.get_vocab()
        assert tok.all_special_tokens == reference.all_special_tokens
        assert tok.all_special_ids == reference.all_special_ids
        ids = list(range(0, len(reference), 7))
        assert tok.convert_ids_to_tokens(ids) == reference.convert_ids_to_tokens(ids)
        tokens = [*reference.convert_ids_to_tokens(ids), "not-a-piece"]
        assert tok.convert_tokens_to_ids(tokens) == reference.convert_tokens_to_ids(tokens)
        assert tok.build_inputs_with_special_tokens([5, 6], [7]) == reference.build_inputs_with_special_tokens(
            [5, 6], [7]
        )
        assert tok.get_special_tokens_mask([5, 6], [7]) == reference.get_special_tokens_mask([5, 6], [7])
        with_special = reference.build_inputs_with_special_tokens([5, 6])
        assert tok.get_special_tokens_mask(with_special, already_has_special_tokens=True) == (
            reference.get_special_tokens_mask(with_special, already_has_special_tokens=True)
        )
        assert tok.create_token_type_ids_from_sequences([5, 6], [7]) == (
            reference.create_token_type_ids_from_sequences([5, 6], [7])
        )
        assert tok.encode("吾輩は猫である", "名前はまだ無い") == reference.encode("吾輩は猫である", "名前はまだ無い")
        assert tok.decode([5, 6, 7], clean_up_tokenization_spaces=True) == reference.decode(
            [5, 6, 7], clean_up_tokenization_spaces=True
        )
        words = ["吾輩", "は", "猫", "である"]
        assert (
            tok(words, is_split_into_words=True)["input_ids"] == reference(words, is_split_into_words=True)["input_ids"]
        )


def test_pad_and_given_ids_match_reference(fixtures_dir, tokenizers_for, reference_slow):
    model = fixtures_dir / MODELS["en"]
    reference = reference_slow(model)
    examples = [[1000, 5, 6, 1001], [1000, 1001], [1000, 7, 1001]]
    for tok in tokenizers_for(model):
        for kwargs in (
            {},
            {"padding": "max_length", "max_length": 7},
            {"pad_to_multiple_of": 4, "padding_side": "left"},
        ):
            given = [{"input_ids": list(e), "token_type_ids": [0] * len(e)} for e in examples]
            expected = reference.pad([dict(g) for g in given], **kwargs)
            assert dict(tok.pad(given, **kwargs)) == dict(expected)
        assert tok.encode_plus([151, 88, 21], [887]) == reference.encode_plus([151, 88, 21], [887])
        assert dict(tok.prepare_for_model([151, 88, 21], [887, 5], truncation="only_second", max_length=7)) == dict(
            reference.prepare_for_model([151, 88, 21], [887, 5], truncation="only_second", max_length=7)
        )


def test_added_token_strip_and_single_word_rules_match_reference(fixtures_dir, corpus):
    """lstrip/rstrip/single_word tokens next to each other, to spaces, inside words; merged chunks whose
    unknown pieces spell an added token (the reference maps pieces through the added tokens first)."""
    import random

    from rembert_tokenizers import AddedToken, RemBertTokenizer, RemBertTokenizerFast

    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    model = fixtures_dir / MODELS["en"]
    specs = [
        ("<e>", {}),
        ("<r>", {"lstrip": True, "rstrip": True}),
        ("wo", {"single_word": True}),
        ("ab", {"rstrip": True}),
        ("<<", {"lstrip": True, "single_word": True}),
        ("ÉX", {}),
    ]
    fragments = [c for c, _ in specs] + [
        "<sp>",
        " ",
        "  ",
        "\u3000",
        "\x1c",
        "word",
        "a",
        "w",
        "o",
        "[MASK]",
        "\t",
        "é",
    ]
    rng = random.Random(5)
    texts = ["".join(rng.choice(fragments) for _ in range(rng.randint(0, 10))) for _ in range(1500)]
    for lower in (False, True):
        reference = transformers.RemBertTokenizer(str(model), do_lower_case=lower)
        reference.add_tokens([transformers.AddedToken(c, **k) for c, k in specs])
        reference.add_special_tokens({"additional_special_tokens": [transformers.AddedToken("<sp>", rstrip=True)]})
        expected = reference(texts)
        for cls in (RemBertTokenizer, RemBertTokenizerFast):
            tok = cls(model, do_lower_case=lower)
            tok.add_tokens([AddedToken(c, **k) for c, k in specs])
            tok.add_special_tokens({"additional_special_tokens": [AddedToken("<sp>", rstrip=True)]})
            _compare(expected, tok(texts), texts)
            assert tok.batch_decode(expected["input_ids"][:300]) == reference.batch_decode(expected["input_ids"][:300])


def test_overlapping_added_tokens_match_reference(fixtures_dir):
    """Tokens sharing prefixes/overlapping: the reference's trie scan, not leftmost-longest matching."""
    import random

    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    model = fixtures_dir / MODELS["en"]
    tokens = ["abbc", "b", "aba", "cbc", "abc", "bcab"]
    reference = transformers.RemBertTokenizer(str(model))
    reference.add_tokens(tokens)
    rng = random.Random(11)
    texts = ["".join(rng.choice("abcd ") for _ in range(rng.randint(0, 14))) for _ in range(1500)]
    expected = reference(texts)
    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        tok = cls(model)
        tok.add_tokens(tokens)
        _compare(expected, tok(texts), texts)


@pytest.mark.parametrize("tensor_type", ["np", "pt", "tf"])
def test_tensors_match_reference(tensor_type, fixtures_dir, tokenizers_for, reference_slow, corpus):
    import numpy as np

    pytest.importorskip({"np": "numpy", "pt": "torch", "tf": "tensorflow"}[tensor_type])
    model = fixtures_dir / MODELS["ja"]
    reference = reference_slow(model)
    lines = corpus("ja")[:64]
    kwargs = {"padding": "max_length", "truncation": True, "max_length": 40, "return_tensors": tensor_type}
    expected = reference(lines, lines[::-1], **kwargs)
    single = reference(lines[3], **kwargs)
    for tok in tokenizers_for(model):
        got = tok(lines, lines[::-1], **kwargs)
        got_single = tok(lines[3], **kwargs)
        for key in expected:
            assert type(got[key]) is type(expected[key])
            assert str(got[key].dtype) == str(expected[key].dtype)
            np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(expected[key]))
            assert tuple(got_single[key].shape) == tuple(single[key].shape)
            np.testing.assert_array_equal(np.asarray(got_single[key]), np.asarray(single[key]))


def test_fast_alignment_matches_reference_fast(fixtures_dir, corpus):
    """word_ids() and offsets agree with transformers' fast tokenizer wherever its ids agree (matched options);
    offsets differ only for a first token after leading whitespace, whose span the reference starts one space
    early (ours starts at the first character the token covers)."""
    from rembert_tokenizers import RemBertTokenizerFast

    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    model = str(fixtures_dir / MODELS["en"])
    reference = transformers.RemBertTokenizerFast(
        model, do_lower_case=False, keep_accents=True, unk_token="[UNK]", pad_token="[PAD]"
    )
    ours = RemBertTokenizerFast(model)
    lines = corpus("en")
    expected = reference(lines, return_offsets_mapping=True)
    got = ours(lines, return_offsets_mapping=True)
    compared = 0
    for index, line in enumerate(lines):
        if expected["input_ids"][index] != got["input_ids"][index]:
            continue
        compared += 1
        assert got.word_ids(index) == expected.word_ids(index), line
        if line == line.lstrip():
            assert got["offset_mapping"][index] == [tuple(x) for x in expected["offset_mapping"][index]], line
    assert compared == len(lines)


@pytest.mark.parametrize("offsets", [False, True])
def test_fast_tokens_of_split_words_match_reference_fast(fixtures_dir, corpus, offsets):
    """tokens() and word_ids() of pre-split words (is_split_into_words=True) agree with transformers' fast
    tokenizer on corpus lines split on whitespace (a regression: tokens() once held only the special tokens)."""
    from rembert_tokenizers import RemBertTokenizerFast

    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    model = str(fixtures_dir / MODELS["en"])
    reference = transformers.RemBertTokenizerFast(
        model, do_lower_case=False, keep_accents=True, unk_token="[UNK]", pad_token="[PAD]"
    )
    ours = RemBertTokenizerFast(model)
    batch = [line.split() for line in corpus("en")[:200] if line.split()]
    expected = reference(batch, is_split_into_words=True, return_offsets_mapping=offsets)
    got = ours(batch, is_split_into_words=True, return_offsets_mapping=offsets)
    compared = 0
    for index, words in enumerate(batch):
        if expected["input_ids"][index] != got["input_ids"][index]:
            continue
        compared += 1
        assert got.tokens(index) == expected.tokens(index), words
        assert got.word_ids(index) == expected.word_ids(index), words
    assert compared >= 0.9 * len(batch)


def test_fast_tokens_match_reference_fast(fixtures_dir, corpus):
    """tokens() equals transformers' fast tokenizer's on every corpus line whose ids agree, unknown pieces
    included (the reference shows an unknown piece's surface text, e.g. a BOM, not the unknown token)."""
    from rembert_tokenizers import RemBertTokenizerFast

    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    for language in ("en", "ja"):
        model = str(fixtures_dir / MODELS[language])
        reference = transformers.RemBertTokenizerFast(
            model, do_lower_case=False, keep_accents=True, unk_token="[UNK]", pad_token="[PAD]"
        )
        ours = RemBertTokenizerFast(model)
        lines = corpus(language)
        expected, got = reference(lines), ours(lines)
        compared = 0
        for index, line in enumerate(lines):
            if expected["input_ids"][index] == got["input_ids"][index]:
                compared += 1
                assert got.tokens(index) == expected.tokens(index), line
        assert compared >= 0.9 * len(lines), language
