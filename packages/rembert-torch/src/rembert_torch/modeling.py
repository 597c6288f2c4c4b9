"""RemBERT in PyTorch: the whole model in one file, read top to bottom.

Modules come in dependency order: embeddings, self-attention, attention output,
attention, intermediate, output, layer, encoder, pooler, LM prediction head, the
pretrained-model base (weights init, ``from_pretrained``/``save_pretrained``,
resizing, gradient checkpointing), :class:`RemBertModel`, then the six task heads.

Attribute names follow the checkpoint names exactly (``embeddings.word_embeddings``,
``encoder.embedding_hidden_mapping_in``, ``encoder.layer.N.attention.self.query``,
``output.LayerNorm``, ``cls.predictions.decoder``, backbone ``rembert`` in heads), so
``state_dict()`` keys are the names of :func:`rembert_core.build_schema` and
``transformers`` 4.57 checkpoints load without a key map.

Semantics are those of ``transformers.RemBertModel`` (4.57): decoupled input
embeddings (``input_embedding_size``) projected to ``hidden_size`` by
``encoder.embedding_hidden_mapping_in``, post-LayerNorm BERT layers, additive
attention masks built from ``torch.finfo(dtype).min``, an output LM head of width
``output_embedding_size`` that is not tied to the input embeddings.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from rembert_core import ConfigError, InputError, RemBertConfig
from rembert_torch.outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    PastKeyValues,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

__all__ = [
    "RemBertForCausalLM",
    "RemBertForMaskedLM",
    "RemBertForMultipleChoice",
    "RemBertForQuestionAnswering",
    "RemBertForSequenceClassification",
    "RemBertForTokenClassification",
    "RemBertModel",
    "RemBertPreTrainedModel",
]

logger = logging.getLogger(__name__)

Tensor = torch.Tensor
LayerPast = tuple[Tensor, ...]


# -- activations -------------------------------------------------------------------------------


def _gelu_new(x: Tensor) -> Tensor:
    # The tanh approximation written out, as the reference's "gelu_new" computes it.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,  # exact erf GELU
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


#: Attention kernels a model can use (see :class:`RemBertSelfAttention`).
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "eager")


# -- input checks (run before any kernel; value checks are skipped while tracing) ---------------


def _checking_values() -> bool:
    """False while torch.compile / torch.export / jit trace the model (data-dependent checks would break graphs)."""
    if torch.compiler.is_compiling() or torch._C._get_tracing_state() is not None:
        return False
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return not (is_exporting is not None and is_exporting())


def _require_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _require_int_tensor(value: Any, name: str) -> Tensor:
    tensor = _require_tensor(value, name)
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise InputError(f"{name} must be an integer tensor, got dtype {tensor.dtype}")
    return tensor


def _require_float_tensor(value: Any, name: str) -> Tensor:
    tensor = _require_tensor(value, name)
    if not tensor.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def _check_range(tensor: Tensor, name: str, low: int, high: int, *, ignore: int | None = None) -> None:
    """Raise if any value of ``tensor`` (other than ``ignore``) is outside ``[low, high)``."""
    if tensor.numel() == 0 or not _checking_values() or tensor.device.type == "meta":
        return
    values = tensor[tensor != ignore] if ignore is not None else tensor
    if values.numel() == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    if lo < low or hi >= high:
        bad = lo if lo < low else hi
        allowed = f"[{low}, {high})" + (f" or {ignore}" if ignore is not None else "")
        raise InputError(f"{name} contains {bad}, outside the allowed range {allowed}")


def _index(ids: Tensor | None) -> Tensor | None:
    """``ids`` as an index dtype nn.Embedding takes (int32/int64); int16, uint8... ids are already range-checked."""
    return ids if ids is None or ids.dtype in (torch.int32, torch.int64) else ids.long()


def _check_mask_values(mask: Tensor, name: str) -> None:
    """Raise unless every value of ``mask`` is in [0, 1]: other values (7, inf, NaN) make non-finite outputs."""
    if mask.numel() == 0 or not _checking_values() or mask.device.type == "meta" or mask.dtype == torch.bool:
        return
    values = mask if mask.is_floating_point() else mask.double()
    bad = ~((values >= 0) & (values <= 1))  # NaN is bad too
    if bool(bad.any()):
        raise InputError(f"{name} contains {values[bad][0].item()}; values must be in [0, 1] (1: attend, 0: masked)")


def _check_shape(tensor: Tensor, name: str, expected: tuple[int, ...], what: str) -> None:
    if tuple(tensor.shape) != expected:
        raise InputError(f"{name} has shape {tuple(tensor.shape)}, expected {expected} ({what})")


def _normalize_past(past_key_values: Any) -> tuple[LayerPast, ...] | None:
    """Plain per-layer tuples from our tuples, the reference's legacy tuples, or a transformers ``Cache``."""
    if past_key_values is None:
        return None
    to_legacy = getattr(past_key_values, "to_legacy_cache", None)
    if callable(to_legacy):  # a transformers Cache/EncoderDecoderCache object
        past_key_values = to_legacy()
    if not isinstance(past_key_values, Sequence) or isinstance(past_key_values, str):
        raise InputError(
            "past_key_values must be a sequence with one (key, value[, cross_key, cross_value]) tuple per layer, "
            f"got {type(past_key_values).__name__}"
        )
    if len(past_key_values) == 0:
        return None
    layers: list[LayerPast] = []
    for i, layer in enumerate(past_key_values):
        if isinstance(layer, Sequence) and len(layer) == 4 and layer[2] is None and layer[3] is None:
            layer = layer[:2]  # the reference's legacy format without cross-attention entries
        if not isinstance(layer, Sequence) or len(layer) not in (2, 4):
            raise InputError(f"past_key_values[{i}] must be a tuple of 2 or 4 tensors, got {type(layer).__name__}")
        layers.append(tuple(_require_float_tensor(t, f"past_key_values[{i}][{j}]") for j, t in enumerate(layer)))
    return tuple(layers)


def _has_fully_masked_row(bias: Tensor | None) -> bool:
    """Whether an additive attention mask hides every key from some query (the SDPA backward differs there).

    While tracing/compiling it answers True (keep the eager kernel: no data-dependent branch).
    """
    if bias is None:
        return False
    if not _checking_values():
        return True
    return bool((bias.amax(dim=-1) <= torch.finfo(bias.dtype).min).any())


# -- dense layers at inference (float32 on CPU: one oneDNN call per layer) ----------------------

#: At float32 CPU inference, dense layers run as one oneDNN call (GEMM, bias and, where it is GELU or
#: ReLU, the activation as the GEMM's epilogue) instead of ``F.linear`` (MKL) followed by the activation.
#: The bench measured oneDNN's GEMMs 5-18% faster at RemBERT's widths, and the epilogue saves a pass over
#: the (tokens, intermediate_size) activations. Training, other dtypes and devices, hooked or subclassed
#: layers, CPU autocast and torch.compile always use ``nn.Linear``'s own forward. Set to False to do so everywhere.
ONEDNN_INFERENCE = True

#: Activations oneDNN computes exactly as ``ACTIVATIONS`` does, as (post-op, algorithm); "none" is erf GELU.
_ONEDNN_EPILOGUES: dict[Callable[[Tensor], Tensor], tuple[str, str]] = {F.gelu: ("gelu", "none"), F.relu: ("relu", "")}


@functools.cache
def _onednn_linear() -> Callable[..., Tensor] | None:
    """``torch.ops.mkldnn._linear_pointwise`` if this torch build has it and it agrees with ``F.linear``; else None.

    The op is internal to PyTorch (torch.compile's CPU backend emits it), so it is checked once, on a
    small input against ``F.linear`` and ``F.gelu``, before any model uses it.
    """
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        gen = torch.Generator().manual_seed(0)
        x, weight, bias = (torch.randn(shape, generator=gen) for shape in ((2, 3, 16), (8, 16), (8,)))
        with torch.no_grad(), torch.autocast("cpu", enabled=False):  # the probe may first run under autocast
            fused, plain = op(x, weight, bias, "gelu", [], "none"), F.gelu(F.linear(x, weight, bias))
        agrees = fused.shape == plain.shape and torch.allclose(fused, plain, rtol=1e-5, atol=1e-5)
    except (AttributeError, RuntimeError, TypeError):
        return None
    return op if agrees else None


def _cpu_autocast() -> bool:
    """Whether ``torch.autocast("cpu")`` is on here."""
    try:
        return bool(torch.is_autocast_enabled("cpu"))
    except TypeError:  # PyTorch before 2.4 has no device argument
        return bool(torch.is_autocast_cpu_enabled())


def _linear_act(
    x: Tensor, weight: Tensor, bias: Tensor | None, activation: Callable[[Tensor], Tensor] | None = None
) -> Tensor:
    """``activation(F.linear(x, weight, bias))`` for inference; one oneDNN call for float32 on CPU.

    Callers make sure no gradient is needed (the oneDNN op has no backward).
    """
    if (
        ONEDNN_INFERENCE
        and x.dtype == weight.dtype == torch.float32
        and x.device.type == weight.device.type == "cpu"
        and weight.is_contiguous()
        and (bias is None or (bias.dtype == torch.float32 and bias.is_contiguous()))
        and not _cpu_autocast()  # autocast would run F.linear in its lower dtype: keep that
        and _checking_values()
    ):
        op = _onednn_linear()
        if op is not None:
            post_op, algorithm = _ONEDNN_EPILOGUES.get(activation, ("none", "")) if activation else ("none", "")
            out = op(x, weight, bias, post_op, [], algorithm)  # (..., out_features)
            return out if activation is None or post_op != "none" else activation(out)
    out = F.linear(x, weight, bias)
    return out if activation is None else activation(out)


def _customized(module: nn.Linear) -> bool:
    """Whether ``module`` is a subclass of ``nn.Linear`` or has forward hooks: its own forward must run."""
    return type(module) is not nn.Linear or bool(module._forward_hooks or module._forward_pre_hooks)


def _linear(module: nn.Linear, x: Tensor, activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``activation(module(x))``: through :func:`_linear_act` when ``module`` is a plain ``nn.Linear`` and no
    gradient flows to it, through the module's own forward (hooks, subclasses, autograd) otherwise."""
    hooked = (
        _customized(module) or nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks
    )
    grads = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in (module.weight, module.bias) if p is not None)
    )
    if hooked or grads:
        out = module(x)
        return out if activation is None else activation(out)
    return _linear_act(x, module.weight, module.bias, activation)


# -- embeddings ----------------------------------------------------------------------------------


class RemBertEmbeddings(nn.Module):
    """Word + token type + position embeddings (width ``input_embedding_size``), then LayerNorm and dropout.

    The word-embedding row ``pad_token_id`` starts at zero and gets no gradient.
    """

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        e = config.input_embedding_size
        self.word_embeddings = nn.Embedding(config.vocab_size, e, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, e)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, e)
        self.LayerNorm = nn.LayerNorm(e, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: Tensor | None,
        token_type_ids: Tensor,
        position_ids: Tensor,
        inputs_embeds: Tensor | None = None,
    ) -> Tensor:
        """(batch, seq) ids or (batch, seq, input_embedding_size) embeds -> (batch, seq, input_embedding_size)."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(_index(input_ids))
        embeddings = inputs_embeds + self.token_type_embeddings(_index(token_type_ids))
        embeddings = embeddings + self.position_embeddings(_index(position_ids))
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)  # type: ignore[no-any-return]


# -- attention -----------------------------------------------------------------------------------


class RemBertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention (self- or cross-), with an optional key/value cache.

    ``attn_implementation`` selects the kernel: ``"sdpa"`` uses
    ``torch.nn.functional.scaled_dot_product_attention``; ``"eager"`` the explicit
    softmax of the reference; ``"auto"`` (default) uses SDPA except when gradients
    flow and the mask hides every key from some query (eager there). Attention probabilities or a head
    mask always take the eager path. The forward numbers agree; the default keeps
    gradients identical to the reference even for fully padded rows, where the
    fused SDPA backward differs from the reference's softmax backward.
    """

    attn_implementation: str = "auto"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        # Inference runs the three projections as one matmul on a packed (3 * all_head_size, hidden) weight
        # whose row blocks *are* the storage of query/key/value (see _packed_qkv); not module state.
        self._qkv: tuple[Tensor, Tensor] | None = None

    def _packed_qkv(self) -> tuple[Tensor, Tensor]:
        """The query/key/value weight (3 * all_head_size, hidden) and bias (3 * all_head_size,), packed.

        The first call (and any call after the parameters were replaced, e.g. by ``.to(dtype)`` or
        ``load_state_dict(assign=True)``) copies them into one buffer and points each parameter's
        ``.data`` at its row block, so parameters, ``state_dict`` names and in-place updates
        (``load_state_dict``, optimizers) stay as they were and no weight is held twice.
        """
        linears = (self.query, self.key, self.value)
        packed = self._qkv
        if packed is not None:
            weight, bias = packed
            rows = weight.shape[0] // 3
            w_step, b_step = rows * weight.shape[1] * weight.element_size(), rows * bias.element_size()
            if all(
                lin.weight.dtype == weight.dtype
                and lin.weight.shape == (rows, weight.shape[1])
                and lin.weight.data_ptr() == weight.data_ptr() + i * w_step
                and lin.bias is not None
                and lin.bias.dtype == bias.dtype
                and lin.bias.data_ptr() == bias.data_ptr() + i * b_step
                for i, lin in enumerate(linears)
            ):
                return packed
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor: parameters may train later
            weight = torch.cat([lin.weight for lin in linears])  # (3 * all_head_size, hidden)
            bias = torch.cat([lin.bias for lin in linears])  # (3 * all_head_size,)
            for lin, w, b in zip(linears, weight.chunk(3), bias.chunk(3), strict=True):
                lin.weight.data = w
                lin.bias.data = b
        self._qkv = (weight, bias)
        return weight, bias

    def _can_pack(self, hidden_states: Tensor) -> bool:
        """Packed projections: no gradient to the projections, plain ``nn.Linear``, not while tracing/compiling."""
        linears = (self.query, self.key, self.value)
        if torch.is_grad_enabled() and any(p.requires_grad for lin in linears for p in lin.parameters()):
            return False
        if any(lin.bias is None or _customized(lin) for lin in linears):
            return False
        return hidden_states.device.type != "meta" and _checking_values()

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, seq, _ = x.shape
        x = x.view(batch, seq, self.num_attention_heads, self.attention_head_size)  # (batch, seq, heads, head_dim)
        return x.transpose(1, 2)  # (batch, heads, seq, head_dim)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        head_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        past_key_value: tuple[Tensor, Tensor] | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """Returns (context (batch, seq, hidden), probabilities or None, (key, value) (batch, heads, kv_seq, head_dim)).

        For cross-attention (``encoder_hidden_states`` given) a cached (key, value)
        is reused as is; for self-attention the new keys/values are appended to it.
        """
        batch, seq, _ = hidden_states.shape
        if encoder_hidden_states is None and self._can_pack(hidden_states):
            qkv = _linear_act(hidden_states, *self._packed_qkv())  # (batch, seq, 3 * all_head_size)
            qkv = qkv.view(batch, seq, 3, self.num_attention_heads, self.attention_head_size)
            query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
            if past_key_value is not None:
                key = torch.cat([past_key_value[0], key], dim=2)  # (batch, heads, past + seq, head_dim)
                value = torch.cat([past_key_value[1], value], dim=2)
        elif encoder_hidden_states is not None and past_key_value is not None:
            query = self._split_heads(self.query(hidden_states))  # (batch, heads, seq, head_dim)
            key, value = past_key_value  # cross-attention keys/values computed at the first step
        else:
            query = self._split_heads(self.query(hidden_states))  # (batch, heads, seq, head_dim)
            source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
            key = self._split_heads(self.key(source))  # (batch, heads, kv_seq, head_dim)
            value = self._split_heads(self.value(source))
            if past_key_value is not None:
                key = torch.cat([past_key_value[0], key], dim=2)  # (batch, heads, past + seq, head_dim)
                value = torch.cat([past_key_value[1], value], dim=2)

        probs: Tensor | None = None
        use_sdpa = head_mask is None and not output_attentions
        if use_sdpa and self.attn_implementation != "sdpa":
            grads_flow = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
            use_sdpa = self.attn_implementation == "auto" and (
                not grads_flow or not _has_fully_masked_row(attention_mask)
            )
        if use_sdpa:
            context = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=attention_mask,
                dropout_p=self.dropout.p if self.training else 0.0,
            )  # (batch, heads, seq, head_dim)
        else:
            scores = torch.matmul(query, key.transpose(-1, -2))  # (batch, heads, seq, kv_seq)
            scores = scores / math.sqrt(self.attention_head_size)
            if attention_mask is not None:
                scores = scores + attention_mask
            probs = F.softmax(scores, dim=-1)
            probs = self.dropout(probs)
            if head_mask is not None:
                probs = probs * head_mask
            context = torch.matmul(probs, value)  # (batch, heads, seq, head_dim)
        context = context.transpose(1, 2).reshape(batch, seq, self.all_head_size)  # (batch, seq, hidden)
        return context, probs, (key, value)


class RemBertSelfOutput(nn.Module):
    """Attention output projection, dropout, residual, LayerNorm (post-LN)."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        """(batch, seq, hidden) context and residual -> (batch, seq, hidden)."""
        hidden_states = self.dropout(_linear(self.dense, hidden_states))
        return self.LayerNorm(hidden_states + input_tensor)  # type: ignore[no-any-return]


class RemBertAttention(nn.Module):
    """Self-attention (``self``) followed by its output block (``output``)."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.self = RemBertSelfAttention(config)
        self.output = RemBertSelfOutput(config)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        head_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        past_key_value: tuple[Tensor, Tensor] | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """Returns (output (batch, seq, hidden), probabilities or None, (key, value))."""
        context, probs, present = self.self(
            hidden_states, attention_mask, head_mask, encoder_hidden_states, past_key_value, output_attentions
        )
        return self.output(context, hidden_states), probs, present


# -- feed-forward --------------------------------------------------------------------------------


class RemBertIntermediate(nn.Module):
    """Feed-forward expansion: dense(hidden -> intermediate) and the activation."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, seq, intermediate)."""
        return _linear(self.dense, hidden_states, self.intermediate_act_fn)


class RemBertOutput(nn.Module):
    """Feed-forward contraction: dense(intermediate -> hidden), dropout, residual, LayerNorm."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        """(batch, seq, intermediate) and residual (batch, seq, hidden) -> (batch, seq, hidden)."""
        hidden_states = self.dropout(_linear(self.dense, hidden_states))
        return self.LayerNorm(hidden_states + input_tensor)  # type: ignore[no-any-return]


# -- layer and encoder ---------------------------------------------------------------------------


class RemBertLayer(nn.Module):
    """One transformer layer: self-attention, optional cross-attention (decoders), feed-forward."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.attention = RemBertAttention(config)
        self.add_cross_attention = config.add_cross_attention
        if config.add_cross_attention:
            self.crossattention = RemBertAttention(config)
        self.intermediate = RemBertIntermediate(config)
        self.output = RemBertOutput(config)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        head_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        past_key_value: LayerPast | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None, LayerPast]:
        """Returns (output (batch, seq, hidden), self probs, cross probs, present key/values of this layer)."""
        self_past = (past_key_value[0], past_key_value[1]) if past_key_value is not None else None
        attention_output, self_probs, present = self.attention(
            hidden_states, attention_mask, head_mask, None, self_past, output_attentions
        )
        cross_probs: Tensor | None = None
        present_all: LayerPast = present
        if encoder_hidden_states is not None:
            cross_past = (
                (past_key_value[2], past_key_value[3])
                if past_key_value is not None and len(past_key_value) == 4
                else None
            )
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output,
                encoder_attention_mask,
                head_mask,
                encoder_hidden_states,
                cross_past,
                output_attentions,
            )
            present_all = present + cross_present
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return layer_output, self_probs, cross_probs, present_all


class RemBertEncoder(nn.Module):
    """The projection of the embeddings to ``hidden_size`` and the stack of layers."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.embedding_hidden_mapping_in = nn.Linear(config.input_embedding_size, config.hidden_size)
        self.layer = nn.ModuleList([RemBertLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None,
        head_mask: Sequence[Tensor | None],
        encoder_hidden_states: Tensor | None,
        encoder_attention_mask: Tensor | None,
        past_key_values: tuple[LayerPast, ...] | None,
        use_cache: bool,
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[
        Tensor,
        PastKeyValues | None,
        tuple[Tensor, ...] | None,
        tuple[Tensor, ...] | None,
        tuple[Tensor, ...] | None,
    ]:
        """Returns (last hidden state, presents, all hidden states, self attentions, cross attentions)."""
        hidden_states = _linear(self.embedding_hidden_mapping_in, hidden_states)  # (batch, seq, hidden)
        all_hidden: tuple[Tensor, ...] = ()
        all_self: tuple[Tensor, ...] = ()
        all_cross: tuple[Tensor, ...] = ()
        presents: tuple[LayerPast, ...] = ()
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden = (*all_hidden, hidden_states)
            layer_past = past_key_values[i] if past_key_values is not None else None
            args = (
                hidden_states,
                attention_mask,
                head_mask[i],
                encoder_hidden_states,
                encoder_attention_mask,
                layer_past,
                output_attentions,
            )
            if self.gradient_checkpointing and self.training:
                hidden_states, self_probs, cross_probs, present = torch.utils.checkpoint.checkpoint(
                    layer, *args, use_reentrant=False
                )
            else:
                hidden_states, self_probs, cross_probs, present = layer(*args)
            if use_cache:
                presents = (*presents, present)
            if output_attentions:
                assert self_probs is not None
                all_self = (*all_self, self_probs)
                if cross_probs is not None:
                    all_cross = (*all_cross, cross_probs)
        if output_hidden_states:
            all_hidden = (*all_hidden, hidden_states)
        return (
            hidden_states,
            presents if use_cache else None,
            all_hidden if output_hidden_states else None,
            all_self if output_attentions else None,
            all_cross if output_attentions and encoder_hidden_states is not None else None,
        )


class RemBertPooler(nn.Module):
    """``tanh(dense(hidden state of the first token))``."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, hidden)."""
        return torch.tanh(_linear(self.dense, hidden_states[:, 0]))


# -- LM head -------------------------------------------------------------------------------------


class RemBertLMPredictionHead(nn.Module):
    """dense(hidden -> output_embedding_size), activation, LayerNorm, decoder(-> vocab_size).

    The decoder is the output embedding; it is not tied to the (narrower) input embeddings.
    """

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.output_embedding_size)
        self.decoder = nn.Linear(config.output_embedding_size, config.vocab_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.output_embedding_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, seq, vocab_size) prediction scores."""
        hidden_states = self.LayerNorm(_linear(self.dense, hidden_states, self.activation))
        return _linear(self.decoder, hidden_states)


class RemBertOnlyMLMHead(nn.Module):
    """Holds the LM head as ``predictions`` (checkpoint names ``cls.predictions.*``)."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.predictions = RemBertLMPredictionHead(config)

    def forward(self, sequence_output: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, seq, vocab_size)."""
        return self.predictions(sequence_output)  # type: ignore[no-any-return]


# -- pretrained-model base -----------------------------------------------------------------------


class RemBertPreTrainedModel(nn.Module):
    """Base of every RemBERT model: config, weight init, loading/saving, resizing, checkpointing.

    Example:
        >>> from rembert_torch import RemBertConfig, RemBertModel
        >>> model = RemBertModel(RemBertConfig(vocab_size=100, hidden_size=48, num_attention_heads=6,
        ...     num_hidden_layers=2, input_embedding_size=20, output_embedding_size=36, intermediate_size=64))
        >>> model.num_parameters() > 0
        True
    """

    config_class: ClassVar[type[RemBertConfig]] = RemBertConfig
    base_model_prefix: ClassVar[str] = "rembert"
    supports_gradient_checkpointing: ClassVar[bool] = True
    #: The core schema task this class implements (``rembert_core.TASKS``).
    task: ClassVar[str] = "base"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        if not isinstance(config, RemBertConfig):
            raise ConfigError(f"config must be a rembert_core.RemBertConfig, got {type(config).__name__}")
        config.validate()
        if config.add_cross_attention and not config.is_decoder:
            raise ConfigError(
                "add_cross_attention=True needs is_decoder=True (cross-attention layers are decoder layers)"
            )
        self.config = config

    # -- weights ---------------------------------------------------------------------------------

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """The reference initialisation: normal(0, initializer_range), zero biases, padding row zero, LN ones/zeros."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()

    def post_init(self) -> None:
        """Initialise every weight (called at the end of each model's ``__init__``)."""
        self.apply(self._init_weights)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's parameters."""
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.parameters()).device

    def num_parameters(self, only_trainable: bool = False) -> int:
        """Number of parameters (only those with ``requires_grad`` when ``only_trainable``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    @property
    def base_model(self) -> RemBertModel:
        """The backbone (``self`` for :class:`RemBertModel`, ``self.rembert`` for heads)."""
        backbone = getattr(self, self.base_model_prefix, self)
        assert isinstance(backbone, RemBertModel)
        return backbone

    def get_input_embeddings(self) -> nn.Embedding:
        """The word embeddings, (vocab_size, input_embedding_size)."""
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the word embeddings (must be ``input_embedding_size`` wide)."""
        if not isinstance(value, nn.Embedding) or value.embedding_dim != self.config.input_embedding_size:
            raise InputError(f"input embeddings must be an nn.Embedding of width {self.config.input_embedding_size}")
        self.base_model.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear | None:
        """The LM decoder (vocab_size x output_embedding_size) for LM heads, else None."""
        cls_head = getattr(self, "cls", None)
        return cls_head.predictions.decoder if isinstance(cls_head, RemBertOnlyMLMHead) else None

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        """Replace the LM decoder (LM heads only)."""
        cls_head = getattr(self, "cls", None)
        if not isinstance(cls_head, RemBertOnlyMLMHead):
            raise InputError(f"{type(self).__name__} has no output embeddings")
        cls_head.predictions.decoder = new_embeddings

    @torch.no_grad()
    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """Resize the vocabulary: the input embeddings and (LM heads) the output decoder and its bias.

        The two have different widths (``input_embedding_size`` and
        ``output_embedding_size``) and are resized independently. Old rows are kept;
        new rows are drawn around the old rows' mean (``mean_resizing``, as the
        reference) or from normal(0, initializer_range); new decoder biases are the
        mean of the old ones (or zero). ``config.vocab_size`` is updated.

        Args:
            new_num_tokens: the new vocabulary size (None: keep it, only pad).
            pad_to_multiple_of: round the size up to a multiple of this.
            mean_resizing: initialise new rows from the old rows' statistics.

        Returns:
            The new input embeddings.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForMaskedLM
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
            >>> model = RemBertForMaskedLM(config)
            >>> model.resize_token_embeddings(309).weight.shape  # (vocab, input_embedding_size)
            torch.Size([309, 20])
            >>> model.get_output_embeddings().weight.shape  # (vocab, output_embedding_size)
            torch.Size([309, 36])
        """
        old = self.get_input_embeddings()
        size = old.num_embeddings if new_num_tokens is None else new_num_tokens
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        if pad_to_multiple_of is not None:
            if (
                isinstance(pad_to_multiple_of, bool)
                or not isinstance(pad_to_multiple_of, int)
                or pad_to_multiple_of < 1
            ):
                raise InputError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
            size = math.ceil(size / pad_to_multiple_of) * pad_to_multiple_of
        pad = self.config.pad_token_id
        if pad is not None and pad >= size:
            raise InputError(f"cannot resize to {size} tokens: pad_token_id {pad} would fall outside the vocabulary")
        new_embeddings = nn.Embedding(
            size, old.embedding_dim, padding_idx=old.padding_idx, device=old.weight.device, dtype=old.weight.dtype
        )
        new_embeddings.weight.copy_(self._resized_rows(old.weight, size, mean_resizing))
        if new_embeddings.padding_idx is not None and new_embeddings.padding_idx >= old.num_embeddings:
            new_embeddings.weight[new_embeddings.padding_idx].zero_()  # a new padding row starts at zero
        self.base_model.embeddings.word_embeddings = new_embeddings

        decoder = self.get_output_embeddings()
        if decoder is not None:
            new_decoder = nn.Linear(
                decoder.in_features,
                size,
                bias=decoder.bias is not None,
                device=decoder.weight.device,
                dtype=decoder.weight.dtype,
            )
            new_decoder.weight.copy_(self._resized_rows(decoder.weight, size, mean_resizing))
            if decoder.bias is not None and new_decoder.bias is not None:
                n = min(size, decoder.out_features)
                new_decoder.bias.zero_()
                new_decoder.bias[:n] = decoder.bias[:n]
                if size > n and mean_resizing:
                    new_decoder.bias[n:] = decoder.bias.float().mean().to(decoder.bias.dtype)
            self.set_output_embeddings(new_decoder)
        self.config.vocab_size = size
        return new_embeddings

    def _resized_rows(self, weight: Tensor, size: int, mean_resizing: bool) -> Tensor:
        old_rows = weight.shape[0]
        n = min(size, old_rows)
        out = torch.empty(size, weight.shape[1], dtype=weight.dtype, device=weight.device)
        out[:n] = weight[:n]
        if size > n:
            added = size - n
            if mean_resizing:
                old = weight.float()
                mean = old.mean(dim=0)
                centred = old - mean
                cov = centred.T @ centred / old_rows
                try:
                    dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=1e-9 * cov)
                    new = dist.sample((added,))
                except (ValueError, RuntimeError):  # covariance not positive definite: use the mean
                    new = mean.expand(added, -1)
                out[n:] = new.to(weight.dtype)
            else:
                out[n:].normal_(mean=0.0, std=self.config.initializer_range)
        return out

    # -- attention kernel ------------------------------------------------------------------------

    def set_attn_implementation(self, attn_implementation: str) -> None:
        """Choose the attention kernel: ``"auto"`` (default), ``"sdpa"`` or ``"eager"`` (see RemBertSelfAttention)."""
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {attn_implementation!r}")
        for module in self.modules():
            if isinstance(module, RemBertSelfAttention):
                module.attn_implementation = attn_implementation

    # -- gradient checkpointing ------------------------------------------------------------------

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each layer's activations in the backward pass (train mode only) to save memory.

        ``use_cache`` is turned off while training with checkpointing. Accepts (and
        ignores) ``gradient_checkpointing_kwargs`` for compatibility; the
        non-reentrant checkpoint is always used.
        """
        self.base_model.encoder.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        """Turn gradient checkpointing off."""
        self.base_model.encoder.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether gradient checkpointing is on."""
        return bool(self.base_model.encoder.gradient_checkpointing)

    # -- loading and saving ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        config: RemBertConfig | None = None,
        torch_dtype: torch.dtype | str | None = None,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        output_loading_info: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Load a checkpoint (config.json + safetensors, sharded index, pytorch_model.bin, ...) or a weights file.

        No random weights are allocated first (the model is built on the meta
        device); tensors are read one at a time. Missing, unexpected or mis-shaped
        tensors raise :class:`rembert_core.CheckpointError` listing them all; absent
        head/pooler weights are initialised and reported (logged, and returned with
        ``output_loading_info=True`` as ``(model, info)``). The model is returned in
        eval mode.

        Args:
            pretrained_model_name_or_path: a local directory or weights file, or a Hugging Face Hub id
                (resolved through ``rembert_core.hub`` and the Hub cache; needs ``huggingface_hub``). Any
                format a rembert plugin reads works: safetensors, ``pytorch_model.bin``, ``tf_model.h5``.
            config: use this config instead of the checkpoint's ``config.json``.
            torch_dtype: ``torch.float32`` (default), ``torch.bfloat16``, ``torch.float16``, their names, or
                ``"auto"`` (the checkpoint's dtype). ``dtype`` is an alias.
            device: where to put the weights (default CPU).
            output_loading_info: also return a dict with ``missing_keys``, ``unexpected_keys``,
                ``mismatched_keys``, ``error_msgs`` and the core ``report``.
            kwargs: config overrides (e.g. ``num_labels=5``); ``attn_implementation`` (``"auto"``, ``"sdpa"``,
                ``"eager"``); ``add_pooling_layer`` for :class:`RemBertModel`; ``local_files_only``,
                ``revision``, ``cache_dir``, ``token`` for Hub ids; ``ignore_mismatched_sizes=True`` to
                re-initialise tensors whose shape differs (e.g. a classifier with another ``num_labels``);
                ``device_map`` (a single device) and ``low_cpu_mem_usage`` (always on) as in transformers.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForMaskedLM
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
            >>> import tempfile
            >>> directory = tempfile.mkdtemp()
            >>> RemBertForMaskedLM(config).save_pretrained(directory)
            >>> model = RemBertForMaskedLM.from_pretrained(directory, torch_dtype="bfloat16")  # or "google/rembert"
            >>> model.dtype, model.training
            (torch.bfloat16, False)
        """
        from rembert_torch.loading import load_pretrained

        return load_pretrained(
            cls,
            pretrained_model_name_or_path,
            config=config,
            torch_dtype=torch_dtype if torch_dtype is not None else dtype,
            device=device,
            output_loading_info=output_loading_info,
            **kwargs,
        )

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        max_shard_size: int | str | None = "5GB",
        safe_serialization: bool = True,
        state_dict: dict[str, Tensor] | None = None,
    ) -> None:
        """Write ``config.json`` (with ``architectures``) and the weights, loadable by transformers 4.57.

        Args:
            save_directory: directory to write into (created if needed).
            max_shard_size: split safetensors weights into shards of at most this size
                (bytes or ``"2GB"``); a single ``model.safetensors`` when they fit.
            safe_serialization: safetensors (default) or ``pytorch_model.bin``.
            state_dict: tensors to save instead of ``self.state_dict()``.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertModel
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
            >>> import os, tempfile
            >>> directory = tempfile.mkdtemp()
            >>> RemBertModel(config).save_pretrained(directory, max_shard_size="200MB")
            >>> sorted(os.listdir(directory))
            ['config.json', 'model.safetensors']
        """
        from rembert_torch.loading import save_pretrained

        save_pretrained(
            self,
            save_directory,
            max_shard_size=max_shard_size,
            safe_serialization=safe_serialization,
            state_dict=state_dict,
        )

    # -- shared forward helpers ------------------------------------------------------------------

    def _resolve_flags(
        self, output_attentions: bool | None, output_hidden_states: bool | None, return_dict: bool | None
    ) -> tuple[bool, bool, bool]:
        extra = self.config.extra
        oa = output_attentions if output_attentions is not None else bool(extra.get("output_attentions", False))
        oh = (
            output_hidden_states if output_hidden_states is not None else bool(extra.get("output_hidden_states", False))
        )
        rd = return_dict if return_dict is not None else bool(extra.get("return_dict", True))
        return oa, oh, rd


# -- the bare model ------------------------------------------------------------------------------


class RemBertModel(RemBertPreTrainedModel):
    """The RemBERT encoder (or decoder, with ``config.is_decoder``) with an optional pooler.

    Args:
        config: the model configuration.
        add_pooling_layer: add the ``tanh(dense(first token))`` pooler.

    Example:
        >>> import torch
        >>> from rembert_torch import RemBertConfig, RemBertModel
        >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
        ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
        >>> model = RemBertModel(config).eval()
        >>> out = model(torch.tensor([[5, 6, 7, 0]]), attention_mask=torch.tensor([[1, 1, 1, 0]]))
        >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)
        ((1, 4, 48), (1, 48))
    """

    def __init__(self, config: RemBertConfig, add_pooling_layer: bool = True, *, _init: bool = True) -> None:
        super().__init__(config)
        self.embeddings = RemBertEmbeddings(config)
        self.encoder = RemBertEncoder(config)
        self.pooler = RemBertPooler(config) if add_pooling_layer else None
        if _init:
            self.post_init()

    # -- input checking --------------------------------------------------------------------------

    def _check_inputs(
        self,
        input_ids: Tensor | None,
        attention_mask: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        head_mask: Tensor | None,
        inputs_embeds: Tensor | None,
        encoder_hidden_states: Tensor | None,
        encoder_attention_mask: Tensor | None,
        past: tuple[LayerPast, ...] | None,
    ) -> tuple[int, int, int]:
        """Validate every input; return (batch, seq, past_length)."""
        config = self.config
        if input_ids is not None and inputs_embeds is not None:
            raise InputError("pass either input_ids or inputs_embeds, not both")
        if input_ids is None and inputs_embeds is None:
            raise InputError("pass input_ids (batch, seq) or inputs_embeds (batch, seq, input_embedding_size)")
        if input_ids is not None:
            input_ids = _require_int_tensor(input_ids, "input_ids")
            if input_ids.dim() != 2:
                raise InputError(f"input_ids must have shape (batch, seq), got {tuple(input_ids.shape)}")
            batch, seq = input_ids.shape
        else:
            embeds = _require_float_tensor(inputs_embeds, "inputs_embeds")
            if embeds.dim() != 3 or embeds.shape[-1] != config.input_embedding_size:
                raise InputError(
                    f"inputs_embeds must have shape (batch, seq, input_embedding_size={config.input_embedding_size}), "
                    f"got {tuple(embeds.shape)}"
                )
            batch, seq = embeds.shape[0], embeds.shape[1]
        if batch < 1 or seq < 1:
            raise InputError(f"inputs must have at least one sequence and one token, got batch={batch}, seq={seq}")

        past_length = 0
        if past is not None:
            if len(past) != config.num_hidden_layers:
                raise InputError(
                    f"past_key_values has {len(past)} layers, but num_hidden_layers={config.num_hidden_layers}"
                )
            past_length = past[0][0].shape[2]
            heads, head_dim = config.num_attention_heads, config.head_dim
            for i, layer in enumerate(past):
                for j, tensor in enumerate(layer[:2]):
                    _check_shape(
                        tensor,
                        f"past_key_values[{i}][{j}]",
                        (batch, heads, past_length, head_dim),
                        "(batch, heads, past_seq, head_dim)",
                    )
                if len(layer) == 4 and encoder_hidden_states is not None:
                    for j in (2, 3):
                        _check_shape(
                            layer[j],
                            f"past_key_values[{i}][{j}]",
                            (batch, heads, encoder_hidden_states.shape[1], head_dim),
                            "(batch, heads, encoder_seq, head_dim)",
                        )
        total = past_length + seq

        if input_ids is not None:
            _check_range(input_ids, "input_ids", 0, config.vocab_size)
        if token_type_ids is not None:
            tt = _require_int_tensor(token_type_ids, "token_type_ids")
            _check_shape(tt, "token_type_ids", (batch, seq), "same as input_ids")
            _check_range(tt, "token_type_ids", 0, config.type_vocab_size)
        if position_ids is not None:
            pos = _require_int_tensor(position_ids, "position_ids")
            if pos.dim() not in (1, 2) or pos.shape[-1] != seq or (pos.dim() == 2 and pos.shape[0] not in (1, batch)):
                raise InputError(
                    f"position_ids has shape {tuple(pos.shape)}, expected ({batch}, {seq}), (1, {seq}) or ({seq},)"
                )
            _check_range(pos, "position_ids", 0, config.max_position_embeddings)
        elif total > config.max_position_embeddings:
            raise InputError(
                f"sequence length {total}"
                + (f" ({past_length} cached + {seq} new)" if past_length else "")
                + f" exceeds max_position_embeddings={config.max_position_embeddings}"
            )
        if attention_mask is not None:
            mask = _require_tensor(attention_mask, "attention_mask")
            if mask.is_complex():
                raise InputError(f"attention_mask must be a bool, integer or float tensor, got dtype {mask.dtype}")
            if mask.dim() == 2:
                _check_shape(mask, "attention_mask", (batch, total), "(batch, past + seq)")
            elif mask.dim() == 3:
                _check_shape(mask, "attention_mask", (batch, seq, total), "(batch, seq, past + seq)")
            else:
                raise InputError(
                    f"attention_mask must have shape ({batch}, {total}) or ({batch}, {seq}, {total}), "
                    f"got {tuple(mask.shape)}"
                )
            _check_mask_values(mask, "attention_mask")
        if head_mask is not None:
            hm = _require_tensor(head_mask, "head_mask")
            layers, heads = config.num_hidden_layers, config.num_attention_heads
            ok = (
                (hm.dim() == 1 and hm.shape[0] == heads)
                or (hm.dim() == 2 and tuple(hm.shape) == (layers, heads))
                or (hm.dim() == 5 and hm.shape[0] == layers and hm.shape[2] == heads)
            )
            if not ok:
                raise InputError(
                    f"head_mask has shape {tuple(hm.shape)}, expected ({heads},), ({layers}, {heads}) "
                    f"or ({layers}, batch, {heads}, seq, seq)"
                )
        if encoder_hidden_states is not None and config.is_decoder:
            if not config.add_cross_attention:
                raise InputError(
                    "encoder_hidden_states were given but the model has no cross-attention layers "
                    "(set add_cross_attention=True in the config)"
                )
            enc = _require_float_tensor(encoder_hidden_states, "encoder_hidden_states")
            if enc.dim() != 3 or enc.shape[0] != batch or enc.shape[2] != config.hidden_size:
                raise InputError(
                    f"encoder_hidden_states has shape {tuple(enc.shape)}, expected ({batch}, encoder_seq, "
                    f"hidden_size={config.hidden_size})"
                )
            if encoder_attention_mask is not None:
                emask = _require_tensor(encoder_attention_mask, "encoder_attention_mask")
                if emask.is_complex() or tuple(emask.shape) not in ((batch, enc.shape[1]), (batch, seq, enc.shape[1])):
                    raise InputError(
                        f"encoder_attention_mask has shape {tuple(emask.shape)} and dtype {emask.dtype}, expected "
                        f"({batch}, {enc.shape[1]}) or ({batch}, {seq}, {enc.shape[1]}) of bool/int/float"
                    )
        return batch, seq, past_length

    # -- masks -----------------------------------------------------------------------------------

    def _self_attention_bias(
        self, attention_mask: Tensor | None, batch: int, seq: int, past_length: int, device: torch.device
    ) -> Tensor | None:
        """The additive self-attention mask (batch, 1, seq or 1, past + seq): 0 to attend, finfo(dtype).min to mask."""
        dtype = self.dtype
        if attention_mask is None and not self.config.is_decoder:
            return None  # adding the reference's all-zero mask changes nothing
        if attention_mask is None:
            attention_mask = torch.ones(batch, past_length + seq, device=device, dtype=dtype)
        if attention_mask.dim() == 3:
            extended = attention_mask[:, None, :, :].to(dtype)  # (batch, 1, seq, past + seq)
        elif self.config.is_decoder:
            positions = torch.arange(seq, device=device)
            causal = positions[None, :] <= positions[:, None]  # (seq, seq): key j visible from query i when j <= i
            if past_length:
                prefix = torch.ones(seq, past_length, dtype=torch.bool, device=device)
                causal = torch.cat([prefix, causal], dim=-1)  # (seq, past + seq)
            extended = causal[None, None, :, :].to(dtype) * attention_mask[:, None, None, :].to(dtype)
        else:
            extended = attention_mask[:, None, None, :].to(dtype)  # (batch, 1, 1, seq)
        return (1.0 - extended) * torch.finfo(dtype).min

    def _encoder_attention_bias(self, encoder_attention_mask: Tensor | None) -> Tensor | None:
        if encoder_attention_mask is None:
            return None
        dtype = self.dtype
        if encoder_attention_mask.dim() == 3:
            extended = encoder_attention_mask[:, None, :, :].to(dtype)  # (batch, 1, seq, enc_seq)
        else:
            extended = encoder_attention_mask[:, None, None, :].to(dtype)  # (batch, 1, 1, enc_seq)
        return (1.0 - extended) * torch.finfo(dtype).min

    def _head_masks(self, head_mask: Tensor | None) -> list[Tensor | None]:
        layers = self.config.num_hidden_layers
        if head_mask is None:
            return [None] * layers
        if head_mask.dim() == 1:
            head_mask = head_mask[None, None, :, None, None].expand(layers, -1, -1, -1, -1)  # (layers, 1, heads, 1, 1)
        elif head_mask.dim() == 2:
            head_mask = head_mask[:, None, :, None, None]  # (layers, 1, heads, 1, 1)
        head_mask = head_mask.to(self.dtype)
        return [head_mask[i] for i in range(layers)]

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        """Run the model.

        Args:
            input_ids: (batch, seq) token ids in [0, vocab_size). Exactly one of this and ``inputs_embeds``.
            attention_mask: (batch, past + seq) 1 = attend, 0 = padding; or (batch, seq, past + seq).
            token_type_ids: (batch, seq) segment ids in [0, type_vocab_size); default zeros.
            position_ids: (batch, seq), (1, seq) or (seq,) in [0, max_position_embeddings); default
                past .. past + seq - 1.
            head_mask: (heads,) or (layers, heads), 1 keeps a head, 0 masks it.
            inputs_embeds: (batch, seq, input_embedding_size) instead of ``input_ids``.
            encoder_hidden_states: (batch, enc_seq, hidden) for cross-attention (decoders with
                ``add_cross_attention``); ignored by encoders, like the reference.
            encoder_attention_mask: (batch, enc_seq) mask of ``encoder_hidden_states``.
            past_key_values: per-layer (key, value[, cross_key, cross_value]) tensors of shape
                (batch, heads, past, head_dim) from a previous call, or a transformers ``Cache`` object.
            use_cache: return ``past_key_values`` (decoders only; default ``config.use_cache``).
            output_attentions: return attention probabilities of every layer.
            output_hidden_states: return the ``num_hidden_layers + 1`` hidden states.
            return_dict: return a :class:`BaseModelOutputWithPoolingAndCrossAttentions` (default) or the
                reference's tuple.

        Returns:
            :class:`BaseModelOutputWithPoolingAndCrossAttentions` (or its tuple).

        Raises:
            rembert_core.InputError: an input has the wrong type, dtype, shape or values.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertModel
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
            >>> model = RemBertModel(config).eval()
            >>> out = model(torch.tensor([[5, 6, 7, 0]]), attention_mask=torch.tensor([[1, 1, 1, 0]]),
            ...             output_hidden_states=True)
            >>> out.last_hidden_state.shape, out.pooler_output.shape, len(out.hidden_states)
            (torch.Size([1, 4, 48]), torch.Size([1, 48]), 3)
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        config = self.config
        use_cache = bool(use_cache if use_cache is not None else config.use_cache) if config.is_decoder else False
        if use_cache and self.encoder.gradient_checkpointing and self.training:
            logger.warning("use_cache=True is incompatible with gradient checkpointing in training; not caching")
            use_cache = False
        past = _normalize_past(past_key_values)
        if not config.is_decoder:
            encoder_hidden_states = None  # the reference ignores them in encoders
            encoder_attention_mask = None
        batch, seq, past_length = self._check_inputs(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            past,
        )
        device = input_ids.device if input_ids is not None else inputs_embeds.device  # type: ignore[union-attr]
        if token_type_ids is None:
            token_type_ids = torch.zeros(batch, seq, dtype=torch.long, device=device)
        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + seq, device=device)[None, :]  # (1, seq)
        elif position_ids.dim() == 1:
            position_ids = position_ids[None, :]  # (1, seq), broadcast over the batch

        self_bias = self._self_attention_bias(attention_mask, batch, seq, past_length, device)
        cross_bias = self._encoder_attention_bias(encoder_attention_mask) if encoder_hidden_states is not None else None
        head_masks = self._head_masks(head_mask)

        embedding_output = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        last, presents, all_hidden, all_self, all_cross = self.encoder(
            embedding_output,
            self_bias,
            head_masks,
            encoder_hidden_states,
            cross_bias,
            past,
            use_cache,
            output_attentions,
            output_hidden_states,
        )
        pooled = self.pooler(last) if self.pooler is not None else None
        if not return_dict:
            return (last, pooled, *(v for v in (presents, all_hidden, all_self, all_cross) if v is not None))
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=last,
            pooler_output=pooled,
            past_key_values=presents,
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross,
        )


# -- heads ---------------------------------------------------------------------------------------


def _backbone_kwargs(
    attention_mask: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    head_mask: Tensor | None,
    inputs_embeds: Tensor | None,
    output_attentions: bool,
    output_hidden_states: bool,
) -> dict[str, Any]:
    return {
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "position_ids": position_ids,
        "head_mask": head_mask,
        "inputs_embeds": inputs_embeds,
        "output_attentions": output_attentions,
        "output_hidden_states": output_hidden_states,
        "return_dict": True,
    }


def _as_tuple(loss: Tensor | None, *values: Any) -> tuple[Any, ...]:
    head = (loss,) if loss is not None else ()
    return (*head, *(v for v in values if v is not None))


def _batch_and_seq(input_ids: Tensor | None, inputs_embeds: Tensor | None) -> tuple[int, int]:
    source = input_ids if input_ids is not None else inputs_embeds
    if not isinstance(source, torch.Tensor) or source.dim() < 2:
        return -1, -1  # the backbone reports the problem
    return int(source.shape[0]), int(source.shape[1])


def _check_token_labels(labels: Any, name: str, batch: int, seq: int, classes: int) -> Tensor:
    tensor = _require_int_tensor(labels, name)
    _check_shape(tensor, name, (batch, seq), "(batch, seq), -100 to ignore a position")
    _check_range(tensor, name, 0, classes, ignore=-100)
    return tensor.long()


class RemBertForMaskedLM(RemBertPreTrainedModel):
    """RemBERT with the masked-language-modelling head (``cls.predictions``).

    Example:
        >>> import torch
        >>> from rembert_torch import RemBertConfig, RemBertForMaskedLM
        >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
        ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
        >>> model = RemBertForMaskedLM(config).eval()
        >>> ids = torch.tensor([[5, 6, 7]])
        >>> out = model(ids, labels=torch.tensor([[-100, 6, -100]]))
        >>> tuple(out.logits.shape), out.loss.dim()
        ((1, 3, 301), 0)
    """

    task: ClassVar[str] = "masked_lm"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        if config.is_decoder:
            logger.warning("RemBertForMaskedLM expects is_decoder=False for bidirectional self-attention")
        self.rembert = RemBertModel(config, add_pooling_layer=False, _init=False)
        self.cls = RemBertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        """Masked-LM scores and, with ``labels`` (batch, seq; -100 = ignore), the mean cross-entropy.

        Args:
            labels (torch.LongTensor | None): (batch, seq) token ids to predict, -100 where there is nothing
                to predict. Other arguments as in :meth:`RemBertModel.forward`.

        Returns:
            :class:`MaskedLMOutput` (or its tuple): ``loss`` (scalar, with labels), ``logits``
            (batch, seq, vocab_size), ``hidden_states``, ``attentions``.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForMaskedLM
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
            >>> model = RemBertForMaskedLM(config).eval()
            >>> out = model(torch.tensor([[5, 6, 7]]), labels=torch.tensor([[-100, 6, -100]]))
            >>> out.logits.shape, out.loss.shape
            (torch.Size([1, 3, 301]), torch.Size([]))
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            batch, seq = _batch_and_seq(input_ids, inputs_embeds)
            labels = _check_token_labels(labels, "labels", batch, seq, self.config.vocab_size)
        outputs = self.rembert(
            input_ids,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            use_cache=False,
            **_backbone_kwargs(
                attention_mask,
                token_type_ids,
                position_ids,
                head_mask,
                inputs_embeds,
                output_attentions,
                output_hidden_states,
            ),
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.reshape(-1), ignore_index=-100)
        if not return_dict:
            return _as_tuple(loss, logits, outputs.hidden_states, outputs.attentions)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class RemBertForCausalLM(RemBertPreTrainedModel):
    """RemBERT with a left-to-right language-modelling head (use with ``is_decoder=True``), and ``generate``.

    Example:
        >>> import torch
        >>> from rembert_torch import RemBertConfig, RemBertForCausalLM
        >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
        ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64, is_decoder=True)
        >>> model = RemBertForCausalLM(config).eval()
        >>> model.generate(torch.tensor([[5, 6]]), max_new_tokens=3).shape
        torch.Size([1, 5])
    """

    task: ClassVar[str] = "causal_lm"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        if not config.is_decoder:
            logger.warning("RemBertForCausalLM used without is_decoder=True: attention is not causal")
        self.rembert = RemBertModel(config, add_pooling_layer=False, _init=False)
        self.cls = RemBertOnlyMLMHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        past_key_values: Any = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        """Next-token scores; with ``labels`` (batch, seq; -100 = ignore) the loss of predicting token t+1 at t.

        Args:
            labels (torch.LongTensor | None): (batch, seq), the input ids themselves: the shift happens
                inside (position t predicts label t + 1); -100 to ignore.
            past_key_values, use_cache: the key/value cache, as in :meth:`RemBertModel.forward`. Other
                arguments as in :meth:`RemBertModel.forward`.

        Returns:
            :class:`CausalLMOutputWithCrossAttentions` (or its tuple): ``loss``, ``logits``
            (batch, seq, vocab_size), ``past_key_values``, ``hidden_states``, ``attentions``,
            ``cross_attentions``.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForCausalLM
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64,
            ...     is_decoder=True)
            >>> model = RemBertForCausalLM(config).eval()
            >>> first = model(torch.tensor([[5, 6, 7]]), use_cache=True)
            >>> step = model(torch.tensor([[8]]), past_key_values=first.past_key_values, use_cache=True)
            >>> step.logits.shape  # only the new position; the prefix comes from the cache
            torch.Size([1, 1, 301])
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            batch, seq = _batch_and_seq(input_ids, inputs_embeds)
            labels = _check_token_labels(labels, "labels", batch, seq, self.config.vocab_size)
        outputs = self.rembert(
            input_ids,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
            **_backbone_kwargs(
                attention_mask,
                token_type_ids,
                position_ids,
                head_mask,
                inputs_embeds,
                output_attentions,
                output_hidden_states,
            ),
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]  # (batch, seq): token t predicts label t + 1
            loss = F.cross_entropy(
                logits.float().reshape(-1, self.config.vocab_size), shifted.reshape(-1), ignore_index=-100
            )
        if not return_dict:
            return _as_tuple(
                loss,
                logits,
                outputs.past_key_values,
                outputs.hidden_states,
                outputs.attentions,
                outputs.cross_attentions,
            )
        return CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
    ) -> Tensor:
        """Extend ``input_ids`` by up to ``max_new_tokens`` tokens, greedily or by sampling, using the cache.

        Positions come from the attention mask (``cumsum - 1``), as in the
        reference's ``generate``, so left-padded batches work. A sequence that
        produced ``eos_token_id`` (default ``config.eos_token_id``) is continued with
        ``pad_token_id``; generation stops when all have.

        Args:
            input_ids: (batch, seq) prompt ids.
            attention_mask: (batch, seq) prompt mask (default all ones).
            max_new_tokens: number of tokens to add at most.
            do_sample: sample from the (temperature / top-k / top-p filtered) distribution instead of argmax.
            temperature: divides the logits when sampling (> 0).
            top_k: keep the k most likely tokens when sampling.
            top_p: keep the smallest set of tokens whose probability reaches top_p when sampling.
            eos_token_id: stop token (None: ``config.eos_token_id``; -1 never stops early).
            pad_token_id: filler after eos (None: ``config.pad_token_id``, else eos).
            use_cache: reuse keys/values between steps (decoders).
            generator: random generator for sampling.
            encoder_hidden_states, encoder_attention_mask: cross-attention inputs, as in ``forward``.

        Returns:
            (batch, seq + generated) token ids.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForCausalLM
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64, is_decoder=True)
            >>> model = RemBertForCausalLM(config).eval()
            >>> prompt = torch.tensor([[0, 5, 6], [7, 8, 9]])  # left-padded batch
            >>> mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
            >>> out = model.generate(prompt, mask, max_new_tokens=4, eos_token_id=-1)
            >>> again = model.generate(prompt, mask, max_new_tokens=4, eos_token_id=-1, use_cache=False)
            >>> out.shape, torch.equal(out, again)
            (torch.Size([2, 7]), True)
            >>> sampled = model.generate(prompt, mask, max_new_tokens=4, do_sample=True, top_k=10, top_p=0.9,
            ...                          generator=torch.Generator().manual_seed(0))
        """
        ids = _require_int_tensor(input_ids, "input_ids")
        if ids.dim() != 2 or ids.shape[1] < 1:
            raise InputError(f"input_ids must have shape (batch, seq) with seq >= 1, got {tuple(ids.shape)}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        if ids.shape[1] + max_new_tokens > self.config.max_position_embeddings:
            raise InputError(
                f"prompt length {ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                f"max_position_embeddings={self.config.max_position_embeddings}"
            )
        if do_sample and not temperature > 0:
            raise InputError(f"temperature must be > 0 when sampling, got {temperature}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise InputError(f"top_p must be in (0, 1], got {top_p}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        eos = None if eos is not None and eos < 0 else eos
        pad = pad_token_id if pad_token_id is not None else self.config.pad_token_id
        pad = pad if pad is not None else (eos if eos is not None else 0)
        mask = torch.ones_like(ids) if attention_mask is None else _require_tensor(attention_mask, "attention_mask")
        _check_shape(mask, "attention_mask", tuple(ids.shape), "same as input_ids")
        mask = mask.to(torch.long)
        cache = use_cache and self.config.is_decoder
        past: Any = None
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # (batch, total)
            step_ids, step_pos = (ids[:, -1:], positions[:, -1:]) if past is not None else (ids, positions)
            out = self(
                step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                past_key_values=past,
                use_cache=cache,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                return_dict=True,
            )
            past = out.past_key_values if cache else None
            scores = out.logits[:, -1, :].float()  # (batch, vocab)
            next_tokens = _sample(scores / temperature, top_k, top_p, generator) if do_sample else scores.argmax(dim=-1)
            next_tokens = torch.where(finished, torch.full_like(next_tokens, pad), next_tokens)
            ids = torch.cat([ids, next_tokens[:, None]], dim=-1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            if eos is not None:
                finished = finished | (next_tokens == eos)
                if bool(finished.all()):
                    break
        return ids


def _sample(logits: Tensor, top_k: int | None, top_p: float | None, generator: torch.Generator | None) -> Tensor:
    """One token per row from softmax(logits) restricted by top-k then top-p. (batch, vocab) -> (batch,)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (batch, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # keep the token that crosses top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class RemBertForSequenceClassification(RemBertPreTrainedModel):
    """RemBERT with a linear classifier (or regressor) on the pooled output.

    The loss follows ``config.problem_type``: ``"regression"`` (MSE),
    ``"single_label_classification"`` (cross-entropy) or
    ``"multi_label_classification"`` (BCE with logits). When unset it is inferred
    from the first labels seen, like the reference: one label -> regression,
    integer labels -> single-label, float labels -> multi-label (and stored in the config).

    Example:
        >>> import torch
        >>> from rembert_torch import RemBertConfig, RemBertForSequenceClassification
        >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
        ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64, num_labels=3)
        >>> model = RemBertForSequenceClassification(config).eval()
        >>> model(torch.tensor([[5, 6, 7]]), labels=torch.tensor([2])).logits.shape
        torch.Size([1, 3])
    """

    task: ClassVar[str] = "sequence_classification"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.rembert = RemBertModel(config, _init=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _problem_type(self, labels: Tensor) -> str:
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif not labels.is_floating_point():
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        return self.config.problem_type

    def _check_labels(self, labels: Any, batch: int) -> tuple[str, Tensor]:
        tensor = _require_tensor(labels, "labels")
        problem = self._problem_type(tensor)
        n = self.num_labels
        if problem == "regression":
            if not tensor.is_floating_point():
                raise InputError(f"labels for regression must be floating point, got dtype {tensor.dtype}")
            expected = (batch,) if n == 1 else (batch, n)
            if tuple(tensor.shape) != expected and not (n == 1 and tuple(tensor.shape) == (batch, 1)):
                raise InputError(f"labels has shape {tuple(tensor.shape)}, expected {expected} for regression")
        elif problem == "single_label_classification":
            tensor = _require_int_tensor(tensor, "labels")
            if tensor.numel() != batch or tensor.dim() > 2:
                raise InputError(f"labels has shape {tuple(tensor.shape)}, expected ({batch},) class indices")
            _check_range(tensor, "labels", 0, n, ignore=-100)
            tensor = tensor.long()
        else:
            if not tensor.is_floating_point():
                raise InputError(f"labels for multi-label classification must be float 0/1, got dtype {tensor.dtype}")
            _check_shape(tensor, "labels", (batch, n), "(batch, num_labels) multi-hot targets")
        return problem, tensor

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        """Class scores (batch, num_labels); with ``labels`` the loss chosen by ``problem_type``.

        Args:
            labels (torch.Tensor | None): (batch,) class ids, (batch,) floats for regression with one label,
                or (batch, num_labels) floats for multi-label. Other arguments as in
                :meth:`RemBertModel.forward`.

        Returns:
            :class:`SequenceClassifierOutput` (or its tuple): ``loss``, ``logits`` (batch, num_labels),
            ``hidden_states``, ``attentions``.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForSequenceClassification
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64,
            ...     num_labels=3)
            >>> model = RemBertForSequenceClassification(config).eval()
            >>> out = model(torch.tensor([[5, 6, 7], [8, 9, 0]]), attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]),
            ...             labels=torch.tensor([2, 0]))
            >>> out.logits.shape, model.config.problem_type
            (torch.Size([2, 3]), 'single_label_classification')
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        problem: str | None = None
        if labels is not None:
            batch, _ = _batch_and_seq(input_ids, inputs_embeds)
            problem, labels = self._check_labels(labels, batch)
        outputs = self.rembert(
            input_ids,
            **_backbone_kwargs(
                attention_mask,
                token_type_ids,
                position_ids,
                head_mask,
                inputs_embeds,
                output_attentions,
                output_hidden_states,
            ),
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (batch, num_labels)
        loss = None
        if labels is not None:
            if problem == "regression":
                if self.num_labels == 1:
                    loss = F.mse_loss(logits.squeeze(), labels.squeeze())
                else:
                    loss = F.mse_loss(logits, labels)
            elif problem == "single_label_classification":
                loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.reshape(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels)
        if not return_dict:
            return _as_tuple(loss, logits, outputs.hidden_states, outputs.attentions)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class RemBertForMultipleChoice(RemBertPreTrainedModel):
    """RemBERT scoring each of several choices (inputs (batch, num_choices, seq)) from its pooled output.

    Example:
        >>> import torch
        >>> from rembert_torch import RemBertConfig, RemBertForMultipleChoice
        >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
        ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
        >>> model = RemBertForMultipleChoice(config).eval()
        >>> model(torch.tensor([[[5, 6], [7, 8], [9, 10]]]), labels=torch.tensor([1])).logits.shape
        torch.Size([1, 3])
    """

    task: ClassVar[str] = "multiple_choice"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        self.rembert = RemBertModel(config, _init=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        """Choice scores (batch, num_choices); with ``labels`` (batch,) the cross-entropy over choices.

        Args:
            input_ids, attention_mask, token_type_ids, position_ids (torch.Tensor | None):
                (batch, num_choices, seq); ``inputs_embeds``: (batch, num_choices, seq, input_embedding_size).
            labels (torch.LongTensor | None): (batch,) index of the right choice. Other arguments as in
                :meth:`RemBertModel.forward`.

        Returns:
            :class:`MultipleChoiceModelOutput` (or its tuple): ``loss``, ``logits`` (batch, num_choices),
            ``hidden_states``, ``attentions``.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForMultipleChoice
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
            >>> model = RemBertForMultipleChoice(config).eval()
            >>> ids = torch.tensor([[[5, 6, 7], [5, 8, 9]]])  # (batch=1, num_choices=2, seq=3)
            >>> model(ids, labels=torch.tensor([1])).logits.shape
            torch.Size([1, 2])
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if input_ids is not None and inputs_embeds is not None:
            raise InputError("pass either input_ids or inputs_embeds, not both")
        if input_ids is not None:
            source = _require_int_tensor(input_ids, "input_ids")
            if source.dim() != 3:
                raise InputError(f"input_ids must have shape (batch, num_choices, seq), got {tuple(source.shape)}")
        elif inputs_embeds is not None:
            source = _require_float_tensor(inputs_embeds, "inputs_embeds")
            if source.dim() != 4:
                raise InputError(
                    "inputs_embeds must have shape (batch, num_choices, seq, input_embedding_size), "
                    f"got {tuple(source.shape)}"
                )
        else:
            raise InputError("pass input_ids (batch, num_choices, seq) or inputs_embeds")
        batch, num_choices, seq = source.shape[0], source.shape[1], source.shape[2]

        def flat(value: Tensor | None, name: str) -> Tensor | None:
            if value is None:
                return None
            tensor = _require_tensor(value, name)
            _check_shape(tensor, name, (batch, num_choices, seq), "(batch, num_choices, seq)")
            return tensor.reshape(batch * num_choices, seq)  # (batch * choices, seq)

        if labels is not None:
            labels = _require_int_tensor(labels, "labels")
            _check_shape(labels, "labels", (batch,), "(batch,) index of the right choice")
            _check_range(labels, "labels", 0, num_choices, ignore=-100)
            labels = labels.long()
        outputs = self.rembert(
            flat(input_ids, "input_ids"),
            **_backbone_kwargs(
                flat(attention_mask, "attention_mask"),
                flat(token_type_ids, "token_type_ids"),
                flat(position_ids, "position_ids"),
                head_mask,
                inputs_embeds.reshape(batch * num_choices, seq, -1) if inputs_embeds is not None else None,
                output_attentions,
                output_hidden_states,
            ),
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (batch * choices, 1)
        reshaped_logits = logits.view(batch, num_choices)  # (batch, choices)
        loss = F.cross_entropy(reshaped_logits, labels) if labels is not None else None
        if not return_dict:
            return _as_tuple(loss, reshaped_logits, outputs.hidden_states, outputs.attentions)
        return MultipleChoiceModelOutput(
            loss=loss, logits=reshaped_logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class RemBertForTokenClassification(RemBertPreTrainedModel):
    """RemBERT with a linear classifier on every token (e.g. NER).

    Example:
        >>> import torch
        >>> from rembert_torch import RemBertConfig, RemBertForTokenClassification
        >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
        ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64, num_labels=5)
        >>> model = RemBertForTokenClassification(config).eval()
        >>> model(torch.tensor([[5, 6, 7]]), labels=torch.tensor([[1, -100, 4]])).logits.shape
        torch.Size([1, 3, 5])
    """

    task: ClassVar[str] = "token_classification"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.rembert = RemBertModel(config, add_pooling_layer=False, _init=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        """Per-token scores (batch, seq, num_labels); with ``labels`` (batch, seq; -100 = ignore) the cross-entropy.

        Args:
            labels (torch.LongTensor | None): (batch, seq) class ids, -100 to ignore a position (padding,
                later pieces of a word). Other arguments as in :meth:`RemBertModel.forward`.

        Returns:
            :class:`TokenClassifierOutput` (or its tuple): ``loss``, ``logits`` (batch, seq, num_labels),
            ``hidden_states``, ``attentions``.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForTokenClassification
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64,
            ...     num_labels=4)
            >>> model = RemBertForTokenClassification(config).eval()
            >>> out = model(torch.tensor([[5, 6, 7]]), labels=torch.tensor([[-100, 1, 3]]))
            >>> out.logits.shape
            torch.Size([1, 3, 4])
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            batch, seq = _batch_and_seq(input_ids, inputs_embeds)
            labels = _check_token_labels(labels, "labels", batch, seq, self.num_labels)
        outputs = self.rembert(
            input_ids,
            **_backbone_kwargs(
                attention_mask,
                token_type_ids,
                position_ids,
                head_mask,
                inputs_embeds,
                output_attentions,
                output_hidden_states,
            ),
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # (batch, seq, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.reshape(-1), ignore_index=-100)
        if not return_dict:
            return _as_tuple(loss, logits, outputs.hidden_states, outputs.attentions)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class RemBertForQuestionAnswering(RemBertPreTrainedModel):
    """RemBERT with span start/end scores (``qa_outputs``, ``num_labels`` = 2) for extractive QA.

    Example:
        >>> import torch
        >>> from rembert_torch import RemBertConfig, RemBertForQuestionAnswering
        >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
        ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
        >>> model = RemBertForQuestionAnswering(config).eval()
        >>> out = model(torch.tensor([[5, 6, 7]]), start_positions=torch.tensor([1]), end_positions=torch.tensor([2]))
        >>> out.start_logits.shape
        torch.Size([1, 3])
    """

    task: ClassVar[str] = "question_answering"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        if config.num_labels != 2:
            raise ConfigError(f"RemBertForQuestionAnswering needs num_labels=2 (start, end), got {config.num_labels}")
        self.num_labels = config.num_labels
        self.rembert = RemBertModel(config, add_pooling_layer=False, _init=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        start_positions: Tensor | None = None,
        end_positions: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        """Start and end scores (batch, seq); with both positions (batch,) the mean of their cross-entropies.

        Positions outside [0, seq) are clamped to ``seq`` and ignored, like the
        reference (the caller's tensors are not modified).

        Args:
            start_positions (torch.LongTensor | None): (batch,) first token of the answer.
            end_positions (torch.LongTensor | None): (batch,) last token of the answer (inclusive). Other
                arguments as in :meth:`RemBertModel.forward`.

        Returns:
            :class:`QuestionAnsweringModelOutput` (or its tuple): ``loss``, ``start_logits`` and
            ``end_logits`` (batch, seq), ``hidden_states``, ``attentions``.

        Example:
            >>> import torch
            >>> from rembert_torch import RemBertConfig, RemBertForQuestionAnswering
            >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
            ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
            >>> model = RemBertForQuestionAnswering(config).eval()
            >>> out = model(torch.tensor([[5, 6, 7, 8]]), start_positions=torch.tensor([1]),
            ...             end_positions=torch.tensor([2]))
            >>> out.start_logits.shape, out.end_logits.shape, out.loss.shape
            (torch.Size([1, 4]), torch.Size([1, 4]), torch.Size([]))
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if (start_positions is None) != (end_positions is None):
            raise InputError("pass both start_positions and end_positions, or neither")
        positions: list[Tensor] = []
        if start_positions is not None and end_positions is not None:
            batch, _ = _batch_and_seq(input_ids, inputs_embeds)
            for name, value in (("start_positions", start_positions), ("end_positions", end_positions)):
                tensor = _require_int_tensor(value, name)
                if tuple(tensor.shape) not in ((batch,), (batch, 1)):
                    raise InputError(f"{name} has shape {tuple(tensor.shape)}, expected ({batch},)")
                positions.append(tensor.reshape(batch).long())
        outputs = self.rembert(
            input_ids,
            **_backbone_kwargs(
                attention_mask,
                token_type_ids,
                position_ids,
                head_mask,
                inputs_embeds,
                output_attentions,
                output_hidden_states,
            ),
        )
        logits = self.qa_outputs(outputs.last_hidden_state)  # (batch, seq, 2)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))  # (batch, seq) each
        loss = None
        if positions:
            ignored = start_logits.size(1)
            start, end = (p.clamp(0, ignored) for p in positions)
            start_loss = F.cross_entropy(start_logits, start, ignore_index=ignored)
            end_loss = F.cross_entropy(end_logits, end, ignore_index=ignored)
            loss = (start_loss + end_loss) / 2
        if not return_dict:
            return _as_tuple(loss, start_logits, end_logits, outputs.hidden_states, outputs.attentions)
        return QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
