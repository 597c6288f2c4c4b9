"""Shared fixtures of the cross-package tests (run by ``nox -s tests-cross`` with every package installed)."""

from __future__ import annotations

import os

# TensorFlow logs at import; keep test output readable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
