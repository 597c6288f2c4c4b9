"""config.json parsing: arbitrary JSON, wrong types, huge numbers. A config or a ConfigError, nothing else.

Parsing runs in the worker subprocess with a timeout and a capped address space, so a config whose
numbers make the parser allocate (``num_labels: 10**12``) shows up as a hang or ``MemoryError``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _util import TINY, fuzz_settings
from _worker import Worker, check
from hypothesis import given
from hypothesis import strategies as st

from rembert_core import RemBertConfig

CATEGORY = "fuzz: config.json"

HUGE_INTS = st.sampled_from([2**31, 2**63, 2**64 + 1, 10**18, 10**400, -(2**63), 10**4299])
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | HUGE_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
FIELDS = sorted({f for f in RemBertConfig().to_dict()} | {"num_labels", "extra", "auto_map", "torch_dtype"})


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker(address_space=2 * 2**30)
    yield w
    w.close()


class Files:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.counter = itertools.count()

    def write(self, text: str | bytes) -> Path:
        path = self.root / f"config{next(self.counter)}.json"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def parse(worker: Worker, path: Path) -> dict[str, Any]:
    reply = worker.call("config", timeout=20, path=str(path))
    check(reply, f"config {path.read_bytes()[:400]!r}")
    if reply["status"] == "library_error":
        assert reply["type"] == "ConfigError", reply
    return reply


def test_valid_config_with_one_field_replaced(worker: Worker, files: Files, cases: Any) -> None:
    @fuzz_settings(400)
    @given(changes=st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=1, max_size=3))
    def fuzz(changes: dict[str, Any]) -> None:
        data = {**TINY, **changes}
        parse(worker, files.write(json.dumps(data)))
        cases.add(kind="valid config, fields replaced")

    fuzz()


def test_arbitrary_json(worker: Worker, files: Files, cases: Any) -> None:
    @fuzz_settings(150)
    @given(data=json_values)
    def fuzz(data: Any) -> None:
        parse(worker, files.write(json.dumps(data)))
        cases.add(kind="arbitrary JSON")

    fuzz()


def test_arbitrary_bytes(worker: Worker, files: Files, cases: Any) -> None:
    @fuzz_settings(100)
    @given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
    def fuzz(data: bytes) -> None:
        parse(worker, files.write(data))
        cases.add(kind="arbitrary bytes")

    fuzz()


PATHOLOGICAL = {
    "nesting 100000 deep": "[" * 100_000 + "]" * 100_000,
    "NaN": '{"layer_norm_eps": NaN}',
    "Infinity": '{"initializer_range": Infinity}',
    "a 5000-digit integer": '{"vocab_size": ' + "9" * 5000 + "}",
    "a 400-digit layer_norm_eps": '{"layer_norm_eps": 1' + "0" * 400 + "}",
    "a 400-digit hidden_dropout_prob": '{"hidden_dropout_prob": 1' + "0" * 400 + "}",
    "num_labels 10**12": '{"num_labels": 1000000000000}',
    "num_labels 10**18 with id2label null": '{"num_labels": 1000000000000000000, "id2label": null}',
    "id2label with a huge key": '{"id2label": {"1' + "0" * 30 + '": "a"}}',
    "id2label with a 5000-digit key": '{"id2label": {"' + "1" * 5000 + '": "a"}}',
    "label2id with a huge id": '{"label2id": {"a": 1' + "0" * 400 + "}}",
    "duplicate keys": '{"vocab_size": 10, "vocab_size": "x"}',
    "UTF-16": '{"vocab_size": 10}'.encode("utf-16").decode("latin-1"),
    "a 1 MB key": '{"' + "k" * 2**20 + '": 1}',
    "model_type of another model": '{"model_type": "bert"}',
    "model_type not a string": '{"model_type": ["rembert"]}',
    "extra not a dict": '{"extra": [1, 2]}',
    "architectures not a list": '{"architectures": "RemBertModel"}',
}


@pytest.mark.parametrize("what", sorted(PATHOLOGICAL))
def test_pathological_configs(what: str, worker: Worker, files: Files, cases: Any) -> None:
    parse(worker, files.write(PATHOLOGICAL[what]))
    cases.add(kind="pathological")
