"""Loading never runs code from files: malicious pickles refused, index paths confined, no network, no imports.

Each malicious ``pytorch_model.bin`` carries a payload whose unpickling would create a marker file;
every loader is made to open it (torch ``from_pretrained``, ``rembert convert``, ``rembert inspect``,
TensorFlow ``from_pretrained`` which reads ``.bin`` through rembert-torch's format) and the test
proves the load was refused with a :class:`~rembert_core.CheckpointError` and the marker never
appeared.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _util import SP_MODEL, make_safetensors, random_tensors, tiny_config
from _worker import Worker

from rembert_core import CheckpointError, RemBertConfig
from rembert_core.loading import open_weights

CATEGORY = "security"


class Payload:
    """Unpickling this runs ``exec(code)``: the classic malicious-pickle gadget."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (self.code,)


def marker_code(marker: Path) -> str:
    return f"import pathlib; pathlib.Path({str(marker)!r}).write_text('payload ran')"


def malicious_bins(root: Path) -> Iterator[tuple[str, Path, Path]]:
    """(description, checkpoint directory, marker file) for each way of hiding the payload."""
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in random_tensors(tiny_config()).items()}

    def directory(name: str) -> tuple[Path, Path]:
        d = root / name
        d.mkdir()
        tiny_config().save_pretrained(d)
        return d, root / f"{name}.marker"

    d, marker = directory("zip-extra-key")
    torch.save({**tensors, "x": Payload(marker_code(marker))}, d / "pytorch_model.bin")
    yield "torch.save zip, payload beside the tensors", d, marker

    d, marker = directory("zip-only-payload")
    torch.save(Payload(marker_code(marker)), d / "pytorch_model.bin")
    yield "torch.save zip, the payload is the whole pickle", d, marker

    d, marker = directory("legacy-pickle")
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker_code(marker)), protocol=2))
    yield "a bare (non-zip) pickle", d, marker

    d, marker = directory("legacy-torch")
    torch.save(
        {**tensors, "x": Payload(marker_code(marker))}, d / "pytorch_model.bin", _use_new_zipfile_serialization=False
    )
    yield "torch.save legacy format", d, marker

    d, marker = directory("zip-swapped-pickle")  # a valid zip whose data.pkl was replaced
    torch.save(tensors, d / "good.bin")
    with zipfile.ZipFile(d / "good.bin") as src, zipfile.ZipFile(d / "pytorch_model.bin", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = pickle.dumps(Payload(marker_code(marker)), protocol=2)
            dst.writestr(info, data)
    (d / "good.bin").unlink()
    yield "a valid zip with data.pkl swapped", d, marker

    d, marker = directory("sharded")
    torch.save(tensors, d / "pytorch_model-00001-of-00002.bin")
    torch.save({"y": Payload(marker_code(marker))}, d / "pytorch_model-00002-of-00002.bin")
    index = {
        "weight_map": {
            **dict.fromkeys(tensors, "pytorch_model-00001-of-00002.bin"),
            "y": "pytorch_model-00002-of-00002.bin",
        }
    }
    (d / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    yield "the second shard of a sharded .bin", d, marker


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path, Path]]:
    return list(malicious_bins(tmp_path_factory.mktemp("malicious")))


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMBERT_")}
    return subprocess.run(
        [sys.executable, "-m", "rembert_core.cli", *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd
    )


def test_payload_really_runs_when_unpickled(tmp_path: Path, cases: Any) -> None:
    """The control: the gadget works, so its absence below means the loaders refused it."""
    marker = tmp_path / "control.marker"
    pickle.loads(pickle.dumps(Payload(marker_code(marker))))
    assert marker.read_text() == "payload ran"
    cases.add(kind="control")


def test_torch_from_pretrained_refuses(bins: list[tuple[str, Path, Path]], cases: Any) -> None:
    from rembert_torch import RemBertModel

    for what, directory, marker in bins:
        with pytest.raises(CheckpointError, match="weights_only|state dict|cannot load"):
            RemBertModel.from_pretrained(directory)
        with pytest.raises(CheckpointError):
            open_weights(directory)
        assert not marker.exists(), f"payload ran: {what}"
        cases.add(2, kind="torch from_pretrained / open_weights")


@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_cli_refuses(
    command: str, bins: list[tuple[str, Path, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str], cases: Any
) -> None:
    """The CLI's own entry point in this process (one real subprocess run below proves the same end to end)."""
    from rembert_core.cli import main

    for what, directory, marker in bins:
        args = [str(directory), str(tmp_path / directory.name)] if command == "convert" else [str(directory)]
        code = main([command, *args, "--no-progress" if command == "convert" else "--json"])
        err = capsys.readouterr().err
        assert code == 2 and f"rembert {command}: error:" in err, (what, code, err)
        assert not marker.exists(), f"payload ran: rembert {command} on {what}"
        if command == "convert":
            assert not (tmp_path / directory.name / "config.json").exists()
        cases.add(kind=f"rembert {command}")
    what, directory, marker = bins[0]
    extra = [str(tmp_path / "sub"), "--no-progress"] if command == "convert" else []
    result = cli(command, str(directory), *extra)
    assert result.returncode == 2 and f"rembert {command}: error:" in result.stderr, (what, result)
    assert not marker.exists()
    cases.add(kind=f"rembert {command}")


def test_tf_from_pretrained_refuses(bins: list[tuple[str, Path, Path]], tf_worker: Worker, cases: Any) -> None:
    for what, directory, marker in bins:
        reply = tf_worker.call("tf_from_pretrained", timeout=300, path=str(directory))
        assert reply["status"] == "library_error" and reply["type"] == "CheckpointError", (what, reply)
        assert not marker.exists(), f"payload ran: TF from_pretrained on {what}"
        cases.add(kind="TF from_pretrained")


# -- paths from index files --------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A complete, valid checkpoint outside the one under attack, which an escaping path would reach."""
    return make_safetensors(tmp_path / "outside", sharded=True)


def _escape_cases(tmp_path: Path, outside: Path) -> Iterator[tuple[str, Path]]:
    shards = sorted(p.name for p in outside.glob("model-*.safetensors"))
    index = json.loads((outside / "model.safetensors.index.json").read_text())
    for what, shard in [
        ("../ relative path", f"../outside/{shards[0]}"),
        ("absolute path", str(outside / shards[0])),
        ("./../ path", f"./../outside/{shards[0]}"),
        ("sub/../../ path", f"sub/../../outside/{shards[0]}"),
        ("backslash path", f"..\\outside\\{shards[0]}"),
        ("file URL", f"file://{outside / shards[0]}"),
    ]:
        d = tmp_path / f"victim{len(list(tmp_path.iterdir()))}"
        shutil.copytree(outside, d)
        (d / "sub").mkdir()
        data = json.loads(json.dumps(index))
        first = next(k for k, v in data["weight_map"].items() if v == shards[0])
        data["weight_map"][first] = shard
        (d / "model.safetensors.index.json").write_text(json.dumps(data))
        yield what, d
    d = tmp_path / "victim-symlink"
    shutil.copytree(outside, d)
    link = d / "model-link.safetensors"
    link.symlink_to(outside / shards[0])
    data = json.loads(json.dumps(index))
    for k, v in data["weight_map"].items():
        if v == shards[0]:
            data["weight_map"][k] = link.name
    (d / "model.safetensors.index.json").write_text(json.dumps(data))
    yield "a symlink pointing outside", d


def test_index_paths_cannot_escape(tmp_path: Path, outside: Path, cases: Any) -> None:
    from rembert_torch import RemBertModel

    for _what, directory in _escape_cases(tmp_path, outside):
        with pytest.raises(CheckpointError, match="escapes the checkpoint directory|invalid shard path|does not exist"):
            open_weights(directory)
        with pytest.raises(CheckpointError):
            RemBertModel.from_pretrained(directory)
        cases.add(2, kind="safetensors index")
        # the same weight map as a pytorch_model.bin index
        bin_dir = directory.with_name(directory.name + "-bin")
        bin_dir.mkdir()
        tiny_config().save_pretrained(bin_dir)
        data = json.loads((directory / "model.safetensors.index.json").read_text())
        data["weight_map"] = {k: v.replace(".safetensors", ".bin") for k, v in data["weight_map"].items()}
        (bin_dir / "pytorch_model.bin.index.json").write_text(json.dumps(data))
        with pytest.raises(CheckpointError, match="escapes the checkpoint directory|invalid shard path|does not exist"):
            open_weights(bin_dir)
        cases.add(kind="pytorch_model.bin index")


# -- config and tokenizer files: no code, no network --------------------------------------------------


class NetworkAttempt(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way of opening a connection raises and is recorded."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise NetworkAttempt(f"network access attempted: {name}")

        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return attempts


EVIL_MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")

class Evil:
    def __init__(self, *args, **kwargs):
        pathlib.Path({marker!r}).write_text("instantiated")

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return cls()
"""


@pytest.fixture
def hostile_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint + tokenizer directory whose JSON files ask for remote code, with the code beside them."""
    directory = make_safetensors(tmp_path / "hostile")
    marker = tmp_path / "evil.marker"
    (directory / "evil_code.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    remote = {
        "auto_map": {
            "AutoConfig": "evil_code.Evil",
            "AutoModel": "evil_code.Evil",
            "AutoTokenizer": ["evil_code.Evil", "evil_code.Evil"],
        },
        "trust_remote_code": True,
        "custom_pipelines": {"x": {"impl": "evil_code.Evil"}},
        "_name_or_path": "https://example.invalid/evil",
        "tokenizer_class": "evil_code.Evil",
        "config_class": "evil_code.Evil",
        "architectures": ["Evil"],
    }
    config = json.loads((directory / "config.json").read_text())
    config.update({k: v for k, v in remote.items() if k != "architectures"})
    (directory / "config.json").write_text(json.dumps(config))
    shutil.copy(SP_MODEL, directory / "sentencepiece.model")
    (directory / "tokenizer_config.json").write_text(json.dumps({**remote, "do_lower_case": False}))
    (directory / "special_tokens_map.json").write_text(json.dumps({"cls_token": "[CLS]"}))
    return directory, marker


def test_config_and_tokenizer_files_run_no_code_and_open_no_socket(
    hostile_dir: tuple[Path, Path], no_network: list[str], monkeypatch: pytest.MonkeyPatch, cases: Any
) -> None:
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast
    from rembert_torch import RemBertModel

    directory, marker = hostile_dir
    monkeypatch.syspath_prepend(str(directory))  # the evil module is importable: only asking would run it
    monkeypatch.chdir(directory)
    loads = {
        "RemBertConfig.from_pretrained": lambda: RemBertConfig.from_pretrained(directory),
        "open_weights": lambda: open_weights(directory).infos(),
        "RemBertModel.from_pretrained": lambda: RemBertModel.from_pretrained(directory),
        "RemBertTokenizer.from_pretrained": lambda: RemBertTokenizer.from_pretrained(directory)("hi"),
        "RemBertTokenizerFast.from_pretrained": lambda: RemBertTokenizerFast.from_pretrained(directory)("hi"),
    }
    for what, load in loads.items():
        try:
            load()
        except NetworkAttempt:
            raise
        except CheckpointError:  # refusing the file is fine too; running its code or going online is not
            pass
        assert not no_network, f"{what} tried the network: {no_network}"
        assert not marker.exists(), f"{what} ran code named by the files"
        assert "evil_code" not in sys.modules, f"{what} imported the module named by auto_map"
        cases.add(kind="config/tokenizer loads with auto_map")
    config = RemBertConfig.from_pretrained(directory)
    assert config.extra["auto_map"]["AutoModel"] == "evil_code.Evil"  # kept as data, written back, never used
    assert (
        RemBertTokenizerFast.from_pretrained(directory)("hello world")["input_ids"]
        == RemBertTokenizerFast(str(SP_MODEL))("hello world")["input_ids"]
    )
    cases.add(kind="config/tokenizer loads with auto_map")


def test_cli_on_hostile_dir_opens_no_socket(hostile_dir: tuple[Path, Path], tmp_path: Path, cases: Any) -> None:
    """``rembert inspect``/``convert`` in a fresh process with sockets blocked by a sitecustomize."""
    directory, marker = hostile_dir
    site = tmp_path / "site"
    site.mkdir()
    log = tmp_path / "network.log"
    (site / "sitecustomize.py").write_text(
        "import socket\n"
        "def _blocked(*a, **k):\n"
        f"    open({str(log)!r}, 'a').write(repr(a) + '\\n')\n"
        "    raise OSError('network blocked by the robustness suite')\n"
        "socket.socket.connect = _blocked\nsocket.socket.connect_ex = _blocked\n"
        "socket.create_connection = _blocked\nsocket.getaddrinfo = _blocked\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMBERT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(directory), env.get("PYTHONPATH", "")])
    for args in (["inspect", str(directory)], ["convert", str(directory), str(tmp_path / "out"), "--no-progress"]):
        result = subprocess.run(
            [sys.executable, "-m", "rembert_core.cli", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert not log.exists(), log.read_text()
        assert not marker.exists()
        cases.add(kind="CLI with sockets blocked")
    assert np.array_equal(
        open_weights(tmp_path / "out")["embeddings.word_embeddings.weight"],
        open_weights(directory)["embeddings.word_embeddings.weight"],
    )
