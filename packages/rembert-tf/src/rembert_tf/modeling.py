"""RemBERT in TensorFlow / Keras 3: every layer, the base model and the six task heads, in one file.

Read top to bottom: leaf layers (Linear, Embedding, LayerNorm), embeddings,
self-attention, attention output, attention, intermediate, output, layer,
encoder, pooler, LM prediction head, the main layer (masks and input checks),
the base class with ``from_pretrained``/``save_pretrained``, ``TFRemBertModel``
and the heads.

The semantics are those of the reference *PyTorch* implementation
(``transformers`` 4.57 ``RemBertModel``), also where the old TensorFlow reference
deviated: masks add ``(1 - mask) * float32.min`` (not -1e4), ``head_mask`` is
supported, token classification drops out with ``classifier_dropout_prob``,
sequence classification supports the multi-label loss, question-answering
positions are clamped, and ``hidden_states`` has ``num_hidden_layers + 1`` entries.

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

import contextlib
import math
import mmap
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rembert_core import ARCHITECTURES, ConfigError, InputError, RemBertConfig
from rembert_tf._tensorflow import keras, tf
from rembert_tf.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

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

Tensor = Any  # tf.Tensor, a NumPy array or anything tf.convert_to_tensor accepts
PastKeyValues = tuple[tuple[Tensor, ...], ...]

# The most negative float32: a masked score becomes this (the reference's torch.finfo(dtype).min).
_MASK_MIN = float(np.finfo(np.float32).min)

# -- initialisation ------------------------------------------------------------------------------

_INIT_STATE = threading.local()


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Build variables filled with zeros instead of random values (used before loading a checkpoint)."""
    previous = getattr(_INIT_STATE, "skip", False)
    _INIT_STATE.skip = True
    try:
        yield
    finally:
        _INIT_STATE.skip = previous


#: Under :func:`skip_init`, float32 variables at least this large start as untouched zero pages.
LAZY_ZEROS_MIN_BYTES = 2**20

#: The NumPy buffers handed to TensorFlow by :func:`_lazy_zeros`, by data address. An entry lives as
#: long as TensorFlow holds the buffer (the DLPack capsule keeps the array alive).
LAZY_BUFFERS: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()


def _zero_pages(nbytes: int) -> np.ndarray:
    """``nbytes`` of zeros in fresh anonymous memory: no RAM is used until a page is written.

    A private ``mmap`` rather than NumPy's ``calloc``'d ``np.zeros``: filling the full-size
    model's 2.3 GB took 4.3 s instead of 6.5 s measured side by side (``np.zeros`` also asks
    the kernel for huge pages on large buffers, and when it grants none, each first write is
    slower). Where anonymous mappings are unavailable, ``np.zeros`` it is.
    """
    try:
        pages = mmap.mmap(-1, nbytes)  # page-aligned (so 64-byte aligned), zero-filled on first write
    except (OSError, ValueError):
        raw = np.zeros(nbytes + 64, np.uint8)
        offset = -raw.ctypes.data % 64  # TensorFlow requires 64-byte aligned buffers
        return raw[offset : offset + nbytes]
    return np.frombuffer(pages, np.uint8)  # (nbytes,); the array keeps the mapping alive


def _lazy_zeros(shape: Sequence[int], dtype: Any) -> Any:
    """Zeros that cost no memory until written: a fresh NumPy buffer handed to TF through DLPack.

    The variable adopts the buffer (no copy) and its pages are only mapped when the
    checkpoint's values are written into them (see ``rembert_tf.loading``), so loading
    holds one copy of the weights, outside TensorFlow's pooling allocator (whose
    per-tensor overhead is about 6% with oneDNN).
    """
    count = math.prod(int(d) for d in shape)
    if tf.as_dtype(dtype) != tf.float32 or count * 4 < LAZY_ZEROS_MIN_BYTES:
        return tf.zeros(shape, dtype)
    array = _zero_pages(count * 4).view(np.float32).reshape(tuple(shape))  # (*shape), 64-byte aligned
    LAZY_BUFFERS[array.ctypes.data] = array
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def _initializer(kind: str, std: float = 0.0, pad_row: int | None = None) -> Callable[..., Any]:
    """A Keras initializer of the reference ``_init_weights`` kind ("normal", "zeros", "ones")."""

    def init(shape: Sequence[int], dtype: Any = None) -> Any:
        dtype = dtype or "float32"
        if getattr(_INIT_STATE, "skip", False):
            return _lazy_zeros(shape, dtype)
        if kind == "zeros":
            return tf.zeros(shape, dtype)
        if kind == "ones":
            return tf.ones(shape, dtype)
        value = keras.random.normal(shape, stddev=std, dtype=dtype)
        if pad_row is not None and pad_row < shape[0]:
            keep = tf.cast(tf.range(shape[0]) != pad_row, value.dtype)[:, None]
            value = value * keep
        return value

    return init


# -- input checks ----------------------------------------------------------------------------------


def _in_xla_context() -> bool:
    """True while tracing a function compiled with XLA (which drops runtime assertions)."""
    try:
        from tensorflow.python.ops import control_flow_util

        graph = tf.compat.v1.get_default_graph()
        return bool(control_flow_util.GraphOrParentsInXlaContext(graph))
    except Exception:  # pragma: no cover - private API moved
        return False


def _to_tensor(value: Any, name: str) -> tf.Tensor:
    if isinstance(value, tf.Tensor | tf.Variable):
        return tf.convert_to_tensor(value)
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} cannot be converted to a tensor ({type(value).__name__}): {exc}") from None


def _require_int(t: tf.Tensor, name: str) -> None:
    if not t.dtype.is_integer:
        raise InputError(f"{name} must be an integer tensor, got dtype {t.dtype.name}")


def _require_float(t: tf.Tensor, name: str) -> None:
    if not t.dtype.is_floating:
        raise InputError(f"{name} must be a floating-point tensor, got dtype {t.dtype.name}")


def _require_rank(t: tf.Tensor, name: str, ranks: tuple[int, ...], what: str) -> None:
    rank = t.shape.rank
    if rank is not None and rank not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise InputError(f"{name} must have rank {expected} {what}, got shape {tuple(t.shape.as_list())}")


def _check_range(t: tf.Tensor, name: str, upper: int, what: str, *, allow: int | None = None) -> tf.Tensor:
    """Check ``0 <= t < upper`` (or ``t == allow``); return ``t`` (gated on the check in a graph).

    Eagerly a violation raises :class:`InputError`; in a ``tf.function`` an
    assertion naming the argument runs before any op that uses the returned
    tensor (TensorFlow raises ``InvalidArgumentError`` with that message). XLA
    drops assertions, so under ``jit_compile=True`` nothing is checked.
    """
    if tf.executing_eagerly():
        arr = np.asarray(t)
        if arr.size == 0:
            return t
        bad = (arr < 0) | (arr >= upper)
        if allow is not None:
            bad &= arr != allow
        if bad.any():
            first = arr[bad].flat[0]
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            extra = f" or {allow}" if allow is not None else ""
            raise InputError(
                f"{name} contains {first} at index {where}; values must be in [0, {upper}){extra} ({what})"
            )
        return t
    if _in_xla_context():
        return t
    ok = tf.logical_and(t >= 0, t < tf.cast(upper, t.dtype))
    if allow is not None:
        ok = tf.logical_or(ok, tf.equal(t, tf.cast(allow, t.dtype)))
    check = tf.debugging.Assert(
        tf.reduce_all(ok),
        [f"InputError: {name} has values outside [0, {upper}) ({what}); min/max:", tf.reduce_min(t), tf.reduce_max(t)],
        name=f"check_{name}",
    )
    with tf.control_dependencies([check]):
        return tf.identity(t)


def _check_condition(ok: Any, message: str, data: Sequence[Any] = (), gate: Any = None) -> Any:
    """Check ``ok``; return ``gate`` (made to wait for the check in a graph).

    Eagerly (or for a Python bool) a violation raises :class:`InputError`; in a
    graph an assertion with ``message`` runs before any op that uses ``gate``.
    """
    if isinstance(ok, bool | np.bool_) or tf.executing_eagerly():
        if not bool(np.all(np.asarray(ok))):
            raise InputError(message + ("" if not data else f" (got {', '.join(str(np.asarray(d)) for d in data)})"))
        return gate
    if _in_xla_context():
        return gate
    check = tf.debugging.Assert(tf.reduce_all(ok), [f"InputError: {message}", *data])
    if gate is None:
        return None
    with tf.control_dependencies([check]):
        return tf.identity(gate)


def _dim(t: tf.Tensor, axis: int) -> Any:
    """Static size of ``axis`` when known, else the dynamic one (keeps tracing shape-agnostic)."""
    static = t.shape[axis]
    return static if static is not None else tf.shape(t)[axis]


# -- leaf layers -----------------------------------------------------------------------------------


class Linear(keras.layers.Layer):
    """``y = x @ kernel + bias``. ``kernel`` is ``[in, out]``, the canonical ``weight`` transposed.

    Args:
        in_features (int): input width.
        out_features (int): output width.
        initializer_range (float): std of the normal initialiser of ``kernel``.

    Example:
        >>> layer = Linear(4, 3, initializer_range=0.02, name="dense")
        >>> tuple(layer(tf.zeros((2, 5, 4))).shape)
        (2, 5, 3)
    """

    def __init__(self, in_features: int, out_features: int, *, initializer_range: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_features = in_features
        self.out_features = out_features
        self.kernel = self.add_weight(
            name="kernel", shape=(in_features, out_features), initializer=_initializer("normal", initializer_range)
        )
        self.bias = self.add_weight(name="bias", shape=(out_features,), initializer=_initializer("zeros"))
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` (..., in_features) -> (..., out_features)."""
        if x.shape.rank == 2:
            return tf.nn.bias_add(tf.matmul(x, self.kernel), self.bias)  # (rows, out_features)
        # A 2-D MatMul + BiasAdd (one fused oneDNN kernel under tf.function) rather than a broadcast batch matmul.
        lead = tf.shape(x)[:-1]
        y = tf.nn.bias_add(tf.matmul(tf.reshape(x, [-1, self.in_features]), self.kernel), self.bias)  # (rows, out)
        return tf.reshape(y, tf.concat([lead, [self.out_features]], axis=0))  # (..., out_features)

    def canonical_params(self) -> dict[str, tuple[Any, bool]]:
        """``{canonical suffix: (variable, transposed)}``."""
        return {"weight": (self.kernel, True), "bias": (self.bias, False)}


class Embedding(keras.layers.Layer):
    """A lookup table ``weight`` of shape ``(rows, width)``; out-of-range ids are checked by the caller.

    ``pad_row`` (the word embeddings' ``pad_token_id``) receives no gradient, as in PyTorch.

    Example:
        >>> table = Embedding(10, 4, initializer_range=0.02, name="word_embeddings")
        >>> tuple(table(tf.constant([[1, 2]])).shape)
        (1, 2, 4)
    """

    def __init__(
        self, rows: int, width: int, *, initializer_range: float, pad_row: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(autocast=False, **kwargs)  # lookups in the variable dtype (float32 under mixed precision)
        self.rows = rows
        self.width = width
        self.initializer_range = initializer_range
        self.pad_row = pad_row
        self.weight = self.add_weight(
            name="weight", shape=(rows, width), initializer=_initializer("normal", initializer_range, pad_row)
        )
        self.built = True

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        """``ids`` int (...) -> (..., width); ids must already be checked to lie in ``[0, rows)``."""
        from rembert_tf.distributed import gather_with_dense_gradient

        if ids.dtype not in (tf.int32, tf.int64):  # tf.gather takes no uint8/uint16/... indices
            ids = tf.cast(ids, tf.int64)
        out = gather_with_dense_gradient(tf.convert_to_tensor(self.weight), ids)  # (*ids.shape, width)
        if self.pad_row is not None:
            # As PyTorch's nn.Embedding(padding_idx=...): the padding row gets no gradient.
            out = tf.where(tf.equal(ids, self.pad_row)[..., None], tf.stop_gradient(out), out)
        return out

    def canonical_params(self) -> dict[str, tuple[Any, bool]]:
        """``{canonical suffix: (variable, transposed)}``."""
        return {"weight": (self.weight, False)}


class LayerNorm(keras.layers.Layer):
    """Layer normalisation over the last axis, computed and returned in float32 whatever the compute dtype.

    As under PyTorch autocast, the residual stream after each LayerNorm stays
    float32; the next ``Linear`` casts its input to the compute dtype.

    ``weight`` (gain) and ``bias`` as in PyTorch's ``nn.LayerNorm`` (biased variance).

    Example:
        >>> norm = LayerNorm(4, eps=1e-12, name="LayerNorm")
        >>> tuple(norm(tf.ones((2, 4))).shape)
        (2, 4)
    """

    def __init__(self, width: int, *, eps: float, **kwargs: Any) -> None:
        super().__init__(autocast=False, **kwargs)
        self.width = width
        self.eps = eps
        self.weight = self.add_weight(name="weight", shape=(width,), initializer=_initializer("ones"))
        self.bias = self.add_weight(name="bias", shape=(width,), initializer=_initializer("zeros"))
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` (..., width) in any float dtype -> float32 (..., width)."""
        x32 = tf.cast(x, tf.float32)
        mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(var + self.eps)
        return y * tf.cast(self.weight, tf.float32) + tf.cast(self.bias, tf.float32)  # float32

    def canonical_params(self) -> dict[str, tuple[Any, bool]]:
        """``{canonical suffix: (variable, transposed)}``."""
        return {"weight": (self.weight, False), "bias": (self.bias, False)}


def get_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The activation called ``name`` in the config ("gelu" is the exact erf GELU)."""
    activations: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
        "gelu": lambda x: tf.nn.gelu(x, approximate=False),
        "gelu_new": lambda x: tf.nn.gelu(x, approximate=True),
        "gelu_pytorch_tanh": lambda x: tf.nn.gelu(x, approximate=True),
        "relu": tf.nn.relu,
        "silu": tf.nn.silu,
        "swish": tf.nn.silu,
    }
    try:
        return activations[name]
    except KeyError:
        raise ConfigError(f"hidden_act {name!r} is not supported; choose one of {sorted(activations)}") from None


# -- transformer blocks ----------------------------------------------------------------------------


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
        batch = _dim(x, 0)
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
        context = tf.reshape(context, [_dim(context, 0), -1, self.all_head_size])  # (batch, seq, hidden)
        return context, probs, (key, value)


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


class TFRemBertIntermediate(keras.layers.Layer):
    """Dense to ``intermediate_size`` and the activation."""

    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {"dense": "dense"}

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = Linear(
            config.hidden_size,
            config.intermediate_size,
            initializer_range=config.initializer_range,
            name="dense",
            dtype=self.dtype_policy,
        )
        self.activation = get_activation(config.hidden_act)
        self.built = True

    def call(self, hidden_states: tf.Tensor) -> tf.Tensor:
        """(batch, seq, hidden) -> activation(dense) (batch, seq, intermediate_size)."""
        return self.activation(self.dense(hidden_states))  # (batch, seq, intermediate)


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
        self.layer_output = TFRemBertSelfOutput(config, config.intermediate_size, name="output", dtype=policy)
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
        self.embedding_hidden_mapping_in = Linear(
            config.input_embedding_size,
            config.hidden_size,
            initializer_range=config.initializer_range,
            name="embedding_hidden_mapping_in",
            dtype=self.dtype_policy,
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


# -- the main layer: input checks, masks, embeddings, encoder, pooler ----------------------------


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

    def _head_masks(self, head_mask: Any) -> list[tf.Tensor | None]:
        n_layers, n_heads = self.config.num_hidden_layers, self.config.num_attention_heads
        if head_mask is None:
            return [None] * n_layers
        mask = tf.cast(_to_tensor(head_mask, "head_mask"), tf.float32)
        shape = tuple(mask.shape.as_list())
        if shape == (n_heads,):
            return [tf.reshape(mask, [1, n_heads, 1, 1])] * n_layers
        if shape == (n_layers, n_heads):
            return [tf.reshape(mask[i], [1, n_heads, 1, 1]) for i in range(n_layers)]
        raise InputError(
            f"head_mask must have shape (num_attention_heads,) = ({n_heads},) or (num_hidden_layers, "
            f"num_attention_heads) = ({n_layers}, {n_heads}), got {shape}"
        )

    def _check_past(self, past_key_values: Any) -> PastKeyValues:
        n_layers = self.config.num_hidden_layers
        if not isinstance(past_key_values, Sequence) or len(past_key_values) != n_layers:
            got = len(past_key_values) if isinstance(past_key_values, Sequence) else type(past_key_values).__name__
            raise InputError(
                f"past_key_values must hold one (key, value[, cross_key, cross_value]) per layer "
                f"({n_layers}), got {got}"
            )
        out = []
        for i, entry in enumerate(past_key_values):
            if not isinstance(entry, Sequence) or len(entry) not in (2, 4):
                raise InputError(f"past_key_values[{i}] must be a tuple of 2 or 4 tensors")
            tensors = tuple(_to_tensor(t, f"past_key_values[{i}][{j}]") for j, t in enumerate(entry))
            for j, t in enumerate(tensors):
                _require_rank(t, f"past_key_values[{i}][{j}]", (4,), "(batch, heads, seq, head_dim)")
            out.append(tensors)
        return tuple(out)

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
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """Check the inputs, build the masks and run embeddings, encoder and pooler; arguments as
        :meth:`TFRemBertModel.call`.
        """
        config = self.config
        use_cache = bool(use_cache if use_cache is not None else config.use_cache) if config.is_decoder else False

        # -- inputs ------------------------------------------------------------------------------
        if input_ids is not None and inputs_embeds is not None:
            raise InputError("pass either input_ids or inputs_embeds, not both")
        if input_ids is not None:
            input_ids = _to_tensor(input_ids, "input_ids")
            _require_int(input_ids, "input_ids")
            _require_rank(input_ids, "input_ids", (2,), "(batch, seq)")
            shape_source = input_ids
            input_ids = _check_range(input_ids, "input_ids", config.vocab_size, "token ids must be < vocab_size")
        elif inputs_embeds is not None:
            inputs_embeds = _to_tensor(inputs_embeds, "inputs_embeds")
            _require_float(inputs_embeds, "inputs_embeds")
            _require_rank(inputs_embeds, "inputs_embeds", (3,), "(batch, seq, input_embedding_size)")
            width = inputs_embeds.shape[-1]
            if width is not None and width != config.input_embedding_size:
                raise InputError(
                    f"inputs_embeds has width {width}, expected input_embedding_size={config.input_embedding_size}"
                )
            shape_source = inputs_embeds
        else:
            raise InputError("you have to pass input_ids or inputs_embeds")
        batch, seq = _dim(shape_source, 0), _dim(shape_source, 1)
        if isinstance(batch, int) and isinstance(seq, int) and (batch < 1 or seq < 1):
            raise InputError(f"inputs must have at least one sequence and one token, got batch={batch}, seq={seq}")

        past_length: Any = 0
        if past_key_values is not None:
            past_key_values = self._check_past(past_key_values)
            past_length = _dim(past_key_values[0][0], 2)

        # -- token types and positions --------------------------------------------------------------
        if token_type_ids is None:
            token_type_ids = tf.zeros([batch, seq], dtype=tf.int32)
        else:
            token_type_ids = _to_tensor(token_type_ids, "token_type_ids")
            _require_int(token_type_ids, "token_type_ids")
            token_type_ids = self._check_same_shape(token_type_ids, "token_type_ids", batch, seq)
            token_type_ids = _check_range(
                token_type_ids, "token_type_ids", config.type_vocab_size, "must be < type_vocab_size"
            )
        if position_ids is None:
            position_ids = _check_condition(
                seq + past_length <= config.max_position_embeddings,
                f"the sequence is too long: sequence length + past length must be <= max_position_embeddings "
                f"({config.max_position_embeddings})",
                [seq, past_length],
                gate=tf.range(past_length, seq + past_length)[None, :],  # (1, seq)
            )
        else:
            position_ids = _to_tensor(position_ids, "position_ids")
            _require_int(position_ids, "position_ids")
            _require_rank(position_ids, "position_ids", (1, 2), "(batch, seq) or (seq,)")
            if position_ids.shape.rank == 1:
                position_ids = position_ids[None, :]
            pos_batch, pos_seq = position_ids.shape[0], position_ids.shape[1]
            if (isinstance(seq, int) and pos_seq not in (None, seq)) or (
                isinstance(batch, int) and pos_batch not in (None, 1, batch)
            ):
                got = tuple(position_ids.shape.as_list())
                raise InputError(f"position_ids has shape {got}, expected ({batch}, {seq}) or (1, {seq})")
            position_ids = _check_range(
                position_ids, "position_ids", config.max_position_embeddings, "must be < max_position_embeddings"
            )

        # -- masks (float32, additive: 0 to keep, float32.min to drop) --------------------------------
        extended_mask = self._extended_attention_mask(attention_mask, batch, seq, past_length)
        encoder_extended_mask = None
        if config.is_decoder and encoder_hidden_states is not None:
            encoder_hidden_states = _to_tensor(encoder_hidden_states, "encoder_hidden_states")
            _require_float(encoder_hidden_states, "encoder_hidden_states")
            _require_rank(encoder_hidden_states, "encoder_hidden_states", (3,), "(batch, encoder_seq, hidden)")
            if encoder_hidden_states.shape[-1] not in (None, config.hidden_size):
                raise InputError(
                    f"encoder_hidden_states has width {encoder_hidden_states.shape[-1]}, "
                    f"expected hidden_size={config.hidden_size}"
                )
            encoder_hidden_states = tf.cast(encoder_hidden_states, self.compute_dtype)
            enc_batch, enc_seq = _dim(encoder_hidden_states, 0), _dim(encoder_hidden_states, 1)
            if encoder_attention_mask is None:
                encoder_attention_mask = tf.ones([enc_batch, enc_seq], dtype=tf.float32)
            encoder_attention_mask = tf.cast(_to_tensor(encoder_attention_mask, "encoder_attention_mask"), tf.float32)
            _require_rank(encoder_attention_mask, "encoder_attention_mask", (2, 3), "(batch, encoder_seq)")
            if encoder_attention_mask.shape.rank == 2:
                encoder_extended_mask = encoder_attention_mask[:, None, None, :]  # (batch, 1, 1, enc_seq)
            else:
                encoder_extended_mask = encoder_attention_mask[:, None, :, :]  # (batch, 1, seq, enc_seq)
            encoder_extended_mask = (1.0 - encoder_extended_mask) * _MASK_MIN

        head_masks = self._head_masks(head_mask)

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
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            past_key_values=encoder_outputs.past_key_values,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
            cross_attentions=encoder_outputs.cross_attentions,
        )

    @staticmethod
    def _check_same_shape(t: tf.Tensor, name: str, batch: Any, seq: Any, seq_name: str = "input length") -> tf.Tensor:
        _require_rank(t, name, (2,), "(batch, seq)")
        tb, ts = _dim(t, 0), _dim(t, 1)
        return _check_condition(
            tf.logical_and(tf.equal(tb, batch), tf.equal(ts, seq))
            if not all(isinstance(v, int) for v in (tb, ts, batch, seq))
            else (tb == batch and ts == seq),
            f"{name} must have shape (batch, {seq_name}) = ({batch}, {seq}), got ({tb}, {ts})",
            gate=t,
        )

    def _extended_attention_mask(self, attention_mask: Any, batch: Any, seq: Any, past_length: Any) -> tf.Tensor:
        """``(batch, 1, seq | 1, seq + past)`` float32: 0 where attended, float32.min where masked."""
        if attention_mask is None:
            mask = tf.ones([batch, seq + past_length], dtype=tf.float32)
        else:
            mask = _to_tensor(attention_mask, "attention_mask")
            if not (mask.dtype.is_integer or mask.dtype.is_floating or mask.dtype == tf.bool):
                raise InputError(f"attention_mask must be numeric or boolean, got dtype {mask.dtype.name}")
            mask = tf.cast(mask, tf.float32)
            _require_rank(mask, "attention_mask", (2, 3), "(batch, seq) or (batch, seq, seq)")
            # Values other than 0..1 (7, inf, NaN) would make non-finite outputs (NaN fails both comparisons).
            mask = _check_condition(
                tf.reduce_all(tf.logical_and(mask >= 0, mask <= 1)),
                "attention_mask values must be in [0, 1] (1: attend, 0: masked)",
                gate=mask,
            )
            if mask.shape.rank == 2:
                mask = self._check_same_shape(
                    mask, "attention_mask", batch, seq + past_length, "past length + input length"
                )
        if mask.shape.rank == 3:
            extended = mask[:, None, :, :]  # (batch, 1, seq, kv_len)
        elif self.config.is_decoder:
            kv_len = _dim(mask, 1)
            seq_ids = tf.range(seq)
            causal = tf.cast(seq_ids[None, :] <= seq_ids[:, None], tf.float32)  # (seq, seq): key j <= query i
            prefix = tf.ones([seq, kv_len - seq], dtype=tf.float32)  # cached positions are always visible
            causal = tf.concat([prefix, causal], axis=-1)  # (seq, kv_len)
            extended = causal[None, None, :, :] * mask[:, None, None, :]  # (batch, 1, seq, kv_len)
        else:
            extended = mask[:, None, None, :]  # (batch, 1, 1, seq)
        return (1.0 - extended) * _MASK_MIN


# -- losses (float32, PyTorch semantics) -----------------------------------------------------------


def _cross_entropy(logits: tf.Tensor, labels: tf.Tensor, ignore_index: Any = -100) -> tf.Tensor:
    """Mean cross-entropy over the labels that are not ``ignore_index`` (NaN when all are ignored, as in torch).

    ``logits`` (n, classes), ``labels`` (n,).
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    valid = tf.not_equal(labels, tf.cast(ignore_index, tf.int32))
    safe = tf.where(valid, labels, tf.zeros_like(labels))
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    nll = tf.where(valid, nll, tf.zeros_like(nll))
    return tf.reduce_sum(nll) / tf.reduce_sum(tf.cast(valid, tf.float32))


def _class_labels(labels: Any, name: str, num_classes: int, expected_shape: str) -> tf.Tensor:
    labels = _to_tensor(labels, name)
    _require_int(labels, name)
    return _check_range(labels, name, num_classes, f"class indices {expected_shape}, -100 to ignore", allow=-100)


# -- the base class --------------------------------------------------------------------------------


class TFRemBertPreTrainedModel(keras.Model):
    """Base class of every RemBERT Keras model: config, checkpoints, canonical tensors, training, export.

    Subclasses set :attr:`task` (a :data:`rembert_core.TASKS` entry). Weights are created
    when the model is constructed, so a model is usable (and loadable) at once.

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertModel
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
        >>> model = TFRemBertModel(config)
        >>> import tempfile
        >>> directory = tempfile.mkdtemp()
        >>> files = model.save_pretrained(directory)  # config.json + model.safetensors
        >>> again = TFRemBertModel.from_pretrained(directory)
        >>> ids = np.array([[5, 6, 7]])
        >>> bool(np.allclose(model(ids).last_hidden_state, again(ids).last_hidden_state))
        True
    """

    task: ClassVar[str] = "base"
    base_model_prefix: ClassVar[str] = "rembert"
    #: Canonical name segment -> attribute, for the task's top-level blocks.
    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {}
    #: Argument names :meth:`call` accepts besides ``training`` (also the keys of a dict input).
    INPUT_NAMES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        if not isinstance(config, RemBertConfig):
            raise ConfigError(f"config must be a rembert_core.RemBertConfig, got {type(config).__name__}")
        config.validate()
        if config.add_cross_attention and not config.is_decoder:
            raise ConfigError("add_cross_attention=True needs is_decoder=True (cross-attention is a decoder feature)")
        kwargs.setdefault("name", type(self).__name__.lower())
        super().__init__(**kwargs)
        self.config = config

    # -- inputs --------------------------------------------------------------------------------

    def _gather_inputs(self, input_ids: Any, arguments: dict[str, Any]) -> dict[str, Any]:
        """Unpack a dict passed as the first argument (``fit``, ``export``) into the keyword arguments."""
        if isinstance(input_ids, Mapping):
            unknown = sorted(set(input_ids) - set(self.INPUT_NAMES))
            if unknown:
                raise InputError(
                    f"unknown input name(s) {unknown} for {type(self).__name__}; accepted: {list(self.INPUT_NAMES)}"
                )
            for key, value in input_ids.items():
                if arguments.get(key) is not None:
                    raise InputError(f"{key} was passed both in the input dict and as an argument")
                arguments[key] = value
            arguments.setdefault("input_ids", None)
            if "input_ids" not in input_ids:
                arguments["input_ids"] = None
        else:
            arguments["input_ids"] = input_ids
        return arguments

    def _backbone(
        self, args: dict[str, Any], training: bool, **extra: Any
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        rembert: TFRemBertMainLayer = self.rembert
        out: BaseModelOutputWithPoolingAndCrossAttentions = rembert(
            input_ids=args.get("input_ids"),
            attention_mask=args.get("attention_mask"),
            token_type_ids=args.get("token_type_ids"),
            position_ids=args.get("position_ids"),
            head_mask=args.get("head_mask"),
            inputs_embeds=args.get("inputs_embeds"),
            output_attentions=bool(args.get("output_attentions") or False),
            output_hidden_states=bool(args.get("output_hidden_states") or False),
            training=training,
            **extra,
        )
        return out

    @staticmethod
    def _finish(output: ModelOutput, return_dict: bool | None) -> Any:
        return output.to_tuple() if return_dict is False else output

    # -- canonical tensors ----------------------------------------------------------------------

    def canonical_variables(self) -> dict[str, tuple[Any, bool]]:
        """``{canonical tensor name: (Keras variable, transposed)}`` in schema order.

        ``transposed`` is True for dense kernels, stored ``[in, out]`` here and
        ``[out, in]`` in the canonical layout.
        """
        out: dict[str, tuple[Any, bool]] = {}
        _walk_canonical(self, "", out)
        return out

    def export_tensors(self) -> dict[str, np.ndarray]:
        """Every weight as a NumPy array in the canonical layout (schema names, PyTorch shapes), model dtype."""
        return {
            name: _canonical_value(var, transposed) for name, (var, transposed) in self.canonical_variables().items()
        }

    def load_tensors(self, tensors: Mapping[str, Any], *, strict: bool = True) -> list[str]:
        """Assign canonical tensors (schema names, canonical layout, any float dtype) to the variables.

        Returns the names of the variables that were not given. With ``strict``,
        unknown names or wrong shapes raise :class:`rembert_core.CheckpointError`.
        """
        from rembert_tf.loading import assign_canonical

        return assign_canonical(self, tensors, strict=strict)

    # -- checkpoints ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        config: RemBertConfig | None = None,
        output_loading_info: bool = False,
        dtype: Any = None,
        **config_overrides: Any,
    ) -> Any:
        """Load a checkpoint in any registered format (safetensors, tf_model.h5, pytorch_model.bin, TF checkpoint).

        Args:
            pretrained_model_name_or_path: a checkpoint directory, weights file or TF checkpoint prefix, or a
                Hugging Face Hub id resolved through the ``huggingface_hub`` cache (``local_files_only``,
                ``revision``, ``cache_dir`` and ``token`` are passed to it; needs ``rembert-core[hub]``).
            config: use this config instead of the directory's ``config.json``.
            output_loading_info: also return ``{"missing_keys", "unexpected_keys",
                "mismatched_keys", "newly_initialized", "unused"}``.
            dtype: a Keras dtype policy name (``"float32"``, ``"mixed_bfloat16"``) for the model.
            **config_overrides: config fields to override (``num_labels=3``); ``add_pooling_layer`` and
                ``name`` go to the model constructor instead.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForMaskedLM
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> import tempfile
            >>> directory = tempfile.mkdtemp()
            >>> _ = TFRemBertForMaskedLM(config).save_pretrained(directory)
            >>> model = TFRemBertForMaskedLM.from_pretrained(directory)  # or "google/rembert", a .h5, a TF checkpoint
            >>> model.config.vocab_size
            100
        """
        from rembert_tf.loading import from_pretrained

        return from_pretrained(
            cls,
            pretrained_model_name_or_path,
            config=config,
            output_loading_info=output_loading_info,
            dtype=dtype,
            **config_overrides,
        )

    def save_pretrained(
        self, save_directory: str | os.PathLike[str], *, max_shard_size: int | str | None = None
    ) -> list[Path]:
        """Write ``config.json`` and canonical safetensors (loadable by transformers and rembert-torch).

        Args:
            save_directory: created if needed.
            max_shard_size: e.g. ``"2GB"`` to split the weights into shards plus an index.

        Returns the written files.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertModel
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> import tempfile
            >>> files = TFRemBertModel(config).save_pretrained(tempfile.mkdtemp())
            >>> sorted(f.name for f in files)
            ['config.json', 'model.safetensors']
        """
        from rembert_tf.loading import save_pretrained

        return save_pretrained(self, save_directory, max_shard_size=max_shard_size)

    # -- embeddings ----------------------------------------------------------------------------

    def get_input_embeddings(self) -> Embedding:
        """The word-embedding layer (``embeddings.word_embeddings``)."""
        rembert: TFRemBertMainLayer = self.rembert
        return rembert.embeddings.word_embeddings

    def get_output_embeddings(self) -> Linear | None:
        """The LM decoder (``cls.predictions.decoder``), or None for heads without one."""
        return None

    def resize_token_embeddings(self, new_num_tokens: int | None = None) -> Embedding:
        """Resize the input word embeddings and (for LM heads) the output decoder to ``new_num_tokens`` rows.

        RemBERT's input (``input_embedding_size`` wide) and output
        (``output_embedding_size`` wide) embeddings are separate tensors, so each is
        resized on its own: existing rows are kept, new rows are set to the mean of
        the old rows (new decoder biases to the mean old bias), as ``transformers``'
        mean resizing does in expectation. Updates ``config.vocab_size``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForMaskedLM
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> model = TFRemBertForMaskedLM(config)
            >>> tuple(model.resize_token_embeddings(102).weight.shape)  # (vocab, input_embedding_size)
            (102, 8)
            >>> tuple(model(np.array([[5, 101]])).logits.shape)
            (1, 2, 102)
        """
        if new_num_tokens is None:
            return self.get_input_embeddings()
        if isinstance(new_num_tokens, bool) or not isinstance(new_num_tokens, int) or new_num_tokens < 1:
            raise InputError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        pad = self.config.pad_token_id
        if pad is not None and pad >= new_num_tokens:
            raise InputError(f"new_num_tokens ({new_num_tokens}) must exceed pad_token_id ({pad})")
        table = self.get_input_embeddings()
        _resize_rows(table, "weight", new_num_tokens, transposed=False)
        table.rows = new_num_tokens
        decoder = self.get_output_embeddings()
        if decoder is not None:
            _resize_rows(decoder, "kernel", new_num_tokens, transposed=True)
            _resize_rows(decoder, "bias", new_num_tokens, transposed=False)
            decoder.out_features = new_num_tokens
        self.config.vocab_size = new_num_tokens
        return table

    # -- training ------------------------------------------------------------------------------

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """Keras hook used by ``fit``: the model's own loss when labels were inputs, else the compiled loss.

        With labels in the input dict (``{"input_ids": ..., "labels": ...}``) the
        internal PyTorch-semantics loss is used; otherwise ``y`` is compared with
        the logits by the loss given to ``compile``.
        """
        if isinstance(y_pred, ModelOutput) and y_pred.get("loss") is not None and y is None:
            from rembert_tf.distributed import scale_loss_for_distribution

            # Per-replica mean; scaled like Keras' compiled losses so the replica sum is the mean's gradient.
            return scale_loss_for_distribution(y_pred["loss"])
        if isinstance(y_pred, ModelOutput):
            y_pred = y_pred.get("logits", y_pred.get("start_logits"))
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def train_step(self, data: Any) -> Any:
        """Keras' train step; under multi-worker strategies its logs come back as shape ``(1,)`` (see below)."""
        from rembert_tf.distributed import logs_for_multi_worker

        return logs_for_multi_worker(super().train_step(data))

    def test_step(self, data: Any) -> Any:
        """Keras' test step; under multi-worker strategies its logs come back as shape ``(1,)``.

        Keras 3 averages each worker's logs with ``strategy.reduce("MEAN", value, axis=0)``,
        which fails on scalars (tensorflow/tensorflow#72388); a leading axis of one makes it the
        plain mean over workers, and the logs reaching callbacks are scalars again.
        """
        from rembert_tf.distributed import logs_for_multi_worker

        return logs_for_multi_worker(super().test_step(data))

    def predict_step(self, data: Any) -> Any:
        """Keras' predict step, giving ``predict`` a plain ``dict`` of the output's arrays.

        Keras concatenates the batches' outputs with ``keras.tree``, which cannot traverse
        the output classes: ``model.predict(x)`` returns e.g. ``{"logits": array}``, as
        ``transformers``' TF models do.
        """
        outputs = super().predict_step(data)
        return outputs.to_dict() if isinstance(outputs, ModelOutput) else outputs

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Keras hook (TF trainer, under a strategy): build compiled losses/metrics from one replica's batch.

        Keras averages the first distributed batch with ``strategy.reduce("MEAN", batch)`` only to
        learn its shapes, which ``MultiWorkerMirroredStrategy`` with several workers cannot do for
        a nested batch (the input dict) and raises; the first local replica's tensors have the shapes.
        """
        if iterator is not None and getattr(self, "_distribute_strategy", None) is not None:
            from rembert_tf.distributed import first_local_batch

            for _, _, batches in iterator:
                data_batch = first_local_batch(self._distribute_strategy, next(batches))
                break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Keras hook: metrics see the logits (or start logits) of the output."""
        if isinstance(y_pred, ModelOutput):
            y_pred = y_pred.get("logits", y_pred.get("start_logits"))
        return super().compute_metrics(x, y, y_pred, sample_weight)

    # -- export --------------------------------------------------------------------------------

    def serving_input_signature(self) -> list[tf.TensorSpec]:
        """int32 ``input_ids``, ``attention_mask``, ``token_type_ids`` with dynamic batch and sequence."""
        shape = [None, None, None] if self.task == "multiple_choice" else [None, None]
        return [
            tf.TensorSpec(shape, tf.int32, name="input_ids"),
            tf.TensorSpec(shape, tf.int32, name="attention_mask"),
            tf.TensorSpec(shape, tf.int32, name="token_type_ids"),
        ]

    def serve(self, input_ids: tf.Tensor, attention_mask: tf.Tensor, token_type_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """Inference on the three int32 inputs; returns the tensor output fields as a dict."""
        kwargs: dict[str, Any] = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if "use_cache" in self.INPUT_NAMES:
            kwargs["use_cache"] = False
        out = self(input_ids, training=False, **kwargs)
        return {k: v for k, v in out.items() if isinstance(v, tf.Tensor)}

    def export(
        self,
        filepath: str | os.PathLike[str],
        format: str = "tf_saved_model",
        verbose: bool = True,
        input_signature: Any = None,
        **kwargs: Any,
    ) -> None:
        """Write a TensorFlow SavedModel with a ``serve`` (= ``serving_default``) signature.

        The signature takes int32 ``input_ids``, ``attention_mask`` and
        ``token_type_ids`` of shape ``(batch, seq)`` (``(batch, choices, seq)`` for
        multiple choice), all dynamic, and returns the output fields as a dict.
        Reload with ``tf.saved_model.load(filepath).serve(...)``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertModel
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> import tempfile
            >>> import tensorflow as tf
            >>> directory = tempfile.mkdtemp()
            >>> TFRemBertModel(config).export(directory, verbose=False)
            >>> ones = tf.ones((1, 3), tf.int32)
            >>> loaded = tf.saved_model.load(directory)
            >>> tuple(loaded.serve(ones, ones, 0 * ones)["last_hidden_state"].shape)
            (1, 3, 16)
        """
        if format != "tf_saved_model":
            raise InputError(f"format must be 'tf_saved_model', got {format!r}")
        from keras.export import ExportArchive

        archive = ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", self.serve, input_signature=input_signature or self.serving_input_signature())
        archive.write_out(os.fspath(filepath), verbose=verbose, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """Keras config: the RemBERT config as a dict (enough to rebuild the model with ``from_config``)."""
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> TFRemBertPreTrainedModel:
        """Rebuild from :meth:`get_config`."""
        return cls(RemBertConfig.from_dict(config["config"]), name=config.get("name"))


def _named(namespace: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The call arguments in ``names`` (but ``input_ids``) from a ``locals()`` snapshot."""
    return {k: namespace[k] for k in names if k != "input_ids" and k in namespace}


def _walk_canonical(obj: Any, prefix: str, out: dict[str, tuple[Any, bool]]) -> None:
    if obj is None:
        return
    if isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            _walk_canonical(item, f"{prefix}{i}.", out)
        return
    params = getattr(obj, "canonical_params", None)
    if params is not None:
        for suffix, entry in params().items():
            out[prefix + suffix] = entry
    for segment, attr in getattr(obj, "CANONICAL_CHILDREN", {}).items():
        child_prefix = prefix if segment == "" else f"{prefix}{segment}."
        _walk_canonical(getattr(obj, attr, None), child_prefix, out)


def _canonical_value(var: Any, transposed: bool) -> np.ndarray:
    value = var.numpy()
    return np.ascontiguousarray(value.T) if transposed else value


def _resize_rows(layer: keras.layers.Layer, attr: str, rows: int, *, transposed: bool) -> None:
    """Replace ``layer.<attr>`` by a variable with ``rows`` rows (columns when ``transposed``)."""
    old = getattr(layer, attr)
    value = old.numpy()
    canonical = value.T if transposed else value
    n_old = canonical.shape[0]
    if rows <= n_old:
        new = canonical[:rows]
    else:
        fill = canonical.mean(axis=0, keepdims=True)
        new = np.concatenate([canonical, np.repeat(fill, rows - n_old, axis=0)], axis=0)
    new = np.ascontiguousarray(new.T if transposed else new)
    delattr(layer, attr)
    variable = layer.add_weight(name=attr, shape=new.shape, initializer="zeros", dtype=old.dtype)
    variable.assign(new)
    setattr(layer, attr, variable)


# -- the models ------------------------------------------------------------------------------------

_COMMON_INPUTS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "head_mask",
    "inputs_embeds",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
)


class TFRemBertModel(TFRemBertPreTrainedModel):
    """The bare RemBERT encoder/decoder (``RemBertModel``), returning hidden states and the pooled output.

    Args:
        config (RemBertConfig): the model configuration.
        add_pooling_layer (bool): build the pooler (default True).

    Call arguments (all optional but one of ``input_ids``/``inputs_embeds``):
        input_ids: int ``(batch, seq)``; attention_mask: 0/1 ``(batch, past + seq)`` or ``(batch, seq, past + seq)``;
        token_type_ids, position_ids: int ``(batch, seq)``; head_mask: ``(heads,)`` or ``(layers, heads)``;
        inputs_embeds: float ``(batch, seq, input_embedding_size)``; encoder_hidden_states:
        ``(batch, enc_seq, hidden)``; encoder_attention_mask: ``(batch, enc_seq)``; past_key_values: per-layer
        tuples from a previous call; use_cache, output_attentions, output_hidden_states: bools; training: bool.

    Returns:
        :class:`~rembert_tf.outputs.BaseModelOutputWithPoolingAndCrossAttentions`.

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertModel
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
        >>> out = TFRemBertModel(config)(np.array([[5, 6, 7]]))
        >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)
        ((1, 3, 16), (1, 16))
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
        """Run the model; ``return_dict=False`` gives a tuple.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids; or a dict
                of every input (as Keras passes it).
            attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, past + seq)`` or ``(batch, seq, past + seq)``;
                default all ones.
            token_type_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.
            position_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1``
                after the cached positions.
            head_mask (np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.
            inputs_embeds (np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of
                ``input_ids``.
            encoder_hidden_states (tf.Tensor | None): ``(batch, enc_seq, hidden_size)`` for cross-attention
                (decoders with ``add_cross_attention``).
            encoder_attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, enc_seq)``.
            past_key_values (tuple | None): per layer ``(key, value[, cross_key, cross_value])`` of shape
                ``(batch, heads, past_seq, head_dim)`` from a previous call with ``use_cache=True``.
            use_cache (bool | None): return ``past_key_values`` (decoders).
            output_attentions (bool | None): also return every layer's attention probabilities
                ``(batch, heads, seq, seq)``.
            output_hidden_states (bool | None): also return the embeddings and every layer's output
                ``(batch, seq, hidden_size)``.
            return_dict (bool | None): ``False`` returns a tuple of the fields that are set.
            training (bool): dropout on (Keras sets it in ``fit``).

        Returns:
            BaseModelOutputWithPoolingAndCrossAttentions: ``last_hidden_state`` ``(batch, seq, hidden_size)``,
                ``pooler_output`` ``(batch, hidden_size)``, ``past_key_values``, ``hidden_states``, ``attentions``,
                ``cross_attentions``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertModel
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> out = TFRemBertModel(config)(np.array([[5, 6, 7, 0]]), attention_mask=np.array([[1, 1, 1, 0]]))
            >>> tuple(out.last_hidden_state.shape), tuple(out.pooler_output.shape)
            ((1, 4, 16), (1, 16))
        """
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

    Call arguments: as :class:`TFRemBertModel` (no cache) plus ``labels`` int ``(batch, seq)`` with
    -100 for ignored positions.

    Returns:
        :class:`~rembert_tf.outputs.MaskedLMOutput` (loss, logits ``(batch, seq, vocab)``, hidden_states,
        attentions).

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertForMaskedLM
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
        >>> ids = np.array([[5, 6, 7, 0]])
        >>> out = TFRemBertForMaskedLM(config)(ids, attention_mask=np.array([[1, 1, 1, 0]]), labels=ids)
        >>> tuple(out.logits.shape), tuple(out.loss.shape)
        ((1, 4, 100), ())
    """

    task = "masked_lm"
    INPUT_NAMES = (*_COMMON_INPUTS, "encoder_hidden_states", "encoder_attention_mask", "labels")

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
    ) -> Any:
        """Run the model; ``return_dict=False`` gives a tuple.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids; or a dict
                of every input (as Keras passes it).
            attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, seq)``; default all ones.
            token_type_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.
            position_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1``.
            head_mask (np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.
            inputs_embeds (np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of
                ``input_ids``.
            encoder_hidden_states (tf.Tensor | None): ``(batch, enc_seq, hidden_size)`` for cross-attention
                (decoders with ``add_cross_attention``).
            encoder_attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, enc_seq)``.
            labels (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` token ids to predict, -100 to ignore.
            output_attentions (bool | None): also return every layer's attention probabilities
                ``(batch, heads, seq, seq)``.
            output_hidden_states (bool | None): also return the embeddings and every layer's output
                ``(batch, seq, hidden_size)``.
            return_dict (bool | None): ``False`` returns a tuple of the fields that are set.
            training (bool): dropout on (Keras sets it in ``fit``).

        Returns:
            MaskedLMOutput: ``loss`` (scalar, with labels), ``logits`` ``(batch, seq, vocab_size)``, ``hidden_states``,
                ``attentions``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForMaskedLM
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> ids = np.array([[5, 6, 7]])
            >>> out = TFRemBertForMaskedLM(config)(ids, labels=np.array([[-100, 6, -100]]))
            >>> tuple(out.logits.shape), float(out.loss) > 0
            ((1, 3, 100), True)
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        outputs = self._backbone(
            args,
            training,
            encoder_hidden_states=args.get("encoder_hidden_states"),
            encoder_attention_mask=args.get("encoder_attention_mask"),
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if args.get("labels") is not None:
            labels = _class_labels(args["labels"], "labels", self.config.vocab_size, "(batch, seq) token ids")
            loss = _cross_entropy(tf.reshape(logits, [-1, self.config.vocab_size]), tf.reshape(labels, [-1]))
        out = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._finish(out, args.get("return_dict"))


class TFRemBertForCausalLM(_TFRemBertLMBase):
    """RemBERT with the causal-LM head (``RemBertForCausalLM``), key/value cache and greedy :meth:`generate`.

    Build it with ``config.is_decoder=True`` for causal self-attention (as in the reference).

    Call arguments: as :class:`TFRemBertModel` plus ``labels`` int ``(batch, seq)``: the loss compares
    ``logits[:, :-1]`` with ``labels[:, 1:]`` (shifted inside), ignoring -100.

    Returns:
        :class:`~rembert_tf.outputs.CausalLMOutputWithCrossAttentions`.

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertForCausalLM
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20,
        ...                        is_decoder=True)
        >>> model = TFRemBertForCausalLM(config)
        >>> tuple(model.generate(np.array([[5, 6]]), max_new_tokens=5).shape)
        (1, 7)
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
        """Run the model; ``return_dict=False`` gives a tuple.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids; or a dict
                of every input (as Keras passes it).
            attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, past + seq)`` or ``(batch, seq, past + seq)``;
                default all ones.
            token_type_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.
            position_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1``
                after the cached positions.
            head_mask (np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.
            inputs_embeds (np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of
                ``input_ids``.
            encoder_hidden_states (tf.Tensor | None): ``(batch, enc_seq, hidden_size)`` for cross-attention
                (decoders with ``add_cross_attention``).
            encoder_attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, enc_seq)``.
            past_key_values (tuple | None): per layer ``(key, value[, cross_key, cross_value])`` of shape
                ``(batch, heads, past_seq, head_dim)`` from a previous call with ``use_cache=True``.
            use_cache (bool | None): return ``past_key_values`` (decoders).
            labels (np.ndarray | tf.Tensor | None): int ``(batch, seq)``, the input ids themselves (shifted inside:
                position t predicts label t + 1), -100 to ignore.
            output_attentions (bool | None): also return every layer's attention probabilities
                ``(batch, heads, seq, seq)``.
            output_hidden_states (bool | None): also return the embeddings and every layer's output
                ``(batch, seq, hidden_size)``.
            return_dict (bool | None): ``False`` returns a tuple of the fields that are set.
            training (bool): dropout on (Keras sets it in ``fit``).

        Returns:
            CausalLMOutputWithCrossAttentions: ``loss``, ``logits`` ``(batch, seq, vocab_size)``, ``past_key_values``,
                ``hidden_states``, ``attentions``, ``cross_attentions``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForCausalLM
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20,
            ...                        is_decoder=True)
            >>> model = TFRemBertForCausalLM(config)
            >>> first = model(np.array([[5, 6, 7]]), use_cache=True)
            >>> step = model(np.array([[8]]), past_key_values=first.past_key_values, use_cache=True)
            >>> tuple(step.logits.shape)  # only the new position
            (1, 1, 100)
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
            labels = _class_labels(args["labels"], "labels", self.config.vocab_size, "(batch, seq) token ids")
            _require_rank(labels, "labels", (2,), "(batch, seq)")
            shifted = tf.concat([labels[:, 1:], tf.fill([_dim(labels, 0), 1], tf.constant(-100, labels.dtype))], 1)
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

    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        max_new_tokens: int = 20,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        use_cache: bool = True,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
    ) -> tf.Tensor:
        """Greedy decoding, as ``transformers``' ``generate(do_sample=False)``.

        Args:
            input_ids: int ``(batch, prompt_len)``.
            attention_mask: 0/1 ``(batch, prompt_len)`` (left padding); default: ``input_ids != pad_token_id``
                when the prompt contains the pad token, else all ones.
            max_new_tokens: tokens to add.
            eos_token_id / pad_token_id: default from the config; a sequence that produced ``eos`` is then
                padded with ``pad``; decoding stops when all have.
            use_cache: decode incrementally with the key/value cache (same result as without).

        Returns:
            int32 ``(batch, prompt_len + generated)``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForCausalLM
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20,
            ...                        is_decoder=True)
            >>> model = TFRemBertForCausalLM(config)
            >>> out = model.generate(np.array([[5, 6, 7]]), max_new_tokens=4)
            >>> tuple(out.shape)
            (1, 7)
            >>> bool(np.array_equal(out, model.generate(np.array([[5, 6, 7]]), max_new_tokens=4, use_cache=False)))
            True
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        ids = tf.cast(_to_tensor(input_ids, "input_ids"), tf.int32)
        _require_rank(ids, "input_ids", (2,), "(batch, seq)")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
        if attention_mask is None:
            if pad is not None and pad != eos and bool(tf.reduce_any(ids == pad)):
                mask = tf.cast(ids != pad, tf.int32)
            else:
                mask = tf.ones_like(ids)
        else:
            mask = tf.cast(_to_tensor(attention_mask, "attention_mask"), tf.int32)
        finished = tf.zeros([tf.shape(ids)[0]], dtype=tf.bool)
        past = None
        for _ in range(max_new_tokens):
            positions = tf.cumsum(mask, axis=-1) - 1
            positions = tf.where(mask == 0, tf.ones_like(positions), positions)
            if past is None:
                step_ids, step_positions = ids, positions
            else:
                step_ids, step_positions = ids[:, -1:], positions[:, -1:]
            out = self(
                step_ids,
                attention_mask=mask,
                position_ids=step_positions,
                past_key_values=past,
                use_cache=use_cache,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                training=False,
            )
            next_ids = tf.cast(tf.argmax(out.logits[:, -1, :], axis=-1), tf.int32)
            if eos is not None:
                if pad is not None:
                    next_ids = tf.where(finished, tf.fill(tf.shape(next_ids), pad), next_ids)
                finished = tf.logical_or(finished, next_ids == eos)
            ids = tf.concat([ids, next_ids[:, None]], axis=1)
            mask = tf.concat([mask, tf.ones_like(next_ids)[:, None]], axis=1)
            past = out.past_key_values if use_cache else None
            if eos is not None and bool(tf.reduce_all(finished)):
                break
        return ids


class TFRemBertForSequenceClassification(TFRemBertPreTrainedModel):
    """RemBERT with a classification/regression head on the pooled output (``RemBertForSequenceClassification``).

    Call arguments: as :class:`TFRemBertModel` (encoder only) plus ``labels``: int ``(batch,)`` for
    single-label classification, float ``(batch, num_labels)`` for multi-label, float ``(batch,)`` for regression
    (``num_labels == 1``); ``config.problem_type`` selects the loss, else it is inferred from labels.

    Returns:
        :class:`~rembert_tf.outputs.SequenceClassifierOutput` (logits ``(batch, num_labels)``).

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertForSequenceClassification
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20,
        ...                        num_labels=3)
        >>> out = TFRemBertForSequenceClassification(config)(np.array([[5, 6, 7]]), labels=np.array([1]))
        >>> tuple(out.logits.shape), tuple(out.loss.shape)
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
        self.classifier = Linear(
            config.hidden_size,
            config.num_labels,
            initializer_range=config.initializer_range,
            name="classifier",
            dtype=policy,
        )
        self.built = True

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
        """Run the model; ``return_dict=False`` gives a tuple.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids; or a dict
                of every input (as Keras passes it).
            attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, seq)``; default all ones.
            token_type_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.
            position_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1``.
            head_mask (np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.
            inputs_embeds (np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of
                ``input_ids``.
            labels (np.ndarray | tf.Tensor | None): int ``(batch,)`` classes, float ``(batch, num_labels)`` multi-hot
                targets, or float ``(batch,)`` regression targets (``num_labels == 1``).
            output_attentions (bool | None): also return every layer's attention probabilities
                ``(batch, heads, seq, seq)``.
            output_hidden_states (bool | None): also return the embeddings and every layer's output
                ``(batch, seq, hidden_size)``.
            return_dict (bool | None): ``False`` returns a tuple of the fields that are set.
            training (bool): dropout on (Keras sets it in ``fit``).

        Returns:
            SequenceClassifierOutput: ``loss``, ``logits`` ``(batch, num_labels)``, ``hidden_states``, ``attentions``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForSequenceClassification
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20,
            ...                        num_labels=3)
            >>> out = TFRemBertForSequenceClassification(config)(np.array([[5, 6, 7]]), labels=np.array([2]))
            >>> tuple(out.logits.shape)
            (1, 3)
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        outputs = self._backbone(args, training)
        pooled = self.dropout(outputs.pooler_output, training=training)
        logits = self.classifier(pooled)  # (batch, num_labels)
        loss = None
        if args.get("labels") is not None:
            loss = self._loss(logits, _to_tensor(args["labels"], "labels"))
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
            self._check_label_shape(labels, logits, "(batch, num_labels)")
            return tf.reduce_mean(tf.square(logits - labels))
        if problem == "single_label_classification":
            labels = _class_labels(labels, "labels", n, "(batch,) class ids")
            return _cross_entropy(tf.reshape(logits, [-1, n]), tf.reshape(labels, [-1]))
        if not labels.dtype.is_floating:
            raise InputError(
                "labels for multi_label_classification must be float (batch, num_labels), "
                f"got dtype {labels.dtype.name}"
            )
        labels = tf.cast(labels, tf.float32)
        self._check_label_shape(labels, logits, "(batch, num_labels)")
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))

    @staticmethod
    def _check_label_shape(labels: tf.Tensor, logits: tf.Tensor, what: str) -> None:
        if labels.shape.rank is not None and labels.shape.rank != 2:
            raise InputError(f"labels must have shape {what}, got {tuple(labels.shape.as_list())}")
        width = labels.shape[-1]
        if width is not None and logits.shape[-1] is not None and width != logits.shape[-1]:
            raise InputError(f"labels must have shape {what} = (batch, {logits.shape[-1]}), got width {width}")


class TFRemBertForMultipleChoice(TFRemBertPreTrainedModel):
    """RemBERT scoring each choice with a linear layer on its pooled output (``RemBertForMultipleChoice``).

    Call arguments: ``input_ids``/``attention_mask``/``token_type_ids``/``position_ids`` int
    ``(batch, num_choices, seq)`` (or ``inputs_embeds`` ``(batch, num_choices, seq, input_embedding_size)``),
    ``labels`` int ``(batch,)`` choice indices.

    Returns:
        :class:`~rembert_tf.outputs.MultipleChoiceModelOutput` (logits ``(batch, num_choices)``).

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertForMultipleChoice
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
        >>> out = TFRemBertForMultipleChoice(config)(np.ones((2, 3, 5), "int32"), labels=np.array([0, 2]))
        >>> tuple(out.logits.shape)  # (batch, num_choices)
        (2, 3)
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
        """Run the model; ``return_dict=False`` gives a tuple.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids
                (``(batch, num_choices, seq)`` here: every input has a choices axis); or a dict of every input
                (as Keras passes it).
            attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, seq)``; default all ones.
            token_type_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.
            position_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1``.
            head_mask (np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.
            inputs_embeds (np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of
                ``input_ids``.
            labels (np.ndarray | tf.Tensor | None): int ``(batch,)`` index of the right choice.
            output_attentions (bool | None): also return every layer's attention probabilities
                ``(batch, heads, seq, seq)``.
            output_hidden_states (bool | None): also return the embeddings and every layer's output
                ``(batch, seq, hidden_size)``.
            return_dict (bool | None): ``False`` returns a tuple of the fields that are set.
            training (bool): dropout on (Keras sets it in ``fit``).

        Returns:
            MultipleChoiceModelOutput: ``loss``, ``logits`` ``(batch, num_choices)``, ``hidden_states``, ``attentions``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForMultipleChoice
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> ids = np.array([[[5, 6, 7], [5, 8, 9]]])  # (batch=1, num_choices=2, seq=3)
            >>> out = TFRemBertForMultipleChoice(config)(ids, labels=np.array([1]))
            >>> tuple(out.logits.shape)
            (1, 2)
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        if args.get("input_ids") is not None:
            ids = _to_tensor(args["input_ids"], "input_ids")
            _require_rank(ids, "input_ids", (3,), "(batch, num_choices, seq)")
            num_choices = _dim(ids, 1)
        elif args.get("inputs_embeds") is not None:
            embeds = _to_tensor(args["inputs_embeds"], "inputs_embeds")
            _require_rank(embeds, "inputs_embeds", (4,), "(batch, num_choices, seq, input_embedding_size)")
            num_choices = _dim(embeds, 1)
        else:
            raise InputError("you have to pass input_ids or inputs_embeds")
        flat = dict(args)
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids"):
            if flat.get(name) is not None:
                t = _to_tensor(flat[name], name)
                _require_rank(t, name, (3,), "(batch, num_choices, seq)")
                flat[name] = tf.reshape(t, [-1, _dim(t, 2)])  # (batch * num_choices, seq)
        if flat.get("inputs_embeds") is not None:
            t = _to_tensor(flat["inputs_embeds"], "inputs_embeds")
            flat["inputs_embeds"] = tf.reshape(t, [-1, _dim(t, 2), _dim(t, 3)])  # (batch * choices, seq, emb)
        outputs = self._backbone(flat, training)
        pooled = self.dropout(outputs.pooler_output, training=training)
        logits = tf.reshape(self.classifier(pooled), [-1, num_choices])  # (batch, num_choices)
        loss = None
        if args.get("labels") is not None:
            labels = _to_tensor(args["labels"], "labels")
            _require_int(labels, "labels")
            if isinstance(num_choices, int):
                labels = _check_range(
                    labels, "labels", num_choices, "choice indices (batch,), -100 to ignore", allow=-100
                )
            else:
                labels = _check_condition(
                    tf.reduce_all(tf.logical_or(tf.logical_and(labels >= 0, labels < num_choices), labels == -100)),
                    "labels must be choice indices in [0, num_choices) or -100",
                    gate=labels,
                )
            loss = _cross_entropy(logits, tf.reshape(labels, [-1]))
        out = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._finish(out, args.get("return_dict"))


class TFRemBertForTokenClassification(TFRemBertPreTrainedModel):
    """RemBERT with a per-token linear classifier (``RemBertForTokenClassification``).

    Dropout before the classifier uses ``classifier_dropout_prob`` (as PyTorch; the old TF reference used
    ``hidden_dropout_prob``).

    Call arguments: as :class:`TFRemBertModel` (encoder only) plus ``labels`` int ``(batch, seq)``, -100 ignored.

    Returns:
        :class:`~rembert_tf.outputs.TokenClassifierOutput` (logits ``(batch, seq, num_labels)``).

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertForTokenClassification
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20,
        ...                        num_labels=4)
        >>> ids, tags = np.array([[5, 6, 7]]), np.array([[-100, 1, 3]])
        >>> tuple(TFRemBertForTokenClassification(config)(ids, labels=tags).logits.shape)
        (1, 3, 4)
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
        self.classifier = Linear(
            config.hidden_size,
            config.num_labels,
            initializer_range=config.initializer_range,
            name="classifier",
            dtype=policy,
        )
        self.built = True

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
        """Run the model; ``return_dict=False`` gives a tuple.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids; or a dict
                of every input (as Keras passes it).
            attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, seq)``; default all ones.
            token_type_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.
            position_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1``.
            head_mask (np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.
            inputs_embeds (np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of
                ``input_ids``.
            labels (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` classes, -100 to ignore a position.
            output_attentions (bool | None): also return every layer's attention probabilities
                ``(batch, heads, seq, seq)``.
            output_hidden_states (bool | None): also return the embeddings and every layer's output
                ``(batch, seq, hidden_size)``.
            return_dict (bool | None): ``False`` returns a tuple of the fields that are set.
            training (bool): dropout on (Keras sets it in ``fit``).

        Returns:
            TokenClassifierOutput: ``loss``, ``logits`` ``(batch, seq, num_labels)``, ``hidden_states``, ``attentions``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForTokenClassification
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20,
            ...                        num_labels=3)
            >>> out = TFRemBertForTokenClassification(config)(np.array([[5, 6, 7]]), labels=np.array([[-100, 0, 2]]))
            >>> tuple(out.logits.shape)
            (1, 3, 3)
        """
        args = self._gather_inputs(input_ids, _named(locals(), self.INPUT_NAMES))
        outputs = self._backbone(args, training)
        sequence_output = self.dropout(outputs.last_hidden_state, training=training)
        logits = self.classifier(sequence_output)  # (batch, seq, num_labels)
        loss = None
        if args.get("labels") is not None:
            labels = _class_labels(args["labels"], "labels", self.num_labels, "(batch, seq) tag ids")
            loss = _cross_entropy(tf.reshape(logits, [-1, self.num_labels]), tf.reshape(labels, [-1]))
        out = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._finish(out, args.get("return_dict"))


class TFRemBertForQuestionAnswering(TFRemBertPreTrainedModel):
    """RemBERT with span start/end logits (``RemBertForQuestionAnswering``).

    Call arguments: as :class:`TFRemBertModel` (encoder only) plus ``start_positions``/``end_positions`` int
    ``(batch,)``; positions are clamped to ``[0, seq]`` and ``seq`` (out of the input) is ignored, as in PyTorch.

    Returns:
        :class:`~rembert_tf.outputs.QuestionAnsweringModelOutput` (start/end logits ``(batch, seq)``).

    Example:
        >>> import numpy as np
        >>> from rembert_tf import RemBertConfig, TFRemBertForQuestionAnswering
        >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
        >>> out = TFRemBertForQuestionAnswering(config)(np.array([[5, 6, 7, 8]]))
        >>> tuple(out.start_logits.shape), tuple(out.end_logits.shape)
        ((1, 4), (1, 4))
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
        self.qa_outputs = Linear(
            config.hidden_size,
            config.num_labels,
            initializer_range=config.initializer_range,
            name="qa_outputs",
            dtype=policy,
        )
        self.built = True

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
        """Run the model; ``return_dict=False`` gives a tuple.

        Args:
            input_ids (np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids; or a dict
                of every input (as Keras passes it).
            attention_mask (np.ndarray | tf.Tensor | None): 0/1 ``(batch, seq)``; default all ones.
            token_type_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.
            position_ids (np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1``.
            head_mask (np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.
            inputs_embeds (np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of
                ``input_ids``.
            start_positions (np.ndarray | tf.Tensor | None): int ``(batch,)`` answer start token.
            end_positions (np.ndarray | tf.Tensor | None): int ``(batch,)`` answer end token (inclusive).
            output_attentions (bool | None): also return every layer's attention probabilities
                ``(batch, heads, seq, seq)``.
            output_hidden_states (bool | None): also return the embeddings and every layer's output
                ``(batch, seq, hidden_size)``.
            return_dict (bool | None): ``False`` returns a tuple of the fields that are set.
            training (bool): dropout on (Keras sets it in ``fit``).

        Returns:
            QuestionAnsweringModelOutput: ``loss`` (mean of the start and end cross-entropies), ``start_logits`` and
                ``end_logits`` ``(batch, seq)``, ``hidden_states``, ``attentions``.

        Example:
            >>> import numpy as np
            >>> from rembert_tf import RemBertConfig, TFRemBertForQuestionAnswering
            >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
            >>> out = TFRemBertForQuestionAnswering(config)(
            ...     np.array([[5, 6, 7, 8]]), start_positions=np.array([1]), end_positions=np.array([2]))
            >>> tuple(out.start_logits.shape), float(out.loss) > 0
            ((1, 4), True)
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
                positions = _to_tensor(positions, name)
                _require_int(positions, name)
                _require_rank(positions, name, (1, 2), "(batch,)")
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
