"""The backend contract: what a framework package (ours or a third party's) offers to rembert.

A backend converts through NumPy, like safetensors: it takes canonical tensors
(:mod:`rembert_core.schema` names and layouts) and NumPy inputs, and returns
NumPy outputs. That is enough for the parity engine to build the same model in
every backend, feed it the same batch, and compare every output and gradient.

Backends register through the ``register_backends`` hook
(:mod:`rembert_core.hookspecs`). Registering must be cheap: construct the
:class:`Backend` object without importing the framework; import it inside the
methods (the ``rembert backends`` command lists backends without loading them).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rembert_core.config import RemBertConfig
from rembert_core.io.dtypes import COMPUTE_DTYPES
from rembert_core.schema import TASKS

__all__ = ["DTYPES", "INPUT_NAMES", "OUTPUT_NAMES", "Backend", "TokenizerSpec"]

#: Compute dtypes a backend may declare.
DTYPES = COMPUTE_DTYPES

#: Input arrays :meth:`Backend.forward` may receive (all integer arrays but the float ones noted).
INPUT_NAMES = (
    "input_ids",  # int (batch, seq), or (batch, choices, seq) for multiple_choice
    "attention_mask",  # int/float 0-1, same shape as input_ids
    "token_type_ids",  # int, same shape as input_ids
    "position_ids",  # int, same shape as input_ids
    "inputs_embeds",  # float (batch, seq, input_embedding_size), instead of input_ids
    "encoder_hidden_states",  # float (batch, enc_seq, hidden) for cross-attention
    "encoder_attention_mask",  # int/float (batch, enc_seq)
    "labels",  # task-dependent shape, see the heads
    "start_positions",  # int (batch,) for question_answering
    "end_positions",  # int (batch,) for question_answering
)

#: Output fields :meth:`Backend.forward` may return (reference field names).
OUTPUT_NAMES = (
    "loss",
    "logits",
    "start_logits",
    "end_logits",
    "last_hidden_state",
    "pooler_output",
    "hidden_states",
    "attentions",
    "cross_attentions",
    "past_key_values",
)


class Backend(abc.ABC):
    """A framework implementation of RemBERT, seen through NumPy.

    Subclasses set the class attributes and implement the five methods. The
    ``model`` objects are opaque to rembert: whatever :meth:`build_model` returns
    is passed back to the other methods.
    """

    #: Backend name users select (``--backends torch,tf``); unique across plugins.
    name: str = ""
    #: Version of the backend implementation (usually its distribution's version).
    version: str = ""
    #: Distribution that provides the backend (for error messages and ``rembert backends``).
    distribution: str = ""
    #: Tasks the backend can build, a subset of :data:`rembert_core.schema.TASKS`.
    tasks: tuple[str, ...] = TASKS
    #: Compute dtypes the backend supports, a subset of :data:`DTYPES`.
    dtypes: tuple[str, ...] = ("float32",)
    #: Top-level modules the backend imports when used (``("torch",)``, ``("tensorflow", "keras")``).
    #: Optional: ``rembert backends`` reports a backend whose modules are missing as unavailable, and
    #: ``rembert backends --strict`` and ``rembert parity`` import them first, quietly, to say why one fails.
    requires: tuple[str, ...] = ()
    #: Non-empty for a backend that wraps a reference implementation, naming it (say
    #: ``"transformers 4.57.6 (PyTorch classes)"``): ``rembert parity`` compares every other backend with it and
    #: names it in its verdict. Optional; empty for ordinary backends.
    reference: str = ""
    #: False for a backend that computes the rows of a batch that are padding only (no real token) its own
    #: way, where the reference PyTorch classes mask every key with the dtype's minimum (transformers' TF
    #: classes add -10000, so such a row attends as if unmasked). ``rembert parity`` then compares it on the
    #: rows that hold a real token. Optional; True for ordinary backends.
    padding_only_rows: bool = True

    def describe(self) -> dict[str, Any]:
        """Name, version, distribution, tasks and dtypes as a plain dict."""
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "tasks": list(self.tasks),
            "dtypes": list(self.dtypes),
        }

    @abc.abstractmethod
    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> Any:
        """A model of ``task`` for ``config`` in evaluation mode (no dropout), computing in ``dtype``.

        Its weights are unspecified until :meth:`load_tensors` is called.
        """

    @abc.abstractmethod
    def load_tensors(self, model: Any, tensors: Mapping[str, np.ndarray]) -> None:
        """Set the model's weights from canonical tensors (names of the task's schema, canonical layout).

        Every tensor of the schema is given; values may be any float dtype and are
        cast to the model's dtype.
        """

    @abc.abstractmethod
    def export_tensors(self, model: Any) -> dict[str, np.ndarray]:
        """The model's weights as canonical tensors (schema names and layouts), in the model's dtype."""

    @abc.abstractmethod
    def forward(
        self,
        model: Any,
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        """Run the model on NumPy ``inputs`` (names from :data:`INPUT_NAMES`).

        Returns the reference output fields (:data:`OUTPUT_NAMES`) that the model
        produces, as NumPy arrays in float32 (float64 for a float64 model; bfloat16
        and float16 results widened to float32); ``hidden_states``/``attentions`` are
        lists of arrays, ``past_key_values`` a list of per-layer tuples of arrays
        (batch, heads, seq, head_dim): (self key, self value), followed by (cross key,
        cross value) when the model has cross-attention, as in the reference's legacy
        cache format. ``loss`` is present when labels are given.
        """

    @abc.abstractmethod
    def gradients(self, model: Any, inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        """The loss for ``inputs`` (which include labels) and its gradient w.r.t. every canonical tensor.

        Gradients are arrays in the canonical layout, keyed by schema name, in float32
        (float64 for a float64 model).
        """


@dataclass(frozen=True)
class TokenizerSpec:
    """A tokenizer class registered through the ``register_tokenizers`` hook.

    ``import_path`` (``"package.module:ClassName"``) is imported only when the
    tokenizer is used, so registering costs nothing.
    """

    name: str  # unique name, e.g. "sentencepiece" or "fast"
    import_path: str  # "module:attribute" of a class with from_pretrained()
    kind: str = "slow"  # "slow" or "fast"
    description: str = ""
    distribution: str = ""  # filled in by the plugin loader

    def load(self) -> Any:
        """Import and return the tokenizer class."""
        import importlib

        module_name, _, attr = self.import_path.partition(":")
        if not module_name or not attr:
            raise ValueError(f"tokenizer {self.name!r}: import_path {self.import_path!r} is not 'module:attribute'")
        module = importlib.import_module(module_name)
        return getattr(module, attr)
