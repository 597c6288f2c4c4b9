"""Input and label checks: every model input is checked here, before any kernel runs.

Each check raises :class:`rembert_core.InputError` (a ``ValueError``) naming the argument and the
offending value, shape or dtype. Checks that read tensor *values* (ranges, mask values) are skipped
while ``torch.compile``, ``torch.export`` or ``torch.jit.trace`` trace the model (see
:func:`checking_values`), so the model compiles without graph breaks; shape and dtype checks always run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rembert_core import InputError, RemBertConfig

Tensor = torch.Tensor
#: The cache of one layer: (key, value) or, with cross-attention, (key, value, cross_key, cross_value).
LayerPast = tuple[Tensor, ...]


def checking_values() -> bool:
    """False while torch.compile / torch.export / jit trace the model (data-dependent checks would break graphs)."""
    if torch.compiler.is_compiling() or torch._C._get_tracing_state() is not None:
        return False
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return not (is_exporting is not None and is_exporting())


# -- tensors, dtypes, shapes, values -----------------------------------------------------------


def require_tensor(value: Any, name: str) -> Tensor:
    """``value`` if it is a ``torch.Tensor``; raise otherwise."""
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def require_int_tensor(value: Any, name: str) -> Tensor:
    """``value`` if it is an integer tensor (not bool, float or complex); raise otherwise."""
    tensor = require_tensor(value, name)
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise InputError(f"{name} must be an integer tensor, got dtype {tensor.dtype}")
    return tensor


def require_float_tensor(value: Any, name: str) -> Tensor:
    """``value`` if it is a floating-point tensor; raise otherwise."""
    tensor = require_tensor(value, name)
    if not tensor.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def check_range(tensor: Tensor, name: str, low: int, high: int, *, ignore: int | None = None) -> None:
    """Raise if any value of ``tensor`` (other than ``ignore``) is outside ``[low, high)``."""
    if tensor.numel() == 0 or not checking_values() or tensor.device.type == "meta":
        return
    values = tensor[tensor != ignore] if ignore is not None else tensor
    if values.numel() == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    if lo < low or hi >= high:
        bad = lo if lo < low else hi
        allowed = f"[{low}, {high})" + (f" or {ignore}" if ignore is not None else "")
        raise InputError(f"{name} contains {bad}, outside the allowed range {allowed}")


def check_mask_values(mask: Tensor, name: str) -> None:
    """Raise unless every value of ``mask`` is in [0, 1]: other values (7, inf, NaN) make non-finite outputs."""
    if mask.numel() == 0 or not checking_values() or mask.device.type == "meta" or mask.dtype == torch.bool:
        return
    values = mask if mask.is_floating_point() else mask.double()
    bad = ~((values >= 0) & (values <= 1))  # NaN is bad too
    if bool(bad.any()):
        raise InputError(f"{name} contains {values[bad][0].item()}; values must be in [0, 1] (1: attend, 0: masked)")


def check_shape(tensor: Tensor, name: str, expected: tuple[int, ...], what: str) -> None:
    """Raise unless ``tensor`` has shape ``expected`` (``what`` says what that shape means)."""
    if tuple(tensor.shape) != expected:
        raise InputError(f"{name} has shape {tuple(tensor.shape)}, expected {expected} ({what})")


def as_index(ids: Tensor | None) -> Tensor | None:
    """``ids`` as an index dtype nn.Embedding takes (int32/int64); int16, uint8... ids are already range-checked."""
    return ids if ids is None or ids.dtype in (torch.int32, torch.int64) else ids.long()


def normalize_past(past_key_values: Any) -> tuple[LayerPast, ...] | None:
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
        layers.append(tuple(require_float_tensor(t, f"past_key_values[{i}][{j}]") for j, t in enumerate(layer)))
    return tuple(layers)


# -- the backbone's inputs ---------------------------------------------------------------------


def check_model_inputs(
    config: RemBertConfig,
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
    """Validate every input of :meth:`RemBertModel.forward <rembert_torch.RemBertModel.forward>`.

    Returns:
        (batch, seq, past_length).
    """
    if input_ids is not None and inputs_embeds is not None:
        raise InputError("pass either input_ids or inputs_embeds, not both")
    if input_ids is None and inputs_embeds is None:
        raise InputError("pass input_ids (batch, seq) or inputs_embeds (batch, seq, input_embedding_size)")
    if input_ids is not None:
        input_ids = require_int_tensor(input_ids, "input_ids")
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must have shape (batch, seq), got {tuple(input_ids.shape)}")
        batch, seq = input_ids.shape
    else:
        embeds = require_float_tensor(inputs_embeds, "inputs_embeds")
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
                check_shape(
                    tensor,
                    f"past_key_values[{i}][{j}]",
                    (batch, heads, past_length, head_dim),
                    "(batch, heads, past_seq, head_dim)",
                )
            if len(layer) == 4 and encoder_hidden_states is not None:
                for j in (2, 3):
                    check_shape(
                        layer[j],
                        f"past_key_values[{i}][{j}]",
                        (batch, heads, encoder_hidden_states.shape[1], head_dim),
                        "(batch, heads, encoder_seq, head_dim)",
                    )
    total = past_length + seq

    if input_ids is not None:
        check_range(input_ids, "input_ids", 0, config.vocab_size)
    if token_type_ids is not None:
        tt = require_int_tensor(token_type_ids, "token_type_ids")
        check_shape(tt, "token_type_ids", (batch, seq), "same as input_ids")
        check_range(tt, "token_type_ids", 0, config.type_vocab_size)
    if position_ids is not None:
        pos = require_int_tensor(position_ids, "position_ids")
        if pos.dim() not in (1, 2) or pos.shape[-1] != seq or (pos.dim() == 2 and pos.shape[0] not in (1, batch)):
            raise InputError(
                f"position_ids has shape {tuple(pos.shape)}, expected ({batch}, {seq}), (1, {seq}) or ({seq},)"
            )
        check_range(pos, "position_ids", 0, config.max_position_embeddings)
    elif total > config.max_position_embeddings:
        raise InputError(
            f"sequence length {total}"
            + (f" ({past_length} cached + {seq} new)" if past_length else "")
            + f" exceeds max_position_embeddings={config.max_position_embeddings}"
        )
    if attention_mask is not None:
        mask = require_tensor(attention_mask, "attention_mask")
        if mask.is_complex():
            raise InputError(f"attention_mask must be a bool, integer or float tensor, got dtype {mask.dtype}")
        if mask.dim() == 2:
            check_shape(mask, "attention_mask", (batch, total), "(batch, past + seq)")
        elif mask.dim() == 3:
            check_shape(mask, "attention_mask", (batch, seq, total), "(batch, seq, past + seq)")
        else:
            raise InputError(
                f"attention_mask must have shape ({batch}, {total}) or ({batch}, {seq}, {total}), "
                f"got {tuple(mask.shape)}"
            )
        check_mask_values(mask, "attention_mask")
    if head_mask is not None:
        hm = require_tensor(head_mask, "head_mask")
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
        enc = require_float_tensor(encoder_hidden_states, "encoder_hidden_states")
        if enc.dim() != 3 or enc.shape[0] != batch or enc.shape[2] != config.hidden_size:
            raise InputError(
                f"encoder_hidden_states has shape {tuple(enc.shape)}, expected ({batch}, encoder_seq, "
                f"hidden_size={config.hidden_size})"
            )
        if encoder_attention_mask is not None:
            emask = require_tensor(encoder_attention_mask, "encoder_attention_mask")
            if emask.is_complex() or tuple(emask.shape) not in ((batch, enc.shape[1]), (batch, seq, enc.shape[1])):
                raise InputError(
                    f"encoder_attention_mask has shape {tuple(emask.shape)} and dtype {emask.dtype}, expected "
                    f"({batch}, {enc.shape[1]}) or ({batch}, {seq}, {enc.shape[1]}) of bool/int/float"
                )
    return batch, seq, past_length


# -- the heads' inputs and labels --------------------------------------------------------------


def batch_and_seq(input_ids: Tensor | None, inputs_embeds: Tensor | None) -> tuple[int, int]:
    """(batch, seq) of the inputs, to check labels against; (-1, -1) when the backbone will reject the inputs."""
    source = input_ids if input_ids is not None else inputs_embeds
    if not isinstance(source, torch.Tensor) or source.dim() < 2:
        return -1, -1  # the backbone reports the problem
    return int(source.shape[0]), int(source.shape[1])


def check_token_labels(labels: Any, input_ids: Tensor | None, inputs_embeds: Tensor | None, classes: int) -> Tensor:
    """Per-token labels, (batch, seq) like the inputs, in ``[0, classes)`` or -100; as int64."""
    batch, seq = batch_and_seq(input_ids, inputs_embeds)
    tensor = require_int_tensor(labels, "labels")
    check_shape(tensor, "labels", (batch, seq), "(batch, seq), -100 to ignore a position")
    check_range(tensor, "labels", 0, classes, ignore=-100)
    return tensor.long()


def check_sequence_labels(labels: Any, config: RemBertConfig, num_labels: int, batch: int) -> tuple[str, Tensor]:
    """Sequence-classification labels, checked for ``config.problem_type``; returns (problem type, labels).

    An unset problem type is inferred from the first labels seen and stored in ``config``, like the
    reference: one label -> regression, integer labels -> single-label, float labels -> multi-label.
    Class indices come back as int64.
    """
    tensor = require_tensor(labels, "labels")
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif not tensor.is_floating_point():
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    problem = config.problem_type
    n = num_labels
    if problem == "regression":
        if not tensor.is_floating_point():
            raise InputError(f"labels for regression must be floating point, got dtype {tensor.dtype}")
        expected = (batch,) if n == 1 else (batch, n)
        if tuple(tensor.shape) != expected and not (n == 1 and tuple(tensor.shape) == (batch, 1)):
            raise InputError(f"labels has shape {tuple(tensor.shape)}, expected {expected} for regression")
    elif problem == "single_label_classification":
        tensor = require_int_tensor(tensor, "labels")
        if tensor.numel() != batch or tensor.dim() > 2:
            raise InputError(f"labels has shape {tuple(tensor.shape)}, expected ({batch},) class indices")
        check_range(tensor, "labels", 0, n, ignore=-100)
        tensor = tensor.long()
    else:
        if not tensor.is_floating_point():
            raise InputError(f"labels for multi-label classification must be float 0/1, got dtype {tensor.dtype}")
        check_shape(tensor, "labels", (batch, n), "(batch, num_labels) multi-hot targets")
    return problem, tensor


def check_choice_inputs(input_ids: Tensor | None, inputs_embeds: Tensor | None) -> tuple[int, int, int]:
    """(batch, num_choices, seq) of multiple-choice inputs: ids (batch, num_choices, seq) or their embeddings."""
    if input_ids is not None and inputs_embeds is not None:
        raise InputError("pass either input_ids or inputs_embeds, not both")
    if input_ids is not None:
        source = require_int_tensor(input_ids, "input_ids")
        if source.dim() != 3:
            raise InputError(f"input_ids must have shape (batch, num_choices, seq), got {tuple(source.shape)}")
    elif inputs_embeds is not None:
        source = require_float_tensor(inputs_embeds, "inputs_embeds")
        if source.dim() != 4:
            raise InputError(
                "inputs_embeds must have shape (batch, num_choices, seq, input_embedding_size), "
                f"got {tuple(source.shape)}"
            )
    else:
        raise InputError("pass input_ids (batch, num_choices, seq) or inputs_embeds")
    return source.shape[0], source.shape[1], source.shape[2]


def flatten_choices(value: Tensor | None, name: str, batch: int, num_choices: int, seq: int) -> Tensor | None:
    """A (batch, num_choices, seq) input as (batch * num_choices, seq), after checking its shape."""
    if value is None:
        return None
    tensor = require_tensor(value, name)
    check_shape(tensor, name, (batch, num_choices, seq), "(batch, num_choices, seq)")
    return tensor.reshape(batch * num_choices, seq)  # (batch * choices, seq)


def check_choice_labels(labels: Any, batch: int, num_choices: int) -> Tensor:
    """Multiple-choice labels (batch,): the index of the right choice (or -100), as int64."""
    tensor = require_int_tensor(labels, "labels")
    check_shape(tensor, "labels", (batch,), "(batch,) index of the right choice")
    check_range(tensor, "labels", 0, num_choices, ignore=-100)
    return tensor.long()


def check_span_positions(
    start_positions: Any, end_positions: Any, input_ids: Tensor | None, inputs_embeds: Tensor | None
) -> list[Tensor]:
    """The (batch,) start and end positions of question-answering spans as int64, or [] when neither is given.

    Out-of-range positions are kept (the model clamps and ignores them).
    """
    if (start_positions is None) != (end_positions is None):
        raise InputError("pass both start_positions and end_positions, or neither")
    if start_positions is None:
        return []
    batch, _ = batch_and_seq(input_ids, inputs_embeds)
    positions: list[Tensor] = []
    for name, value in (("start_positions", start_positions), ("end_positions", end_positions)):
        tensor = require_int_tensor(value, name)
        if tuple(tensor.shape) not in ((batch,), (batch, 1)):
            raise InputError(f"{name} has shape {tuple(tensor.shape)}, expected ({batch},)")
        positions.append(tensor.reshape(batch).long())
    return positions
