"""Checkpoint readers on mutated files: bit flips, truncation at every section boundary, lying headers.

Every read runs in a worker subprocess (see ``_worker.py``) with a capped address space: the
invariant is a correct result or a :class:`~rembert_core.CheckpointError`, never a crash, a hang, a
``MemoryError`` from a claimed size, or a bare internal exception.
"""

from __future__ import annotations

import itertools
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _util import (
    fuzz_settings,
    make_h5,
    make_safetensors,
    make_torch_bin,
    safetensors_header,
    safetensors_sections,
    with_header,
)
from _worker import Worker, check
from hypothesis import given
from hypothesis import strategies as st

CATEGORY = "fuzz: checkpoint readers"


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("originals")
    return {
        "single": make_safetensors(base / "single") / "model.safetensors",
        "sharded": make_safetensors(base / "sharded", sharded=True),
        "bin": make_torch_bin(base / "bin") / "pytorch_model.bin",
        "h5": make_h5(base / "h5") / "tf_model.h5",
    }


class Mutant:
    """A fresh directory per case, holding one mutated copy of a checkpoint."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.counter = itertools.count()

    def directory(self, source: Path | None = None) -> Path:
        target = self.root / f"case{next(self.counter)}"
        if source is not None and source.is_dir():
            shutil.copytree(source, target)
        else:
            target.mkdir()
            if source is not None:
                shutil.copy(source.parent / "config.json", target / "config.json")
        return target

    def write(self, source: Path, data: bytes) -> Path:
        target = self.directory(source) / source.name
        target.write_bytes(data)
        return target


@pytest.fixture
def mutant(tmp_path: Path) -> Mutant:
    return Mutant(tmp_path)


OPS = {"single": "safetensors", "bin": "torch_bin", "h5": "h5"}


def run(worker: Worker, op: str, path: Path, what: str) -> dict[str, Any]:
    reply = worker.call(op, timeout=60, path=str(path))
    check(reply, f"{op} on {what}")
    return reply


def test_originals_load(worker: Worker, originals: dict[str, Path], cases: Any) -> None:
    for kind, op in OPS.items():
        reply = run(worker, op, originals[kind], f"the unmodified {kind}")
        assert reply["status"] == "ok", reply
        cases.add(kind="unmodified")
    reply = run(worker, "weights", originals["sharded"], "the unmodified sharded checkpoint")
    assert reply["status"] == "ok", reply
    cases.add(kind="unmodified")


@pytest.mark.parametrize("kind", ["single", "bin", "h5"])
def test_bit_flips(kind: str, worker: Worker, originals: dict[str, Path], mutant: Mutant, cases: Any) -> None:
    data = originals[kind].read_bytes()

    @fuzz_settings(120)
    @given(flips=st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1, max_size=8))
    def flip(flips: list[tuple[int, int]]) -> None:
        mutated = bytearray(data)
        for position, bit in flips:
            mutated[position] ^= 1 << bit
        path = mutant.write(originals[kind], bytes(mutated))
        run(worker, OPS[kind], path, f"{kind} with bits flipped at {flips}")
        if kind != "h5":  # the format-detecting path and from_pretrained too
            run(worker, "weights", path.parent, f"{kind} directory with bits flipped at {flips}")
        cases.add(kind=f"bit flips ({kind})")

    flip()


def _boundaries(kind: str, data: bytes) -> list[int]:
    if kind == "single":
        return safetensors_sections(data)
    points = {0, 1, 8, 64, 512, len(data) // 2, len(data) - 22, len(data) - 1}  # zip end record is 22 bytes
    if kind == "bin":
        import io

        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                points |= {info.header_offset, info.header_offset + 30, info.header_offset + 30 + len(info.filename)}
                end = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size
                points |= {end - 1, end, end + 1}
    else:  # HDF5: superblock, then object headers; cut everywhere on a coarse grid as well
        points |= set(range(0, len(data), max(1, len(data) // 64)))
    return sorted(p for p in points if 0 <= p < len(data))


@pytest.mark.parametrize("kind", ["single", "bin", "h5"])
def test_truncation_at_every_section_boundary(
    kind: str, worker: Worker, originals: dict[str, Path], mutant: Mutant, cases: Any
) -> None:
    data = originals[kind].read_bytes()
    for cut in _boundaries(kind, data):
        path = mutant.write(originals[kind], data[:cut])
        run(worker, OPS[kind], path, f"{kind} truncated to {cut} of {len(data)} bytes")
        cases.add(kind=f"truncations ({kind})")


HUGE = [2**31, 2**40, 2**62, 2**63 - 1, 2**64 - 1]


def _lying_headers(data: bytes) -> Iterator[tuple[str, bytes]]:
    header, body = safetensors_header(data)
    names = [k for k in header if k != "__metadata__"]
    first, second = names[0], names[1]
    for size in [*HUGE, 0, 7, len(data)]:
        yield f"header length {size}", with_header(header, body, claimed_size=size)
    for dims in ([2**20, 2**20, 2**20], [2**40], [-1, 4], [2**63 - 1, 2], [0, 2**62]):
        h = json.loads(json.dumps(header))
        h[first]["shape"] = dims
        yield f"shape {dims}", with_header(h, body)
    for offsets in ([-8, 16], [0, -1], [0, 2**40], [2**62, 2**62 + 4], [16, 8], [0, 2**64 - 1]):
        h = json.loads(json.dumps(header))
        h[first]["data_offsets"] = offsets
        yield f"offsets {offsets}", with_header(h, body)
    h = json.loads(json.dumps(header))
    h[second]["data_offsets"] = h[first]["data_offsets"]
    yield "two tensors over the same bytes", with_header(h, body)
    h = json.loads(json.dumps(header))
    h[second]["data_offsets"] = [h[first]["data_offsets"][0] + 4, h[second]["data_offsets"][1]]
    yield "overlapping tensors", with_header(h, body)
    for dtype in ("F8_E4M3", "X99", "", 12, None, "U64"):
        h = json.loads(json.dumps(header))
        h[first]["dtype"] = dtype
        yield f"dtype {dtype!r}", with_header(h, body)
    for meta in ({"format": 5}, [], "x", {"a": {"b": 1}}):
        h = json.loads(json.dumps(header))
        h["__metadata__"] = meta
        yield f"metadata {meta!r}", with_header(h, body)
    yield "header not JSON", struct_prefix(b"{not json") + body
    yield "header JSON array", with_header([], body)  # type: ignore[arg-type]
    yield "header not UTF-8", struct_prefix(b'{"\xff\xfe": 1}   ') + body
    yield "empty file", b""
    yield "header only", with_header(header, b"")


def struct_prefix(raw: bytes) -> bytes:
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def test_safetensors_headers_that_lie(worker: Worker, originals: dict[str, Path], mutant: Mutant, cases: Any) -> None:
    data = originals["single"].read_bytes()
    for what, mutated in _lying_headers(data):
        path = mutant.write(originals["single"], mutated)
        run(worker, "safetensors", path, what)
        run(worker, "weights", path.parent, what)
        cases.add(kind="lying headers (safetensors)")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def test_safetensors_header_fields_fuzzed(
    worker: Worker, originals: dict[str, Path], mutant: Mutant, cases: Any
) -> None:
    data = originals["single"].read_bytes()
    header, body = safetensors_header(data)
    names = [k for k in header if k != "__metadata__"]

    @fuzz_settings(150)
    @given(
        name=st.sampled_from(names),
        field=st.sampled_from(["dtype", "shape", "data_offsets", None]),
        value=json_values,
    )
    def fuzz(name: str, field: str | None, value: Any) -> None:
        h = json.loads(json.dumps(header))
        if field is None:
            h[name] = value
        else:
            h[name][field] = value
        path = mutant.write(originals["single"], with_header(h, body))
        run(worker, "safetensors", path, f"{name}.{field} = {value!r}")
        cases.add(kind="fuzzed header fields (safetensors)")

    fuzz()


def test_sharded_index_fuzzed(worker: Worker, originals: dict[str, Path], mutant: Mutant, cases: Any) -> None:
    source = originals["sharded"]
    index = json.loads((source / "model.safetensors.index.json").read_text())
    names = list(index["weight_map"])

    @fuzz_settings(120)
    @given(
        edits=st.lists(
            st.tuples(
                st.sampled_from(names),
                st.one_of(
                    json_values,
                    st.sampled_from(sorted(set(index["weight_map"].values()))),
                    st.sampled_from(["../x.safetensors", "/etc/passwd", "", ".", "sub/../../x", "a\\b", "config.json"]),
                ),
            ),
            max_size=4,
        ),
        drop=st.booleans(),
        whole=st.one_of(st.none(), json_values),
    )
    def fuzz(edits: list[tuple[str, Any]], drop: bool, whole: Any) -> None:
        data: Any = json.loads(json.dumps(index))
        for name, value in edits:
            data["weight_map"][name] = value
        if drop:
            data["weight_map"].pop(names[0])
        if whole is not None:
            data = whole
        target = mutant.directory(source)
        (target / "model.safetensors.index.json").write_text(json.dumps(data))
        run(worker, "weights", target, f"index {json.dumps(data)[:300]}")
        cases.add(kind="fuzzed shard index")

    fuzz()


def test_torch_bin_from_pretrained_mutations(
    worker: Worker, originals: dict[str, Path], mutant: Mutant, cases: Any
) -> None:
    """rembert_torch's from_pretrained on a few mutated pytorch_model.bin files (and the original)."""
    data = originals["bin"].read_bytes()
    for cut in [len(data), *_boundaries("bin", data)[::3]]:
        path = mutant.write(originals["bin"], data[:cut])
        reply = run(worker, "torch_from_pretrained", path.parent, f"pytorch_model.bin cut at {cut}")
        if cut == len(data):
            assert reply["status"] == "ok", reply
        cases.add(kind="from_pretrained (torch, .bin)")
