"""Output containers of the TensorFlow models, with the reference field names.

Each output is a dataclass *and* an ordered mapping holding only the fields that
are not ``None``, so it supports attribute access (``out.logits``), key access
(``out["logits"]``) and index access (``out[0]``, over the fields that are set,
in declaration order), exactly like the PyTorch package and ``transformers``.

Being a :class:`collections.abc.Mapping` is what lets ``tf.function``, XLA and
SavedModel signatures return these objects: ``tf.nest`` flattens a mapping by its
keys and rebuilds it by calling the class with no arguments and setting items.

Example:
    >>> import numpy as np
    >>> out = SequenceClassifierOutput(logits=np.zeros((2, 3)))
    >>> list(out.keys()), out[0].shape, out["logits"] is out.logits
    (['logits'], (2, 3), True)
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

__all__ = [
    "BaseModelOutputWithPastAndCrossAttentions",
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
]


class ModelOutput(OrderedDict[str, Any]):
    """Base class: a dataclass whose non-``None`` fields are also its mapping items.

    Index access ``out[i]`` and :meth:`to_tuple` see only the fields that are set,
    as in ``transformers``.
    """

    def __post_init__(self) -> None:
        # tf.nest rebuilds a mapping as ``cls(iter_of_key_value_pairs)``: unpack it.
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        first = getattr(self, fields[0].name)
        if isinstance(first, Iterator | Mapping) and all(getattr(self, f.name) is None for f in fields[1:]):
            object.__setattr__(self, fields[0].name, None)
            OrderedDict.__delitem__(self, fields[0].name)
            pairs = first.items() if isinstance(first, Mapping) else first
            for key, value in pairs:
                self[key] = value

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if value is not None and not name.startswith("_"):
            self._set_key(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        """``out["logits"] = x`` sets the field, as in transformers (the attribute and the key are one)."""
        if not isinstance(key, str) or key not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise KeyError(f"{type(self).__name__} has no field {key!r}")
        self._set_key(key, value)
        super().__setattr__(key, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"You cannot use ``__delitem__`` on a {type(self).__name__} instance.")

    def _set_key(self, key: str, value: Any) -> None:
        """Set the item, keeping the keys in field order (a field set late does not go last)."""
        new = key not in self
        super().__setitem__(key, value)
        if new:
            names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
            for later in names[names.index(key) + 1 :]:
                if later in self:
                    self.move_to_end(later)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def to_tuple(self) -> tuple[Any, ...]:
        """The values of the fields that are set, in declaration order."""
        return tuple(super(ModelOutput, self).__getitem__(k) for k in self.keys())

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` of the fields that are set."""
        return dict(self.items())

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}=<{_describe(v)}>" for k, v in self.items())
        return f"{type(self).__name__}({fields})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_rebuild, (type(self), self.to_dict()))

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


def _rebuild(cls: type[ModelOutput], items: dict[str, Any]) -> ModelOutput:
    return cls(**items)


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} shape={tuple(shape)}"
    if isinstance(value, tuple | list):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def _output_dataclass(cls: type[ModelOutput]) -> type[ModelOutput]:
    """Apply ``@dataclass`` keeping the mapping's identity-based ``__eq__`` and ``__repr__``."""
    out = dataclass(eq=False, repr=False)(cls)
    assert all(f.default is None for f in dataclasses.fields(cast(Any, out)))
    return out


@_output_dataclass
class BaseModelOutputWithPastAndCrossAttentions(ModelOutput):
    """Encoder output.

    Attributes:
        last_hidden_state: ``(batch, seq, hidden)``.
        past_key_values: per layer ``(key, value[, cross_key, cross_value])``, each ``(batch, heads, len, head_dim)``.
        hidden_states: ``num_hidden_layers + 1`` tensors ``(batch, seq, hidden)``.
        attentions: ``num_hidden_layers`` tensors ``(batch, heads, seq, seq + past)``.
        cross_attentions: ``num_hidden_layers`` tensors ``(batch, heads, seq, encoder_seq)``.
    """

    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@_output_dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """Output of :class:`~rembert_tf.TFRemBertModel` (fields as the encoder output, plus ``pooler_output``).

    Attributes:
        last_hidden_state: ``(batch, seq, hidden)``.
        pooler_output: ``(batch, hidden)``: tanh(dense(first token)); ``None`` without a pooler.
        past_key_values: per layer key/value cache (decoders with ``use_cache``).
        hidden_states, attentions, cross_attentions: see the encoder output.
    """

    last_hidden_state: Any = None
    pooler_output: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@_output_dataclass
class MaskedLMOutput(ModelOutput):
    """Output of :class:`~rembert_tf.TFRemBertForMaskedLM`.

    Attributes:
        loss: scalar cross-entropy over tokens whose label is not -100 (when labels are given).
        logits: ``(batch, seq, vocab_size)``.
        hidden_states, attentions: as for the base model.
    """

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_output_dataclass
class CausalLMOutputWithCrossAttentions(ModelOutput):
    """Output of :class:`~rembert_tf.TFRemBertForCausalLM`.

    Attributes:
        loss: scalar next-token cross-entropy (labels shifted left inside the model).
        logits: ``(batch, seq, vocab_size)``.
        past_key_values, hidden_states, attentions, cross_attentions: as for the base model.
    """

    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@_output_dataclass
class SequenceClassifierOutput(ModelOutput):
    """Output of :class:`~rembert_tf.TFRemBertForSequenceClassification`.

    Attributes:
        loss: scalar (MSE, cross-entropy or BCE-with-logits by ``problem_type``).
        logits: ``(batch, num_labels)``.
        hidden_states, attentions: as for the base model.
    """

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_output_dataclass
class MultipleChoiceModelOutput(ModelOutput):
    """Output of :class:`~rembert_tf.TFRemBertForMultipleChoice`.

    Attributes:
        loss: scalar cross-entropy over the choices.
        logits: ``(batch, num_choices)``.
        hidden_states, attentions: per layer, over the flattened ``batch * num_choices`` sequences.
    """

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_output_dataclass
class TokenClassifierOutput(ModelOutput):
    """Output of :class:`~rembert_tf.TFRemBertForTokenClassification`.

    Attributes:
        loss: scalar cross-entropy over tokens whose label is not -100.
        logits: ``(batch, seq, num_labels)``.
        hidden_states, attentions: as for the base model.
    """

    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


@_output_dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """Output of :class:`~rembert_tf.TFRemBertForQuestionAnswering`.

    Attributes:
        loss: mean of the start and end cross-entropies (positions clamped to ``[0, seq]``, ``seq`` ignored).
        start_logits, end_logits: ``(batch, seq)``.
        hidden_states, attentions: as for the base model.
    """

    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None
