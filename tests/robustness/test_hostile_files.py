"""Hostile checkpoint directories: nothing outside the directory is read, nothing hangs or explodes.

Each attack is built on the fly and run through every reader in a worker process (with a time limit,
so a reader that blocks on a FIFO fails as a hang instead of hanging the suite, and an address-space
cap, so a decompression bomb fails as a crash): ``open_weights`` (what every framework's loading plan
opens), ``rembert inspect``, ``rembert convert`` and rembert-torch's ``from_pretrained``. The invariant:
a :class:`~rembert_core.CheckpointError` or :class:`~rembert_core.ConfigError` that names the problem,
and no byte of the outside file in any output.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _util import make_safetensors, random_tensors, tiny_config
from _worker import Worker

from rembert_core import save_safetensors

CATEGORY = "hostile files"

SECRET = "HF_TOKEN=hf_this_must_never_be_read"

#: The readers every attack goes through, as worker ops taking the checkpoint directory.
READERS = ("weights", "inspect", "torch_from_pretrained")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside every checkpoint directory holding a 'secret'."""
    secret = tmp_path / "outside" / "environ"
    secret.parent.mkdir()
    secret.write_text(SECRET * 200)
    return secret


def _refused(worker: Worker, op: str, match: str, **args: Any) -> dict[str, Any]:
    reply = worker.call(op, timeout=60, **args)
    assert reply["status"] == "library_error", f"{op} {args}: {json.dumps(reply)[:2000]}"
    assert match in reply["message"], f"{op}: {reply['message']!r} does not say {match!r}"
    assert SECRET not in json.dumps(reply)
    return reply


def _all_refuse(
    worker: Worker, directory: Path, match: str, cases: Any, kind: str, readers: tuple[str, ...] = READERS
) -> None:
    for op in readers:
        _refused(worker, op, match, path=str(directory))
        cases.add(kind=kind)
    dst = directory.parent / (directory.name + "-converted")
    _refused(worker, "convert", match, src=str(directory), dst=str(dst))
    assert not dst.exists() or not any(dst.iterdir())
    cases.add(kind=kind)


# -- HDF5 datasets whose bytes live elsewhere ----------------------------------------------------------


def _h5_checkpoint(directory: Path, build: Any) -> Path:
    """A tf_model.h5 in transformers' layout, ``build(h5file, dataset name, array, index)`` writing each dataset."""
    h5py = pytest.importorskip("h5py")
    directory.mkdir()
    config = tiny_config()
    config.save_pretrained(directory)
    with h5py.File(directory / "tf_model.h5", "w") as f:
        for i, (name, array) in enumerate(random_tensors(config).items()):
            parts = name.split(".")
            leaf = {"weight": "kernel:0" if array.ndim == 2 else "gamma:0", "bias": "bias:0"}[parts[-1]]
            body = "/".join(p if not p.isdigit() else f"layer_._{p}" for p in parts[:-1] if p != "layer")
            build(f, f"rembert/tf_rem_bert_model/rembert/{body}/{leaf}", array.T if array.ndim == 2 else array, i)
        f.attrs["backend"] = "tensorflow"
    return directory


def test_h5_external_storage_is_refused(tmp_path: Path, outside: Path, worker: Worker, cases: Any) -> None:
    size = outside.stat().st_size

    def build(f: Any, name: str, array: np.ndarray, i: int) -> None:
        if i == 0:  # the first dataset's bytes come from the outside file
            count = min(array.size, size // 4)
            f.create_dataset(name, shape=(count,), dtype="float32", external=[(str(outside), 0, count * 4)])
        else:
            f.create_dataset(name, data=array)

    directory = _h5_checkpoint(tmp_path / "external", build)
    _all_refuse(worker, directory, "stores its data in external file", cases, "h5 external storage")


def test_h5_virtual_dataset_is_refused(tmp_path: Path, outside: Path, worker: Worker, cases: Any) -> None:
    h5py = pytest.importorskip("h5py")
    other = outside.parent / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.frombuffer(SECRET.encode() * 4, dtype=np.uint8).astype(np.float32))

    def build(f: Any, name: str, array: np.ndarray, i: int) -> None:
        if i == 0:
            layout = h5py.VirtualLayout(shape=(len(SECRET) * 4,), dtype="float32")
            layout[:] = h5py.VirtualSource(str(other), "data", shape=(len(SECRET) * 4,))
            f.create_virtual_dataset(name, layout)
        else:
            f.create_dataset(name, data=array)

    directory = _h5_checkpoint(tmp_path / "virtual", build)
    _all_refuse(worker, directory, "is a virtual dataset", cases, "h5 virtual dataset")


def test_h5_decompression_bomb_is_refused_quickly(tmp_path: Path, worker: Worker, cases: Any) -> None:
    def build(f: Any, name: str, array: np.ndarray, i: int) -> None:
        if i == 0:  # 2**21 rows of zeros: 64 MiB or more that gzip to a few hundred KB
            rows = np.zeros((2**21, array.shape[-1]), dtype=np.float32)
            f.create_dataset(name, data=rows, compression="gzip", compression_opts=9, chunks=(2**15, array.shape[-1]))
        else:
            f.create_dataset(name, data=array)

    directory = _h5_checkpoint(tmp_path / "bomb", build)
    assert (directory / "tf_model.h5").stat().st_size < 4 * 2**20
    start = time.perf_counter()
    _all_refuse(worker, directory, "decompression bomb", cases, "h5 decompression bomb")
    assert time.perf_counter() - start < 60


# -- files that are links, FIFOs or devices --------------------------------------------------------


def _link_cases(root: Path, outside: Path) -> Iterator[tuple[str, Path, str]]:
    """(what, directory, expected message) for each link or special file a directory may hold.

    (``open_weights`` reads no config, so the config.json cases go through the other readers only.)
    """
    for name in ("model.safetensors", "config.json"):
        d = make_safetensors(root / f"link-{name}")
        (d / name).unlink()
        os.symlink(outside, d / name)
        yield f"{name} linked outside", d, "outside its directory"
        d = make_safetensors(root / f"dev-{name}")
        (d / name).unlink()
        os.symlink("/dev/zero", d / name)
        yield f"{name} linked to /dev/zero", d, "outside its directory"
        d = make_safetensors(root / f"fifo-{name}")
        (d / name).unlink()
        os.mkfifo(d / name)
        yield f"{name} a FIFO", d, "a FIFO, not a regular file"
    d = make_safetensors(root / "journal-link")
    os.symlink(outside, d / ".rembert-save-journal.json")
    yield "journal linked outside", d, "outside its directory"
    d = make_safetensors(root / "journal-fifo")
    os.mkfifo(d / ".rembert-save-journal.json")
    yield "journal a FIFO", d, "a FIFO, not a regular file"


def test_links_and_special_files_are_refused(tmp_path: Path, outside: Path, worker: Worker, cases: Any) -> None:
    for what, directory, match in _link_cases(tmp_path, outside):
        readers = READERS
        if what.startswith("config.json"):
            readers = tuple(r for r in READERS if r != "weights")  # (open_weights reads no config)
        elif what.startswith("journal"):
            readers = tuple(r for r in READERS if r != "inspect")  # (read-only: reports the journal, never reads it)
        try:
            _all_refuse(worker, directory, match, cases, what, readers)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None


def test_links_inside_the_directory_and_to_hub_blobs_load(tmp_path: Path, worker: Worker, cases: Any) -> None:
    # a link to another file of the same directory
    d = make_safetensors(tmp_path / "inside")
    os.replace(d / "model.safetensors", d / "weights.bin.real")
    os.symlink("weights.bin.real", d / "model.safetensors")
    assert worker.call("weights", path=str(d))["status"] == "ok"
    cases.add(kind="link inside the directory")
    # the Hugging Face cache layout: snapshots/<rev>/file -> ../../blobs/<sha>
    repo = tmp_path / "models--org--name"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "abc123"
    src = make_safetensors(tmp_path / "src")
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        os.replace(src / name, blobs / f"sha-{name}")
        os.symlink(f"../../blobs/sha-{name}", snapshot / name)
    for op in READERS:
        reply = worker.call(op, path=str(snapshot))
        assert reply["status"] == "ok", reply
        cases.add(kind="hub cache snapshot")


# -- a TensorFlow checkpoint state file that points elsewhere ------------------------------------------


def test_tf_checkpoint_state_file_cannot_point_outside(
    tmp_path: Path, outside: Path, tf_worker: Worker, cases: Any
) -> None:
    # a prefix outside the directory that tf.train.latest_checkpoint accepts (its .index exists)
    (outside.parent / "model.ckpt-1.index").write_bytes(b"")
    for target in (str(outside.parent / "model.ckpt-1"), "../outside/model.ckpt-1"):
        d = tmp_path / f"state-{len(target)}"
        d.mkdir()
        tiny_config().save_pretrained(d)
        (d / "decoy.index").write_bytes(b"")  # makes the directory look like a TF checkpoint
        (d / "checkpoint").write_text(f'model_checkpoint_path: "{target}"\n')
        reply = tf_worker.call("tf_checkpoint", timeout=120, path=str(d))
        assert reply["status"] == "library_error" and "outside the checkpoint directory" in reply["message"], reply
        cases.add(kind="tf checkpoint state file")


# -- sizes a tiny file claims ------------------------------------------------------------------------


def test_stride_zero_bin_is_refused(tmp_path: Path, worker: Worker, cases: Any) -> None:
    torch = pytest.importorskip("torch")
    d = tmp_path / "stride0"
    d.mkdir()
    config = tiny_config()
    config.save_pretrained(d)
    tensors = {k: torch.from_numpy(v) for k, v in random_tensors(config).items()}
    row = tensors["embeddings.word_embeddings.weight"][:1]
    tensors["embeddings.word_embeddings.weight"] = row.expand(2**21, row.shape[1])  # stride 0: 32 bytes on disk
    torch.save(tensors, d / "pytorch_model.bin")
    assert (d / "pytorch_model.bin").stat().st_size < 2**20
    for op in (*READERS, "torch_bin"):
        path = d / "pytorch_model.bin" if op == "torch_bin" else d
        _refused(worker, op, "overlapping elements", path=str(path))
        cases.add(kind="stride-0 pytorch_model.bin")


def test_config_claiming_a_million_layers_fails_fast(tmp_path: Path, worker: Worker, cases: Any) -> None:
    d = make_safetensors(tmp_path / "layers")
    config = json.loads((d / "config.json").read_text())
    config["num_hidden_layers"] = 1_000_000
    (d / "config.json").write_text(json.dumps(config))
    assert (d / "config.json").stat().st_size < 1024
    start = time.perf_counter()
    readers = tuple(r for r in READERS if r != "weights")  # (open_weights reads no config)
    _all_refuse(worker, d, "num_hidden_layers=1000000", cases, "config sizes beyond the checkpoint", readers)
    assert time.perf_counter() - start < 30


def test_a_real_sharded_checkpoint_still_loads(tmp_path: Path, worker: Worker, cases: Any) -> None:
    d = tmp_path / "sharded"
    d.mkdir()
    config = tiny_config()
    config.save_pretrained(d)
    save_safetensors(random_tensors(config), d, max_shard_size=2000)
    for op in READERS:
        assert worker.call(op, path=str(d))["status"] == "ok"
        cases.add(kind="control: a real checkpoint")
