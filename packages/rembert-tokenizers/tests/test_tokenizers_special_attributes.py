"""Special-token attributes as transformers 4.57 has them: settable *_token / *_token_id, additional special tokens,
max_len_single_sentence / max_len_sentences_pair, split_special_tokens, AddedToken options through save and load,
save_pretrained(legacy_format=...) and from_pretrained(dir, tokenizer_file=...)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rembert_core import CheckpointError, InputError

pytestmark = pytest.mark.oracle

NAMES = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
TEXT = "Hello [MASK] world <ent> and [CLS] here"


def _attributes(tok):
    out = {f"{n}_token": getattr(tok, f"{n}_token") for n in NAMES}
    out.update({f"{n}_token_id": getattr(tok, f"{n}_token_id") for n in NAMES})
    out["additional_special_tokens"] = list(tok.additional_special_tokens)
    out["additional_special_tokens_ids"] = list(tok.additional_special_tokens_ids)
    out["all_special_tokens"] = sorted(tok.all_special_tokens)
    out["special_tokens_map"] = {
        k: (str(v) if not isinstance(v, list) else [str(x) for x in v]) for k, v in tok.special_tokens_map.items()
    }
    return out


@pytest.mark.parametrize("name", NAMES)
def test_special_token_setters_match_reference(name, en_model):
    transformers = pytest.importorskip("transformers")
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    for cls, ref_cls in (
        (RemBertTokenizer, transformers.RemBertTokenizer),
        (RemBertTokenizerFast, transformers.RemBertTokenizerFast),
    ):
        ours, reference = cls(en_model), ref_cls(str(en_model), unk_token="[UNK]", pad_token="[PAD]")
        values = [("▁the", False), (7, True), (None, False)]
        if not cls.is_fast:
            # A token outside the vocabulary: its id is the unknown id, which the reference's slow and fast classes
            # disagree on (0, the SentencePiece <unk> / 1002, [UNK]; its fast class recurses forever for unk_token).
            # Ours follow the slow one.
            values.insert(1, ("<not-in-vocab>", False))
        for value, as_id in values:
            attribute = f"{name}_token_id" if as_id else f"{name}_token"
            setattr(ours, attribute, value)
            setattr(reference, attribute, value)
            assert _attributes(ours) == _attributes(reference), (cls.__name__, attribute, value)
            if not cls.is_fast and value is not None:
                # (the reference fast tokenizer's post-processor keeps [CLS]/[SEP], and with None the reference
                # slow one puts None among the ids: compared on the slow one, with a token)
                assert ours(TEXT)["input_ids"] == reference(TEXT)["input_ids"], (attribute, value)
        with pytest.raises(InputError, match="Cannot set a non-string value"):
            setattr(ours, f"{name}_token", 3)


def test_additional_special_tokens_and_max_lengths_match_reference(en_model):
    transformers = pytest.importorskip("transformers")
    from rembert_tokenizers import AddedToken, RemBertTokenizer, RemBertTokenizerFast

    for cls, ref_cls in (
        (RemBertTokenizer, transformers.RemBertTokenizer),
        (RemBertTokenizerFast, transformers.RemBertTokenizerFast),
    ):
        ours = cls(en_model, model_max_length=64, additional_special_tokens=["<x>"])
        reference = ref_cls(
            str(en_model), model_max_length=64, additional_special_tokens=["<x>"], unk_token="[UNK]", pad_token="[PAD]"
        )
        assert _attributes(ours) == _attributes(reference)
        ours.additional_special_tokens = ["▁the", AddedToken("[MASK]")]
        reference.additional_special_tokens = ["▁the", transformers.AddedToken("[MASK]")]
        assert _attributes(ours) == _attributes(reference)
        ours.additional_special_tokens_ids = [9, 10]
        reference.additional_special_tokens_ids = [9, 10]
        assert _attributes(ours) == _attributes(reference)
        assert (
            (ours.max_len_single_sentence, ours.max_len_sentences_pair)
            == (
                reference.max_len_single_sentence,
                reference.max_len_sentences_pair,
            )
            == (62, 61)
        )
        ours.max_len_single_sentence = 62  # the computed value is accepted, as in the reference
        with pytest.raises(InputError, match="deprecated"):
            ours.max_len_sentences_pair = 10


def test_split_special_tokens_matches_reference(en_model):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    for cls, ref_cls in (
        (RemBertTokenizer, transformers.RemBertTokenizer),
        (RemBertTokenizerFast, transformers.RemBertTokenizerFast),
    ):
        ours = cls(en_model, split_special_tokens=True)
        reference = ref_cls(str(en_model), split_special_tokens=True, unk_token="[UNK]", pad_token="[PAD]")
        ours.add_tokens(["<ent>"])
        reference.add_tokens(["<ent>"])
        ids = ours(TEXT)["input_ids"]
        mask, cls_id, ent = (ours.convert_tokens_to_ids(t) for t in ("[MASK]", "[CLS]", "<ent>"))
        assert mask not in ids and ids.count(cls_id) == 1  # the special tokens in the text are plain text
        if cls.is_fast:
            # The fast reference still matches added tokens that are not special (its ids around them follow the
            # reference fast tokenizer's spacing, which differs from the slow one's: compared by behaviour).
            assert ent in ids and ent in reference(TEXT)["input_ids"]
        else:
            assert ids == reference(TEXT)["input_ids"]  # no added token is matched
        ours.split_special_tokens = False
        assert mask in ours(TEXT)["input_ids"] and ent in ours(TEXT)["input_ids"]
        assert ours.init_kwargs.get("split_special_tokens") is True


def _options(decoder):
    return {
        i: (t.content, t.lstrip, t.rstrip, t.normalized, t.special, t.single_word)
        for i, t in decoder.items()
        if t.content in ("<ent>", "<w>", "<x>")
    }


def test_added_token_options_survive_save_and_load(en_model, tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    from rembert_tokenizers import AddedToken, RemBertTokenizer, RemBertTokenizerFast

    for cls in (RemBertTokenizer, RemBertTokenizerFast):
        tok = cls(en_model)
        tok.add_tokens([AddedToken("<ent>", lstrip=True, normalized=False), AddedToken("<w>", single_word=True)])
        tok.add_special_tokens({"additional_special_tokens": [AddedToken("<x>", rstrip=True, normalized=False)]})
        expected = _options(tok.added_tokens_decoder)
        assert len(expected) == 3
        folder = tmp_path / cls.__name__
        tok.save_pretrained(folder)
        for loader in (RemBertTokenizer, RemBertTokenizerFast):
            assert _options(loader.from_pretrained(folder).added_tokens_decoder) == expected, loader
        reference = getattr(transformers, cls.__name__).from_pretrained(str(folder))
        assert _options(reference.added_tokens_decoder) == expected


def test_legacy_format_and_tokenizer_file_as_reference(en_model, tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    fast = RemBertTokenizerFast(en_model)
    fast.add_tokens(["<ent>"])
    reference = transformers.RemBertTokenizerFast(
        str(en_model), do_lower_case=False, keep_accents=True, unk_token="[UNK]", pad_token="[PAD]"
    )
    reference.add_tokens(["<ent>"])
    for legacy in (True, False):
        ours_dir, ref_dir = tmp_path / f"ours-{legacy}", tmp_path / f"ref-{legacy}"
        fast.save_pretrained(ours_dir, legacy_format=legacy)
        reference.save_pretrained(str(ref_dir), legacy_format=legacy)
        assert sorted(os.listdir(ours_dir)) == sorted(os.listdir(ref_dir)), legacy
        reloaded = RemBertTokenizerFast.from_pretrained(ours_dir)
        assert reloaded(TEXT)["input_ids"] == fast(TEXT)["input_ids"]
        # transformers reads what we wrote: the slow files as it reads its own (it converts them again); our
        # tokenizer.json gives our ids (the slow tokenizer's spacing around special tokens in the text)
        plain = "Hello world, [MASK] and [CLS] here"
        loaded = transformers.RemBertTokenizerFast.from_pretrained(str(ours_dir))(plain)["input_ids"]
        if legacy:
            assert loaded == transformers.RemBertTokenizerFast.from_pretrained(str(ref_dir))(plain)["input_ids"]
        else:
            assert loaded == fast(plain)["input_ids"]
    with pytest.raises(ValueError, match="Only fast tokenizers") as reference_error:
        transformers.RemBertTokenizer(str(en_model)).save_pretrained(str(tmp_path / "slow-ref"), legacy_format=False)
    with pytest.raises(InputError) as ours_error:
        RemBertTokenizer(en_model).save_pretrained(tmp_path / "slow", legacy_format=False)
    assert str(ours_error.value) == str(reference_error.value)
    # tokenizer_file= names the tokenizer.json to read instead of the directory's files
    both = tmp_path / "both"
    fast.save_pretrained(both)
    moved = tmp_path / "elsewhere.json"
    os.replace(both / "tokenizer.json", moved)
    os.remove(both / "sentencepiece.model")
    loaded = RemBertTokenizerFast.from_pretrained(both, tokenizer_file=moved)
    assert loaded(TEXT)["input_ids"] == fast(TEXT)["input_ids"]
    with pytest.raises(CheckpointError, match="missing.json"):
        RemBertTokenizerFast.from_pretrained(both, tokenizer_file=tmp_path / "missing.json")


@pytest.mark.parametrize("fast", [False, True])
def test_init_kwargs_record_the_constructor_options(tmp_path: Path, en_model: Path, fast: bool) -> None:
    """``init_kwargs`` holds the named and unknown options, as transformers'; the saved config is unchanged by it."""
    transformers = pytest.importorskip("transformers")
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    ours_cls = RemBertTokenizerFast if fast else RemBertTokenizer
    theirs_cls = transformers.RemBertTokenizerFast if fast else transformers.RemBertTokenizer
    options = {"do_lower_case": True, "padding_side": "left", "model_max_length": 64, "custom_option": 1}
    ours = ours_cls(vocab_file=str(en_model), **options)
    theirs = theirs_cls(vocab_file=str(en_model), **options)
    for key in ("do_lower_case", "remove_space", "padding_side", "model_max_length", "custom_option", "bos_token"):
        assert ours.init_kwargs[key] == theirs.init_kwargs[key], key
    assert set(theirs.init_kwargs) <= set(ours.init_kwargs)
    plain = ours_cls(vocab_file=str(en_model), **options)
    plain.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert saved["custom_option"] == 1 and saved["padding_side"] == "left" and saved["do_lower_case"] is True
