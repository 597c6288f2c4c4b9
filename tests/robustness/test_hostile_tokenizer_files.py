"""Hostile tokenizer directories: the checkpoint file policy, the library-error contract, stable ids.

Every directory is built on the fly from the repository's SentencePiece test model (saved by
``RemBertTokenizerFast.save_pretrained``, then altered) and loaded by both tokenizers' ``from_pretrained``
in a worker process, with a time limit (a reader blocking on a FIFO fails as a hang) and an address-space
cap (a link to ``/dev/zero`` read until memory runs out fails as a crash). The invariants:

* every file of the directory is read under :func:`rembert_core.serialization.check_file`: a FIFO, a
  device or a link leaving the directory is a :class:`~rembert_core.CheckpointError` naming the file, and
  nothing of the outside file reaches the reply;
* a malformed file is a library error naming the file and the field, never a bare ``RecursionError``,
  ``ValueError``, ``TypeError``, ``OverflowError``, ``binascii.Error`` or sentencepiece ``RuntimeError``;
* a file that would move the ids of ``[CLS]``/``[SEP]`` (an added token with an id inside the vocabulary,
  a negative one, a collision) or turn a string into one special token per character is refused; the
  normal files keep the ids they had.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _util import SP_MODEL
from _worker import Worker

CATEGORY = "hostile tokenizer files"
KINDS = ("slow", "fast")
SECRET = "HF_TOKEN=hf_this_must_never_be_read"
TEXT = "Hello <new> world [MASK] end"

#: The ids of a tokenizer saved from the test model: [CLS] 1000, [SEP] 1001, five special tokens added.
CLS, SEP, SIZE = 1000, 1001, 1005


def _saved(directory: Path, *, json_only: bool = False, decoder: bool = True) -> Path:
    """A tokenizer directory as save_pretrained writes it (optionally without sentencepiece.model, so that the
    fast tokenizer reads tokenizer.json, or without the config's added_tokens_decoder, so that both read
    added_tokens.json)."""
    from rembert_tokenizers import RemBertTokenizerFast

    RemBertTokenizerFast(SP_MODEL).save_pretrained(directory)
    if json_only:
        (directory / "sentencepiece.model").unlink()
    if not decoder:
        config = json.loads((directory / "tokenizer_config.json").read_text())
        del config["added_tokens_decoder"]
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


def _load(worker: Worker, kind: str, directory: Path) -> dict[str, Any]:
    return worker.call("tokenizer_ids", timeout=60, kind=kind, path=str(directory), text=TEXT)


def _refused(worker: Worker, kind: str, directory: Path, match: str) -> None:
    reply = _load(worker, kind, directory)
    assert reply["status"] == "library_error", f"{kind} {directory.name}: {json.dumps(reply)[:2000]}"
    assert match in reply["message"], f"{kind} {directory.name}: {reply['message']!r} does not say {match!r}"
    assert SECRET not in json.dumps(reply)


# -- the file policy: links, FIFOs, devices ----------------------------------------------------------

#: file name -> (the tokenizers that read it, how the directory is saved so that they do)
FILES: dict[str, tuple[tuple[str, ...], dict[str, bool]]] = {
    "sentencepiece.model": (KINDS, {}),
    "tokenizer.json": (("fast",), {"json_only": True}),
    "tokenizer_config.json": (KINDS, {}),
    "special_tokens_map.json": (KINDS, {}),
    "added_tokens.json": (KINDS, {"decoder": False}),
}


def _outside_file(root: Path, name: str) -> Path:
    """A valid file of kind ``name`` outside every tokenizer directory (the JSON ones hold the secret)."""
    outside = root / "outside"
    outside.mkdir(exist_ok=True)
    target = outside / name
    source = _saved(root / f"source-{name}", json_only=name == "tokenizer.json")
    if name in ("sentencepiece.model", "tokenizer.json"):
        shutil.copy(source / name, target)
    elif name == "tokenizer_config.json":
        target.write_text(json.dumps({"model_max_length": 512, "secret": SECRET}))
    elif name == "special_tokens_map.json":
        target.write_text(json.dumps({"additional_special_tokens": [SECRET]}))
    else:
        target.write_text(json.dumps({SECRET: 1005}))
    return target


def test_links_and_special_files_are_refused(tmp_path: Path, worker: Worker, cases: Any) -> None:
    for name, (kinds, layout) in FILES.items():
        outside = _outside_file(tmp_path, name)
        attacks: dict[str, tuple[Callable[[Path], None], str]] = {
            "linked outside": (lambda p, target=outside: os.symlink(target, p), "outside its directory"),
            "linked to /dev/zero": (lambda p: os.symlink("/dev/zero", p), "outside its directory"),
            "a FIFO": (os.mkfifo, "a FIFO, not a regular file"),
        }
        for what, (make, match) in attacks.items():
            directory = _saved(tmp_path / f"{name}-{what.replace(' ', '-').replace('/', '')}", **layout)
            if (directory / name).exists():
                (directory / name).unlink()
            make(directory / name)
            for kind in kinds:
                try:
                    _refused(worker, kind, directory, match)
                except AssertionError as exc:
                    raise AssertionError(f"{name} {what}: {exc}") from None
                cases.add(kind=f"{name} {what}")


def test_links_inside_the_directory_and_to_hub_blobs_load(tmp_path: Path, worker: Worker, cases: Any) -> None:
    plain = _saved(tmp_path / "plain")
    expected = {kind: _load(worker, kind, plain) for kind in KINDS}
    assert all(reply["status"] == "ok" for reply in expected.values()), expected
    inside = _saved(tmp_path / "inside")
    for name in ("sentencepiece.model", "tokenizer_config.json"):
        os.replace(inside / name, inside / f"{name}.real")
        os.symlink(f"{name}.real", inside / name)
    # the Hugging Face cache layout: snapshots/<rev>/file -> ../../blobs/<sha>
    repo = tmp_path / "models--org--name"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in _saved(tmp_path / "hub-source").iterdir():
        os.replace(path, blobs / f"sha-{path.name}")
        os.symlink(f"../../blobs/sha-{path.name}", snapshot / path.name)
    for directory in (inside, snapshot):
        for kind in KINDS:
            reply = _load(worker, kind, directory)
            assert reply == expected[kind], (directory, reply)
            cases.add(kind="control: links inside the directory or to hub blobs")


# -- the library-error contract --------------------------------------------------------------------


def _deep(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("name", ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"])
def test_deeply_nested_json_is_a_library_error(name: str, tmp_path: Path, worker: Worker, cases: Any) -> None:
    directory = _saved(tmp_path / "deep", decoder=name != "added_tokens.json")
    (directory / name).write_text('{"a": ' + _deep() + "}")
    for kind in KINDS:
        _refused(worker, kind, directory, name)
        cases.add(kind="deeply nested JSON")


def test_deeply_nested_tokenizer_json_is_a_library_error(tmp_path: Path, worker: Worker, cases: Any) -> None:
    directory = _saved(tmp_path / "deep", json_only=True)
    (directory / "tokenizer.json").write_text('{"model": ' + _deep() + "}")
    _refused(worker, "fast", directory, "tokenizer.json")
    cases.add(kind="deeply nested JSON")


def _vocab(index: int, position: int, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["model"]["vocab"][index].__setitem__(position, value)


def _charsmap(value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        for step in data["normalizer"]["normalizers"]:
            if step.get("type") == "Precompiled":
                step["precompiled_charsmap"] = value

    return mutate


def _added(entry: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["added_tokens"].append(entry)


#: tokenizer.json attacks (the fast tokenizer, no sentencepiece.model): label -> (mutation, expected words)
TOKENIZER_JSON: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unk_id true": (lambda d: d["model"].__setitem__("unk_id", True), "unk_id"),
    "score a string": (_vocab(5, 1, "bar"), "score"),
    "score null": (_vocab(5, 1, None), "score"),
    "score NaN": (_vocab(5, 1, float("nan")), "not a finite number"),
    "score 10**400": (_vocab(5, 1, 10**400), "not a finite number"),
    "empty piece": (_vocab(5, 0, ""), "is empty"),
    "duplicate piece": (lambda d: d["model"]["vocab"][6].__setitem__(0, d["model"]["vocab"][5][0]), "already defined"),
    "piece with a lone surrogate": (_vocab(5, 0, "\ud800"), "vocab"),
    "charsmap not base64": (_charsmap("!!!not base64"), "base64"),
    "charsmap bytes out of range": (_charsmap([300, -1]), "list of bytes"),
    "charsmap a broken blob": (_charsmap("AAAA"), "tokenizer.json"),
    "normalizers not a list": (lambda d: d["normalizer"].__setitem__("normalizers", 5), "normalizers"),
    "byte_fallback a string": (lambda d: d["model"].__setitem__("byte_fallback", "yes"), "byte_fallback"),
    "byte_fallback without byte pieces": (lambda d: d["model"].__setitem__("byte_fallback", True), "byte"),
    "added_tokens not a list": (lambda d: d.__setitem__("added_tokens", 5), "added_tokens"),
    "added token id true": (_added({"id": True, "content": "<new>"}), "added_tokens"),
    "added token id negative": (_added({"id": -3, "content": "<new>", "special": True}), "negative id"),
    "added token id inside the vocabulary": (_added({"id": 5, "content": "<new>"}), "SentencePiece piece"),
    "added token id given twice": (_added({"id": 1001, "content": "<new>"}), "1001"),
    "added token flag a string": (_added({"id": 1005, "content": "<new>", "lstrip": "no"}), "lstrip"),
}


@pytest.mark.parametrize("label", sorted(TOKENIZER_JSON))
def test_malformed_tokenizer_json(label: str, tmp_path: Path, worker: Worker, cases: Any) -> None:
    mutate, match = TOKENIZER_JSON[label]
    directory = _saved(tmp_path / "tj", json_only=True, decoder=False)
    (directory / "added_tokens.json").unlink()  # so that tokenizer.json's added tokens are read
    data = json.loads((directory / "tokenizer.json").read_text())
    mutate(data)
    (directory / "tokenizer.json").write_text(json.dumps(data))
    _refused(worker, "fast", directory, match)
    cases.add(kind="malformed tokenizer.json")


def _model(mutate: Callable[[Any], None]) -> bytes:
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(SP_MODEL.read_bytes())
    mutate(model)
    return bytes(model.SerializeToString())


def _piece(index: int, **fields: Any) -> Callable[[Any], None]:
    def mutate(model: Any) -> None:
        for key, value in fields.items():
            setattr(model.pieces[index], key, value)

    return mutate


SENTENCEPIECE_MODEL: dict[str, tuple[Callable[[Any], None], str]] = {
    "empty piece": (_piece(5, piece=""), "is empty"),
    "duplicate piece": (lambda m: setattr(m.pieces[6], "piece", m.pieces[5].piece), "already defined"),
    "score NaN": (_piece(5, score=float("nan")), "not a finite number"),
    "score inf": (_piece(5, score=float("inf")), "not a finite number"),
    "byte piece without byte_fallback": (_piece(5, piece="<0x41>", type=6), "sentencepiece.model"),
}


@pytest.mark.parametrize("label", sorted(SENTENCEPIECE_MODEL))
def test_malformed_sentencepiece_model(label: str, tmp_path: Path, worker: Worker, cases: Any) -> None:
    mutate, match = SENTENCEPIECE_MODEL[label]
    directory = _saved(tmp_path / "sp")
    (directory / "sentencepiece.model").write_bytes(_model(mutate))
    for kind in KINDS:
        _refused(worker, kind, directory, match)
        cases.add(kind="malformed sentencepiece.model")


#: (file, value written, expected words): tokenizer_config.json holds the saved options plus the value.
CONFIG_FILES: dict[str, tuple[str, dict[str, Any], str]] = {
    "'self' key": ("tokenizer_config.json", {"self": 1}, "'self'"),
    "additional_special_tokens a string (config)": (
        "tokenizer_config.json",
        {"additional_special_tokens": "<new>"},
        "additional_special_tokens",
    ),
    "additional_special_tokens a string (map)": (
        "special_tokens_map.json",
        {"additional_special_tokens": "<new>"},
        "additional_special_tokens",
    ),
    "added_tokens_decoder id inside the vocabulary": (
        "tokenizer_config.json",
        {"added_tokens_decoder": {"5": {"content": "<new>"}}},
        "SentencePiece piece",
    ),
    "added_tokens_decoder id negative": (
        "tokenizer_config.json",
        {"added_tokens_decoder": {"-1": {"content": "<new>"}}},
        "negative id",
    ),
    "added_tokens_decoder id not a number": (
        "tokenizer_config.json",
        {"added_tokens_decoder": {"bar": {"content": "<new>"}}},
        "not an integer",
    ),
    "added_tokens_decoder a list": ("tokenizer_config.json", {"added_tokens_decoder": [1, 2]}, "added_tokens_decoder"),
    "added_tokens_decoder content a number": (
        "tokenizer_config.json",
        {"added_tokens_decoder": {"1005": {"content": 5}}},
        "content",
    ),
    "cls_token a number": ("tokenizer_config.json", {"cls_token": 5}, "cls_token"),
    "cls_token a list (map)": ("special_tokens_map.json", {"cls_token": [1, 2]}, "cls_token"),
    "mask_token flag a string": (
        "tokenizer_config.json",
        {"mask_token": {"content": "[MASK]", "lstrip": "yes"}},
        "lstrip",
    ),
    "do_lower_case a string": ("tokenizer_config.json", {"do_lower_case": "no"}, "do_lower_case"),
    "model_max_length a string": ("tokenizer_config.json", {"model_max_length": "big"}, "model_max_length"),
    "a 5,000-digit number": ("tokenizer_config.json", {"model_max_length": "DIGITS"}, "tokenizer_config.json"),
}


@pytest.mark.parametrize("label", sorted(CONFIG_FILES))
def test_malformed_config_files(label: str, tmp_path: Path, worker: Worker, cases: Any) -> None:
    name, values, match = CONFIG_FILES[label]
    directory = _saved(tmp_path / "cfg", decoder="added_tokens_decoder" not in values)
    if name == "special_tokens_map.json":  # the map's values count only where the config has none
        config = json.loads((directory / "tokenizer_config.json").read_text())
        kept = {k: v for k, v in config.items() if k not in values}
        (directory / "tokenizer_config.json").write_text(json.dumps(kept))
    data = json.loads((directory / name).read_text())
    data.update(values)
    text = json.dumps(data).replace('"DIGITS"', "9" * 5000)
    (directory / name).write_text(text)
    for kind in KINDS:
        _refused(worker, kind, directory, match)
        cases.add(kind="malformed tokenizer_config.json / special_tokens_map.json")


#: added_tokens.json (read when the config has no added_tokens_decoder): {token: id} -> expected words.
ADDED_TOKENS: dict[str, tuple[dict[str, Any], str]] = {
    "id a string": ({"<new>": "bar"}, "not an integer"),
    "id null": ({"<new>": None}, "not an integer"),
    "id a float": ({"<new>": 1.5}, "not an integer"),
    "id true": ({"<new>": True}, "not an integer"),
    "id negative": ({"<new>": -1}, "negative id"),
    "id inside the vocabulary": ({"<new>": 5}, "SentencePiece piece"),
    "id taken by [CLS] next": ({"<new>": 1001}, "already has"),
    "two tokens, one id": ({"<new>": 1000, "<other>": 1000}, "already given"),
    "empty token": ({"": 1000}, "content"),
    "deep value": ({"<new>": [[[[[[[[1]]]]]]]]}, "not an integer"),
}


@pytest.mark.parametrize("label", sorted(ADDED_TOKENS))
def test_malformed_added_tokens_json(label: str, tmp_path: Path, worker: Worker, cases: Any) -> None:
    value, match = ADDED_TOKENS[label]
    directory = _saved(tmp_path / "added", decoder=False)
    (directory / "added_tokens.json").write_text(json.dumps(value))
    for kind in KINDS:
        _refused(worker, kind, directory, match)
        cases.add(kind="malformed added_tokens.json")


# -- controls: the normal files keep their ids -----------------------------------------------------


def test_normal_directories_keep_their_ids(tmp_path: Path, worker: Worker, cases: Any) -> None:
    from rembert_tokenizers import RemBertTokenizer

    reference = RemBertTokenizer(SP_MODEL)
    expected = [reference(TEXT)["input_ids"], CLS, SEP, SIZE]
    layouts: dict[str, dict[str, bool]] = {"saved": {}, "tokenizer.json only": {"json_only": True}}
    for label, layout in layouts.items():
        directory = _saved(tmp_path / label.replace(" ", "-"), **layout)
        for kind in KINDS if not layout else ("fast",):
            reply = _load(worker, kind, directory)
            assert reply == {"status": "ok", "value": expected}, (label, kind, reply)
            cases.add(kind="control: normal directories")
    # added_tokens.json naming the next free id: the new token takes it, the special tokens follow (as transformers)
    directory = _saved(tmp_path / "added-next", decoder=False)
    (directory / "added_tokens.json").write_text(json.dumps({"<new>": 1000}))
    for kind in KINDS:
        reply = _load(worker, kind, directory)
        assert reply["status"] == "ok" and reply["value"][1:] == [1001, 1002, 1006], reply
        assert 1000 in reply["value"][0], reply
        cases.add(kind="control: normal directories")
