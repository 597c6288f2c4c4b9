"""Tokenizer directories under the checkpoint file policy; malformed files are library errors; ids never move.

The robustness suite (tests/robustness/test_hostile_tokenizer_files.py) runs every attack in a worker
process, FIFOs and devices included; these are the in-process unit tests of the same rules, and the
comparisons with transformers 4.57 for the files it accepts.
"""

from __future__ import annotations

import json
import os

import pytest

from rembert_core import CheckpointError, InputError


@pytest.fixture(params=["RemBertTokenizer", "RemBertTokenizerFast"])
def cls(request):
    import rembert_tokenizers

    return getattr(rembert_tokenizers, request.param)


def _saved(directory, model, *, decoder=True, json_only=False):
    from rembert_tokenizers import RemBertTokenizerFast

    RemBertTokenizerFast(model).save_pretrained(directory)
    if not decoder:
        config = json.loads((directory / "tokenizer_config.json").read_text())
        del config["added_tokens_decoder"]
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
    if json_only:
        (directory / "sentencepiece.model").unlink()
    return directory


# -- the file policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sentencepiece.model", "tokenizer_config.json", "special_tokens_map.json"])
def test_a_link_leaving_the_directory_is_refused(name, cls, en_model, tmp_path, monkeypatch):
    directory = _saved(tmp_path / "tok", en_model)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.replace(directory / name, outside / name)
    os.symlink(outside / name, directory / name)
    with pytest.raises(CheckpointError, match=f"{name} is a symbolic link to .*, outside its directory"):
        cls.from_pretrained(directory)
    monkeypatch.setenv("REMBERT_FOLLOW_SYMLINKS", "1")  # the documented opt-in
    assert cls.from_pretrained(directory)("Hello world")["input_ids"] == [1000, 151, 88, 21, 887, 1001]


def test_a_link_inside_the_directory_is_followed(cls, en_model, tmp_path):
    directory = _saved(tmp_path / "tok", en_model)
    os.replace(directory / "sentencepiece.model", directory / "model.real")
    os.symlink("model.real", directory / "sentencepiece.model")
    assert cls.from_pretrained(directory)("Hello world")["input_ids"] == [1000, 151, 88, 21, 887, 1001]


def test_a_dangling_link_or_a_device_is_refused(cls, en_model, tmp_path):
    directory = _saved(tmp_path / "tok", en_model)
    os.symlink(tmp_path / "missing.json", directory / "extra")
    os.replace(directory / "extra", directory / "special_tokens_map.json")
    with pytest.raises(CheckpointError, match="cannot read .*special_tokens_map.json: FileNotFoundError"):
        cls.from_pretrained(directory)
    # a file named directly may be a link to anywhere, but it must be a regular file
    with pytest.raises(CheckpointError, match="not a regular file"):
        cls("/dev/null")


# -- malformed files: CheckpointError naming the file and the field ----------------------------------


@pytest.mark.parametrize("name", ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"])
def test_deeply_nested_json(name, cls, en_model, tmp_path):
    directory = _saved(tmp_path / "tok", en_model, decoder=name != "added_tokens.json")
    (directory / name).write_text('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(CheckpointError, match=f"cannot read .*{name}: RecursionError"):
        cls.from_pretrained(directory)


def test_deeply_nested_tokenizer_json(en_model, tmp_path):
    from rembert_tokenizers import RemBertTokenizerFast

    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(CheckpointError, match="not valid JSON: RecursionError"):
        RemBertTokenizerFast(tokenizer_file=path)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"self": 1}, "field 'self' is not a tokenizer option"),
        ({"additional_special_tokens": "<abc>"}, "field 'additional_special_tokens' must be a list of tokens"),
        ({"do_lower_case": "no"}, "field 'do_lower_case' must be true or false"),
        ({"model_max_length": 1.5}, "field 'model_max_length' must be a positive integer"),
        ({"padding_side": "up"}, "field 'padding_side' must be 'left' or 'right'"),
        ({"cls_token": 5}, "field cls_token: expected a str or AddedToken"),
        ({"mask_token": {"content": "[MASK]", "rstrip": "no"}}, "'rstrip' must be true or false"),
        ({"added_tokens_decoder": [1]}, "field 'added_tokens_decoder' must be an object"),
    ],
)
def test_malformed_tokenizer_config(values, match, cls, en_model, tmp_path):
    directory = _saved(tmp_path / "tok", en_model)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    (directory / "tokenizer_config.json").write_text(json.dumps({**config, **values}))
    with pytest.raises(CheckpointError, match=f"tokenizer_config.json: .*{match}"):
        cls.from_pretrained(directory)


def test_a_string_of_additional_special_tokens_is_refused_everywhere(cls, en_model, tmp_path):
    """It was split into one special token per character ('<', 'a', 'b', ...): transformers refuses it too."""
    directory = _saved(tmp_path / "tok", en_model)
    (directory / "special_tokens_map.json").write_text(json.dumps({"additional_special_tokens": "<abc>"}))
    with pytest.raises(CheckpointError, match="special_tokens_map.json: field 'additional_special_tokens'"):
        cls.from_pretrained(directory)
    with pytest.raises(InputError, match="additional_special_tokens must be a list of tokens, got str"):
        cls(en_model, additional_special_tokens="<abc>")
    assert cls(en_model, additional_special_tokens=("<abc>",)).additional_special_tokens == ["<abc>"]


@pytest.mark.parametrize(
    ("added", "match"),
    [
        ({"<new>": "bar"}, "token '<new>' has the id 'bar', not an integer"),
        ({"<new>": None}, "token '<new>' has the id None, not an integer"),
        ({"<new>": True}, "token '<new>' has the id True, not an integer"),
        ({"<new>": -1}, "token '<new>' has the negative id -1"),
        ({"<new>": 5}, "token '<new>' has the id 5, which is the SentencePiece piece ','"),
        ({"<new>": 1001}, "cannot add '\\[CLS\\]': its id would be 1001"),
        ({"<new>": 1000, "<old>": 1000}, "token '<old>' has the id 1000, already given to '<new>'"),
    ],
)
def test_malformed_added_tokens_json(added, match, cls, en_model, tmp_path):
    directory = _saved(tmp_path / "tok", en_model, decoder=False)
    (directory / "added_tokens.json").write_text(json.dumps(added))
    with pytest.raises(CheckpointError, match=f"added_tokens.json: .*{match}"):
        cls.from_pretrained(directory)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["model"].__setitem__("unk_id", True), "no valid unk_id"),
        (lambda d: d["model"]["vocab"][5].__setitem__(1, "x"), "entry 5 \\(','\\) has the score 'x', not a number"),
        (lambda d: d["model"]["vocab"][5].__setitem__(1, float("inf")), "piece 5 \\(','\\) has the score inf"),
        (lambda d: d["model"]["vocab"][5].__setitem__(0, ""), "piece 5 is empty"),
        (lambda d: d["model"]["vocab"][6].__setitem__(0, ","), "piece 6 \\(','\\) is already defined as piece 5"),
        (lambda d: d["normalizer"]["normalizers"][0].__setitem__("precompiled_charsmap", "!!!"), "not valid base64"),
        (lambda d: d["added_tokens"].append({"id": -2, "content": "<x>"}), "negative id -2"),
    ],
)
def test_malformed_tokenizer_json(change, match, en_model, tmp_path):
    from rembert_tokenizers import RemBertTokenizerFast

    directory = _saved(tmp_path / "tok", en_model)
    data = json.loads((directory / "tokenizer.json").read_text())
    assert data["normalizer"]["normalizers"][0]["type"] == "Precompiled"
    change(data)
    (directory / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"tokenizer.json.*{match}"):
        RemBertTokenizerFast(tokenizer_file=directory / "tokenizer.json")


def test_a_model_sentencepiece_refuses_is_a_checkpoint_error(cls, en_model, tmp_path):
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(en_model.read_bytes())
    model.pieces[5].piece = model.pieces[6].piece
    (tmp_path / "dup.model").write_bytes(model.SerializeToString())
    with pytest.raises(CheckpointError, match="dup.model'?: piece 6 .* is already defined as piece 5"):
        cls(tmp_path / "dup.model")
    model.ParseFromString(en_model.read_bytes())
    model.pieces[5].type = 6  # a byte piece in a model without byte_fallback: sentencepiece itself refuses it
    (tmp_path / "byte.model").write_bytes(model.SerializeToString())
    with pytest.raises(CheckpointError, match="sentencepiece cannot load .*byte.model"):
        cls(tmp_path / "byte.model")


# -- ids: the accepted files give transformers' ids; nothing moves them silently ------------------------


def test_an_in_vocabulary_id_that_is_not_its_piece_is_refused_in_code(cls, en_model):
    with pytest.raises(InputError, match="added_tokens_decoder: token '<new>' has the id 5"):
        cls(en_model, added_tokens_decoder={5: "<new>"})
    with pytest.raises(InputError, match="added_tokens_decoder: token '<new>' has the id 'x', not an integer"):
        cls(en_model, added_tokens_decoder={"x": "<new>"})


def test_a_gap_in_the_added_ids_refuses_a_colliding_token_and_changes_nothing(cls, en_model):
    decoder = {**cls(en_model).added_tokens_decoder, 1006: "<gap>"}  # [CLS]..[MASK] at 1000..1004, none at 1005
    tok = cls(en_model, added_tokens_decoder=decoder)
    assert (tok.cls_token_id, tok.sep_token_id, len(tok)) == (1000, 1001, 1006)
    before = tok.get_vocab()
    # The next id is the vocabulary's size, 1006, which '<gap>' has (transformers gives it to both).
    with pytest.raises(InputError, match="cannot add '<a>': its id would be 1006.*'<gap>' already has"):
        tok.add_tokens(["\u2581the", "<a>"])  # the first (a piece, id 9) is not kept either
    assert tok.get_vocab() == before and "\u2581the" not in tok.added_tokens_encoder


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("where", "added"),
    [
        ("added_tokens.json", {"<new>": 1000}),  # the next free id: the special tokens follow it
        ("added_tokens.json", {"<new>": 1006}),  # after the special tokens' ids
        ("tokenizer_config.json", {"1007": {"content": "<new>", "special": False}}),  # a gap, nothing after it
    ],
)
def test_accepted_added_tokens_give_the_ids_of_transformers(where, added, cls, en_model, tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    directory = _saved(tmp_path / "tok", en_model, decoder=where == "tokenizer_config.json")
    (directory / "tokenizer.json").unlink()
    if where == "added_tokens.json":
        (directory / "added_tokens.json").write_text(json.dumps(added))
    else:
        config = json.loads((directory / "tokenizer_config.json").read_text())
        config["added_tokens_decoder"].update(added)
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
    reference = transformers.RemBertTokenizer.from_pretrained(str(directory))
    ours = cls.from_pretrained(directory)
    texts = ["Hello <new> world [MASK]", "[CLS] x [SEP] y"]
    assert ours(texts)["input_ids"] == reference(texts)["input_ids"]
    assert (ours.cls_token_id, ours.sep_token_id, len(ours)) == (
        reference.cls_token_id,
        reference.sep_token_id,
        len(reference),
    )


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["specials_control", "specials_user"])
def test_special_tokens_inside_the_vocabulary_round_trip(kind, cls, derived_models, tmp_path):
    """[CLS]/[SEP] as pieces 312/313 (google/rembert's layout): the added tokens name their own pieces."""
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    tok = cls(derived_models[kind])
    tok.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["added_tokens_decoder"]["312"]["content"] == "[CLS]"
    loaded = cls.from_pretrained(tmp_path)
    reference = transformers.RemBertTokenizer.from_pretrained(str(tmp_path))
    texts = ["Hello [CLS] world [SEP] x", ""]
    assert loaded(texts)["input_ids"] == tok(texts)["input_ids"] == reference(texts)["input_ids"]
    assert (loaded.cls_token_id, loaded.sep_token_id) == (312, 313)
