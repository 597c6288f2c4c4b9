"""Model outputs: dataclasses with attribute, key and index access, like transformers' ``ModelOutput``.

Each class has the reference's name and fields, in the reference's order. Fields
that are ``None`` are skipped by key iteration, index access and
:meth:`ModelOutput.to_tuple`, exactly as in ``transformers``, so
``outputs[0]`` is the loss when labels were given and the logits otherwise.

Every class is registered as a ``torch.utils._pytree`` node, so ``torch.export``
and ``torch.compile`` see through it.

Example:
    >>> import torch
    >>> from rembert_torch.outputs import MaskedLMOutput
    >>> out = MaskedLMOutput(logits=torch.zeros(1, 2, 3))
    >>> out.logits is out["logits"] is out[0]
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.utils._pytree as pytree

__all__ = [
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
]

#: Per-layer cache: (self key, self value) or (self key, self value, cross key, cross value),
#: each (batch, heads, seq, head_dim).
PastKeyValues = tuple[tuple[torch.Tensor, ...], ...]


@dataclass
class ModelOutput:
    """Base of every output: a dataclass readable as ``out.name``, ``out["name"]`` and ``out[i]``.

    Key access, iteration (over keys), ``len`` and :meth:`to_tuple` consider only the
    fields that are not ``None``, in declaration order.
    """

    def keys(self) -> list[str]:
        """Names of the fields that are set (not ``None``), in order."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list[Any]:
        """Values of the fields that are set, in order."""
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        """``(name, value)`` of the fields that are set, in order."""
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple[Any, ...]:
        """The set fields as a tuple, in order (the reference's ``return_dict=False`` value)."""
        return tuple(self.values())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{type(self).__name__} has no field {key!r} set (set: {self.keys()})")
            return getattr(self, key)
        return self.to_tuple()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key`` if it is set, else ``default``."""
        value = getattr(self, key, None)
        return default if value is None else value

    def __post_init__(self) -> None:
        # transformers' ModelOutput(dict): a mapping as the only argument fills the fields it names
        fields = dataclasses.fields(self)
        first = getattr(self, fields[0].name)
        others_unset = all(getattr(self, f.name) is None for f in fields[1:])
        if isinstance(first, dict) and others_unset and not isinstance(first, ModelOutput):
            names = {f.name for f in fields}
            unknown = sorted(set(first) - names)
            if unknown:
                raise KeyError(f"{type(self).__name__} has no fields {unknown} (fields: {sorted(names)})")
            setattr(self, fields[0].name, None)
            for name, value in first.items():
                setattr(self, name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        """``out["logits"] = x`` sets the field, as in transformers (the attribute and the key are one)."""
        if not isinstance(key, str) or key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(f"{type(self).__name__} has no field {key!r}")
        setattr(self, key, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"You cannot use ``__delitem__`` on a {type(self).__name__} instance.")

    def to_dict(self) -> dict[str, Any]:
        """The set fields as a plain dict, in order."""
        return dict(self.items())


@dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """Output of :class:`~rembert_torch.RemBertModel`.

    Attributes:
        last_hidden_state: (batch, seq, hidden) output of the last layer.
        pooler_output: (batch, hidden) ``tanh(dense(first token))``; ``None`` without a pooler.
        past_key_values: per-layer key/value cache (decoders with ``use_cache``), tuples of
            (batch, heads, seq, head_dim) tensors.
        hidden_states: ``num_hidden_layers + 1`` tensors (batch, seq, hidden), the first being
            the projected embeddings (with ``output_hidden_states``).
        attentions: per-layer self-attention probabilities (batch, heads, seq, kv_seq).
        cross_attentions: per-layer cross-attention probabilities (batch, heads, seq, enc_seq).
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    past_key_values: PastKeyValues | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class CausalLMOutputWithCrossAttentions(ModelOutput):
    """Output of :class:`~rembert_torch.RemBertForCausalLM`.

    Attributes:
        loss: scalar next-token cross-entropy (with ``labels``).
        logits: (batch, seq, vocab) prediction scores.
        past_key_values, hidden_states, attentions, cross_attentions: as in
            :class:`BaseModelOutputWithPoolingAndCrossAttentions`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: PastKeyValues | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class MaskedLMOutput(ModelOutput):
    """Output of :class:`~rembert_torch.RemBertForMaskedLM`.

    Attributes:
        loss: scalar masked-LM cross-entropy over labels != -100 (with ``labels``).
        logits: (batch, seq, vocab) prediction scores.
        hidden_states, attentions: as in :class:`BaseModelOutputWithPoolingAndCrossAttentions`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    """Output of :class:`~rembert_torch.RemBertForSequenceClassification`.

    Attributes:
        loss: scalar regression / classification loss (with ``labels``).
        logits: (batch, num_labels) scores.
        hidden_states, attentions: as in :class:`BaseModelOutputWithPoolingAndCrossAttentions`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    """Output of :class:`~rembert_torch.RemBertForMultipleChoice`.

    Attributes:
        loss: scalar cross-entropy over the choices (with ``labels``).
        logits: (batch, num_choices) scores.
        hidden_states, attentions: as in :class:`BaseModelOutputWithPoolingAndCrossAttentions`, with
            batch * num_choices rows.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    """Output of :class:`~rembert_torch.RemBertForTokenClassification`.

    Attributes:
        loss: scalar cross-entropy over labels != -100 (with ``labels``).
        logits: (batch, seq, num_labels) scores.
        hidden_states, attentions: as in :class:`BaseModelOutputWithPoolingAndCrossAttentions`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """Output of :class:`~rembert_torch.RemBertForQuestionAnswering`.

    Attributes:
        loss: mean of the start and end cross-entropies (with ``start_positions`` and ``end_positions``).
        start_logits: (batch, seq) span-start scores.
        end_logits: (batch, seq) span-end scores.
        hidden_states, attentions: as in :class:`BaseModelOutputWithPoolingAndCrossAttentions`.
    """

    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def _register_pytree(cls: type[ModelOutput]) -> None:
    names = [f.name for f in dataclasses.fields(cls)]

    def flatten(out: ModelOutput) -> tuple[list[Any], Any]:
        return [getattr(out, n) for n in names], None

    def unflatten(values: Any, _context: Any) -> ModelOutput:
        return cls(**dict(zip(names, values, strict=True)))

    def flatten_with_keys(out: ModelOutput) -> tuple[list[tuple[Any, Any]], Any]:
        return [(pytree.GetAttrKey(n), getattr(out, n)) for n in names], None

    pytree.register_pytree_node(
        cls,
        flatten,
        unflatten,
        serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
        flatten_with_keys_fn=flatten_with_keys,
    )


for _cls in (
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    SequenceClassifierOutput,
    MultipleChoiceModelOutput,
    TokenClassifierOutput,
    QuestionAnsweringModelOutput,
):
    _register_pytree(_cls)
