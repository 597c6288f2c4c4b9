"""RemBERT in PyTorch: the model and the six task heads, following the reference.

Read :mod:`rembert_torch.layers` first (activations, embeddings, attention, feed-forward, layer, encoder,
pooler, LM head); this file assembles them, top to bottom: :class:`RemBertModel` (the backbone: inputs,
the additive attention masks, embeddings, encoder, pooler), then the six task heads. Elsewhere: the base
class (config, weight init, loading, resizing, checkpointing) in :mod:`~rembert_torch.pretrained`, the
input and label checks in :mod:`~rembert_torch.validation`, the dense layers' fast path, packed QKV, the
attention kernel and weight initialisation in :mod:`~rembert_torch.kernels`, ``generate`` in
:mod:`~rembert_torch.generation`.

Semantics are those of ``transformers.RemBertModel`` (4.57): decoupled input embeddings
(``input_embedding_size``) projected to ``hidden_size`` by ``encoder.embedding_hidden_mapping_in``,
post-LayerNorm BERT layers, additive attention masks built from ``torch.finfo(dtype).min``, an output LM
head of width ``output_embedding_size`` that is not tied to the input embeddings.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rembert_core import ConfigError, RemBertConfig
from rembert_torch import kernels, validation
from rembert_torch.generation import GenerationMixin
from rembert_torch.kernels import ATTN_IMPLEMENTATIONS as ATTN_IMPLEMENTATIONS  # re-exported, as before the split
from rembert_torch.layers import ACTIVATIONS as ACTIVATIONS  # re-exported: importable from here as before
from rembert_torch.layers import RemBertAttention as RemBertAttention
from rembert_torch.layers import RemBertEmbeddings, RemBertEncoder, RemBertOnlyMLMHead, RemBertPooler
from rembert_torch.layers import RemBertIntermediate as RemBertIntermediate
from rembert_torch.layers import RemBertLayer as RemBertLayer
from rembert_torch.layers import RemBertLMPredictionHead as RemBertLMPredictionHead
from rembert_torch.layers import RemBertOutput as RemBertOutput
from rembert_torch.layers import RemBertSelfAttention as RemBertSelfAttention
from rembert_torch.layers import RemBertSelfOutput as RemBertSelfOutput
from rembert_torch.layers import get_activation as get_activation
from rembert_torch.outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from rembert_torch.pretrained import RemBertPreTrainedModel, document_forward
from rembert_torch.validation import LayerPast as LayerPast

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

    def _real_tokens(
        self,
        input_ids: Tensor | None,
        attention_mask: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        inputs_embeds: Tensor | None,
        *,
        pooled: bool,
    ) -> tuple[Tensor, kernels.Unpadded, Tensor | None] | None:
        """The encoder run on the real tokens only, or None where the batch must run padded.

        For heads whose outputs never read a padded position (a pooled classifier, a masked-LM loss at
        labelled real tokens): gathers the real tokens once (:func:`rembert_torch.kernels.plan_unpadding`
        decides whether it pays), runs embeddings, every dense layer and layer norm on (tokens, width)
        and attention per row, and returns (last hidden state (tokens, hidden), the plan, the pooled output
        (batch, hidden) when ``pooled``; the last hidden state is then position 0 of each row only, (batch,
        hidden), as the last layer computes nothing else). The caller has checked it wants no head mask, attentions or
        hidden states. Decoders, hooked backbones and compiled/traced models run padded (None).
        """
        hooked = self._forward_hooks or self._forward_pre_hooks or nn.modules.module._global_forward_hooks
        if self.config.is_decoder or hooked or (pooled and self.pooler is None) or not kernels.UNPAD:
            return None
        if attention_mask is None or not validation.checking_values():
            return None
        batch, seq, _ = validation.check_model_inputs(
            self.config, input_ids, attention_mask, token_type_ids, position_ids, None, inputs_embeds, None, None, None
        )
        plan = kernels.plan_unpadding(attention_mask, pooled=pooled)
        if plan is None:
            return None
        device = attention_mask.device
        if token_type_ids is None:
            token_type_ids = torch.zeros(batch, seq, dtype=torch.long, device=device)
        if position_ids is None:
            position_ids = torch.arange(seq, device=device)
        position_ids = position_ids.reshape(-1, seq).expand(batch, seq)  # (batch, seq)
        ids = kernels.gather_tokens(input_ids, plan) if input_ids is not None else None  # (tokens,)
        embeds = kernels.gather_tokens(inputs_embeds, plan) if inputs_embeds is not None else None  # (tokens, width)
        types = kernels.gather_tokens(token_type_ids.expand(batch, seq), plan)
        embedding_output = self.embeddings(ids, types, kernels.gather_tokens(position_ids, plan), embeds)
        no_heads: list[Tensor | None] = [None] * self.config.num_hidden_layers
        last = self.encoder(embedding_output, None, no_heads, None, None, None, False, False, False, plan)[0]
        first = None
        if pooled:
            assert self.pooler is not None
            if not len(self.encoder.layer):  # no last layer to narrow the tokens down
                last = last.index_select(0, plan.starts)
            first = self.pooler(last[:, None])  # last: position 0 of each row (batch, hidden), see Unpadded
        return last, plan, first

    # -- attention masks (as transformers' get_extended_attention_mask, invert_attention_mask, get_head_mask) --

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


# -- heads ---------------------------------------------------------------------------------------


def _pooled(
    backbone: RemBertModel,
    input_ids: Tensor | None,
    attention_mask: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    head_mask: Tensor | None,
    inputs_embeds: Tensor | None,
    output_attentions: bool,
    output_hidden_states: bool,
) -> BaseModelOutputWithPoolingAndCrossAttentions:
    """The backbone's output for a head that reads only the pooled output: on the real tokens where it pays
    (``RemBertModel._real_tokens``; ``last_hidden_state`` is then None), padded otherwise."""
    if head_mask is None and not output_attentions and not output_hidden_states:
        real = backbone._real_tokens(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, pooled=True
        )
        if real is not None:
            return BaseModelOutputWithPoolingAndCrossAttentions(None, real[2])
    return backbone(  # type: ignore[no-any-return]
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
        return_logits: bool | None = None,
    ) -> Any:
        """Masked-LM scores (batch, seq, vocab_size) and, with ``labels``, the mean cross-entropy.

        Args:
            labels (torch.LongTensor | None): (batch, seq) token ids to predict, -100 where there is nothing
                to predict.
            return_logits (bool | None): False computes the decoder (``cls``) only at the labelled positions
                and returns ``logits=None``: the same loss without the (batch, seq, vocab_size) scores, and
                the backbone runs on the real tokens only where that pays. None: True, or with ``labels``
                the config's ``return_logits`` (unset: True), so a training loop can turn it off once.
        """
        output_attentions, output_hidden_states, return_dict = self._resolve_flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            labels = validation.check_token_labels(labels, input_ids, inputs_embeds, self.config.vocab_size)
        if return_logits is None:
            return_logits = labels is None or bool(self.config.extra.get("return_logits", True))
        if not return_logits and labels is not None:
            labelled_loss, hidden_states, attentions = self._labelled_loss(
                labels,
                input_ids,
                attention_mask,
                token_type_ids,
                position_ids,
                head_mask,
                inputs_embeds,
                (encoder_hidden_states, encoder_attention_mask),
                output_attentions,
                output_hidden_states,
            )
            out = MaskedLMOutput(labelled_loss, None, hidden_states, attentions)
            return out if return_dict else out.to_tuple()
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
        if not return_logits:
            lean = MaskedLMOutput(None, None, outputs.hidden_states, outputs.attentions)
            return lean if return_dict else lean.to_tuple()
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.reshape(-1), ignore_index=-100)
        out = MaskedLMOutput(loss, logits, outputs.hidden_states, outputs.attentions)
        return out if return_dict else out.to_tuple()

    def _labelled_loss(
        self,
        labels: Tensor,
        input_ids: Tensor | None,
        attention_mask: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        head_mask: Tensor | None,
        inputs_embeds: Tensor | None,
        encoder: tuple[Tensor | None, Tensor | None],
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[Tensor, Any, Any]:
        """(loss, hidden states, attentions) with the decoder run only at the labelled positions.

        The mean cross-entropy over the labelled positions is the loss the full logits give (``ignore_index``
        -100 averages over the same positions). The backbone runs on the real tokens only where no output
        needs a padded position (no head mask, attentions or hidden states; no label on a padded position).
        """
        flat_labels = labels.reshape(-1)  # (batch * seq,)
        real = None
        plain = head_mask is None and not output_attentions and not output_hidden_states
        if plain and attention_mask is not None and attention_mask.shape == labels.shape:
            on_padding = bool(((labels != -100) & (attention_mask == 0)).any())
            if not on_padding:
                real = self.rembert._real_tokens(
                    input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, pooled=False
                )
        hidden_states = attentions = None
        if real is not None:
            last, plan, _ = real
            flat_labels = flat_labels.index_select(0, plan.index)  # (tokens,)
        else:
            outputs = self.rembert(
                input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                position_ids=position_ids,
                head_mask=head_mask,
                inputs_embeds=inputs_embeds,
                encoder_hidden_states=encoder[0],
                encoder_attention_mask=encoder[1],
                use_cache=False,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
            last = outputs.last_hidden_state.reshape(flat_labels.shape[0], -1)  # (batch * seq, hidden)
            hidden_states, attentions = outputs.hidden_states, outputs.attentions
        labelled = (flat_labels != -100).nonzero().squeeze(1)  # (labelled,)
        logits = self.cls(last.index_select(0, labelled))  # (labelled, vocab)
        return F.cross_entropy(logits, flat_labels.index_select(0, labelled)), hidden_states, attentions


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
        logits_to_keep: int | Tensor = 0,
    ) -> Any:
        """Next-token scores (batch, seq, vocab_size); with ``labels`` the loss of predicting token t+1 at t.

        Args:
            labels (torch.LongTensor | None): (batch, seq), the input ids themselves: the shift happens
                inside (position t predicts label t + 1); -100 to ignore.
            logits_to_keep (int | torch.Tensor): as in transformers: 0 (default) scores every position; an
                int n > 0 only the last n positions (``logits`` (batch, n, vocab_size)); a 1-D tensor of
                positions only those. The loss is still over every labelled position (its decoder rows
                only), so it does not depend on ``logits_to_keep``.
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
        hidden = outputs.last_hidden_state  # (batch, seq, hidden)
        keep_all = isinstance(logits_to_keep, int) and logits_to_keep == 0
        if keep_all:
            logits = self.cls(hidden)  # (batch, seq, vocab)
        else:
            kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
            logits = self.cls(hidden[:, kept])  # (batch, kept, vocab)
        loss = None
        if labels is not None:
            shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]  # (batch, seq): token t predicts label t + 1
            if keep_all:
                scores, targets = logits.reshape(-1, self.config.vocab_size), shifted.reshape(-1)
            else:  # the decoder at the labelled positions only
                labelled = (shifted.reshape(-1) != -100).nonzero().squeeze(1)
                scores = self.cls(hidden.reshape(-1, hidden.shape[-1]).index_select(0, labelled))
                targets = shifted.reshape(-1).index_select(0, labelled)
            loss = F.cross_entropy(scores.float(), targets, ignore_index=-100)
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
        outputs = _pooled(
            self.rembert,
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
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
        outputs = _pooled(  # every choice as its own sequence: (batch * num_choices, seq)
            self.rembert,
            validation.flatten_choices(input_ids, "input_ids", *shape),
            validation.flatten_choices(attention_mask, "attention_mask", *shape),
            validation.flatten_choices(token_type_ids, "token_type_ids", *shape),
            validation.flatten_choices(position_ids, "position_ids", *shape),
            head_mask,
            inputs_embeds.reshape(batch * num_choices, seq, -1) if inputs_embeds is not None else None,
            output_attentions,
            output_hidden_states,
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
