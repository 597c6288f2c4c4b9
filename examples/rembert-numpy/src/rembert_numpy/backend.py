"""``NumpyBackend``: the full :class:`rembert_core.Backend` contract in pure NumPy.

This is the file a plugin author copies: the five methods of the contract,
each a few lines around the model code in :mod:`rembert_numpy.modeling`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rembert_core import Backend, CheckpointError, CheckpointSchema, InputError, RemBertConfig, build_schema
from rembert_core.schema import TASKS, Init
from rembert_numpy import autodiff as ad
from rembert_numpy.autodiff import Array, Tensor
from rembert_numpy.modeling import CACHE_TASKS, ModelOutput, check_config, prepare_batch, run_model

__all__ = ["NumpyBackend", "NumpyModel", "random_tensors"]

_DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


@dataclass
class NumpyModel:
    """What :meth:`NumpyBackend.build_model` returns: a config, a task, a dtype and the canonical weights.

    ``weights`` maps every schema name to an array in ``dtype``; it is empty
    until :meth:`NumpyBackend.load_tensors` fills it.
    """

    config: RemBertConfig
    task: str
    dtype: np.dtype[Any]
    schema: CheckpointSchema
    weights: dict[str, Array]

    def parameters(self, *, requires_grad: bool) -> dict[str, Tensor]:
        """The weights as autodiff leaves (fresh ones on every call, so gradients never accumulate across calls)."""
        if not self.weights:
            raise CheckpointError(
                f"the numpy {self.task} model has no weights yet; call NumpyBackend.load_tensors(model, tensors) first"
            )
        return {name: Tensor(value, requires_grad=requires_grad) for name, value in self.weights.items()}


class NumpyBackend(Backend):
    """RemBERT in pure NumPy: every task, float32 and float64, forward outputs, losses, caches and gradients.

    It is the float64 reference the parity engine compares every other backend
    with, and the template for a third-party backend.

    Example:
        >>> from rembert_core import RemBertConfig
        >>> backend = NumpyBackend()
        >>> config = RemBertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=4, output_embedding_size=6, intermediate_size=16)
        >>> model = backend.build_model(config, "masked_lm", dtype="float64")
        >>> backend.load_tensors(model, random_tensors(config, "masked_lm"))
        >>> ids = np.array([[5, 6, 7]])
        >>> backend.forward(model, {"input_ids": ids})["logits"].shape
        (1, 3, 50)
        >>> loss, grads = backend.gradients(model, {"input_ids": ids, "labels": ids})
        >>> grads["cls.predictions.decoder.weight"].shape
        (50, 6)
    """

    name = "numpy"
    distribution = "rembert-numpy"
    tasks = TASKS
    dtypes = ("float32", "float64")

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> NumpyModel:
        """A :class:`NumpyModel` of ``task`` (one of :data:`rembert_core.TASKS`) computing in ``dtype``.

        Args:
            config: the model's configuration.
            task: ``"base"``, ``"masked_lm"``, ``"causal_lm"``, ``"sequence_classification"``,
                ``"multiple_choice"``, ``"token_classification"`` or ``"question_answering"``.
            dtype: ``"float32"`` or ``"float64"``.
        """
        if task not in TASKS:
            raise InputError(f"task {task!r} is not one of {TASKS}")
        if dtype not in _DTYPES:
            raise InputError(f"dtype {dtype!r} is not supported by the numpy backend; choose one of {self.dtypes}")
        check_config(config, task)
        return NumpyModel(config, task, _DTYPES[dtype], build_schema(config, task), {})

    def load_tensors(self, model: NumpyModel, tensors: Mapping[str, Any]) -> None:
        """Set every weight from canonical ``tensors`` (schema names, with or without ``rembert.``; any float dtype).

        Raises :class:`rembert_core.CheckpointError` listing every missing,
        unexpected, mis-shaped or non-float tensor at once.
        """
        arrays = {key: np.asarray(value) for key, value in tensors.items()}
        report = model.schema.validate(
            {k: a.shape for k, a in arrays.items()}, {k: str(a.dtype) for k, a in arrays.items()}
        )
        report.raise_for_errors("tensors given to the numpy backend")
        missing = [name for name in model.schema if name not in report.matched]
        if missing:
            raise CheckpointError(f"the numpy {model.task} model needs every tensor; missing: {', '.join(missing)}")
        model.weights = {name: arrays[key].astype(model.dtype) for name, key in report.matched.items()}
        model.weights = {name: model.weights[name] for name in model.schema}  # schema order

    def export_tensors(self, model: NumpyModel) -> dict[str, np.ndarray]:
        """Copies of the weights, keyed by schema name in schema order, in the model's dtype."""
        return {name: tensor.value.copy() for name, tensor in model.parameters(requires_grad=False).items()}

    def forward(
        self,
        model: NumpyModel,
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        """Run the model on NumPy ``inputs``; return the reference output fields of its task.

        Args:
            model: from :meth:`build_model`, with weights loaded.
            inputs: ``input_ids`` (B, S) int — (B, choices, S) for multiple choice — or
                ``inputs_embeds`` (B, S, E); optional ``attention_mask``, ``token_type_ids``,
                ``position_ids``, ``encoder_hidden_states`` (B, S_enc, H), ``encoder_attention_mask``,
                and labels (``labels``, or ``start_positions``/``end_positions``).
            output_hidden_states: add ``hidden_states``, num_hidden_layers + 1 arrays (B, S, H),
                the first being the projected embeddings.
            output_attentions: add ``attentions`` (and ``cross_attentions``), per layer (B, N, S, T).
            use_cache: decoders (``config.is_decoder``) of the base and causal LM tasks add
                ``past_key_values``: per layer ``(key, value)`` (B, N, T, D), plus the cross-attention
                key and value when ``encoder_hidden_states`` was given.
            past_key_values: a cache from an earlier call; ``inputs`` then hold only the new tokens
                and ``attention_mask`` covers cached + new positions.

        Arrays are in the model's dtype (float64 for the float64 reference).
        """
        batch = prepare_batch(model.config, model.task, model.dtype, inputs, past_key_values)
        out = run_model(model.config, model.schema, model.parameters(requires_grad=False), batch, model.dtype)
        return _outputs(model, out, output_hidden_states, output_attentions, use_cache)

    def gradients(self, model: NumpyModel, inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        """The loss on ``inputs`` (labels required) and its gradient w.r.t. every canonical tensor.

        Tensors the loss does not depend on (e.g. the pooler of a task that does
        not use it, cross-attention without ``encoder_hidden_states``) get zero
        gradients. Gradients are in the model's dtype, keyed by schema name.
        """
        if model.task == "base":
            raise InputError("the base model (RemBertModel) has no loss, so it has no gradients; use a task head")
        batch = prepare_batch(model.config, model.task, model.dtype, inputs, None)
        params = model.parameters(requires_grad=True)
        out = run_model(model.config, model.schema, params, batch, model.dtype)
        if out.loss is None:
            wanted = "start_positions and end_positions" if model.task == "question_answering" else "labels"
            raise InputError(f"gradients() needs {wanted} in inputs for the {model.task} model")
        ad.backward(out.loss)
        grads = {
            name: (tensor.grad if tensor.grad is not None else np.zeros_like(tensor.value)).astype(
                model.dtype, copy=False
            )
            for name, tensor in params.items()
        }
        return float(out.loss.value), grads


def _outputs(
    model: NumpyModel, out: ModelOutput, output_hidden_states: bool, output_attentions: bool, use_cache: bool
) -> dict[str, Any]:
    """The reference output fields of ``model.task`` as arrays."""
    task, config = model.task, model.config
    result: dict[str, Any] = {}
    if out.loss is not None:
        result["loss"] = out.loss.value
    if task == "base":
        result["last_hidden_state"] = out.last_hidden_state.value
        if out.pooler_output is not None:
            result["pooler_output"] = out.pooler_output.value
    elif task == "question_answering":
        assert out.start_logits is not None and out.end_logits is not None
        result["start_logits"] = out.start_logits.value
        result["end_logits"] = out.end_logits.value
    else:
        assert out.logits is not None
        result["logits"] = out.logits.value
    if use_cache and config.is_decoder and task in CACHE_TASKS:
        result["past_key_values"] = [tuple(t.value for t in layer) for layer in out.past_key_values]
    if output_hidden_states:
        result["hidden_states"] = [t.value for t in out.hidden_states]
    if output_attentions:
        result["attentions"] = [t.value for t in out.attentions]
        if out.cross_attentions and task in CACHE_TASKS:
            result["cross_attentions"] = [t.value for t in out.cross_attentions]
    return result


def random_tensors(config: RemBertConfig, task: str, *, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Canonical float64 tensors for ``task``, drawn like the reference initialiser, for examples and tests.

    ``normal(0, initializer_range * scale)`` matrices (padding row of the word
    embeddings zero), LayerNorm gains near one, small random biases (non-zero so
    that their gradients are exercised).
    """
    rng = np.random.default_rng(seed)
    std = config.initializer_range * scale
    out: dict[str, np.ndarray] = {}
    for name, spec in build_schema(config, task).items():
        if spec.init is Init.ONES:
            value = 1.0 + 0.1 * rng.standard_normal(spec.shape)
        elif spec.init is Init.ZEROS:
            value = 0.1 * std * rng.standard_normal(spec.shape)
        else:
            value = std * rng.standard_normal(spec.shape)
            if spec.init is Init.NORMAL_PADDED and config.pad_token_id is not None:
                value[config.pad_token_id] = 0.0
        out[name] = value
    return out
