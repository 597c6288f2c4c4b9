"""RemBERT in NumPy, top to bottom: embeddings, attention, feed-forward, layer, encoder, pooler, heads, losses.

The semantics are those of the reference PyTorch ``transformers`` 4.57
``modeling_rembert.py`` (the project's oracle); the code is our own. Every
function takes the parameters by their canonical checkpoint names
(:mod:`rembert_core.schema`: ``embedding_hidden_mapping_in``, ``LayerNorm``,
``[out, in]`` linear weights), so there is no name map at all.

All arithmetic goes through :mod:`rembert_numpy.autodiff`, so the same code
gives the forward outputs and, from the loss, the gradient of every weight.

Shapes: B batch, S sequence (new tokens), P cached tokens, T = P + S keys,
E input_embedding_size, H hidden_size, N heads, D head_dim, V vocab_size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rembert_core import CheckpointSchema, RemBertConfig
from rembert_core.errors import ConfigError, InputError
from rembert_numpy import autodiff as ad
from rembert_numpy.autodiff import Array, Tensor

__all__ = [
    "ACTIVATIONS",
    "CACHE_TASKS",
    "CROSS_TASKS",
    "Batch",
    "ModelOutput",
    "Params",
    "check_config",
    "extended_attention_mask",
    "prepare_batch",
    "run_model",
]

#: ``config.hidden_act`` -> activation (the reference ``ACT2FN`` entries RemBERT configs use).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": ad.gelu,  # exact, erf-based
    "gelu_new": ad.gelu_tanh,
    "gelu_pytorch_tanh": ad.gelu_tanh,
    "relu": ad.relu,
    "silu": ad.silu,
    "swish": ad.silu,
}

#: Tasks whose reference class returns ``past_key_values`` (the bare model and the causal LM).
CACHE_TASKS = frozenset({"base", "causal_lm"})
#: Tasks whose reference class accepts ``encoder_hidden_states``.
CROSS_TASKS = frozenset({"base", "masked_lm", "causal_lm"})


class Params:
    """Canonical-name lookup of the model's tensors; backbone names are given without the ``rembert.`` prefix.

    Example:
        >>> p = Params({"rembert.pooler.dense.bias": Tensor(np.zeros(2))}, prefix="rembert.")
        >>> p("pooler.dense.bias").shape
        (2,)
    """

    def __init__(self, tensors: Mapping[str, Tensor], prefix: str) -> None:
        self.tensors = tensors
        self.prefix = prefix

    def __call__(self, name: str) -> Tensor:
        """The backbone tensor ``name`` (prefix added)."""
        return self.tensors[self.prefix + name]

    def head(self, name: str) -> Tensor:
        """The head tensor ``name`` (never prefixed)."""
        return self.tensors[name]


# -- inputs --------------------------------------------------------------------------------------


@dataclass
class Batch:
    """Validated, normalised inputs of one forward pass (multiple-choice rows already flattened)."""

    input_ids: Array | None  # (B, S) int
    inputs_embeds: Array | None  # (B, S, E) float
    token_type_ids: Array  # (B, S) int
    position_ids: Array  # (B, S) int
    attention_mask: Array  # (B, T) or (B, S, T), 0/1 in the model dtype
    encoder_hidden_states: Array | None = None  # (B, S_enc, H)
    encoder_attention_mask: Array | None = None  # (B, S_enc) or (B, S, S_enc)
    past: list[tuple[Array, ...]] | None = None  # per layer (k, v) or (k, v, cross_k, cross_v), (B, N, P, D)
    labels: Array | None = None
    start_positions: Array | None = None
    end_positions: Array | None = None
    num_choices: int = 0  # > 0 for multiple choice: rows are (batch * choices)
    problem_type: str | None = None  # sequence classification: the loss chosen for these labels

    @property
    def past_length(self) -> int:
        """Number of cached positions P."""
        return 0 if not self.past else int(self.past[0][0].shape[2])


def _array(inputs: Mapping[str, Any], name: str) -> Array | None:
    value = inputs.get(name)
    return None if value is None else np.asarray(value)


def _require_int(value: Array, name: str) -> Array:
    if value.dtype.kind not in "iu":
        raise InputError(f"{name} must be an integer array, got dtype {value.dtype}")
    return value.astype(np.int64)


def _require_shape(value: Array, name: str, shape: tuple[int, ...], what: str) -> None:
    if tuple(value.shape) != shape:
        raise InputError(f"{name} has shape {tuple(value.shape)}, expected {shape} ({what})")


def _require_range(value: Array, name: str, high: int, *, low: int = 0, allowed: int | None = None) -> None:
    bad = (value < low) | (value >= high)
    if allowed is not None:
        bad &= value != allowed
    if bad.any():
        first = value[bad].flat[0]
        extra = f" or {allowed}" if allowed is not None else ""
        raise InputError(f"{name} contains {int(first)}, outside [{low}, {high}){extra}")


def _float_array(value: Array, name: str, dtype: np.dtype[Any]) -> Array:
    if value.dtype.kind not in "fiub":
        raise InputError(f"{name} must be numeric, got dtype {value.dtype}")
    out = value.astype(dtype)
    if value.dtype.kind == "f" and not np.all(np.isfinite(out)):
        raise InputError(f"{name} contains NaN or infinite values")
    return out


def prepare_batch(
    config: RemBertConfig,
    task: str,
    dtype: np.dtype[Any],
    inputs: Mapping[str, Any],
    past_key_values: Sequence[Sequence[Any]] | None,
) -> Batch:
    """Check ``inputs`` (names of :data:`rembert_core.backend.INPUT_NAMES`) and fill in the reference defaults.

    Raises :class:`rembert_core.InputError` naming the argument, its shape or
    value, and what was expected.
    """
    known = {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "position_ids",
        "inputs_embeds",
        "encoder_hidden_states",
        "encoder_attention_mask",
        "labels",
        "start_positions",
        "end_positions",
    }
    unknown = sorted(set(inputs) - known)
    if unknown:
        raise InputError(f"unknown input(s) {unknown}; known inputs are {sorted(known)}")
    input_ids = _array(inputs, "input_ids")
    inputs_embeds = _array(inputs, "inputs_embeds")
    if (input_ids is None) == (inputs_embeds is None):
        raise InputError("give exactly one of input_ids and inputs_embeds")
    num_choices = 0
    if input_ids is not None:
        input_ids = _require_int(input_ids, "input_ids")
        lead = tuple(input_ids.shape)
    else:
        assert inputs_embeds is not None
        inputs_embeds = _float_array(inputs_embeds, "inputs_embeds", dtype)
        lead = tuple(inputs_embeds.shape[:-1])
        if inputs_embeds.ndim < 1 or inputs_embeds.shape[-1] != config.input_embedding_size:
            raise InputError(
                f"inputs_embeds has shape {tuple(inputs_embeds.shape)}; its last axis must be "
                f"input_embedding_size={config.input_embedding_size}"
            )
    rank = 3 if task == "multiple_choice" else 2
    layout = "(batch, num_choices, seq)" if rank == 3 else "(batch, seq)"
    if len(lead) != rank or 0 in lead:
        source = "input_ids" if input_ids is not None else "inputs_embeds"
        raise InputError(f"{source} has shape {lead} (+ embedding axis); expected a non-empty {layout}")
    if rank == 3:
        num_choices = lead[1]
    flat = (lead[0] * lead[1], lead[2]) if rank == 3 else lead
    batch, seq = flat

    def per_token(name: str) -> Array | None:
        value = _array(inputs, name)
        if value is None:
            return None
        value = _require_int(value, name)
        _require_shape(value, name, lead, f"the shape of input_ids, {layout}")
        return value.reshape(flat)

    if input_ids is not None:
        _require_range(input_ids, "input_ids", config.vocab_size)
        input_ids = input_ids.reshape(flat)
    else:
        assert inputs_embeds is not None
        inputs_embeds = inputs_embeds.reshape(*flat, config.input_embedding_size)

    past = _prepare_past(config, task, dtype, past_key_values, batch)
    past_len = 0 if not past else int(past[0][0].shape[2])
    if past_len + seq > config.max_position_embeddings and _array(inputs, "position_ids") is None:
        raise InputError(
            f"{past_len} cached + {seq} new positions exceed max_position_embeddings={config.max_position_embeddings}"
        )

    token_type_ids = per_token("token_type_ids")
    if token_type_ids is None:
        token_type_ids = np.zeros(flat, dtype=np.int64)
    _require_range(token_type_ids, "token_type_ids", config.type_vocab_size)
    position_ids = per_token("position_ids")
    if position_ids is None:
        position_ids = np.broadcast_to(np.arange(past_len, past_len + seq, dtype=np.int64), flat)
    _require_range(position_ids, "position_ids", config.max_position_embeddings)

    mask = _array(inputs, "attention_mask")
    if mask is None:
        mask = np.ones((batch, past_len + seq), dtype=dtype)
    else:
        if rank == 3:
            _require_shape(mask, "attention_mask", lead, "the shape of input_ids, (batch, num_choices, seq)")
            mask = mask.reshape(flat)
        elif mask.ndim == 2:
            _require_shape(mask, "attention_mask", (batch, past_len + seq), "(batch, cached + new positions)")
        elif mask.ndim == 3:
            _require_shape(mask, "attention_mask", (batch, seq, past_len + seq), "(batch, seq, cached + new)")
        else:
            raise InputError(f"attention_mask has shape {tuple(mask.shape)}; expected (batch, seq) or 3-D")
        mask = _float_array(mask, "attention_mask", dtype)

    out = Batch(input_ids, inputs_embeds, token_type_ids, position_ids, mask, past=past, num_choices=num_choices)

    enc = _array(inputs, "encoder_hidden_states")
    enc_mask = _array(inputs, "encoder_attention_mask")
    if enc is not None:
        if task not in CROSS_TASKS:
            raise InputError(f"encoder_hidden_states is not an input of the {task} model")
        if not (config.is_decoder and config.add_cross_attention):
            raise InputError(
                "encoder_hidden_states needs a model with cross-attention layers "
                "(config.is_decoder=True and config.add_cross_attention=True)"
            )
        if enc.ndim != 3 or enc.shape[0] != batch or enc.shape[2] != config.hidden_size:
            raise InputError(
                f"encoder_hidden_states has shape {tuple(enc.shape)}; expected "
                f"(batch={batch}, encoder_seq, hidden_size={config.hidden_size})"
            )
        out.encoder_hidden_states = _float_array(enc, "encoder_hidden_states", dtype)
        if enc_mask is None:
            enc_mask = np.ones(enc.shape[:2], dtype=dtype)
        elif enc_mask.ndim == 2:
            _require_shape(enc_mask, "encoder_attention_mask", tuple(enc.shape[:2]), "(batch, encoder_seq)")
        elif enc_mask.ndim == 3:
            _require_shape(enc_mask, "encoder_attention_mask", (batch, seq, enc.shape[1]), "(batch, seq, enc_seq)")
        else:
            raise InputError(f"encoder_attention_mask has shape {tuple(enc_mask.shape)}; expected 2-D or 3-D")
        out.encoder_attention_mask = _float_array(enc_mask, "encoder_attention_mask", dtype)
    elif enc_mask is not None:
        raise InputError("encoder_attention_mask was given without encoder_hidden_states")

    _prepare_labels(config, task, inputs, out, lead, batch, seq)
    return out


def _prepare_past(
    config: RemBertConfig,
    task: str,
    dtype: np.dtype[Any],
    past_key_values: Sequence[Sequence[Any]] | None,
    batch: int,
) -> list[tuple[Array, ...]] | None:
    if past_key_values is None or len(past_key_values) == 0:
        return None
    if task not in CACHE_TASKS:
        raise InputError(f"past_key_values is not an input of the {task} model (only base and causal_lm)")
    if not config.is_decoder:
        raise InputError("past_key_values needs a decoder (config.is_decoder=True)")
    if len(past_key_values) != config.num_hidden_layers:
        raise InputError(
            f"past_key_values has {len(past_key_values)} layers, expected num_hidden_layers={config.num_hidden_layers}"
        )
    n, d = config.num_attention_heads, config.head_dim
    past: list[tuple[Array, ...]] = []
    length: int | None = None
    for i, entry in enumerate(past_key_values):
        arrays = tuple(np.asarray(a) for a in entry)
        if len(arrays) not in (2, 4):
            raise InputError(f"past_key_values[{i}] has {len(arrays)} arrays, expected (key, value) or 4 with cross")
        for j, a in enumerate(arrays):
            if a.ndim != 4 or a.shape[0] != batch or a.shape[1] != n or a.shape[3] != d:
                raise InputError(
                    f"past_key_values[{i}][{j}] has shape {tuple(a.shape)}; "
                    f"expected (batch={batch}, heads={n}, seq, head_dim={d})"
                )
        length = arrays[0].shape[2] if length is None else length
        if arrays[0].shape[2] != length or arrays[1].shape[2] != length:
            raise InputError(f"past_key_values[{i}] has {arrays[0].shape[2]} cached positions, expected {length}")
        past.append(tuple(_float_array(a, f"past_key_values[{i}]", dtype) for a in arrays))
    return past


def _ce_labels(value: Array, name: str, shape: tuple[int, ...], classes: int, what: str) -> Array:
    value = _require_int(value, name)
    _require_shape(value, name, shape, what)
    _require_range(value, name, classes, allowed=-100)
    return value


def _prepare_labels(
    config: RemBertConfig,
    task: str,
    inputs: Mapping[str, Any],
    out: Batch,
    lead: tuple[int, ...],
    batch: int,
    seq: int,
) -> None:
    labels = _array(inputs, "labels")
    start, end = _array(inputs, "start_positions"), _array(inputs, "end_positions")
    if task == "question_answering":
        if labels is not None:
            raise InputError("question_answering takes start_positions and end_positions, not labels")
        if (start is None) != (end is None):
            raise InputError("give both start_positions and end_positions, or neither")
        if start is not None and end is not None:
            positions = []
            for name, value in (("start_positions", start), ("end_positions", end)):
                value = _require_int(value, name)
                if value.ndim > 1:
                    value = value.reshape(value.shape[0], -1)[:, 0] if value.shape[1:] == (1,) else value
                _require_shape(value, name, (batch,), "(batch,)")
                positions.append(np.clip(value, 0, seq))  # the reference clamps to [0, seq]; seq is ignored
            out.start_positions, out.end_positions = positions
        return
    if start is not None or end is not None:
        raise InputError(f"start_positions/end_positions are inputs of question_answering, not {task}")
    if labels is None:
        return
    if task == "base":
        raise InputError("the base model (RemBertModel) takes no labels")
    if task in ("masked_lm", "causal_lm"):
        out.labels = _ce_labels(labels, "labels", lead, config.vocab_size, "(batch, seq) token ids or -100")
    elif task == "token_classification":
        out.labels = _ce_labels(labels, "labels", lead, config.num_labels, "(batch, seq) label ids or -100")
    elif task == "multiple_choice":
        out.labels = _ce_labels(labels, "labels", (lead[0],), lead[1], "(batch,) choice ids or -100")
    elif task == "sequence_classification":
        out.labels = labels
        problem = _problem_type(config, labels)
        out.problem_type = problem
        if problem == "single_label_classification":
            out.labels = _ce_labels(labels.reshape(-1), "labels", (batch,), config.num_labels, "(batch,) class ids")
        elif problem == "multi_label_classification":
            _require_shape(labels, "labels", (batch, config.num_labels), "(batch, num_labels) targets in [0, 1]")
            out.labels = labels.astype(np.float64)
        elif config.num_labels == 1:
            flat = labels.reshape(-1) if labels.ndim else labels
            _require_shape(flat, "labels", (batch,), "(batch,) or (batch, 1) regression targets")
            out.labels = flat.astype(np.float64)
        else:
            _require_shape(labels, "labels", (batch, config.num_labels), "(batch, num_labels) regression targets")
            out.labels = labels.astype(np.float64)


def _problem_type(config: RemBertConfig, labels: Array) -> str:
    """The sequence-classification loss: ``config.problem_type``, else inferred as the reference does.

    Unlike the reference, the inferred value is not written back into the config.
    """
    if config.problem_type is not None:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if labels.dtype.kind in "iu":
        return "single_label_classification"
    return "multi_label_classification"


# -- masks ---------------------------------------------------------------------------------------


def extended_attention_mask(config: RemBertConfig, batch: Batch, dtype: np.dtype[Any]) -> Array:
    """The additive self-attention mask (B, 1, S or 1, T): 0 where attended, ``finfo(dtype).min`` elsewhere.

    Decoders given a 2-D mask also mask future positions (cached positions are
    always visible), as the reference ``get_extended_attention_mask`` does.
    """
    mask = batch.attention_mask
    if mask.ndim == 3:
        keep = mask[:, None, :, :]
    elif config.is_decoder:
        s, p = batch.position_ids.shape[1], batch.past_length
        causal = np.arange(s)[None, :] <= np.arange(s)[:, None]  # (S, S): key <= query
        causal = np.concatenate([np.ones((s, p), dtype=bool), causal], axis=1)  # (S, T)
        keep = causal[None, None, :, :].astype(dtype) * mask[:, None, None, :]
    else:
        keep = mask[:, None, None, :]
    out: Array = ((1.0 - keep) * np.finfo(dtype).min).astype(dtype)
    return out


def inverted_encoder_mask(mask: Array, dtype: np.dtype[Any]) -> Array:
    """The additive cross-attention mask (B, 1, 1 or S, S_enc) of an encoder attention mask."""
    keep = mask[:, None, :, :] if mask.ndim == 3 else mask[:, None, None, :]
    out: Array = ((1.0 - keep) * np.finfo(dtype).min).astype(dtype)
    return out


# -- the model -----------------------------------------------------------------------------------


def embeddings(config: RemBertConfig, p: Params, batch: Batch) -> Tensor:
    """word (or ``inputs_embeds``) + token type + position embeddings, then LayerNorm: (B, S, E)."""
    if batch.input_ids is not None:
        # The padding row gets no gradient (``nn.Embedding(padding_idx=pad_token_id)``).
        words = ad.embedding(p("embeddings.word_embeddings.weight"), batch.input_ids, config.pad_token_id)
    else:
        assert batch.inputs_embeds is not None
        words = Tensor(batch.inputs_embeds)
    x = ad.add(words, ad.embedding(p("embeddings.token_type_embeddings.weight"), batch.token_type_ids))
    x = ad.add(x, ad.embedding(p("embeddings.position_embeddings.weight"), batch.position_ids))
    return ad.layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), config.layer_norm_eps)


def _split_heads(config: RemBertConfig, x: Tensor) -> Tensor:
    b, s, _ = x.shape
    x = ad.reshape(x, (b, s, config.num_attention_heads, config.head_dim))  # (B, S, N, D)
    return ad.transpose(x, (0, 2, 1, 3))  # (B, N, S, D)


def attention(
    config: RemBertConfig,
    p: Params,
    prefix: str,
    hidden: Tensor,
    mask: Array | None,
    *,
    source: Tensor | None = None,
    past: tuple[Tensor, Tensor] | None = None,
    reuse: bool = False,
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
    """Multi-head attention block ``prefix`` (``...attention`` or ``...crossattention``) with its output sub-layer.

    Queries come from ``hidden`` (B, S, H); keys and values from ``source``
    (cross-attention) or ``hidden``. ``past`` are cached (B, N, P, D) keys and
    values: prepended for self-attention, used instead of recomputing when
    ``reuse`` (cross-attention). Returns the block output (B, S, H), the
    attention probabilities (B, N, S, T) and the keys/values to cache.
    """
    self_ = f"{prefix}.self"
    q = _split_heads(config, ad.linear(hidden, p(f"{self_}.query.weight"), p(f"{self_}.query.bias")))
    if reuse and past is not None:
        k, v = past
    else:
        kv_input = hidden if source is None else source
        k = _split_heads(config, ad.linear(kv_input, p(f"{self_}.key.weight"), p(f"{self_}.key.bias")))
        v = _split_heads(config, ad.linear(kv_input, p(f"{self_}.value.weight"), p(f"{self_}.value.bias")))
        if past is not None:
            k = ad.concat([past[0], k], axis=2)  # (B, N, T, D)
            v = ad.concat([past[1], v], axis=2)
    scores = ad.matmul(q, ad.transpose(k, (0, 1, 3, 2)))  # (B, N, S, T)
    scores = ad.scale(scores, 1.0 / math.sqrt(config.head_dim))
    if mask is not None:
        scores = ad.add(scores, Tensor(mask))
    probs = ad.softmax(scores, axis=-1)
    context = ad.transpose(ad.matmul(probs, v), (0, 2, 1, 3))  # (B, S, N, D)
    context = ad.reshape(context, (*hidden.shape[:2], config.hidden_size))  # (B, S, H)
    out = ad.linear(context, p(f"{prefix}.output.dense.weight"), p(f"{prefix}.output.dense.bias"))
    out = ad.layer_norm(
        ad.add(out, hidden),
        p(f"{prefix}.output.LayerNorm.weight"),
        p(f"{prefix}.output.LayerNorm.bias"),
        config.layer_norm_eps,
    )
    return out, probs, (k, v)


def feed_forward(config: RemBertConfig, p: Params, prefix: str, x: Tensor) -> Tensor:
    """intermediate dense -> activation -> output dense, residual, LayerNorm: (B, S, H)."""
    h = ad.linear(x, p(f"{prefix}.intermediate.dense.weight"), p(f"{prefix}.intermediate.dense.bias"))
    h = ACTIVATIONS[config.hidden_act](h)
    h = ad.linear(h, p(f"{prefix}.output.dense.weight"), p(f"{prefix}.output.dense.bias"))
    return ad.layer_norm(
        ad.add(h, x),
        p(f"{prefix}.output.LayerNorm.weight"),
        p(f"{prefix}.output.LayerNorm.bias"),
        config.layer_norm_eps,
    )


@dataclass
class ModelOutput:
    """Everything one forward pass produces, as autodiff tensors (the backend turns them into arrays)."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    hidden_states: list[Tensor] = field(default_factory=list)
    attentions: list[Tensor] = field(default_factory=list)
    cross_attentions: list[Tensor] = field(default_factory=list)
    past_key_values: list[tuple[Tensor, ...]] = field(default_factory=list)
    logits: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    loss: Tensor | None = None


def encoder(config: RemBertConfig, p: Params, batch: Batch, x: Tensor, dtype: np.dtype[Any]) -> ModelOutput:
    """Project the embeddings to the hidden width, then run every post-LN transformer layer."""
    self_mask = extended_attention_mask(config, batch, dtype)
    cross_source = None if batch.encoder_hidden_states is None else Tensor(batch.encoder_hidden_states)
    cross_mask = None
    if batch.encoder_attention_mask is not None:
        cross_mask = inverted_encoder_mask(batch.encoder_attention_mask, dtype)
    h = ad.linear(x, p("encoder.embedding_hidden_mapping_in.weight"), p("encoder.embedding_hidden_mapping_in.bias"))
    out = ModelOutput(last_hidden_state=h)
    for n in range(config.num_hidden_layers):
        layer = f"encoder.layer.{n}"
        out.hidden_states.append(h)
        cached = [Tensor(a) for a in batch.past[n]] if batch.past else []
        self_past = (cached[0], cached[1]) if cached else None
        h, probs, self_kv = attention(config, p, f"{layer}.attention", h, self_mask, past=self_past)
        out.attentions.append(probs)
        kv: tuple[Tensor, ...] = self_kv
        if cross_source is not None:
            cross_past = (cached[2], cached[3]) if len(cached) == 4 else None
            h, cross_probs, cross_kv = attention(
                config,
                p,
                f"{layer}.crossattention",
                h,
                cross_mask,
                source=cross_source,
                past=cross_past,
                reuse=cross_past is not None,
            )
            out.cross_attentions.append(cross_probs)
            kv += cross_kv
        elif len(cached) == 4:
            kv += (cached[2], cached[3])
        out.past_key_values.append(kv)
        h = feed_forward(config, p, layer, h)
    out.hidden_states.append(h)
    out.last_hidden_state = h
    return out


def lm_head(config: RemBertConfig, p: Params, h: Tensor) -> Tensor:
    """dense (H -> output_embedding_size) -> activation -> LayerNorm -> decoder (-> V): the LM logits."""
    x = ad.linear(h, p.head("cls.predictions.dense.weight"), p.head("cls.predictions.dense.bias"))
    x = ACTIVATIONS[config.hidden_act](x)
    x = ad.layer_norm(
        x, p.head("cls.predictions.LayerNorm.weight"), p.head("cls.predictions.LayerNorm.bias"), config.layer_norm_eps
    )
    return ad.linear(x, p.head("cls.predictions.decoder.weight"), p.head("cls.predictions.decoder.bias"))


def run_model(
    config: RemBertConfig,
    schema: CheckpointSchema,
    tensors: Mapping[str, Tensor],
    batch: Batch,
    dtype: np.dtype[Any],
) -> ModelOutput:
    """The forward pass of ``schema.task``'s model, loss included when the batch carries labels."""
    task = schema.task
    p = Params(tensors, schema.prefix)
    out = encoder(config, p, batch, embeddings(config, p, batch), dtype)
    h = out.last_hidden_state
    if schema.pooler:
        first = ad.getitem(h, (slice(None), 0))  # (B, H): the first token
        out.pooler_output = ad.tanh(ad.linear(first, p("pooler.dense.weight"), p("pooler.dense.bias")))
    # Classifier dropout is the identity in evaluation mode.
    if task in ("masked_lm", "causal_lm"):
        out.logits = lm_head(config, p, h)  # (B, S, V)
        if batch.labels is not None:
            out.loss = _lm_loss(config, out.logits, batch.labels, shift=task == "causal_lm")
    elif task == "sequence_classification":
        assert out.pooler_output is not None
        out.logits = ad.linear(out.pooler_output, p.head("classifier.weight"), p.head("classifier.bias"))
        if batch.labels is not None:
            out.loss = _sequence_classification_loss(config, out.logits, batch)
    elif task == "multiple_choice":
        assert out.pooler_output is not None
        scores = ad.linear(out.pooler_output, p.head("classifier.weight"), p.head("classifier.bias"))  # (B*C, 1)
        out.logits = ad.reshape(scores, (-1, batch.num_choices))  # (B, C)
        if batch.labels is not None:
            out.loss = ad.cross_entropy(out.logits, batch.labels)
    elif task == "token_classification":
        out.logits = ad.linear(h, p.head("classifier.weight"), p.head("classifier.bias"))  # (B, S, labels)
        if batch.labels is not None:
            out.loss = ad.cross_entropy(ad.reshape(out.logits, (-1, config.num_labels)), batch.labels.reshape(-1))
    elif task == "question_answering":
        logits = ad.linear(h, p.head("qa_outputs.weight"), p.head("qa_outputs.bias"))  # (B, S, 2)
        out.start_logits = ad.getitem(logits, (Ellipsis, 0))
        out.end_logits = ad.getitem(logits, (Ellipsis, 1))
        if batch.start_positions is not None and batch.end_positions is not None:
            ignored = h.shape[1]  # positions clamped to seq are ignored
            start = ad.cross_entropy(out.start_logits, batch.start_positions, ignore_index=ignored)
            end = ad.cross_entropy(out.end_logits, batch.end_positions, ignore_index=ignored)
            out.loss = ad.scale(ad.add(start, end), 0.5)
    return out


def _lm_loss(config: RemBertConfig, logits: Tensor, labels: Array, *, shift: bool) -> Tensor:
    """Token cross-entropy ignoring -100; the causal LM predicts token t + 1 from position t."""
    if shift:
        labels = np.concatenate([labels[:, 1:], np.full((labels.shape[0], 1), -100, dtype=labels.dtype)], axis=1)
    return ad.cross_entropy(ad.reshape(logits, (-1, config.vocab_size)), labels.reshape(-1))


def _sequence_classification_loss(config: RemBertConfig, logits: Tensor, batch: Batch) -> Tensor:
    assert batch.labels is not None
    problem = batch.problem_type
    if problem == "regression":
        if config.num_labels == 1:
            return ad.mse_loss(ad.reshape(logits, (-1,)), batch.labels)
        return ad.mse_loss(logits, batch.labels)
    if problem == "single_label_classification":
        return ad.cross_entropy(logits, batch.labels)
    return ad.bce_with_logits_loss(logits, batch.labels)


def check_config(config: RemBertConfig, task: str) -> None:
    """Reject configs the reference cannot build for ``task`` (raises :class:`rembert_core.ConfigError`)."""
    if config.add_cross_attention and not config.is_decoder:
        raise ConfigError("add_cross_attention=True needs is_decoder=True (cross-attention layers are decoder-only)")
    if task == "question_answering" and config.num_labels != 2:
        raise ConfigError(f"question_answering needs num_labels=2 (start and end logits), got {config.num_labels}")
