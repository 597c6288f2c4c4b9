"""RemBERT's transformer blocks as Keras layers, in reading order (what :mod:`rembert_tf.modeling` assembles).

Read this file first, top to bottom: the activations, then embeddings, self-attention, its output block,
attention, intermediate, output, layer, encoder, pooler and the LM prediction head, each with its
PyTorch twin's name (``TFRemBertEmbeddings`` is ``rembert_torch.layers.RemBertEmbeddings``). Then
:mod:`rembert_tf.modeling`: :class:`~rembert_tf.modeling.TFRemBertMainLayer` (inputs, masks, embeddings,
encoder, pooler), :class:`~rembert_tf.modeling.TFRemBertModel` and the six task heads. The blocks are
built from the leaf layers ``Linear``, ``Embedding`` and ``LayerNorm`` of :mod:`rembert_tf.kernels`.

Naming: every layer and weight is named after the canonical checkpoint tensor
(:func:`rembert_core.build_schema`): ``embeddings.word_embeddings.weight`` is the
``weight`` of the layer reached as ``embeddings`` -> ``word_embeddings``. Where a
Python attribute cannot carry the canonical name (Keras layers already have an
``output`` property; ``self`` is a keyword by convention) the class says so in
``CANONICAL_CHILDREN``. Dense kernels are ``[in, out]``: the transpose of the
canonical ``Layout.LINEAR`` ``[out, in]``; nothing else is transposed.

Mixed precision: under a ``mixed_bfloat16`` policy matmuls run in bfloat16
while softmax, layer norm, masks and losses run in float32. The blocks that
pass masks along (encoder, layer, attention) are built with ``autocast=False``
so Keras does not cast those float32 masks to bfloat16; the leaf layers
(``Linear``, ``Embedding``) still autocast their inputs and variables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rembert_core import ConfigError, InputError, RemBertConfig
from rembert_tf._tensorflow import keras, tf
from rembert_tf.kernels import Embedding, LayerNorm, Linear, Unpadded, gather_tokens, to_padded
from rembert_tf.outputs import BaseModelOutputWithPastAndCrossAttentions
from rembert_tf.validation import PastKeyValues, dim

__all__ = [
    "ACTIVATIONS",
    "TFRemBertAttention",
    "TFRemBertEmbeddings",
    "TFRemBertEncoder",
    "TFRemBertIntermediate",
    "TFRemBertLMPredictionHead",
    "TFRemBertLayer",
    "TFRemBertOnlyMLMHead",
    "TFRemBertOutput",
    "TFRemBertPooler",
    "TFRemBertSelfAttention",
    "TFRemBertSelfOutput",
    "encode_unpadded",
    "get_activation",
]


# -- activations -----------------------------------------------------------------------------------


def _gelu(x: tf.Tensor) -> tf.Tensor:
    return tf.nn.gelu(x, approximate=False)  # the exact erf GELU


def _gelu_tanh(x: tf.Tensor) -> tf.Tensor:
    return tf.nn.gelu(x, approximate=True)


#: ``config.hidden_act`` -> the activation function ("gelu" is the exact erf GELU).
ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "gelu": _gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
}


def get_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The activation called ``name`` in the config (:data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"hidden_act {name!r} is not supported; choose one of {sorted(ACTIVATIONS)}") from None


# -- embeddings ------------------------------------------------------------------------------------


class TFRemBertEmbeddings(keras.layers.Layer):
    """Word + token type + position embeddings (``input_embedding_size`` wide), LayerNorm, dropout."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {
        "word_embeddings": "word_embeddings",
        "position_embeddings": "position_embeddings",
        "token_type_embeddings": "token_type_embeddings",
        "LayerNorm": "LayerNorm",
    }

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        policy = self.dtype_policy
        e, r = config.input_embedding_size, config.initializer_range
        self.word_embeddings = Embedding(
            config.vocab_size, e, initializer_range=r, pad_row=config.pad_token_id, name="word_embeddings", dtype=policy
        )
        self.position_embeddings = Embedding(
            config.max_position_embeddings, e, initializer_range=r, name="position_embeddings", dtype=policy
        )
        self.token_type_embeddings = Embedding(
            config.type_vocab_size, e, initializer_range=r, name="token_type_embeddings", dtype=policy
        )
        self.LayerNorm = LayerNorm(e, eps=config.layer_norm_eps, name="LayerNorm", dtype=policy)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype="float32")
        self.built = True

    def call(
        self,
        input_ids: tf.Tensor | None,
        token_type_ids: tf.Tensor,
        position_ids: tf.Tensor,
        inputs_embeds: tf.Tensor | None = None,
        training: bool = False,
    ) -> tf.Tensor:
        """Ids (batch, seq) or ``inputs_embeds`` (batch, seq, input_embedding_size) -> (batch, seq,
        input_embedding_size).
        """
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # (batch, seq, input_embedding_size)
        types = self.token_type_embeddings(token_type_ids)
        embeddings = tf.cast(inputs_embeds, types.dtype) + types  # summed in the variable dtype, as under autocast
        embeddings = embeddings + self.position_embeddings(position_ids)  # position_ids broadcast over batch
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings, training=training)


# -- attention -------------------------------------------------------------------------------------


class TFRemBertSelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention (self- or cross-), softmax in float32.

    Returns ``(context (batch, seq, hidden), probabilities (batch, heads, seq, kv_len), (key, value))``;
    key and value are ``(batch, heads, kv_len, head_dim)`` and include the cache.
    """

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"query": "query", "key": "key", "value": "value"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(autocast=False, **kwargs)  # keep float32 masks float32 (see module docstring)
        policy = self.dtype_policy
        h, r = config.hidden_size, config.initializer_range
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_dim
        self.all_head_size = h
        self.query = Linear(h, h, initializer_range=r, name="query", dtype=policy)
        self.key = Linear(h, h, initializer_range=r, name="key", dtype=policy)
        self.value = Linear(h, h, initializer_range=r, name="value", dtype=policy)
        # Attention probabilities stay float32 (mixed precision): a float32 dropout does not cast them.
        self.dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, dtype="float32")
        self.built = True

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        batch = dim(x, 0)
        x = tf.reshape(x, [batch, -1, self.num_attention_heads, self.attention_head_size])  # (batch, seq, heads, d)
        return tf.transpose(x, [0, 2, 1, 3])  # (batch, heads, seq, head_dim)

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor | None = None,
        head_mask: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, tf.Tensor] | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
        """``hidden_states`` (batch, seq, hidden); ``attention_mask`` additive float32, broadcastable to (batch,
        heads, seq, kv_len); ``head_mask`` (1, heads, 1, 1); ``past_key_value`` (key, value) to extend (self) or
        reuse (cross).
        """
        query = self._split_heads(self.query(hidden_states))  # (batch, heads, seq, head_dim)
        is_cross = encoder_hidden_states is not None
        if is_cross and past_key_value is not None:
            key, value = past_key_value  # cross-attention keys/values do not change while decoding
        else:
            source = encoder_hidden_states if is_cross else hidden_states
            key = self._split_heads(self.key(source))  # (batch, heads, kv_seq, head_dim)
            value = self._split_heads(self.value(source))
            if past_key_value is not None:
                key = tf.concat([tf.cast(past_key_value[0], key.dtype), key], axis=2)  # (batch, heads, past+seq, d)
                value = tf.concat([tf.cast(past_key_value[1], value.dtype), value], axis=2)
        context, probs = self.attend(query, key, value, attention_mask, head_mask, training)
        return context, probs, (key, value)

    def attend(
        self,
        query: tf.Tensor,
        key: tf.Tensor,
        value: tf.Tensor,
        attention_mask: tf.Tensor | None,
        head_mask: tf.Tensor | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Split-head ``query`` (batch, heads, seq, head_dim), ``key``/``value`` (batch, heads, kv_len, head_dim)
        -> (context (batch, seq, hidden), float32 probabilities (batch, heads, seq, kv_len)).
        """
        scores = tf.matmul(query, key, transpose_b=True)  # (batch, heads, seq, kv_len)
        scores = tf.cast(scores, tf.float32) / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            scores = scores + tf.cast(attention_mask, tf.float32)  # 0 or float32.min, broadcast over heads
        probs = tf.nn.softmax(scores, axis=-1)
        probs = self.dropout(probs, training=training)
        if head_mask is not None:
            probs = probs * head_mask  # (1, heads, 1, 1)
        context = tf.matmul(tf.cast(probs, value.dtype), value)  # (batch, heads, seq, head_dim)
        context = tf.transpose(context, [0, 2, 1, 3])  # (batch, seq, heads, head_dim)
        context = tf.reshape(context, [dim(context, 0), -1, self.all_head_size])  # (batch, seq, hidden)
        return context, probs

    def call_unpadded(
        self, hidden_states: tf.Tensor, attention_mask: tf.Tensor, plan: Unpadded, last: bool, training: bool = False
    ) -> tf.Tensor:
        """Self-attention of the kept tokens ``hidden_states`` (tokens, hidden) of ``plan``: the projections run
        on (tokens, hidden), the scores on the padded layout with the additive ``attention_mask`` (batch, 1, 1,
        seq) (dropped tokens are zeros there, and their keys weigh exactly 0). Returns the context (tokens,
        hidden), or with ``last`` position 0 of each row only (batch, hidden): only those rows query.
        """
        if last:
            first = tf.gather(hidden_states, plan.starts)  # (batch, hidden)
            query = self._split_heads(self.query(first)[:, None])  # (batch, heads, 1, head_dim)
        else:
            query = self._split_heads(to_padded(self.query(hidden_states), plan))  # (batch, heads, seq, head_dim)
        key = self._split_heads(to_padded(self.key(hidden_states), plan))  # (batch, heads, seq, head_dim)
        value = self._split_heads(to_padded(self.value(hidden_states), plan))
        context, _ = self.attend(query, key, value, attention_mask, None, training)  # (batch, seq | 1, hidden)
        if last:
            return context[:, 0]  # (batch, hidden)
        return gather_tokens(context, plan)  # (tokens, hidden)


class TFRemBertSelfOutput(keras.layers.Layer):
    """Dense, dropout, then LayerNorm of the residual sum."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"dense": "dense", "LayerNorm": "LayerNorm"}

    def __init__(self, config: RemBertConfig, in_features: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        policy = self.dtype_policy
        h = config.hidden_size
        self.dense = Linear(in_features or h, h, initializer_range=config.initializer_range, name="dense", dtype=policy)
        self.LayerNorm = LayerNorm(h, eps=config.layer_norm_eps, name="LayerNorm", dtype=policy)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype="float32")
        self.built = True

    def call(self, hidden_states: tf.Tensor, input_tensor: tf.Tensor, training: bool = False) -> tf.Tensor:
        """``hidden_states`` (batch, seq, in_features), ``input_tensor`` (batch, seq, hidden) residual -> float32
        (batch, seq, hidden).
        """
        hidden_states = self.dropout(self.dense(hidden_states), training=training)  # float32 dropout
        return self.LayerNorm(hidden_states + tf.cast(input_tensor, hidden_states.dtype))


class TFRemBertAttention(keras.layers.Layer):
    """Self-attention (canonical name ``self``) followed by its output block (canonical name ``output``)."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"self": "self_attention", "output": "dense_output"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(autocast=False, **kwargs)  # keep float32 masks float32 (see module docstring)
        self.self_attention = TFRemBertSelfAttention(config, name="self", dtype=self.dtype_policy)
        self.dense_output = TFRemBertSelfOutput(config, name="output", dtype=self.dtype_policy)
        self.built = True

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor | None = None,
        head_mask: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, tf.Tensor] | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
        """As :meth:`TFRemBertSelfAttention.call`; returns (output (batch, seq, hidden), probabilities, present
        key/value).
        """
        context, probs, present = self.self_attention(
            hidden_states,
            attention_mask=attention_mask,
            head_mask=head_mask,
            encoder_hidden_states=encoder_hidden_states,
            past_key_value=past_key_value,
            training=training,
        )
        return self.dense_output(context, hidden_states, training=training), probs, present


# -- feed-forward ----------------------------------------------------------------------------------


class TFRemBertIntermediate(keras.layers.Layer):
    """Dense to ``intermediate_size`` and the activation."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"dense": "dense"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        h, i, r = config.hidden_size, config.intermediate_size, config.initializer_range
        self.dense = Linear(h, i, initializer_range=r, name="dense", dtype=self.dtype_policy)
        self.activation = get_activation(config.hidden_act)
        self.built = True

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        """(batch, seq, hidden) -> activation(dense) (batch, seq, intermediate_size)."""
        return self.activation(self.dense(hidden_states))  # (batch, seq, intermediate)


class TFRemBertOutput(TFRemBertSelfOutput):
    """Dense from ``intermediate_size`` back to ``hidden_size``, dropout, then LayerNorm of the residual sum.

    The feed-forward output (PyTorch's ``RemBertOutput``): :class:`TFRemBertSelfOutput` with a wider input.
    """

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(config, config.intermediate_size, **kwargs)


# -- layer and encoder -----------------------------------------------------------------------------


class TFRemBertLayer(keras.layers.Layer):
    """One transformer layer: self-attention, optional cross-attention, feed-forward.

    Returns ``(hidden (batch, seq, hidden), self probabilities, cross probabilities or None, present cache)``.
    """

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {
        "attention": "attention",
        "crossattention": "crossattention",
        "intermediate": "intermediate",
        "output": "layer_output",
    }

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(autocast=False, **kwargs)  # keep float32 masks float32 (see module docstring)
        policy = self.dtype_policy
        self.is_decoder = config.is_decoder
        self.attention = TFRemBertAttention(config, name="attention", dtype=policy)
        self.crossattention = (
            TFRemBertAttention(config, name="crossattention", dtype=policy) if config.add_cross_attention else None
        )
        self.intermediate = TFRemBertIntermediate(config, name="intermediate", dtype=policy)
        self.layer_output = TFRemBertOutput(config, name="output", dtype=policy)
        self.built = True

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor | None = None,
        head_mask: tf.Tensor | None = None,
        encoder_hidden_states: tf.Tensor | None = None,
        encoder_attention_mask: tf.Tensor | None = None,
        past_key_value: tuple[tf.Tensor, ...] | None = None,
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None, tuple[tf.Tensor, ...]]:
        """``hidden_states`` (batch, seq, hidden), additive float32 masks, optional encoder states (batch, enc_seq,
        hidden) and cache tuple of 2 or 4 tensors.
        """
        self_past = tuple(past_key_value[:2]) if past_key_value is not None else None
        attention_output, self_probs, present = self.attention(
            hidden_states,
            attention_mask=attention_mask,
            head_mask=head_mask,
            past_key_value=self_past,
            training=training,
        )
        cross_probs = None
        if self.is_decoder and encoder_hidden_states is not None:
            if self.crossattention is None:
                raise InputError(
                    "encoder_hidden_states was given, but the model has no cross-attention layers; "
                    "build it with config.add_cross_attention=True"
                )
            cross_past = tuple(past_key_value[2:4]) if past_key_value is not None and len(past_key_value) == 4 else None
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output,
                attention_mask=encoder_attention_mask,
                head_mask=head_mask,
                encoder_hidden_states=encoder_hidden_states,
                past_key_value=cross_past,
                training=training,
            )
            present = present + cross_present
        layer_output = self.layer_output(self.intermediate(attention_output), attention_output, training=training)
        return layer_output, self_probs, cross_probs, present


class TFRemBertEncoder(keras.layers.Layer):
    """Projects the input embeddings to ``hidden_size`` (``embedding_hidden_mapping_in``), then the layers."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {
        "embedding_hidden_mapping_in": "embedding_hidden_mapping_in",
        "layer": "layer",
    }

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(autocast=False, **kwargs)  # keep float32 masks float32 (see module docstring)
        self.config = config
        e, h, r = config.input_embedding_size, config.hidden_size, config.initializer_range
        self.embedding_hidden_mapping_in = Linear(
            e, h, initializer_range=r, name="embedding_hidden_mapping_in", dtype=self.dtype_policy
        )
        self.layer = [
            TFRemBertLayer(config, name=f"layer_{i}", dtype=self.dtype_policy) for i in range(config.num_hidden_layers)
        ]
        self.built = True

    def call(
        self,
        hidden_states: tf.Tensor,
        attention_mask: tf.Tensor | None,
        head_mask: Sequence[tf.Tensor | None],
        encoder_hidden_states: tf.Tensor | None,
        encoder_attention_mask: tf.Tensor | None,
        past_key_values: PastKeyValues | None,
        use_cache: bool,
        output_attentions: bool,
        output_hidden_states: bool,
        training: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """Embeddings (batch, seq, input_embedding_size) -> :class:`BaseModelOutputWithPastAndCrossAttentions`;
        ``head_mask`` has one entry (or None) per layer.
        """
        hidden_states = self.embedding_hidden_mapping_in(hidden_states)  # (batch, seq, hidden)
        all_hidden: list[tf.Tensor] = []
        all_self: list[tf.Tensor] = []
        all_cross: list[tf.Tensor] = []
        presents: list[tuple[tf.Tensor, ...]] = []
        for i, layer_module in enumerate(self.layer):
            if output_hidden_states:
                all_hidden.append(hidden_states)
            hidden_states, self_probs, cross_probs, present = layer_module(
                hidden_states,
                attention_mask=attention_mask,
                head_mask=head_mask[i],
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                past_key_value=past_key_values[i] if past_key_values is not None else None,
                training=training,
            )
            if use_cache:
                presents.append(present)
            if output_attentions:
                all_self.append(self_probs)
                if cross_probs is not None:
                    all_cross.append(cross_probs)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            past_key_values=tuple(presents) if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_self) if output_attentions else None,
            cross_attentions=tuple(all_cross) if output_attentions and all_cross else None,
        )


def encode_unpadded(
    encoder: TFRemBertEncoder,
    embeddings: tf.Tensor,
    attention_mask: tf.Tensor,
    plan: Unpadded,
    training: bool,
    *,
    pooled: bool,
) -> tf.Tensor:
    """The encoder on the kept tokens of ``plan``.

    ``embeddings`` (tokens, input_embedding_size); ``attention_mask`` additive (batch, 1, 1, seq). Every dense
    layer and layer norm runs on (tokens, width). Returns the last hidden state of every kept token (tokens,
    hidden), or with ``pooled`` (a head that reads position 0 only, through the pooler) that of position 0
    of each row (batch, hidden): the last layer then computes its query, attention output and feed-forward
    there only (its keys and values still cover every kept token).
    """
    hidden_states = encoder.embedding_hidden_mapping_in(embeddings)  # (tokens, hidden)
    if not encoder.layer:
        return tf.gather(hidden_states, plan.starts) if pooled else hidden_states  # (batch | tokens, hidden)
    for i, layer in enumerate(encoder.layer):
        last = pooled and i == len(encoder.layer) - 1
        attention = layer.attention
        context = attention.self_attention.call_unpadded(hidden_states, attention_mask, plan, last, training)
        residual = tf.gather(hidden_states, plan.starts) if last else hidden_states  # (batch | tokens, hidden)
        attention_output = attention.dense_output(context, residual, training=training)
        hidden_states = layer.layer_output(layer.intermediate(attention_output), attention_output, training=training)
    return hidden_states  # (batch | tokens, hidden)


class TFRemBertPooler(keras.layers.Layer):
    """``tanh(dense(hidden_states[:, 0]))``: the pooled first token, ``(batch, hidden)``."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"dense": "dense"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        h = config.hidden_size
        self.dense = Linear(h, h, initializer_range=config.initializer_range, name="dense", dtype=self.dtype_policy)
        self.built = True

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        """(batch, seq, hidden) -> (batch, hidden)."""
        return tf.tanh(self.dense(hidden_states[:, 0]))  # (batch, hidden)


# -- LM head ---------------------------------------------------------------------------------------


class TFRemBertLMPredictionHead(keras.layers.Layer):
    """Dense to ``output_embedding_size``, activation, LayerNorm, decoder to ``vocab_size``."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"dense": "dense", "decoder": "decoder", "LayerNorm": "LayerNorm"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        policy = self.dtype_policy
        h, o, r = config.hidden_size, config.output_embedding_size, config.initializer_range
        self.dense = Linear(h, o, initializer_range=r, name="dense", dtype=policy)
        self.decoder = Linear(o, config.vocab_size, initializer_range=r, name="decoder", dtype=policy)
        self.activation = get_activation(config.hidden_act)
        self.LayerNorm = LayerNorm(o, eps=config.layer_norm_eps, name="LayerNorm", dtype=policy)
        self.built = True

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        """(batch, seq, hidden) -> logits (batch, seq, vocab_size)."""
        hidden_states = self.LayerNorm(self.activation(self.dense(hidden_states)))  # (batch, seq, output_emb)
        return self.decoder(hidden_states)  # (batch, seq, vocab)


class TFRemBertOnlyMLMHead(keras.layers.Layer):
    """The ``cls`` block: holds ``predictions``."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"predictions": "predictions"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.predictions = TFRemBertLMPredictionHead(config, name="predictions", dtype=self.dtype_policy)
        self.built = True

    def call(self, sequence_output: tf.Tensor) -> tf.Tensor:
        """(batch, seq, hidden) -> logits (batch, seq, vocab_size)."""
        return self.predictions(sequence_output)
