"""The leaf layers the model is built from, and the speed and memory tricks inside them.

Keras has no layers with PyTorch's exact semantics, so the model builds on three of its own
(the TensorFlow counterparts of ``nn.Linear``, ``nn.Embedding`` and ``nn.LayerNorm``):

* :class:`Linear` multiplies as one 2-D ``MatMul`` + ``BiasAdd`` (one fused oneDNN kernel under
  ``tf.function``) rather than a broadcast batch matmul;
* :class:`Embedding` gathers with a dense gradient (:func:`rembert_tf.distributed.gather_with_dense_gradient`)
  and, like ``padding_idx``, gives the padding row none;
* :class:`LayerNorm` computes and returns float32 whatever the compute dtype.

Their variables start as :func:`initial_value` says for their schema ``Init`` (the one place a
variable gets its initial values, shared with ``rembert_tf.loading``), except under :func:`skip_init`
(used by ``from_pretrained`` before a checkpoint overwrites every value): then float32 variables of
at least :data:`LAZY_ZEROS_MIN_BYTES` start as untouched zero pages of a NumPy buffer TensorFlow
adopts (:func:`_lazy_zeros`), which ``rembert_tf.loading`` writes the checkpoint into, so a load
holds one copy of the weights. :data:`LAZY_ZEROS` switches that off (variables then start as
TensorFlow zeros). Both switches are read when a variable is created: set them on this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import mmap
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from rembert_core.schema import Init
from rembert_tf._tensorflow import keras, tf
from rembert_tf.validation import dim

__all__ = [
    "LAZY_BUFFERS",
    "LAZY_ZEROS",
    "LAZY_ZEROS_MIN_BYTES",
    "UNPAD",
    "Embedding",
    "LayerNorm",
    "Linear",
    "Unpadded",
    "gather_tokens",
    "initial_value",
    "plan_unpadding",
    "skip_init",
    "to_padded",
]

# -- switches --------------------------------------------------------------------------------------

#: Under :func:`skip_init`, large float32 variables start as lazy zero pages (False: as ``tf.zeros``).
LAZY_ZEROS = True

#: Under :func:`skip_init`, float32 variables at least this large start as untouched zero pages.
LAZY_ZEROS_MIN_BYTES = 2**20

# -- lazy zero pages -------------------------------------------------------------------------------

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
    if not LAZY_ZEROS or tf.as_dtype(dtype) != tf.float32 or count * 4 < LAZY_ZEROS_MIN_BYTES:
        return tf.zeros(shape, dtype)
    array = _zero_pages(count * 4).view(np.float32).reshape(tuple(shape))  # (*shape), 64-byte aligned
    LAZY_BUFFERS[array.ctypes.data] = array
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def initial_value(
    init: Init, shape: Sequence[int], dtype: Any, *, initializer_range: float, pad_token_id: int | None = None
) -> Any:
    """The initial value ``init`` names, as a tensor of ``shape`` and ``dtype`` (the reference ``_init_weights``).

    ``NORMAL``: normal(0, ``initializer_range``) from Keras' seeded generator; ``NORMAL_PADDED``: the same
    with the ``pad_token_id`` row zeroed (when set and inside the table); ``ZEROS``; ``ONES``. The one place a
    TensorFlow variable gets its initial values: the leaf layers' initializers (:func:`_initializer`) and
    ``rembert_tf.loading`` (for the tensors a checkpoint lacks) both call it.

    Example:
        >>> from rembert_core.schema import Init
        >>> from rembert_tf.kernels import initial_value
        >>> table = initial_value(Init.NORMAL_PADDED, (4, 3), "float32", initializer_range=0.02, pad_token_id=0)
        >>> bool((table.numpy()[0] == 0).all()), tuple(table.shape)  # the padding row (zero, or -0.0)
        (True, (4, 3))
    """
    if init is Init.ZEROS:
        return tf.zeros(shape, dtype)
    if init is Init.ONES:
        return tf.ones(shape, dtype)
    value = keras.random.normal(shape, stddev=initializer_range, dtype=dtype)
    if init is Init.NORMAL_PADDED and pad_token_id is not None and pad_token_id < shape[0]:
        keep = tf.cast(tf.range(shape[0]) != pad_token_id, value.dtype)[:, None]
        value = value * keep
    return value


def _initializer(init: Init, initializer_range: float = 0.0, pad_token_id: int | None = None) -> Callable[..., Any]:
    """A Keras initializer giving :func:`initial_value`, or lazy zeros under :func:`skip_init`."""

    def initializer(shape: Sequence[int], dtype: Any = None) -> Any:
        dtype = dtype or "float32"
        if getattr(_INIT_STATE, "skip", False):
            return _lazy_zeros(shape, dtype)
        return initial_value(init, shape, dtype, initializer_range=initializer_range, pad_token_id=pad_token_id)

    return initializer


# -- leaf layers -----------------------------------------------------------------------------------


class Linear(keras.layers.Layer):
    """``y = x @ kernel + bias``. ``kernel`` is ``[in, out]``, the canonical ``weight`` transposed.

    Args:
        in_features (int): input width.
        out_features (int): output width.
        initializer_range (float): std of the normal initialiser of ``kernel``.

    Example:
        >>> import tensorflow as tf
        >>> from rembert_tf.kernels import Linear
        >>> layer = Linear(4, 3, initializer_range=0.02, name="dense")
        >>> tuple(layer(tf.zeros((2, 5, 4))).shape)
        (2, 5, 3)
    """

    def __init__(self, in_features: int, out_features: int, *, initializer_range: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_features = in_features
        self.out_features = out_features
        self.kernel = self.add_weight(
            name="kernel", shape=(in_features, out_features), initializer=_initializer(Init.NORMAL, initializer_range)
        )
        self.bias = self.add_weight(name="bias", shape=(out_features,), initializer=_initializer(Init.ZEROS))
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
        >>> import tensorflow as tf
        >>> from rembert_tf.kernels import Embedding
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
        init = Init.NORMAL if pad_row is None else Init.NORMAL_PADDED
        self.weight = self.add_weight(
            name="weight", shape=(rows, width), initializer=_initializer(init, initializer_range, pad_row)
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
        >>> import tensorflow as tf
        >>> from rembert_tf.kernels import LayerNorm
        >>> norm = LayerNorm(4, eps=1e-12, name="LayerNorm")
        >>> tuple(norm(tf.ones((2, 4))).shape)
        (2, 4)
    """

    def __init__(self, width: int, *, eps: float, **kwargs: Any) -> None:
        super().__init__(autocast=False, **kwargs)
        self.width = width
        self.eps = eps
        self.weight = self.add_weight(name="weight", shape=(width,), initializer=_initializer(Init.ONES))
        self.bias = self.add_weight(name="bias", shape=(width,), initializer=_initializer(Init.ZEROS))
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


# -- unpadded execution ------------------------------------------------------------------------------

#: Pooled heads (sequence classification, multiple choice) and the masked-LM loss without logits run on the
#: kept tokens only (see :func:`plan_unpadding`). Set to False to run every batch padded (read at every call).
UNPAD = True


@dataclasses.dataclass(frozen=True)
class Unpadded:
    """Where a padded (batch, seq) batch's kept tokens are once gathered into (tokens, ...), row after row.

    Built from tensors only, so the same plan works eagerly and under ``tf.function`` (the token count is a
    dynamic dimension of the graph: no retracing per count); XLA needs static shapes and keeps the padded path.

    ``index``: (tokens,) int32 flat positions ``row * seq + col`` of the kept tokens, row-major; ``starts``:
    (batch,) token index of each row's position 0 (always kept: the pooler reads it); ``padded``: (batch * seq,)
    the token index of each padded position, ``tokens`` where it was dropped; ``batch``, ``seq``:
    the padded shape (static ints where known).
    """

    index: tf.Tensor
    starts: tf.Tensor
    padded: tf.Tensor
    batch: Any
    seq: Any


def plan_unpadding(mask: tf.Tensor, keep: tf.Tensor | None = None) -> Unpadded:
    """The :class:`Unpadded` plan of a checked float32 ``mask`` (batch, seq) with values in [0, 1].

    A token is dropped where its mask is exactly 0 and its row has a key of mask >= 0.5: its key then adds
    ``float32.min`` to a score while another key adds at most ``0.5 * float32.min``, so its softmax weight is
    exactly 0 and nothing that is kept reads it. Position 0 of every row is kept (the pooler reads it, left
    padding included) and so is every position of a row with no such key (a fully padded row attends to all
    its keys, as in the reference), so every kept value is the reference's. ``keep`` (batch, seq) bool: more
    positions to keep (a masked-LM label on a padded position: its value is the reference's too, and as a
    key it still weighs 0).
    """
    batch, seq = dim(mask, 0), dim(mask, 1)
    has_key = tf.reduce_any(mask >= 0.5, axis=1, keepdims=True)  # (batch, 1)
    first = tf.range(seq)[None, :] == 0  # (1, seq)
    kept = (mask != 0) | first | tf.logical_not(has_key)  # (batch, seq)
    if keep is not None:
        kept = kept | keep
    flat = tf.reshape(kept, [-1])  # (batch * seq,)
    index = tf.cast(tf.where(flat)[:, 0], tf.int32)  # (tokens,)
    counts = tf.reduce_sum(tf.cast(kept, tf.int32), axis=1)  # (batch,)
    # Each padded position's kept token, or ``tokens`` (a zero row appended by to_padded) where dropped.
    padded = tf.where(flat, tf.cumsum(tf.cast(flat, tf.int32), exclusive=True), tf.size(index))  # (batch * seq,)
    return Unpadded(index, tf.cumsum(counts, exclusive=True), padded, batch, seq)


def gather_tokens(x: tf.Tensor, plan: Unpadded) -> tf.Tensor:
    """(batch, seq, ...) -> (tokens, ...): the kept tokens, row after row."""
    flat = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))  # (batch * seq, ...)
    return tf.gather(flat, plan.index)


def to_padded(x: tf.Tensor, plan: Unpadded) -> tf.Tensor:
    """(tokens, width) -> (batch, seq, width), zeros at the dropped positions.

    A gather from the tokens and one zero row rather than a scatter: under ``tf.function`` the scatter's graph
    measured slower.
    """
    width = dim(x, 1)
    rows = tf.concat([x, tf.zeros([1, width], x.dtype)], axis=0)  # (tokens + 1, width)
    return tf.reshape(tf.gather(rows, plan.padded), [plan.batch, plan.seq, width])
