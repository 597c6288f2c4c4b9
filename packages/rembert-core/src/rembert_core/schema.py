"""The checkpoint schema: for a config and a task, every tensor's canonical name, shape and layout.

The canonical layout is the reference PyTorch ``state_dict`` naming of
``transformers`` 4.57, so its checkpoints load unchanged:

* the backbone (``RemBertModel``) has no prefix when saved alone and the prefix
  ``rembert.`` inside a task model, and both spellings are accepted everywhere;
* linear weights are stored ``[out_features, in_features]`` (PyTorch); a
  backend with ``[in, out]`` kernels (Keras) transposes :attr:`Layout.LINEAR` tensors.

The table below is the single source of these names: backends build their
modules with the same attribute names (``embedding_hidden_mapping_in``,
``LayerNorm``, ...) so that the map from module path to tensor name is trivial.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rembert_core.config import RemBertConfig
from rembert_core.errors import CheckpointError
from rembert_core.io.dtypes import by_code, by_name

__all__ = [
    "ARCHITECTURES",
    "BACKBONE_PREFIX",
    "TASKS",
    "CheckpointSchema",
    "Layout",
    "SchemaReport",
    "TensorSpec",
    "build_schema",
    "infer_task",
]

#: Every task a backend may build. "base" is the bare ``RemBertModel``.
TASKS = (
    "base",
    "masked_lm",
    "causal_lm",
    "sequence_classification",
    "multiple_choice",
    "token_classification",
    "question_answering",
)

#: Reference class name of each task (``config.architectures`` entries).
ARCHITECTURES = {
    "base": "RemBertModel",
    "masked_lm": "RemBertForMaskedLM",
    "causal_lm": "RemBertForCausalLM",
    "sequence_classification": "RemBertForSequenceClassification",
    "multiple_choice": "RemBertForMultipleChoice",
    "token_classification": "RemBertForTokenClassification",
    "question_answering": "RemBertForQuestionAnswering",
}

BACKBONE_PREFIX = "rembert."

#: Tasks whose model has the pooler (reference ``add_pooling_layer``).
_POOLED_TASKS = frozenset({"base", "sequence_classification", "multiple_choice"})

#: Keys that old checkpoints carry but that are not weights (buffers); skipped silently.
IGNORED_SUFFIXES = ("embeddings.position_ids",)


class Layout(enum.Enum):
    """How a tensor is laid out in the canonical (PyTorch) form."""

    EMBEDDING = "embedding"  # [rows, width]: a lookup table, same in every framework
    LINEAR = "linear"  # [out, in]: PyTorch nn.Linear weight; Keras kernels are the transpose
    VECTOR = "vector"  # [n]: a bias or a LayerNorm gain/offset


class Init(enum.Enum):
    """How a new tensor is initialised (the reference ``_init_weights``)."""

    NORMAL = "normal"  # normal(0, initializer_range)
    NORMAL_PADDED = "normal_padded"  # normal(0, initializer_range) with the pad_token_id row zero
    ZEROS = "zeros"
    ONES = "ones"


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the canonical layout."""

    name: str  # canonical name within the task model (e.g. "rembert.encoder.layer.0.output.dense.weight")
    shape: tuple[int, ...]  # canonical shape
    layout: Layout
    init: Init
    component: str  # "embeddings", "embedding_projection", "encoder", "pooler" or "head"

    @property
    def is_backbone(self) -> bool:
        """True for tensors a loader requires (embeddings and encoder); False for pooler and heads."""
        return self.component in ("embeddings", "embedding_projection", "encoder")

    @property
    def size(self) -> int:
        """Number of elements."""
        out = 1
        for dim in self.shape:
            out *= dim
        return out


def _linear(prefix: str, out_f: int, in_f: int, component: str) -> list[TensorSpec]:
    return [
        TensorSpec(f"{prefix}.weight", (out_f, in_f), Layout.LINEAR, Init.NORMAL, component),
        TensorSpec(f"{prefix}.bias", (out_f,), Layout.VECTOR, Init.ZEROS, component),
    ]


def _layer_norm(prefix: str, width: int, component: str) -> list[TensorSpec]:
    return [
        TensorSpec(f"{prefix}.weight", (width,), Layout.VECTOR, Init.ONES, component),
        TensorSpec(f"{prefix}.bias", (width,), Layout.VECTOR, Init.ZEROS, component),
    ]


def _attention(prefix: str, hidden: int, heads_width: int | None = None) -> list[TensorSpec]:
    """One attention block; ``heads_width`` is the width of the kept heads (smaller after ``prune_heads``)."""
    width = hidden if heads_width is None else heads_width
    specs: list[TensorSpec] = []
    for proj in ("query", "key", "value"):
        specs += _linear(f"{prefix}.self.{proj}", width, hidden, "encoder")
    specs += _linear(f"{prefix}.output.dense", hidden, width, "encoder")
    specs += _layer_norm(f"{prefix}.output.LayerNorm", hidden, "encoder")
    return specs


def backbone_specs(config: RemBertConfig, *, pooler: bool) -> list[TensorSpec]:
    """The tensors of ``RemBertModel`` (unprefixed names), in reference ``state_dict`` order."""
    e, h, i = config.input_embedding_size, config.hidden_size, config.intermediate_size
    specs = [
        TensorSpec(
            "embeddings.word_embeddings.weight",
            (config.vocab_size, e),
            Layout.EMBEDDING,
            Init.NORMAL_PADDED,
            "embeddings",
        ),
        TensorSpec(
            "embeddings.position_embeddings.weight",
            (config.max_position_embeddings, e),
            Layout.EMBEDDING,
            Init.NORMAL,
            "embeddings",
        ),
        TensorSpec(
            "embeddings.token_type_embeddings.weight",
            (config.type_vocab_size, e),
            Layout.EMBEDDING,
            Init.NORMAL,
            "embeddings",
        ),
        *_layer_norm("embeddings.LayerNorm", e, "embeddings"),
        *_linear("encoder.embedding_hidden_mapping_in", h, e, "embedding_projection"),
    ]
    head_size = h // config.num_attention_heads
    for n in range(config.num_hidden_layers):
        layer = f"encoder.layer.{n}"
        pruned = len(set(config.pruned_heads.get(n, ())))  # heads removed by prune_heads (self-attention only)
        specs += _attention(f"{layer}.attention", h, (config.num_attention_heads - pruned) * head_size)
        if config.add_cross_attention:
            specs += _attention(f"{layer}.crossattention", h)
        specs += _linear(f"{layer}.intermediate.dense", i, h, "encoder")
        specs += _linear(f"{layer}.output.dense", h, i, "encoder")
        specs += _layer_norm(f"{layer}.output.LayerNorm", h, "encoder")
    if pooler:
        specs += _linear("pooler.dense", h, h, "pooler")
    return specs


def head_specs(config: RemBertConfig, task: str) -> list[TensorSpec]:
    """The tensors of a task head (names as in the reference task model)."""
    h, o, v = config.hidden_size, config.output_embedding_size, config.vocab_size
    if task in ("masked_lm", "causal_lm"):
        return [
            *_linear("cls.predictions.dense", o, h, "head"),
            *_linear("cls.predictions.decoder", v, o, "head"),
            *_layer_norm("cls.predictions.LayerNorm", o, "head"),
        ]
    if task in ("sequence_classification", "token_classification"):
        return _linear("classifier", config.num_labels, h, "head")
    if task == "multiple_choice":
        return _linear("classifier", 1, h, "head")
    if task == "question_answering":
        return _linear("qa_outputs", config.num_labels, h, "head")
    if task == "base":
        return []
    raise CheckpointError(f"unknown task {task!r}; choose one of {TASKS}")


# Keys of any task's head, or of the pooler/cross-attention, recognised but possibly not wanted.
_KNOWN_OPTIONAL_PREFIXES = ("cls.predictions.", "classifier.", "qa_outputs.", "pooler.")


@dataclass
class SchemaReport:
    """The result of checking a checkpoint's tensors against a schema."""

    schema: CheckpointSchema
    matched: dict[str, str] = field(default_factory=dict)  # canonical name -> checkpoint key
    missing: list[str] = field(default_factory=list)  # required (backbone) tensors absent: error
    newly_initialized: list[str] = field(default_factory=list)  # head/pooler tensors absent: allowed
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys no rule knows: error
    unused: list[str] = field(default_factory=list)  # keys of another head/pooler/cross-attention: ignored
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # error
    bad_dtype: list[tuple[str, str]] = field(default_factory=list)  # non-float tensors: error

    @property
    def ok(self) -> bool:
        """True when the checkpoint can be loaded into the schema's model."""
        return not (self.missing or self.unexpected or self.mismatched or self.bad_dtype)

    def errors(self) -> list[str]:
        """One line per problem, each naming the tensor (empty when :attr:`ok`)."""
        lines = [f"missing tensor {name} (expected shape {self.schema[name].shape})" for name in self.missing]
        lines += [f"unexpected tensor {key}" for key in self.unexpected]
        lines += [f"tensor {name} has shape {found}, expected {exp}" for name, exp, found in self.mismatched]
        lines += [f"tensor {name} has dtype {dtype}, expected a floating-point dtype" for name, dtype in self.bad_dtype]
        return lines

    def raise_for_errors(self, source: str = "checkpoint") -> None:
        """Raise :class:`CheckpointError` listing every problem at once (no-op when :attr:`ok`)."""
        errors = self.errors()
        if errors:
            task = self.schema.task
            raise CheckpointError(
                f"{source} does not fit the {ARCHITECTURES[task]} schema ({len(errors)} problem"
                f"{'s' if len(errors) != 1 else ''}):\n  " + "\n  ".join(errors)
            )

    def summary(self) -> str:
        """A human-readable paragraph: matched count, then each category that is not empty."""
        parts = [f"{len(self.matched)}/{len(self.schema)} tensors matched"]
        if self.newly_initialized:
            parts.append(f"newly initialised: {', '.join(self.newly_initialized)}")
        if self.unused:
            parts.append(f"unused: {', '.join(self.unused)}")
        parts += self.errors()
        return "; ".join(parts)


def _is_float(dtype: str) -> bool:
    """Whether a safetensors code ("F32") or a NumPy name ("float32") names a floating-point dtype."""
    row = by_code(dtype) or by_name(dtype)
    return row is not None and row.floating


class CheckpointSchema(Mapping[str, TensorSpec]):
    """The ordered canonical tensors of one task model for one config."""

    def __init__(self, config: RemBertConfig, task: str, *, add_pooling_layer: bool | None = None) -> None:
        if task not in TASKS:
            raise CheckpointError(f"unknown task {task!r}; choose one of {TASKS}")
        self.config = config
        self.task = task
        self.pooler = task in _POOLED_TASKS if add_pooling_layer is None else bool(add_pooling_layer)
        #: "" for the bare model, "rembert." for task models.
        self.prefix = "" if task == "base" else BACKBONE_PREFIX
        specs = [
            TensorSpec(self.prefix + s.name, s.shape, s.layout, s.init, s.component)
            for s in backbone_specs(config, pooler=self.pooler)
        ]
        specs += head_specs(config, task)
        self._specs = {s.name: s for s in specs}

    def __getitem__(self, name: str) -> TensorSpec:
        return self._specs[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"CheckpointSchema(task={self.task!r}, tensors={len(self)}, pooler={self.pooler})"

    def backbone_name(self, name: str) -> str:
        """``name`` without the ``rembert.`` prefix."""
        return name[len(self.prefix) :] if self.prefix and name.startswith(self.prefix) else name

    def canonical_name(self, key: str) -> str | None:
        """The schema name a checkpoint key stands for (prefix added or removed), or None."""
        if key in self._specs:
            return key
        if key.startswith(BACKBONE_PREFIX) and key[len(BACKBONE_PREFIX) :] in self._specs:
            return key[len(BACKBONE_PREFIX) :]
        if BACKBONE_PREFIX + key in self._specs:
            return BACKBONE_PREFIX + key
        return None

    def _is_known_optional(self, key: str) -> bool:
        bare = key[len(BACKBONE_PREFIX) :] if key.startswith(BACKBONE_PREFIX) else key
        if bare.startswith(_KNOWN_OPTIONAL_PREFIXES):
            return True
        return bare.startswith("encoder.layer.") and ".crossattention." in bare

    def validate(
        self,
        shapes: Mapping[str, Sequence[int]],
        dtypes: Mapping[str, str] | None = None,
    ) -> SchemaReport:
        """Check a checkpoint's ``{key: shape}`` (and optionally ``{key: dtype}``) against the schema.

        Reports every problem at once: missing backbone tensors, keys no rule
        knows, shape and dtype mismatches. Absent head or pooler tensors are
        reported as newly initialised and keys of other heads as unused; both are
        allowed.
        """
        report = SchemaReport(self)
        for key, shape in shapes.items():
            if key.endswith(IGNORED_SUFFIXES):
                continue
            name = self.canonical_name(key)
            if name is None:
                (report.unused if self._is_known_optional(key) else report.unexpected).append(key)
                continue
            if name in report.matched:
                raise CheckpointError(
                    f"tensor {name} appears twice in the checkpoint ({report.matched[name]!r}, {key!r})"
                )
            report.matched[name] = key
            found = tuple(int(d) for d in shape)
            if found != self._specs[name].shape:
                report.mismatched.append((name, self._specs[name].shape, found))
            if dtypes is not None and key in dtypes and not _is_float(str(dtypes[key])):
                report.bad_dtype.append((name, str(dtypes[key])))
        for name, spec in self._specs.items():
            if name not in report.matched:
                (report.missing if spec.is_backbone else report.newly_initialized).append(name)
        return report

    def parameter_counts(self) -> dict[str, int]:
        """Number of parameters per component, in schema order."""
        counts: dict[str, int] = {}
        for spec in self._specs.values():
            counts[spec.component] = counts.get(spec.component, 0) + spec.size
        return counts


def build_schema(
    config: RemBertConfig, task: str = "base", *, add_pooling_layer: bool | None = None
) -> CheckpointSchema:
    """The canonical schema of ``task`` for ``config``; see :class:`CheckpointSchema`."""
    return CheckpointSchema(config, task, add_pooling_layer=add_pooling_layer)


_LAYER_KEY = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


def check_layer_count(config: RemBertConfig, keys: Iterable[str], source: str = "checkpoint") -> None:
    """Refuse a config that asks for more layers than the checkpoint holds, before anything is built.

    A 1 KB ``config.json`` claiming a million layers would otherwise build a schema (and a model) of
    that size before the missing tensors are noticed. Raises :class:`CheckpointError` naming both counts.
    """
    layers = {int(m.group(1)) for key in keys if (m := _LAYER_KEY.search(key))}
    held = max(layers) + 1 if layers else 0
    if config.num_hidden_layers > held:
        raise CheckpointError(
            f"{source}: the config asks for num_hidden_layers={config.num_hidden_layers}, "
            f"but the checkpoint holds {held} layer{'s' if held != 1 else ''}"
        )


def infer_task(config: RemBertConfig, keys: Iterable[str]) -> str:
    """The task a checkpoint was saved from: ``config.architectures`` first, else its head tensors."""
    for arch in config.architectures or []:
        for task, name in ARCHITECTURES.items():
            if arch in (name, "TF" + name):
                return task
    bare = {k[len(BACKBONE_PREFIX) :] if k.startswith(BACKBONE_PREFIX) else k for k in keys}
    if "cls.predictions.decoder.weight" in bare:
        return "causal_lm" if config.is_decoder else "masked_lm"
    if "qa_outputs.weight" in bare:
        return "question_answering"
    if "classifier.weight" in bare:
        return "sequence_classification" if "pooler.dense.weight" in bare else "token_classification"
    return "base"
