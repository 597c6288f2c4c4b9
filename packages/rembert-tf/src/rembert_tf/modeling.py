"""RemBERT in TensorFlow / Keras 3: the model and the six task heads, following the reference PyTorch model.

Read :mod:`rembert_tf.layers` first (activations, embeddings, attention, feed-forward, layer, encoder,
pooler, LM head); this file assembles them, top to bottom: :class:`TFRemBertMainLayer` (the backbone:
inputs, the additive attention masks, embeddings, encoder, pooler), :class:`TFRemBertModel`, then the six
task heads. Elsewhere: the base class (config, canonical tensors, checkpoints, resizing, Keras hooks,
export) in :mod:`~rembert_tf.pretrained`, the input and label checks in :mod:`~rembert_tf.validation`,
the leaf layers, their initial values and the lazy-memory tricks in :mod:`~rembert_tf.kernels`,
``generate`` in :mod:`~rembert_tf.generation`.

The semantics are those of the reference *PyTorch* implementation
(``transformers`` 4.57 ``RemBertModel``), also where the old TensorFlow reference
deviated: masks add ``(1 - mask) * float32.min`` (not -1e4), ``head_mask`` is
supported, token classification drops out with ``classifier_dropout_prob``,
sequence classification supports the multi-label loss, question-answering
positions are clamped, and ``hidden_states`` has ``num_hidden_layers + 1`` entries.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rembert_core import ARCHITECTURES, ConfigError, InputError, RemBertConfig
from rembert_tf import kernels, validation
from rembert_tf._tensorflow import keras, tf
from rembert_tf.generation import TFGenerationMixin
from rembert_tf.kernels import LAZY_BUFFERS as LAZY_BUFFERS  # re-exported: importable from here as before
from rembert_tf.kernels import LAZY_ZEROS_MIN_BYTES as LAZY_ZEROS_MIN_BYTES
from rembert_tf.kernels import Embedding as Embedding
from rembert_tf.kernels import LayerNorm as LayerNorm
from rembert_tf.kernels import Linear
from rembert_tf.kernels import skip_init as skip_init
from rembert_tf.layers import ACTIVATIONS as ACTIVATIONS
from rembert_tf.layers import TFRemBertAttention as TFRemBertAttention
from rembert_tf.layers import (
    TFRemBertEmbeddings,
    TFRemBertEncoder,
    TFRemBertOnlyMLMHead,
    TFRemBertPooler,
    encode_unpadded,
)
from rembert_tf.layers import TFRemBertIntermediate as TFRemBertIntermediate
from rembert_tf.layers import TFRemBertLayer as TFRemBertLayer
from rembert_tf.layers import TFRemBertLMPredictionHead as TFRemBertLMPredictionHead
from rembert_tf.layers import TFRemBertOutput as TFRemBertOutput
from rembert_tf.layers import TFRemBertSelfAttention as TFRemBertSelfAttention
from rembert_tf.layers import TFRemBertSelfOutput as TFRemBertSelfOutput
from rembert_tf.layers import get_activation as get_activation
from rembert_tf.outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from rembert_tf.pretrained import _COMMON_INPUTS, TFRemBertPreTrainedModel, _named, document_call
from rembert_tf.validation import PastKeyValues, Tensor, dim

if keras.backend.backend() != "tensorflow":  # pragma: no cover - depends on the user's environment
    raise ImportError(
        f"rembert_tf needs Keras 3 with the TensorFlow backend, but Keras uses {keras.backend.backend()!r}; "
        "set KERAS_BACKEND=tensorflow (or unset it) before importing keras"
    )

__all__ = [
    "TFRemBertForCausalLM",
    "TFRemBertForMaskedLM",
    "TFRemBertForMultipleChoice",
    "TFRemBertForQuestionAnswering",
    "TFRemBertForSequenceClassification",
    "TFRemBertForTokenClassification",
    "TFRemBertMainLayer",
    "TFRemBertModel",
    "TFRemBertPreTrainedModel",
]

# The most negative float32: a masked score becomes this (the reference's torch.finfo(dtype).min).
_MASK_MIN = float(np.finfo(np.float32).min)


# -- the main layer: masks, embeddings, encoder, pooler --------------------------------------------


class TFRemBertMainLayer(keras.layers.Layer):
    """The backbone (``RemBertModel``): checks inputs, builds masks, runs embeddings, encoder, pooler."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {
        "embeddings": "embeddings",
        "encoder": "encoder",
        "pooler": "pooler",
    }

    def __init__(self, config: RemBertConfig, add_pooling_layer: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.embeddings = TFRemBertEmbeddings(config, name="embeddings", dtype=self.dtype_policy)
        self.encoder = TFRemBertEncoder(config, name="encoder", dtype=self.dtype_policy)
        self.pooler = TFRemBertPooler(config, name="pooler", dtype=self.dtype_policy) if add_pooling_layer else None
        self.built = True

    def call(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        past_key_values: PastKeyValues | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        training: bool = False,
        pool_only: bool = False,
        read_at: tf.Tensor | None = None,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """Check the inputs, build the masks and run embeddings, encoder and pooler; arguments as
        :meth:`TFRemBertModel.call`.

        ``pool_only``: the caller reads only ``pooler_output``, so where the inputs allow it the backbone runs on
        the kept tokens (:func:`rembert_tf.kernels.plan_unpadding`) and returns ``last_hidden_state=None``.
        ``read_at`` (batch, seq) bool: the caller reads the last hidden state only where True (the masked-LM
        loss without logits); ``last_hidden_state`` is then (n, hidden) at those positions, row-major, and no
        ``pooler_output``; the backbone runs on the kept tokens where the inputs allow it.
        """
        config = self.config
        use_cache = bool(use_cache if use_cache is not None else config.use_cache) if config.is_decoder else False
        input_ids, inputs_embeds, batch, seq = validation.check_ids_or_embeds(input_ids, inputs_embeds, config)
        if read_at is not None:  # from the caller's labels
            read_at = validation.check_same_shape(read_at, "labels", batch, seq)
        past_length: Any = 0
        if past_key_values is not None:
            past_key_values = validation.check_past(past_key_values, config.num_hidden_layers)
            past_length = dim(past_key_values[0][0], 2)

        # -- token types and positions --------------------------------------------------------------
        if token_type_ids is None:
            token_type_ids = tf.zeros([batch, seq], dtype=tf.int32)
        else:
            token_type_ids = validation.check_token_type_ids(token_type_ids, config.type_vocab_size, batch, seq)
        if position_ids is None:
            position_ids = validation.check_condition(
                seq + past_length <= config.max_position_embeddings,
                f"the sequence is too long: sequence length + past length must be <= max_position_embeddings "
                f"({config.max_position_embeddings})",
                [seq, past_length],
                gate=tf.range(past_length, seq + past_length)[None, :],  # (1, seq)
            )
        else:
            position_ids = validation.check_position_ids(position_ids, config.max_position_embeddings, batch, seq)

        # -- masks (float32, additive: 0 to keep, float32.min to drop) --------------------------------
        if attention_mask is not None:
            attention_mask = validation.check_attention_mask(attention_mask, batch, seq + past_length)
        extended_mask = self._extended_attention_mask(attention_mask, batch, seq, past_length)
        encoder_extended_mask = None
        if config.is_decoder and encoder_hidden_states is not None:
            encoder_hidden_states = validation.check_encoder_hidden_states(encoder_hidden_states, config.hidden_size)
            encoder_hidden_states = tf.cast(encoder_hidden_states, self.compute_dtype)
            enc_batch, enc_seq = dim(encoder_hidden_states, 0), dim(encoder_hidden_states, 1)
            if encoder_attention_mask is None:
                encoder_attention_mask = tf.ones([enc_batch, enc_seq], dtype=tf.float32)
            encoder_attention_mask = tf.cast(
                validation.to_tensor(encoder_attention_mask, "encoder_attention_mask"), tf.float32
            )
            validation.require_rank(encoder_attention_mask, "encoder_attention_mask", (2, 3), "(batch, encoder_seq)")
            if encoder_attention_mask.shape.rank == 2:
                encoder_extended_mask = encoder_attention_mask[:, None, None, :]  # (batch, 1, 1, enc_seq)
            else:
                encoder_extended_mask = encoder_attention_mask[:, None, :, :]  # (batch, 1, seq, enc_seq)
            encoder_extended_mask = (1.0 - encoder_extended_mask) * _MASK_MIN

        head_masks = validation.head_masks(head_mask, config.num_hidden_layers, config.num_attention_heads)

        unpadded = (
            ((pool_only and self.pooler is not None) or read_at is not None)
            and kernels.UNPAD
            and not config.is_decoder
            and past_key_values is None
            and attention_mask is not None
            and extended_mask.shape.rank == 4
            and extended_mask.shape[2] == 1  # from a 2-D (batch, seq) mask
            and not (isinstance(batch, int) and batch == 1)  # batch 1 runs padded, as in PyTorch
            and all(m is None for m in head_masks)
            and not output_attentions
            and not output_hidden_states
            and not validation.in_xla_context()  # XLA needs static shapes: the padded path
        )
        if unpadded:
            return self._unpadded(
                input_ids, inputs_embeds, token_type_ids, position_ids, attention_mask, extended_mask, read_at, training
            )

        embedding_output = self.embeddings(
            input_ids, token_type_ids, position_ids, inputs_embeds=inputs_embeds, training=training
        )
        encoder_outputs = self.encoder(
            embedding_output,
            attention_mask=extended_mask,
            head_mask=head_masks,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_extended_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            training=training,
        )
        sequence_output = encoder_outputs.last_hidden_state
        pooled = self.pooler(sequence_output) if self.pooler is not None and read_at is None else None
        if read_at is not None:  # (n, hidden) at the positions read
            flat = tf.reshape(sequence_output, [-1, dim(sequence_output, 2)])  # (batch * seq, hidden)
            sequence_output = tf.gather(flat, tf.where(tf.reshape(read_at, [-1]))[:, 0])
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            past_key_values=encoder_outputs.past_key_values,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
            cross_attentions=encoder_outputs.cross_attentions,
        )

    def _unpadded(
        self,
        input_ids: tf.Tensor | None,
        inputs_embeds: tf.Tensor | None,
        token_type_ids: tf.Tensor,
        position_ids: tf.Tensor,
        mask: tf.Tensor,
        extended_mask: tf.Tensor,
        read_at: tf.Tensor | None,
        training: bool,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """Embeddings and encoder on the kept tokens (:func:`rembert_tf.layers.encode_unpadded`); ``mask`` the
        checked float32 (batch, seq) mask, ``extended_mask`` (batch, 1, 1, seq) its additive form. Sets only
        ``pooler_output``, or with ``read_at`` only ``last_hidden_state`` (n, hidden) at those positions (kept
        by the plan whatever their mask).

        The plan reads ``mask`` itself, not ``extended_mask``: recovering it by dividing by float32.min is
        exact eagerly, but under ``tf.function`` Grappler turns the division into a multiplication by the
        subnormal reciprocal, which flushes to zero, and every token would then be kept.
        """
        batch, seq = dim(mask, 0), dim(mask, 1)
        plan = kernels.plan_unpadding(mask, read_at)
        ids = kernels.gather_tokens(input_ids, plan) if input_ids is not None else None  # (tokens,)
        embeds = kernels.gather_tokens(inputs_embeds, plan) if inputs_embeds is not None else None  # (tokens, emb)
        types = kernels.gather_tokens(token_type_ids, plan)  # (tokens,)
        positions = kernels.gather_tokens(tf.broadcast_to(position_ids, tf.stack([batch, seq])), plan)  # (tokens,)
        embedding_output = self.embeddings(ids, types, positions, inputs_embeds=embeds, training=training)
        pooled = read_at is None
        last = encode_unpadded(self.encoder, embedding_output, extended_mask, plan, training, pooled=pooled)
        if not pooled:  # last: (tokens, hidden); the read positions' token indices
            read = tf.gather(plan.padded, tf.where(tf.reshape(read_at, [-1]))[:, 0])  # (n,)
            return BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=tf.gather(last, read))
        assert self.pooler is not None
        return BaseModelOutputWithPoolingAndCrossAttentions(pooler_output=self.pooler(last[:, None]))  # last (batch, h)

    def _extended_attention_mask(self, attention_mask: Any, batch: Any, seq: Any, past_length: Any) -> tf.Tensor:
        """``(batch, 1, seq | 1, seq + past)`` float32 from the checked ``attention_mask`` (or None): 0 where
        attended, float32.min where masked."""
        mask = tf.ones([batch, seq + past_length], dtype=tf.float32) if attention_mask is None else attention_mask
        if mask.shape.rank == 3:
            extended = mask[:, None, :, :]  # (batch, 1, seq, kv_len)
        elif self.config.is_decoder:
            kv_len = dim(mask, 1)
            seq_ids = tf.range(seq)
            causal = tf.cast(seq_ids[None, :] <= seq_ids[:, None], tf.float32)  # (seq, seq): key j <= query i
            prefix = tf.ones([seq, kv_len - seq], dtype=tf.float32)  # cached positions are always visible
            causal = tf.concat([prefix, causal], axis=-1)  # (seq, kv_len)
            extended = causal[None, None, :, :] * mask[:, None, None, :]  # (batch, 1, seq, kv_len)
        else:
            extended = mask[:, None, None, :]  # (batch, 1, 1, seq)
        return (1.0 - extended) * _MASK_MIN


# -- the models: the backbone and the six task heads -----------------------------------------------


def _cross_entropy(logits: tf.Tensor, labels: tf.Tensor, ignore_index: Any = -100) -> tf.Tensor:
    """Mean cross-entropy over the labels that are not ``ignore_index`` (NaN when all are ignored, as in torch).

    ``logits`` (n, classes), ``labels`` (n,); float32, PyTorch semantics.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    valid = tf.not_equal(labels, tf.cast(ignore_index, tf.int32))
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    nll = tf.where(valid, nll, tf.zeros_like(nll))
    return tf.reduce_sum(nll) / tf.reduce_sum(tf.cast(valid, tf.float32))


class TFRemBertModel(TFRemBertPreTrainedModel):
    """The bare RemBERT encoder/decoder (``RemBertModel``), returning hidden states and the pooled output.

    Args:
        config (RemBertConfig): the model configuration.
        add_pooling_layer (bool): build the pooler (default True).

    Example:
        >>> import numpy as np
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_tf import TFRemBertModel
        >>> out = TFRemBertModel(tiny_config())(np.array([[5, 6, 7, 0]]), attention_mask=np.array([[1, 1, 1, 0]]))
        >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)  # hidden_size 48
        ((1, 4, 48), (1, 48))
    """

    task = "base"
    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"": "rembert"}
    INPUT_NAMES = (
        *_COMMON_INPUTS,
        "encoder_hidden_states",
        "encoder_attention_mask",
        "past_key_values",
        "use_cache",
    )

    def __init__(self, config: RemBertConfig, add_pooling_layer: bool = True, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertMainLayer(config, add_pooling_layer, name="rembert", dtype=self.dtype_policy)
        self.built = True

    @document_call(BaseModelOutputWithPoolingAndCrossAttentions)
    def call(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        past_key_values: PastKeyValues | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> Any:
        """Hidden states (batch, seq, hidden_size) and the pooled first token (batch, hidden_size)."""
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        out = self._backbone(
            args,
            training,
            encoder_hidden_states=args.get("encoder_hidden_states"),
            encoder_attention_mask=args.get("encoder_attention_mask"),
            past_key_values=args.get("past_key_values"),
            use_cache=args.get("use_cache"),
        )
        return self._finish(out, args.get("return_dict"))


class _TFRemBertLMBase(TFRemBertPreTrainedModel):
    """The backbone without pooler and the LM prediction head ``cls``: what both language-model heads hold."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"rembert": "rembert", "cls": "cls"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.rembert = TFRemBertMainLayer(config, add_pooling_layer=False, name="rembert", dtype=self.dtype_policy)
        self.cls = TFRemBertOnlyMLMHead(config, name="cls", dtype=self.dtype_policy)
        self.built = True

    def get_output_embeddings(self) -> Linear:
        """The LM decoder layer (``cls.predictions.decoder``; kernel ``[output_embedding_size, vocab]``)."""
        head: TFRemBertOnlyMLMHead = self.cls
        return head.predictions.decoder


class TFRemBertForMaskedLM(_TFRemBertLMBase):
    """RemBERT with the masked-LM head (``RemBertForMaskedLM``).

    Example:
        >>> import numpy as np
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_tf import TFRemBertForMaskedLM
        >>> ids = np.array([[5, 6, 7]])
        >>> out = TFRemBertForMaskedLM(tiny_config())(ids, labels=np.array([[-100, 6, -100]]))  # -100: not scored
        >>> tuple(out.logits.shape), tuple(out.loss.shape)  # vocab_size 301
        ((1, 3, 301), ())
    """

    task = "masked_lm"
    INPUT_NAMES = (*_COMMON_INPUTS, "encoder_hidden_states", "encoder_attention_mask", "labels")

    @document_call(MaskedLMOutput)
    def call(
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
        training: bool = False,
        return_logits: bool | None = None,
    ) -> Any:
        """Masked-LM scores (batch, seq, vocab_size); with ``labels`` the mean cross-entropy.

        Args:
            labels (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` token ids to predict, -100 to ignore.
            return_logits (bool | None): False computes the decoder (``cls``) only at the labelled positions
                and returns ``logits=None``: the same loss without the (batch, seq, vocab_size) scores, and
                the backbone runs on the kept tokens where the inputs allow it. None: True, or with ``labels``
                the config's ``return_logits`` (unset: True), so a training loop can turn it off once.
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        labels = args.get("labels")
        if labels is not None:
            labels = validation.check_class_labels(labels, "labels", self.config.vocab_size, "(batch, seq) token ids")
        if return_logits is None:
            return_logits = labels is None or bool(self.config.extra.get("return_logits", True))
        read_at = None if return_logits or labels is None else tf.not_equal(labels, -100)  # (batch, seq)
        outputs = self._backbone(
            args,
            training,
            encoder_hidden_states=args.get("encoder_hidden_states"),
            encoder_attention_mask=args.get("encoder_attention_mask"),
            read_at=read_at,
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab), or (labelled, vocab) with read_at
        loss = None
        if read_at is not None:
            loss = _cross_entropy(logits, tf.boolean_mask(labels, read_at))
            logits = None
        elif labels is not None:
            loss = _cross_entropy(tf.reshape(logits, [-1, self.config.vocab_size]), tf.reshape(labels, [-1]))
        out = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._finish(out, args.get("return_dict"))


class TFRemBertForCausalLM(_TFRemBertLMBase, TFGenerationMixin):
    """RemBERT with the causal-LM head (``RemBertForCausalLM``), key/value cache and greedy :meth:`generate`.

    Build it with ``config.is_decoder=True`` for causal self-attention (as in the reference).

    Example:
        >>> import numpy as np
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_tf import TFRemBertForCausalLM
        >>> model = TFRemBertForCausalLM(tiny_config(is_decoder=True))
        >>> first = model(np.array([[5, 6, 7]]), use_cache=True)
        >>> step = model(np.array([[8]]), past_key_values=first.past_key_values, use_cache=True)
        >>> tuple(step.logits.shape)  # only the new position
        (1, 1, 301)
    """

    task = "causal_lm"
    INPUT_NAMES = (
        *_COMMON_INPUTS,
        "encoder_hidden_states",
        "encoder_attention_mask",
        "past_key_values",
        "labels",
        "use_cache",
    )

    @document_call(CausalLMOutputWithCrossAttentions)
    def call(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        past_key_values: PastKeyValues | None = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        training: bool = False,
    ) -> Any:
        """Next-token scores (batch, seq, vocab_size); with ``labels`` the cross-entropy, with ``use_cache`` the cache.

        Args:
            labels (np.ndarray | tf.Tensor | None): int ``(batch, seq)``, the input ids themselves (shifted inside:
                position t predicts label t + 1), -100 to ignore.
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        outputs = self._backbone(
            args,
            training,
            encoder_hidden_states=args.get("encoder_hidden_states"),
            encoder_attention_mask=args.get("encoder_attention_mask"),
            past_key_values=args.get("past_key_values"),
            use_cache=args.get("use_cache"),
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if args.get("labels") is not None:
            labels = validation.check_class_labels(
                args["labels"], "labels", self.config.vocab_size, "(batch, seq) token ids"
            )
            validation.require_rank(labels, "labels", (2,), "(batch, seq)")
            shifted = tf.concat([labels[:, 1:], tf.fill([dim(labels, 0), 1], tf.constant(-100, labels.dtype))], 1)
            loss = _cross_entropy(tf.reshape(logits, [-1, self.config.vocab_size]), tf.reshape(shifted, [-1]))
        out = CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )
        return self._finish(out, args.get("return_dict"))


class TFRemBertForSequenceClassification(TFRemBertPreTrainedModel):
    """RemBERT with a classification/regression head on the pooled output (``RemBertForSequenceClassification``).

    ``config.problem_type`` selects the loss; else ``num_labels == 1`` means regression, integer labels
    single-label and float labels multi-label classification.

    Example:
        >>> import numpy as np
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_tf import TFRemBertForSequenceClassification
        >>> out = TFRemBertForSequenceClassification(tiny_config())(np.array([[5, 6, 7]]), labels=np.array([2]))
        >>> tuple(out.logits.shape), tuple(out.loss.shape)  # num_labels 3
        ((1, 3), ())
    """

    task = "sequence_classification"
    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"rembert": "rembert", "classifier": "classifier"}
    INPUT_NAMES = (*_COMMON_INPUTS, "labels")

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.num_labels = config.num_labels
        self.rembert = TFRemBertMainLayer(config, add_pooling_layer=True, name="rembert", dtype=policy)
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, dtype="float32")
        h, r = config.hidden_size, config.initializer_range
        self.classifier = Linear(h, config.num_labels, initializer_range=r, name="classifier", dtype=policy)
        self.built = True

    @document_call(SequenceClassifierOutput)
    def call(
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
        training: bool = False,
    ) -> Any:
        """Class scores (batch, num_labels); with ``labels`` the loss chosen by ``problem_type``.

        Args:
            labels (np.ndarray | tf.Tensor | None): int ``(batch,)`` classes, float ``(batch, num_labels)`` multi-hot
                targets, or float ``(batch,)`` regression targets (``num_labels == 1``).
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        outputs = self._backbone(args, training, pool_only=True)
        pooled = self.dropout(outputs.pooler_output, training=training)
        logits = self.classifier(pooled)  # (batch, num_labels)
        loss = None
        if args.get("labels") is not None:
            loss = self._loss(logits, validation.to_tensor(args["labels"], "labels"))
        out = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._finish(out, args.get("return_dict"))

    def _loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        n = self.num_labels
        problem = self.config.problem_type
        if problem is None:
            if n == 1:
                problem = "regression"
            elif labels.dtype.is_integer:
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        logits = tf.cast(logits, tf.float32)
        if problem == "regression":
            if not (labels.dtype.is_floating or labels.dtype.is_integer):
                raise InputError(f"labels for regression must be numeric, got dtype {labels.dtype.name}")
            labels = tf.cast(labels, tf.float32)
            if n == 1:
                return tf.reduce_mean(tf.square(tf.reshape(logits, [-1]) - tf.reshape(labels, [-1])))
            validation.check_label_shape(labels, logits, "(batch, num_labels)")
            return tf.reduce_mean(tf.square(logits - labels))
        if problem == "single_label_classification":
            labels = validation.check_class_labels(labels, "labels", n, "(batch,) class ids")
            return _cross_entropy(tf.reshape(logits, [-1, n]), tf.reshape(labels, [-1]))
        if not labels.dtype.is_floating:
            raise InputError(
                "labels for multi_label_classification must be float (batch, num_labels), "
                f"got dtype {labels.dtype.name}"
            )
        labels = tf.cast(labels, tf.float32)
        validation.check_label_shape(labels, logits, "(batch, num_labels)")
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class TFRemBertForMultipleChoice(TFRemBertPreTrainedModel):
    """RemBERT scoring each choice with a linear layer on its pooled output (``RemBertForMultipleChoice``).

    Every input has a choices axis: ``input_ids`` ``(batch, num_choices, seq)`` or ``inputs_embeds``
    ``(batch, num_choices, seq, input_embedding_size)``; the choices run through the backbone as one batch.

    Example:
        >>> import numpy as np
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_tf import TFRemBertForMultipleChoice
        >>> ids = np.array([[[5, 6, 7], [5, 8, 9]]])  # (batch=1, num_choices=2, seq=3)
        >>> out = TFRemBertForMultipleChoice(tiny_config())(ids, labels=np.array([1]))
        >>> tuple(out.logits.shape)  # (batch, num_choices)
        (1, 2)
    """

    task = "multiple_choice"
    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"rembert": "rembert", "classifier": "classifier"}
    INPUT_NAMES = (*_COMMON_INPUTS, "labels")

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.rembert = TFRemBertMainLayer(config, add_pooling_layer=True, name="rembert", dtype=policy)
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, dtype="float32")
        self.classifier = Linear(
            config.hidden_size, 1, initializer_range=config.initializer_range, name="classifier", dtype=policy
        )
        self.built = True

    @document_call(MultipleChoiceModelOutput)
    def call(
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
        training: bool = False,
    ) -> Any:
        """Choice scores (batch, num_choices); with ``labels`` the cross-entropy.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, num_choices, seq)`` token ids (every
                input has the choices axis); or a dict of every input (as Keras passes it).
            labels (np.ndarray | tf.Tensor | None): int ``(batch,)`` index of the right choice.
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        if args.get("input_ids") is not None:
            ids = validation.to_tensor(args["input_ids"], "input_ids")
            validation.require_rank(ids, "input_ids", (3,), "(batch, num_choices, seq)")
            num_choices = dim(ids, 1)
        elif args.get("inputs_embeds") is not None:
            embeds = validation.to_tensor(args["inputs_embeds"], "inputs_embeds")
            validation.require_rank(embeds, "inputs_embeds", (4,), "(batch, num_choices, seq, input_embedding_size)")
            num_choices = dim(embeds, 1)
        else:
            raise InputError("you have to pass input_ids or inputs_embeds")
        flat = dict(args)
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids"):
            if flat.get(name) is not None:
                t = validation.to_tensor(flat[name], name)
                validation.require_rank(t, name, (3,), "(batch, num_choices, seq)")
                flat[name] = tf.reshape(t, [-1, dim(t, 2)])  # (batch * num_choices, seq)
        if flat.get("inputs_embeds") is not None:
            t = validation.to_tensor(flat["inputs_embeds"], "inputs_embeds")
            flat["inputs_embeds"] = tf.reshape(t, [-1, dim(t, 2), dim(t, 3)])  # (batch * choices, seq, emb)
        outputs = self._backbone(flat, training, pool_only=True)
        pooled = self.dropout(outputs.pooler_output, training=training)
        logits = tf.reshape(self.classifier(pooled), [-1, num_choices])  # (batch, num_choices)
        loss = None
        if args.get("labels") is not None:
            labels = validation.check_choice_labels(args["labels"], num_choices)
            loss = _cross_entropy(logits, tf.reshape(labels, [-1]))
        out = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._finish(out, args.get("return_dict"))


class TFRemBertForTokenClassification(TFRemBertPreTrainedModel):
    """RemBERT with a per-token linear classifier (``RemBertForTokenClassification``).

    Dropout before the classifier uses ``classifier_dropout_prob`` (as PyTorch; the old TF reference used
    ``hidden_dropout_prob``).

    Example:
        >>> import numpy as np
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_tf import TFRemBertForTokenClassification
        >>> ids, tags = np.array([[5, 6, 7]]), np.array([[-100, 0, 2]])  # -100: not scored
        >>> tuple(TFRemBertForTokenClassification(tiny_config())(ids, labels=tags).logits.shape)  # num_labels 3
        (1, 3, 3)
    """

    task = "token_classification"
    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"rembert": "rembert", "classifier": "classifier"}
    INPUT_NAMES = (*_COMMON_INPUTS, "labels")

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        policy = self.dtype_policy
        self.num_labels = config.num_labels
        self.rembert = TFRemBertMainLayer(config, add_pooling_layer=False, name="rembert", dtype=policy)
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, dtype="float32")
        h, r = config.hidden_size, config.initializer_range
        self.classifier = Linear(h, config.num_labels, initializer_range=r, name="classifier", dtype=policy)
        self.built = True

    @document_call(TokenClassifierOutput)
    def call(
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
        training: bool = False,
    ) -> Any:
        """Per-token scores (batch, seq, num_labels); with ``labels`` the cross-entropy.

        Args:
            labels (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` classes, -100 to ignore a position.
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        outputs = self._backbone(args, training)
        sequence_output = self.dropout(outputs.last_hidden_state, training=training)
        logits = self.classifier(sequence_output)  # (batch, seq, num_labels)
        loss = None
        if args.get("labels") is not None:
            labels = validation.check_class_labels(args["labels"], "labels", self.num_labels, "(batch, seq) tag ids")
            loss = _cross_entropy(tf.reshape(logits, [-1, self.num_labels]), tf.reshape(labels, [-1]))
        out = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._finish(out, args.get("return_dict"))


class TFRemBertForQuestionAnswering(TFRemBertPreTrainedModel):
    """RemBERT with span start/end logits (``RemBertForQuestionAnswering``); needs ``num_labels=2``.

    Positions are clamped to ``[0, seq]`` and ``seq`` (out of the input) is ignored, as in PyTorch.

    Example:
        >>> import numpy as np
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_tf import TFRemBertForQuestionAnswering
        >>> model = TFRemBertForQuestionAnswering(tiny_config(num_labels=2))  # start and end
        >>> out = model(np.array([[5, 6, 7, 8]]), start_positions=np.array([1]), end_positions=np.array([2]))
        >>> tuple(out.start_logits.shape), tuple(out.end_logits.shape), float(out.loss) > 0
        ((1, 4), (1, 4), True)
    """

    task = "question_answering"
    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"rembert": "rembert", "qa_outputs": "qa_outputs"}
    INPUT_NAMES = (*_COMMON_INPUTS, "start_positions", "end_positions")

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if config.num_labels != 2:
            raise ConfigError(f"question answering needs num_labels=2 (start and end), got {config.num_labels}")
        policy = self.dtype_policy
        self.rembert = TFRemBertMainLayer(config, add_pooling_layer=False, name="rembert", dtype=policy)
        h, r = config.hidden_size, config.initializer_range
        self.qa_outputs = Linear(h, config.num_labels, initializer_range=r, name="qa_outputs", dtype=policy)
        self.built = True

    @document_call(QuestionAnsweringModelOutput)
    def call(
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
        training: bool = False,
    ) -> Any:
        """Start and end scores (batch, seq) each; with both positions the mean of their cross-entropies.

        Args:
            start_positions (np.ndarray | tf.Tensor | None): int ``(batch,)`` answer start token.
            end_positions (np.ndarray | tf.Tensor | None): int ``(batch,)`` answer end token (inclusive).
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        outputs = self._backbone(args, training)
        logits = self.qa_outputs(outputs.last_hidden_state)  # (batch, seq, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]  # (batch, seq) each
        loss = None
        start, end = args.get("start_positions"), args.get("end_positions")
        if start is not None and end is not None:
            seq = tf.shape(start_logits)[1]
            losses = []
            for name, positions, scores in (
                ("start_positions", start, start_logits),
                ("end_positions", end, end_logits),
            ):
                positions = validation.to_tensor(positions, name)
                validation.require_int(positions, name)
                validation.require_rank(positions, name, (1, 2), "(batch,)")
                positions = tf.clip_by_value(tf.cast(tf.reshape(positions, [-1]), tf.int32), 0, seq)
                losses.append(_cross_entropy(scores, positions, ignore_index=seq))
            loss = (losses[0] + losses[1]) / 2.0
        elif (start is None) != (end is None):
            raise InputError("pass both start_positions and end_positions to compute the loss, or neither")
        out = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return self._finish(out, args.get("return_dict"))


#: Model class of each task.
MODEL_CLASSES: dict[str, type[TFRemBertPreTrainedModel]] = {
    "base": TFRemBertModel,
    "masked_lm": TFRemBertForMaskedLM,
    "causal_lm": TFRemBertForCausalLM,
    "sequence_classification": TFRemBertForSequenceClassification,
    "multiple_choice": TFRemBertForMultipleChoice,
    "token_classification": TFRemBertForTokenClassification,
    "question_answering": TFRemBertForQuestionAnswering,
}

assert set(MODEL_CLASSES) == set(ARCHITECTURES)

# Registered as Keras serializable (as "rembert_tf>TFRemBertForMaskedLM", ...): keras.models.load_model reads a
# saved .keras file without custom_objects once rembert_tf's models are imported.
for _cls in MODEL_CLASSES.values():
    keras.saving.register_keras_serializable(package="rembert_tf")(_cls)
