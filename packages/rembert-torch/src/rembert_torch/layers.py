"""RemBERT's transformer blocks as PyTorch modules, in reading order (what :mod:`rembert_torch.modeling` assembles).

Read this file first, top to bottom: the activations, then embeddings, self-attention, its output block,
attention, intermediate, output, layer, encoder, pooler and the LM prediction head, each with its
TensorFlow twin's name (``RemBertEmbeddings`` is ``rembert_tf.layers.TFRemBertEmbeddings``). Then
:mod:`rembert_torch.modeling`: :class:`~rembert_torch.modeling.RemBertModel` (inputs, masks, embeddings,
encoder, pooler) and the six task heads. The dense layers are :class:`rembert_torch.kernels.Linear`, an
``nn.Linear`` with a oneDNN inference path; packed query/key/value and the choice of attention kernel are
in :mod:`rembert_torch.kernels` too.

Naming: attribute names are the checkpoint names (``encoder.layer.N.attention.self.query``,
``cls.predictions.decoder``), so ``state_dict()`` keys are those of :func:`rembert_core.build_schema` and of
transformers 4.57 checkpoints. Query/key/value (packed at inference, see ``kernels.pack_qkv``) and the
heads' classifiers are plain ``nn.Linear``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from rembert_core import ConfigError, RemBertConfig
from rembert_torch.kernels import (
    Linear,
    Unpadded,
    attend,
    attention_kernel,
    can_pack_qkv,
    dense_act,
    pack_qkv,
    packed_linear,
    unpadded_attention,
)
from rembert_torch.outputs import PastKeyValues
from rembert_torch.validation import LayerPast, as_index

__all__ = [
    "ACTIVATIONS",
    "RemBertAttention",
    "RemBertEmbeddings",
    "RemBertEncoder",
    "RemBertIntermediate",
    "RemBertLMPredictionHead",
    "RemBertLayer",
    "RemBertOnlyMLMHead",
    "RemBertOutput",
    "RemBertPooler",
    "RemBertSelfAttention",
    "RemBertSelfOutput",
    "get_activation",
]

Tensor = torch.Tensor
Layers = tuple[Tensor, ...]  # one tensor per layer

# -- activations ---------------------------------------------------------------------------------


def _gelu_new(x: Tensor) -> Tensor:
    # The tanh approximation written out, as the reference's "gelu_new" computes it.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


#: ``config.hidden_act`` -> the activation function ("gelu" is the exact erf GELU).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation called ``name`` in the config (:data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"hidden_act {name!r} is not supported; choose one of {sorted(ACTIVATIONS)}") from None


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
            inputs_embeds = self.word_embeddings(as_index(input_ids))
        embeddings = inputs_embeds + self.token_type_embeddings(as_index(token_type_ids))
        embeddings = embeddings + self.position_embeddings(as_index(position_ids))
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)  # type: ignore[no-any-return]


# -- attention -----------------------------------------------------------------------------------


class RemBertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention (self- or cross-), with an optional key/value cache.

    ``attn_implementation`` (``"auto"``, ``"sdpa"``, ``"eager"``) picks SDPA or the reference's explicit
    softmax; :func:`rembert_torch.kernels.use_sdpa` says when. The forward numbers agree either way.
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
        # whose row blocks *are* the storage of query/key/value (kernels.pack_qkv); not module state.
        self._qkv: tuple[Tensor, Tensor] | None = None

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
        *,
        unpadded: Unpadded | None = None,
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """Returns (context (batch, seq, hidden), probabilities or None, (key, value) (batch, heads, kv_seq, head_dim)).

        For cross-attention (``encoder_hidden_states`` given) a cached (key, value)
        is reused as is; for self-attention the new keys/values are appended to it. With ``unpadded``,
        ``hidden_states`` holds only the real tokens (tokens, hidden) and each row attends to its own
        (:func:`rembert_torch.kernels.unpadded_attention`); returns (context (tokens, hidden), None, (key, value)).
        """
        if unpadded is not None:
            return self._forward_unpadded(hidden_states, unpadded)
        batch, seq, _ = hidden_states.shape
        if encoder_hidden_states is not None and past_key_value is not None:
            query = self._split_heads(self.query(hidden_states))  # (batch, heads, seq, head_dim)
            key, value = past_key_value  # cross-attention keys/values computed at the first step
        else:
            if encoder_hidden_states is None and can_pack_qkv(self.query, self.key, self.value, hidden_states):
                self._qkv = pack_qkv(self.query, self.key, self.value, self._qkv)
                qkv = packed_linear(hidden_states, *self._qkv)  # (batch, seq, 3 * all_head_size)
                qkv = qkv.view(batch, seq, 3, self.num_attention_heads, self.attention_head_size)
                query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
            else:
                query = self._split_heads(self.query(hidden_states))  # (batch, heads, seq, head_dim)
                source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
                key = self._split_heads(self.key(source))  # (batch, heads, kv_seq, head_dim)
                value = self._split_heads(self.value(source))
            if past_key_value is not None:  # self-attention: the new keys/values follow the cached ones
                key = torch.cat([past_key_value[0], key], dim=2)  # (batch, heads, past + seq, head_dim)
                value = torch.cat([past_key_value[1], value], dim=2)

        probs: Tensor | None = None
        kernel = attention_kernel(
            self.attn_implementation, query, key, value, attention_mask, head_mask, output_attentions
        )
        if kernel != "eager":  # SDPA or matmul-softmax with the softmax in float32
            dropout_p = self.dropout.p if self.training else 0.0
            context = attend(query, key, value, attention_mask, dropout_p, kernel)  # (batch, heads, seq, head_dim)
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

    def _forward_unpadded(
        self, hidden_states: Tensor, unpadded: Unpadded
    ) -> tuple[Tensor, None, tuple[Tensor, Tensor]]:
        """Self-attention over (tokens, hidden) real tokens, each row attending to its own tokens."""
        tokens = hidden_states.shape[0]
        if can_pack_qkv(self.query, self.key, self.value, hidden_states):
            self._qkv = pack_qkv(self.query, self.key, self.value, self._qkv)
            qkv = packed_linear(hidden_states, *self._qkv)  # (tokens, 3 * all_head_size)
        else:
            qkv = torch.cat([self.query(hidden_states), self.key(hidden_states), self.value(hidden_states)], dim=-1)
        qkv = qkv.view(tokens, 3, self.num_attention_heads, self.attention_head_size)
        dropout_p = self.dropout.p if self.training else 0.0
        context = unpadded_attention(qkv, unpadded, dropout_p, self.attn_implementation)  # (tokens, hidden)
        key, value = qkv[:, 1], qkv[:, 2]  # (tokens, heads, head_dim) each; never cached (no decoder unpads)
        return context, None, (key, value)


class RemBertSelfOutput(nn.Module):
    """Attention output projection, dropout, residual, LayerNorm (post-LN)."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        """(batch, seq, hidden) context and residual -> (batch, seq, hidden)."""
        hidden_states = self.dropout(self.dense(hidden_states))
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
        *,
        unpadded: Unpadded | None = None,
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """Returns (output (batch, seq, hidden), probabilities or None, (key, value)); (tokens, hidden) unpadded."""
        context, probs, present = self.self(
            hidden_states,
            attention_mask,
            head_mask,
            encoder_hidden_states,
            past_key_value,
            output_attentions,
            unpadded=unpadded,
        )
        if unpadded is not None and unpadded.first_only:  # one query per row: position 0's residual
            hidden_states = hidden_states.index_select(0, unpadded.starts)  # (batch, hidden)
        return self.output(context, hidden_states), probs, present


# -- feed-forward --------------------------------------------------------------------------------


class RemBertIntermediate(nn.Module):
    """Feed-forward expansion: dense(hidden -> intermediate) and the activation."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, seq, intermediate)."""
        # intermediate_act_fn(dense(x)), with GELU/ReLU fused into the GEMM at inference where oneDNN can
        return dense_act(self.dense, hidden_states, self.intermediate_act_fn)


class RemBertOutput(nn.Module):
    """Feed-forward contraction: dense(intermediate -> hidden), dropout, residual, LayerNorm."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        """(batch, seq, intermediate) and residual (batch, seq, hidden) -> (batch, seq, hidden)."""
        hidden_states = self.dropout(self.dense(hidden_states))
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
        *,
        unpadded: Unpadded | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None, LayerPast]:
        """Returns (output (batch, seq, hidden), self probs, cross probs, present key/values of this layer).

        With ``unpadded`` (encoders only), ``hidden_states`` and the output are the real tokens (tokens, hidden).
        """
        self_past = (past_key_value[0], past_key_value[1]) if past_key_value is not None else None
        attention_output, self_probs, present = self.attention(
            hidden_states, attention_mask, head_mask, None, self_past, output_attentions, unpadded=unpadded
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
        self.embedding_hidden_mapping_in = Linear(config.input_embedding_size, config.hidden_size)
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
        unpadded: Unpadded | None = None,
    ) -> tuple[Tensor, PastKeyValues | None, Layers | None, Layers | None, Layers | None]:
        """Returns (last hidden state, presents, all hidden states, self attentions, cross attentions).

        With ``unpadded``, ``hidden_states`` and the hidden states returned are the real tokens (tokens, width),
        and with its ``pool_only`` the last hidden state is position 0 of each row (batch, hidden).
        """
        hidden_states = self.embedding_hidden_mapping_in(hidden_states)  # (batch, seq, hidden)
        all_hidden: tuple[Tensor, ...] = ()
        all_self: tuple[Tensor, ...] = ()
        all_cross: tuple[Tensor, ...] = ()
        presents: tuple[LayerPast, ...] = ()
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden = (*all_hidden, hidden_states)
            layer_past = past_key_values[i] if past_key_values is not None else None
            plan = unpadded
            if plan is not None and plan.pool_only and i == len(self.layer) - 1:
                plan = plan.first_only_plan()  # (batch, hidden) out: position 0 of each row
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
                    layer, *args, use_reentrant=False, unpadded=plan
                )
            else:
                hidden_states, self_probs, cross_probs, present = layer(*args, unpadded=plan)
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
        self.dense = Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, hidden)."""
        return torch.tanh(self.dense(hidden_states[:, 0]))


# -- LM head -------------------------------------------------------------------------------------


class RemBertLMPredictionHead(nn.Module):
    """dense(hidden -> output_embedding_size), activation, LayerNorm, decoder(-> vocab_size).

    The decoder is the output embedding; it is not tied to the (narrower) input embeddings.
    """

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.dense = Linear(config.hidden_size, config.output_embedding_size)
        self.decoder = Linear(config.output_embedding_size, config.vocab_size)
        self.activation = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.output_embedding_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, seq, vocab_size) prediction scores."""
        hidden_states = self.LayerNorm(dense_act(self.dense, hidden_states, self.activation))  # activation fused
        return self.decoder(hidden_states)  # type: ignore[no-any-return]


class RemBertOnlyMLMHead(nn.Module):
    """Holds the LM head as ``predictions`` (checkpoint names ``cls.predictions.*``)."""

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        self.predictions = RemBertLMPredictionHead(config)

    def forward(self, sequence_output: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, seq, vocab_size)."""
        return self.predictions(sequence_output)  # type: ignore[no-any-return]
