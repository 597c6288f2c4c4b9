"""File interchange with transformers: each library reads what the other writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def transformers():
    module = pytest.importorskip("transformers")
    module.logging.set_verbosity_error()
    return module


def _lines(corpus):
    return [line for line in corpus("en")[:600]] + ["Hello [MASK] world", "x [SEP] y", ""]


@pytest.mark.parametrize("which", ["slow", "fast"])
def test_transformers_reads_our_files(which, en_model, tmp_path, transformers, corpus, reference_slow):
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    ours = (RemBertTokenizer if which == "slow" else RemBertTokenizerFast)(en_model)
    ours.add_tokens(["<ent>"])
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == ("RemBertTokenizer" if which == "slow" else "RemBertTokenizerFast")
    texts = [*_lines(corpus), "an <ent> here"]
    expected = ours(texts)
    loaded_slow = transformers.RemBertTokenizer.from_pretrained(str(tmp_path))
    assert loaded_slow(texts)["input_ids"] == expected["input_ids"]
    assert len(loaded_slow) == len(ours)
    if which == "fast":
        loaded_fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
        got = loaded_fast(texts)["input_ids"]
        assert got == expected["input_ids"]
        auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
        assert auto(texts)["input_ids"] == expected["input_ids"]


@pytest.mark.parametrize("which", ["slow", "fast"])
def test_we_read_transformers_files(which, en_model, tmp_path, transformers, corpus):
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    reference = transformers.RemBertTokenizer(str(en_model))
    reference.add_tokens(["<ent>"])
    if which == "fast":
        # The reference fast tokenizer writes tokenizer.json; give it the slow tokenizer's special tokens.
        source = transformers.RemBertTokenizerFast(
            str(en_model), unk_token="[UNK]", pad_token="[PAD]", do_lower_case=False, keep_accents=True
        )
        source.add_tokens(["<ent>"])
        source.save_pretrained(str(tmp_path))
        (tmp_path / "sentencepiece.model").unlink()  # force reading tokenizer.json
    else:
        reference.save_pretrained(str(tmp_path))
    texts = [*_lines(corpus), "an <ent> here"]
    expected = reference(texts)["input_ids"]
    for cls in (RemBertTokenizer, RemBertTokenizerFast) if which == "slow" else (RemBertTokenizerFast,):
        loaded = cls.from_pretrained(tmp_path)
        if which == "fast":
            # ids of the reference fast tokenizer's own special-token layout; the pieces are the slow tokenizer's
            strip = [row[1:-1] for row in loaded(texts)["input_ids"]]
            assert [[i for i in row if i < 1000] for row in strip] == [
                [i for i in row[1:-1] if i < 1000] for row in expected
            ]
        else:
            assert loaded(texts)["input_ids"] == expected
            assert loaded.get_vocab() == reference.get_vocab()


def test_tokenizer_json_structure(en_model, tmp_path):
    from rembert_tokenizers import RemBertTokenizerFast

    RemBertTokenizerFast(en_model).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    assert data["model"]["type"] == "Unigram"
    assert len(data["model"]["vocab"]) == 1000
    kinds = [n["type"] for n in data["normalizer"]["normalizers"]]
    assert kinds[0] == "Precompiled"
    assert data["post_processor"]["type"] == "TemplateProcessing"
    assert data["decoder"]["type"] == "Metaspace"
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    assert added["[CLS]"] == 1000
    assert added["[MASK]"] == 1004
    special_map = json.loads((tmp_path / "special_tokens_map.json").read_text())
    assert special_map["mask_token"]["lstrip"] is True


def test_slow_files_equal_the_reference_files(en_model, tmp_path, transformers):
    from rembert_tokenizers import RemBertTokenizer

    transformers.RemBertTokenizer(str(en_model)).save_pretrained(str(tmp_path / "reference"))
    RemBertTokenizer(en_model).save_pretrained(tmp_path / "ours")
    names = sorted(p.name for p in (tmp_path / "reference").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ours").iterdir())
    for name in names:
        ours, reference = (tmp_path / "ours" / name), (tmp_path / "reference" / name)
        if name.endswith(".json"):
            assert json.loads(ours.read_text()) == json.loads(reference.read_text()), name
        else:
            assert ours.read_bytes() == reference.read_bytes(), name


# -- found by the robustness suite (tests/robustness/test_crash_safety.py) --------------------------


@pytest.mark.parametrize("fast", [False, True])
def test_a_later_save_does_not_inherit_added_tokens_of_an_earlier_one(
    tmp_path: Path, en_model: Path, fast: bool
) -> None:
    """A previous save's added tokens must not leak into a later save into the same directory."""
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    cls = RemBertTokenizerFast if fast else RemBertTokenizer
    with_extra = cls(str(en_model))
    with_extra.add_tokens(["<old_extra>"])
    with_extra.save_pretrained(tmp_path)
    plain = cls(str(en_model))
    plain.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    assert len(loaded) == len(plain)
    assert loaded("a <old_extra> b")["input_ids"] == plain("a <old_extra> b")["input_ids"]


def test_a_save_interrupted_after_its_commit_point_loads_as_the_new_tokenizer(
    tmp_path: Path, en_model: Path, ja_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between its renames, a save used to leave a mix of old and new files that loaded."""
    import rembert_core.io.atomic as serialization
    from rembert_tokenizers import RemBertTokenizer

    RemBertTokenizer(str(en_model)).save_pretrained(tmp_path)
    new = RemBertTokenizer(str(ja_model))
    new.add_tokens(["<new_extra>"])
    real, calls = os.replace, {"n": 0}

    def replace(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] > 3:  # the journal and two files renamed, then the "crash"
            raise KeyboardInterrupt("simulated crash")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(serialization.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        new.save_pretrained(tmp_path)
    monkeypatch.undo()
    loaded = RemBertTokenizer.from_pretrained(tmp_path)
    text = "吾輩は猫である <new_extra>"
    assert loaded(text)["input_ids"] == new(text)["input_ids"] and len(loaded) == len(new)
