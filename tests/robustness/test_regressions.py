"""Regression tests for the bugs the robustness suite found, each pinned to its minimal reproducer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _util import make_h5

from rembert_core import CheckpointError
from rembert_core.io.h5 import open_h5

CATEGORY = "regressions"


def test_h5_with_a_corrupt_attribute_is_a_checkpoint_error(tmp_path: Path, cases: Any) -> None:
    """A bit flipped in the root group's attribute message made h5py raise a bare OSError from attrs.items()."""
    path = make_h5(tmp_path) / "tf_model.h5"
    data = bytearray(path.read_bytes())
    data[24] ^= 1  # found by test_bit_flips[h5]: the superblock's end-of-file address, now too small
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"tf_model\.h5"):
        open_h5(path)
    cases.add()
