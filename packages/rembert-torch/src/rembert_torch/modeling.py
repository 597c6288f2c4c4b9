"""RemBERT in PyTorch: the model, read top to bottom.

Modules come in dependency order: embeddings, self-attention, attention output, attention, intermediate,
output, layer, encoder, pooler, LM head, :class:`RemBertModel`, then the six task heads. The base class
(weights, loading, resizing, the additive attention masks) is in :mod:`~rembert_torch.pretrained`, the
input checks in :mod:`~rembert_torch.validation`, the speed tricks in :mod:`~rembert_torch.kernels` and
``generate`` in :mod:`~rembert_torch.generation`.

Semantics are those of ``transformers.RemBertModel`` (4.57): decoupled input embeddings
(``input_embedding_size``) projected to ``hidden_size`` by ``encoder.embedding_hidden_mapping_in``,
post-LayerNorm BERT layers, additive attention masks built from ``torch.finfo(dtype).min``, an output LM
head of width ``output_embedding_size`` that is not tied to the input embeddings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from rembert_core import ConfigError, RemBertConfig
from rembert_torch import validation
from rembert_torch.generation import GenerationMixin
from rembert_torch.kernels import ACTIVATIONS, Linear, can_pack_qkv, dense_act, pack_qkv, packed_linear, use_sdpa
from rembert_torch.kernels import ATTN_IMPLEMENTATIONS as ATTN_IMPLEMENTATIONS  # re-exported, as before the split
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
from rembert_torch.pretrained import RemBertPreTrainedModel, document_forward
from rembert_torch.validation import LayerPast, as_index

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
Layers = tuple[Tensor, ...]  # one tensor per layer

# Attribute names are the checkpoint names (``encoder.layer.N.attention.self.query``, ``cls.predictions.decoder``,
# backbone ``rembert`` in heads), so ``state_dict()`` keys are those of rembert_core.build_schema and of
# transformers 4.57 checkpoints. Dense layers are kernels.Linear (one oneDNN call at float32 CPU inference);
# query/key/value (packed at inference, see kernels.pack_qkv) and the heads' classifiers are nn.Linear.

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
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """Returns (context (batch, seq, hidden), probabilities or None, (key, value) (batch, heads, kv_seq, head_dim)).

        For cross-attention (``encoder_hidden_states`` given) a cached (key, value)
        is reused as is; for self-attention the new keys/values are appended to it.
        """
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
        if use_sdpa(self.attn_implementation, query, key, value, attention_mask, head_mask, output_attentions):
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=self.dropout.p if self.training else 0.0
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
        self.dense = Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACTIVATIONS[config.hidden_act]

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
    ) -> tuple[Tensor, PastKeyValues | None, Layers | None, Layers | None, Layers | None]:
        """Returns (last hidden state, presents, all hidden states, self attentions, cross attentions)."""
        hidden_states = self.embedding_hidden_mapping_in(hidden_states)  # (batch, seq, hidden)
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
        self.activation = ACTIVATIONS[config.hidden_act]
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


# -- the bare model ------------------------------------------------------------------------------


class RemBertModel(RemBertPreTrainedModel):
    """The RemBERT encoder (or decoder, with ``config.is_decoder``); ``add_pooling_layer`` adds the pooler.

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertModel
        >>> config = tiny_config()
        >>> model = RemBertModel(config).eval()
        >>> out = model(torch.tensor([[5, 6, 7, 0]]), attention_mask=torch.tensor([[1, 1, 1, 0]]),
        ...             output_hidden_states=True)
        >>> out.last_hidden_state.shape, out.pooler_output.shape, len(out.hidden_states)
        (torch.Size([1, 4, 48]), torch.Size([1, 48]), 3)
    """

    def __init__(self, config: RemBertConfig, add_pooling_layer: bool = True, *, _init: bool = True) -> None:
        super().__init__(config)
        self.embeddings = RemBertEmbeddings(config)
        self.encoder = RemBertEncoder(config)
        self.pooler = RemBertPooler(config) if add_pooling_layer else None
        if _init:
            self.post_init()

    @document_forward(BaseModelOutputWithPoolingAndCrossAttentions)
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
        """Run the model: (batch, seq) ids -> (batch, seq, hidden) hidden states and the pooled first token."""
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        config = self.config
        use_cache = bool(use_cache if use_cache is not None else config.use_cache) if config.is_decoder else False
        if use_cache and self.encoder.gradient_checkpointing and self.training:
            logger.warning("use_cache=True is incompatible with gradient checkpointing in training; not caching")
            use_cache = False
        past = validation.normalize_past(past_key_values)
        if not config.is_decoder:
            encoder_hidden_states = None  # the reference ignores them in encoders
            encoder_attention_mask = None
        batch, seq, past_length = validation.check_model_inputs(
            config,
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
        return BaseModelOutputWithPoolingAndCrossAttentions(last, pooled, presents, all_hidden, all_self, all_cross)


# -- heads ---------------------------------------------------------------------------------------


class RemBertForMaskedLM(RemBertPreTrainedModel):
    """RemBERT with the masked-language-modelling head (``cls.predictions``).

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertForMaskedLM
        >>> config = tiny_config()
        >>> model = RemBertForMaskedLM(config).eval()
        >>> out = model(torch.tensor([[5, 6, 7]]), labels=torch.tensor([[-100, 6, -100]]))
        >>> out.logits.shape, out.loss.shape
        (torch.Size([1, 3, 301]), torch.Size([]))
    """

    task: ClassVar[str] = "masked_lm"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        if config.is_decoder:
            logger.warning("RemBertForMaskedLM expects is_decoder=False for bidirectional self-attention")
        self.rembert = RemBertModel(config, add_pooling_layer=False, _init=False)
        self.cls = RemBertOnlyMLMHead(config)
        self.post_init()

    @document_forward(MaskedLMOutput)
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
        """Masked-LM scores (batch, seq, vocab_size) and, with ``labels``, the mean cross-entropy.

        Args:
            labels (torch.LongTensor | None): (batch, seq) token ids to predict, -100 where there is nothing
                to predict.
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            labels = validation.check_token_labels(labels, input_ids, inputs_embeds, self.config.vocab_size)
        outputs = self.rembert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            use_cache=False,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.reshape(-1), ignore_index=-100)
        out = MaskedLMOutput(loss, logits, outputs.hidden_states, outputs.attentions)
        return out if return_dict else out.to_tuple()


class RemBertForCausalLM(RemBertPreTrainedModel, GenerationMixin):
    """RemBERT with a left-to-right language-modelling head (use with ``is_decoder=True``), and ``generate``.

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertForCausalLM
        >>> config = tiny_config(is_decoder=True)
        >>> model = RemBertForCausalLM(config).eval()
        >>> first = model(torch.tensor([[5, 6, 7]]), use_cache=True)
        >>> step = model(torch.tensor([[8]]), past_key_values=first.past_key_values, use_cache=True)
        >>> step.logits.shape  # only the new position; the prefix comes from the cache
        torch.Size([1, 1, 301])
    """

    task: ClassVar[str] = "causal_lm"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        if not config.is_decoder:
            logger.warning("RemBertForCausalLM used without is_decoder=True: attention is not causal")
        self.rembert = RemBertModel(config, add_pooling_layer=False, _init=False)
        self.cls = RemBertOnlyMLMHead(config)
        self.post_init()

    @document_forward(CausalLMOutputWithCrossAttentions)
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
        """Next-token scores (batch, seq, vocab_size); with ``labels`` the loss of predicting token t+1 at t.

        Args:
            labels (torch.LongTensor | None): (batch, seq), the input ids themselves: the shift happens
                inside (position t predicts label t + 1); -100 to ignore.
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            labels = validation.check_token_labels(labels, input_ids, inputs_embeds, self.config.vocab_size)
        outputs = self.rembert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]  # (batch, seq): token t predicts label t + 1
            loss = F.cross_entropy(
                logits.float().reshape(-1, self.config.vocab_size), shifted.reshape(-1), ignore_index=-100
            )
        out = CausalLMOutputWithCrossAttentions(
            loss, logits, outputs.past_key_values, outputs.hidden_states, outputs.attentions, outputs.cross_attentions
        )
        return out if return_dict else out.to_tuple()


class RemBertForSequenceClassification(RemBertPreTrainedModel):
    """RemBERT with a linear classifier (or regressor) on the pooled output.

    The loss follows ``config.problem_type``: ``"regression"`` (MSE),
    ``"single_label_classification"`` (cross-entropy) or
    ``"multi_label_classification"`` (BCE with logits). When unset it is inferred
    from the first labels seen, like the reference: one label -> regression,
    integer labels -> single-label, float labels -> multi-label (and stored in the config).

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertForSequenceClassification
        >>> config = tiny_config()  # num_labels=3
        >>> model = RemBertForSequenceClassification(config).eval()
        >>> out = model(torch.tensor([[5, 6, 7], [8, 9, 0]]), attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]),
        ...             labels=torch.tensor([2, 0]))
        >>> out.logits.shape, model.config.problem_type
        (torch.Size([2, 3]), 'single_label_classification')
    """

    task: ClassVar[str] = "sequence_classification"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.rembert = RemBertModel(config, _init=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @document_forward(SequenceClassifierOutput)
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
                or (batch, num_labels) floats for multi-label.
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            batch, _ = validation.batch_and_seq(input_ids, inputs_embeds)
            problem, labels = validation.check_sequence_labels(labels, self.config, self.num_labels, batch)
        outputs = self.rembert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (batch, num_labels)
        loss = None
        if labels is not None:
            if problem == "regression" and self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(), labels.squeeze())
            elif problem == "regression":
                loss = F.mse_loss(logits, labels)
            elif problem == "single_label_classification":
                loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.reshape(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels)
        out = SequenceClassifierOutput(loss, logits, outputs.hidden_states, outputs.attentions)
        return out if return_dict else out.to_tuple()


class RemBertForMultipleChoice(RemBertPreTrainedModel):
    """RemBERT scoring each of several choices (inputs (batch, num_choices, seq)) from its pooled output.

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertForMultipleChoice
        >>> config = tiny_config()
        >>> model = RemBertForMultipleChoice(config).eval()
        >>> ids = torch.tensor([[[5, 6, 7], [5, 8, 9]]])  # (batch=1, num_choices=2, seq=3)
        >>> model(ids, labels=torch.tensor([1])).logits.shape
        torch.Size([1, 2])
    """

    task: ClassVar[str] = "multiple_choice"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__(config)
        self.rembert = RemBertModel(config, _init=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @document_forward(MultipleChoiceModelOutput)
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
        """Choice scores (batch, num_choices); with ``labels`` the cross-entropy over choices.

        Args:
            input_ids: (batch, num_choices, seq) token ids. Exactly one of this and ``inputs_embeds``.
            attention_mask: (batch, num_choices, seq) 1 = attend, 0 = padding.
            token_type_ids: (batch, num_choices, seq) segment ids; default zeros.
            position_ids: (batch, num_choices, seq) positions; default 0 .. seq - 1.
            inputs_embeds: (batch, num_choices, seq, input_embedding_size) instead of ``input_ids``.
            labels (torch.LongTensor | None): (batch,) index of the right choice.
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        batch, num_choices, seq = shape = validation.check_choice_inputs(input_ids, inputs_embeds)
        if labels is not None:
            labels = validation.check_choice_labels(labels, batch, num_choices)
        outputs = self.rembert(  # every choice as its own sequence: (batch * num_choices, seq)
            validation.flatten_choices(input_ids, "input_ids", *shape),
            attention_mask=validation.flatten_choices(attention_mask, "attention_mask", *shape),
            token_type_ids=validation.flatten_choices(token_type_ids, "token_type_ids", *shape),
            position_ids=validation.flatten_choices(position_ids, "position_ids", *shape),
            head_mask=head_mask,
            inputs_embeds=inputs_embeds.reshape(batch * num_choices, seq, -1) if inputs_embeds is not None else None,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (batch * choices, 1)
        reshaped_logits = logits.view(batch, num_choices)  # (batch, choices)
        loss = F.cross_entropy(reshaped_logits, labels) if labels is not None else None
        out = MultipleChoiceModelOutput(loss, reshaped_logits, outputs.hidden_states, outputs.attentions)
        return out if return_dict else out.to_tuple()


class RemBertForTokenClassification(RemBertPreTrainedModel):
    """RemBERT with a linear classifier on every token (e.g. NER).

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertForTokenClassification
        >>> config = tiny_config(num_labels=5)
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

    @document_forward(TokenClassifierOutput)
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
        """Per-token scores (batch, seq, num_labels); with ``labels`` the cross-entropy.

        Args:
            labels (torch.LongTensor | None): (batch, seq) class ids, -100 to ignore a position (padding,
                later pieces of a word).
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            labels = validation.check_token_labels(labels, input_ids, inputs_embeds, self.num_labels)
        outputs = self.rembert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # (batch, seq, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.reshape(-1), ignore_index=-100)
        out = TokenClassifierOutput(loss, logits, outputs.hidden_states, outputs.attentions)
        return out if return_dict else out.to_tuple()


class RemBertForQuestionAnswering(RemBertPreTrainedModel):
    """RemBERT with span start/end scores (``qa_outputs``, ``num_labels`` = 2) for extractive QA.

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertForQuestionAnswering
        >>> config = tiny_config(num_labels=2)
        >>> model = RemBertForQuestionAnswering(config).eval()
        >>> out = model(torch.tensor([[5, 6, 7, 8]]), start_positions=torch.tensor([1]),
        ...             end_positions=torch.tensor([2]))
        >>> out.start_logits.shape, out.end_logits.shape, out.loss.shape
        (torch.Size([1, 4]), torch.Size([1, 4]), torch.Size([]))
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

    @document_forward(QuestionAnsweringModelOutput)
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
        """Start and end scores (batch, seq); with both positions the mean of their cross-entropies.

        Positions outside [0, seq) are clamped to ``seq`` and ignored, like the
        reference (the caller's tensors are not modified).

        Args:
            start_positions (torch.LongTensor | None): (batch,) first token of the answer.
            end_positions (torch.LongTensor | None): (batch,) last token of the answer (inclusive).
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        positions = validation.check_span_positions(start_positions, end_positions, input_ids, inputs_embeds)
        outputs = self.rembert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
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
        out = QuestionAnsweringModelOutput(loss, start_logits, end_logits, outputs.hidden_states, outputs.attentions)
        return out if return_dict else out.to_tuple()
