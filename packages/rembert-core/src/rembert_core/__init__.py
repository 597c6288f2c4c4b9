"""rembert-core: configuration, checkpoint schema and I/O, plugin contract and CLI of rembert.

The names here are the contract a framework package or third-party plugin builds on: the config and
schema, the errors, the :class:`Backend` and :class:`TokenizerSpec` a plugin registers, the
:class:`CheckpointFormat` and :class:`TensorSource` a format plugin provides, the hook markers, and the
loading plan (:func:`plan_load`) that every framework's ``from_pretrained`` runs. The engine behind them
lives in :mod:`rembert_core.io`; the tools (``rembert`` CLI, parity engine, converter, test kit) in
:mod:`rembert_core.cli`, :mod:`rembert_core.parity`, :mod:`rembert_core.convert` and :mod:`rembert_core.testing`.

This package imports neither torch nor TensorFlow. Framework packages
(``rembert-torch``, ``rembert-tf``) and third-party backends plug into it
through the ``rembert`` entry-point group (see :mod:`rembert_core.hookspecs`).
"""

from __future__ import annotations

from importlib import metadata

from rembert_core.backend import Backend, TokenizerSpec
from rembert_core.config import RemBertConfig
from rembert_core.errors import CheckpointError, ConfigError, ConfigFileError, InputError, PluginError, RemBertError
from rembert_core.formats import CheckpointFormat
from rembert_core.hookspecs import HOOKSPEC_VERSION, hookimpl, hookspec
from rembert_core.io.tensors import TensorInfo, TensorSource, open_checkpoint, save_safetensors
from rembert_core.loading import LoadPlan, find_weights, iter_matched, match_weights, open_weights, plan_load
from rembert_core.pipelines import pipeline
from rembert_core.plugins import get_backend, get_backends, get_registry, get_tokenizer, register_plugin
from rembert_core.schema import ARCHITECTURES, TASKS, CheckpointSchema, Layout, SchemaReport, TensorSpec, build_schema

try:
    __version__ = metadata.version("rembert-core")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "ARCHITECTURES",
    "HOOKSPEC_VERSION",
    "TASKS",
    "Backend",
    "CheckpointError",
    "CheckpointFormat",
    "CheckpointSchema",
    "ConfigError",
    "ConfigFileError",
    "InputError",
    "Layout",
    "LoadPlan",
    "PluginError",
    "RemBertConfig",
    "RemBertError",
    "SchemaReport",
    "TensorInfo",
    "TensorSource",
    "TensorSpec",
    "TokenizerSpec",
    "__version__",
    "build_schema",
    "find_weights",
    "get_backend",
    "get_backends",
    "get_registry",
    "get_tokenizer",
    "hookimpl",
    "hookspec",
    "iter_matched",
    "match_weights",
    "open_checkpoint",
    "open_weights",
    "pipeline",
    "plan_load",
    "register_plugin",
    "save_safetensors",
]
