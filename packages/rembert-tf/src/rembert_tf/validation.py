"""Input and label checks of the models: every wrong input is an :class:`~rembert_core.InputError` naming it.

Eagerly a check raises at once. Inside a ``tf.function`` the value checks become assertions that
run before any op using the checked tensor (TensorFlow then raises ``InvalidArgumentError`` with
the same message); XLA drops assertions, so under ``jit_compile=True`` only the static checks
(dtypes, ranks, known sizes) remain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rembert_core import InputError, RemBertConfig
from rembert_tf._tensorflow import tf

Tensor = Any  # tf.Tensor, a NumPy array or anything tf.convert_to_tensor accepts
PastKeyValues = tuple[tuple[Tensor, ...], ...]

# -- building blocks -------------------------------------------------------------------------------


def in_xla_context() -> bool:
    """True while tracing a function compiled with XLA (which drops runtime assertions)."""
    try:
        from tensorflow.python.ops import control_flow_util

        graph = tf.compat.v1.get_default_graph()
        return bool(control_flow_util.GraphOrParentsInXlaContext(graph))
    except Exception:  # pragma: no cover - private API moved
        return False


def to_tensor(value: Any, name: str) -> tf.Tensor:
    if isinstance(value, tf.Tensor | tf.Variable):
        return tf.convert_to_tensor(value)
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} cannot be converted to a tensor ({type(value).__name__}): {exc}") from None


def require_int(t: tf.Tensor, name: str) -> None:
    if not t.dtype.is_integer:
        raise InputError(f"{name} must be an integer tensor, got dtype {t.dtype.name}")


def require_float(t: tf.Tensor, name: str) -> None:
    if not t.dtype.is_floating:
        raise InputError(f"{name} must be a floating-point tensor, got dtype {t.dtype.name}")


def require_rank(t: tf.Tensor, name: str, ranks: tuple[int, ...], what: str) -> None:
    rank = t.shape.rank
    if rank is not None and rank not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise InputError(f"{name} must have rank {expected} {what}, got shape {tuple(t.shape.as_list())}")


def check_range(t: tf.Tensor, name: str, upper: int, what: str, *, allow: int | None = None) -> tf.Tensor:
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
    if in_xla_context():
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


def check_condition(ok: Any, message: str, data: Sequence[Any] = (), gate: Any = None) -> Any:
    """Check ``ok``; return ``gate`` (made to wait for the check in a graph).

    Eagerly (or for a Python bool) a violation raises :class:`InputError`; in a
    graph an assertion with ``message`` runs before any op that uses ``gate``.
    """
    if isinstance(ok, bool | np.bool_) or tf.executing_eagerly():
        if not bool(np.all(np.asarray(ok))):
            raise InputError(message + ("" if not data else f" (got {', '.join(str(np.asarray(d)) for d in data)})"))
        return gate
    if in_xla_context():
        return gate
    check = tf.debugging.Assert(tf.reduce_all(ok), [f"InputError: {message}", *data])
    if gate is None:
        return None
    with tf.control_dependencies([check]):
        return tf.identity(gate)


def dim(t: tf.Tensor, axis: int) -> Any:
    """Static size of ``axis`` when known, else the dynamic one (keeps tracing shape-agnostic)."""
    static = t.shape[axis]
    return static if static is not None else tf.shape(t)[axis]


def check_same_shape(t: tf.Tensor, name: str, batch: Any, seq: Any, seq_name: str = "input length") -> tf.Tensor:
    require_rank(t, name, (2,), "(batch, seq)")
    tb, ts = dim(t, 0), dim(t, 1)
    return check_condition(
        tf.logical_and(tf.equal(tb, batch), tf.equal(ts, seq))
        if not all(isinstance(v, int) for v in (tb, ts, batch, seq))
        else (tb == batch and ts == seq),
        f"{name} must have shape (batch, {seq_name}) = ({batch}, {seq}), got ({tb}, {ts})",
        gate=t,
    )


# -- what users pass: BatchEncoding, dicts, lists, nested Python lists -----------------------------

#: Flags a dict input may carry besides tensors; they become keyword arguments (Keras passes only tensors).
CALL_FLAGS = ("output_attentions", "output_hidden_states", "return_dict", "use_cache")


_NOT_ARRAYS = frozenset({*CALL_FLAGS, "past_key_values"})


def _tensor_like(value: Any) -> bool:
    return isinstance(value, tf.Tensor | tf.Variable | np.ndarray) or type(value).__name__ == "KerasTensor"


def as_array(value: Any, name: str) -> Any:
    """A nested Python list or tuple as a NumPy array (ragged or non-numeric: :class:`InputError` naming it)."""
    leaf = value
    while isinstance(leaf, list | tuple) and leaf:
        leaf = leaf[0]
    if not isinstance(value, list | tuple) or _tensor_like(leaf):  # not a list, or a structure of tensors
        return value
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged rows
        raise InputError(f"{name} must be a rectangular nested list (every row the same length): {exc}") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold numbers (a rectangular nested list), got {array.dtype} elements")
    return array


def unpack_call_inputs(
    args: tuple[Any, ...], kwargs: dict[str, Any], names: Sequence[str]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Turn what users pass to a model into what Keras' ``__call__`` takes: tensors positionally.

    * a mapping first (a tokenizer's ``BatchEncoding``, any ``dict``) becomes a plain ``dict``; its flags
      (:data:`CALL_FLAGS` with Python values) become keyword arguments;
    * a list or tuple of tensors or arrays first is ``[input_ids, attention_mask, token_type_ids, ...]``
      in the order of ``names`` (as transformers' TF models take it);
    * nested Python lists (first argument, dict values, keyword inputs) become NumPy arrays.
    """
    kwargs = {k: as_array(v, k) if k in names and k not in _NOT_ARRAYS else v for k, v in kwargs.items()}
    if not args:
        return args, kwargs
    first, rest = args[0], args[1:]
    if isinstance(first, list | tuple) and first and all(v is None or _tensor_like(v) for v in first):
        if not any(_tensor_like(v) for v in first):
            raise InputError("the input list holds only None: pass input_ids or inputs_embeds")
        if len(first) > len(names):
            raise InputError(f"got {len(first)} inputs in a list; at most {len(names)}, in the order {list(names)}")
        first = dict(zip(names, first, strict=False))
    if isinstance(first, Mapping):
        inputs: dict[str, Any] = {}
        for key, value in first.items():
            if key in CALL_FLAGS and not _tensor_like(value):
                if value is not None and kwargs.get(key) is not None:
                    raise InputError(f"{key} was passed both in the input dict and as an argument")
                if value is not None:
                    kwargs[key] = value
                continue
            inputs[key] = value if key in _NOT_ARRAYS else as_array(value, str(key))
        first = inputs
    else:
        first = as_array(first, "input_ids")
    return (first, *rest), kwargs


# -- the backbone's inputs (TFRemBertMainLayer.call) -----------------------------------------------


def check_ids_or_embeds(
    input_ids: Tensor | None, inputs_embeds: Tensor | None, config: RemBertConfig
) -> tuple[tf.Tensor | None, tf.Tensor | None, Any, Any]:
    """Exactly one of ``input_ids`` (batch, seq) and ``inputs_embeds`` (batch, seq, input_embedding_size).

    Returns both (as tensors, the ids range-checked) and ``batch``, ``seq`` (static when known).
    """
    if input_ids is not None and inputs_embeds is not None:
        raise InputError("pass either input_ids or inputs_embeds, not both")
    if input_ids is not None:
        input_ids = to_tensor(input_ids, "input_ids")
        require_int(input_ids, "input_ids")
        require_rank(input_ids, "input_ids", (2,), "(batch, seq)")
        shape_source = input_ids
        input_ids = check_range(input_ids, "input_ids", config.vocab_size, "token ids must be < vocab_size")
    elif inputs_embeds is not None:
        inputs_embeds = to_tensor(inputs_embeds, "inputs_embeds")
        require_float(inputs_embeds, "inputs_embeds")
        require_rank(inputs_embeds, "inputs_embeds", (3,), "(batch, seq, input_embedding_size)")
        width = inputs_embeds.shape[-1]
        if width is not None and width != config.input_embedding_size:
            raise InputError(
                f"inputs_embeds has width {width}, expected input_embedding_size={config.input_embedding_size}"
            )
        shape_source = inputs_embeds
    else:
        raise InputError("you have to pass input_ids or inputs_embeds")
    batch, seq = dim(shape_source, 0), dim(shape_source, 1)
    if isinstance(batch, int) and isinstance(seq, int) and (batch < 1 or seq < 1):
        raise InputError(f"inputs must have at least one sequence and one token, got batch={batch}, seq={seq}")
    return input_ids, inputs_embeds, batch, seq


def check_past(past_key_values: Any, n_layers: int) -> PastKeyValues:
    if not isinstance(past_key_values, Sequence) or len(past_key_values) != n_layers:
        got = len(past_key_values) if isinstance(past_key_values, Sequence) else type(past_key_values).__name__
        raise InputError(
            f"past_key_values must hold one (key, value[, cross_key, cross_value]) per layer ({n_layers}), got {got}"
        )
    out = []
    for i, entry in enumerate(past_key_values):
        if not isinstance(entry, Sequence) or len(entry) not in (2, 4):
            raise InputError(f"past_key_values[{i}] must be a tuple of 2 or 4 tensors")
        tensors = tuple(to_tensor(t, f"past_key_values[{i}][{j}]") for j, t in enumerate(entry))
        for j, t in enumerate(tensors):
            require_rank(t, f"past_key_values[{i}][{j}]", (4,), "(batch, heads, seq, head_dim)")
        out.append(tensors)
    return tuple(out)


def check_token_type_ids(token_type_ids: Tensor, type_vocab_size: int, batch: Any, seq: Any) -> tf.Tensor:
    token_type_ids = to_tensor(token_type_ids, "token_type_ids")
    require_int(token_type_ids, "token_type_ids")
    token_type_ids = check_same_shape(token_type_ids, "token_type_ids", batch, seq)
    return check_range(token_type_ids, "token_type_ids", type_vocab_size, "must be < type_vocab_size")


def check_position_ids(position_ids: Tensor, max_position_embeddings: int, batch: Any, seq: Any) -> tf.Tensor:
    """``position_ids`` (batch, seq), (1, seq) or (seq,), checked; returned 2-D."""
    position_ids = to_tensor(position_ids, "position_ids")
    require_int(position_ids, "position_ids")
    require_rank(position_ids, "position_ids", (1, 2), "(batch, seq) or (seq,)")
    if position_ids.shape.rank == 1:
        position_ids = position_ids[None, :]
    pos_batch, pos_seq = position_ids.shape[0], position_ids.shape[1]
    if (isinstance(seq, int) and pos_seq not in (None, seq)) or (
        isinstance(batch, int) and pos_batch not in (None, 1, batch)
    ):
        got = tuple(position_ids.shape.as_list())
        raise InputError(f"position_ids has shape {got}, expected ({batch}, {seq}) or (1, {seq})")
    return check_range(position_ids, "position_ids", max_position_embeddings, "must be < max_position_embeddings")


def check_attention_mask(attention_mask: Tensor, batch: Any, kv_len: Any) -> tf.Tensor:
    """A 0/1 mask (batch, kv_len) or (batch, seq, kv_len), checked, as float32."""
    mask = to_tensor(attention_mask, "attention_mask")
    if not (mask.dtype.is_integer or mask.dtype.is_floating or mask.dtype == tf.bool):
        raise InputError(f"attention_mask must be numeric or boolean, got dtype {mask.dtype.name}")
    mask = tf.cast(mask, tf.float32)
    require_rank(mask, "attention_mask", (2, 3), "(batch, seq) or (batch, seq, seq)")
    # Values other than 0..1 (7, inf, NaN) would make non-finite outputs (NaN fails both comparisons).
    mask = check_condition(
        tf.reduce_all(tf.logical_and(mask >= 0, mask <= 1)),
        "attention_mask values must be in [0, 1] (1: attend, 0: masked)",
        gate=mask,
    )
    if mask.shape.rank == 2:
        mask = check_same_shape(mask, "attention_mask", batch, kv_len, "past length + input length")
    return mask


def check_encoder_hidden_states(encoder_hidden_states: Tensor, hidden_size: int) -> tf.Tensor:
    encoder_hidden_states = to_tensor(encoder_hidden_states, "encoder_hidden_states")
    require_float(encoder_hidden_states, "encoder_hidden_states")
    require_rank(encoder_hidden_states, "encoder_hidden_states", (3,), "(batch, encoder_seq, hidden)")
    if encoder_hidden_states.shape[-1] not in (None, hidden_size):
        raise InputError(
            f"encoder_hidden_states has width {encoder_hidden_states.shape[-1]}, expected hidden_size={hidden_size}"
        )
    return encoder_hidden_states


def head_masks(head_mask: Any, n_layers: int, n_heads: int) -> list[tf.Tensor | None]:
    """One float32 ``(1, heads, 1, 1)`` mask (or None) per layer from ``(heads,)`` or ``(layers, heads)``."""
    if head_mask is None:
        return [None] * n_layers
    mask = tf.cast(to_tensor(head_mask, "head_mask"), tf.float32)
    shape = tuple(mask.shape.as_list())
    if shape == (n_heads,):
        return [tf.reshape(mask, [1, n_heads, 1, 1])] * n_layers
    if shape == (n_layers, n_heads):
        return [tf.reshape(mask[i], [1, n_heads, 1, 1]) for i in range(n_layers)]
    raise InputError(
        f"head_mask must have shape (num_attention_heads,) = ({n_heads},) or (num_hidden_layers, "
        f"num_attention_heads) = ({n_layers}, {n_heads}), got {shape}"
    )


# -- labels ----------------------------------------------------------------------------------------


def check_class_labels(labels: Any, name: str, num_classes: int, expected_shape: str) -> tf.Tensor:
    labels = to_tensor(labels, name)
    require_int(labels, name)
    return check_range(labels, name, num_classes, f"class indices {expected_shape}, -100 to ignore", allow=-100)


def check_choice_labels(labels: Any, num_choices: Any) -> tf.Tensor:
    """Multiple-choice labels: int choice indices ``(batch,)`` in ``[0, num_choices)`` or -100."""
    labels = to_tensor(labels, "labels")
    require_int(labels, "labels")
    if isinstance(num_choices, int):
        return check_range(labels, "labels", num_choices, "choice indices (batch,), -100 to ignore", allow=-100)
    return check_condition(
        tf.reduce_all(tf.logical_or(tf.logical_and(labels >= 0, labels < num_choices), labels == -100)),
        "labels must be choice indices in [0, num_choices) or -100",
        gate=labels,
    )


def check_label_shape(labels: tf.Tensor, logits: tf.Tensor, what: str) -> None:
    if labels.shape.rank is not None and labels.shape.rank != 2:
        raise InputError(f"labels must have shape {what}, got {tuple(labels.shape.as_list())}")
    width = labels.shape[-1]
    if width is not None and logits.shape[-1] is not None and width != logits.shape[-1]:
        raise InputError(f"labels must have shape {what} = (batch, {logits.shape[-1]}), got width {width}")
