"""``RemBertConfig``: the hyper-parameters of a RemBERT model, read from and written to ``config.json``.

The fields and defaults are those of the reference implementation
(``transformers.RemBertConfig``), which are the sizes of ``google/rembert``. A
``config.json`` written by ``transformers`` loads here, and keys this class does
not know are kept in :attr:`RemBertConfig.extra` and written back, so a round
trip through this class loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rembert_core.errors import ConfigError
from rembert_core.serialization import atomic_write_bytes

__all__ = ["CONFIG_NAME", "HIDDEN_ACTS", "PROBLEM_TYPES", "RemBertConfig"]

CONFIG_NAME = "config.json"
MODEL_TYPE = "rembert"

#: Activations a config may name. "gelu" is the exact erf GELU; "gelu_new" and
#: "gelu_pytorch_tanh" are the tanh approximation; "swish" is an alias of "silu".
HIDDEN_ACTS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")

#: Loss selection of the sequence-classification head (``None``: inferred from labels).
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")

# Field groups, for validation.
_POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "input_embedding_size",
    "output_embedding_size",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob")
_OPTIONAL_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id")
_BOOLS = ("use_cache", "is_decoder", "add_cross_attention", "tie_word_embeddings")

#: Largest ``num_labels`` a config may ask for: the labels are generated eagerly, so a config.json
#: claiming 10**12 labels must be refused rather than exhaust memory building their names.
MAX_NUM_LABELS = 2**20


@dataclass(eq=False)
class RemBertConfig:
    """Configuration of a RemBERT model (defaults: the full-size ``google/rembert``).

    Every argument name and default matches ``transformers.RemBertConfig``.
    ``num_labels`` may be passed instead of ``id2label`` (labels are then named
    ``LABEL_0`` …); setting ``config.num_labels`` later regenerates the labels.

    Example:
        >>> from rembert_core import RemBertConfig
        >>> config = RemBertConfig(hidden_size=48, num_attention_heads=6, num_labels=3)
        >>> config.id2label[2]
        'LABEL_2'
    """

    vocab_size: int = 250300  # rows of the input word embeddings and of the output decoder
    hidden_size: int = 1152  # width of the transformer layers
    num_hidden_layers: int = 32  # number of transformer layers
    num_attention_heads: int = 18  # heads per attention layer; must divide hidden_size
    input_embedding_size: int = 256  # width of the (decoupled, small) input embeddings
    output_embedding_size: int = 1664  # width of the (decoupled, large) LM-head output embedding
    intermediate_size: int = 4608  # width of the feed-forward inner layer
    hidden_act: str = "gelu"  # activation of feed-forward and LM head, see HIDDEN_ACTS
    hidden_dropout_prob: float = 0.0  # dropout on embeddings and residual branches
    attention_probs_dropout_prob: float = 0.0  # dropout on attention probabilities
    classifier_dropout_prob: float = 0.1  # dropout before classification heads
    max_position_embeddings: int = 512  # longest sequence the position embeddings cover
    type_vocab_size: int = 2  # number of token type (segment) ids
    initializer_range: float = 0.02  # std of the normal initialiser of new weights
    layer_norm_eps: float = 1e-12  # epsilon of every LayerNorm
    use_cache: bool = True  # decoders return key/value caches by default
    pad_token_id: int | None = 0  # row of the word embeddings kept at zero
    bos_token_id: int | None = 312  # [CLS] in the real vocabulary
    eos_token_id: int | None = 313  # [SEP] in the real vocabulary
    tie_word_embeddings: bool = False  # always False: input and output embeddings differ in width
    is_decoder: bool = False  # causal self-attention (RemBertForCausalLM)
    add_cross_attention: bool = False  # add cross-attention layers (encoder-decoder use)
    num_labels: int = 2  # outputs of classification heads (derived from id2label when given)
    id2label: dict[int, str] | None = None  # label names; generated from num_labels if None
    label2id: dict[str, int] | None = None  # inverse of id2label; generated if None
    problem_type: str | None = None  # sequence-classification loss, see PROBLEM_TYPES
    architectures: list[str] | None = None  # class names that saved this config (informative)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown config.json keys, written back

    def __post_init__(self) -> None:
        self._init_labels()
        self.validate()

    # -- labels ------------------------------------------------------------------------------

    def _init_labels(self) -> None:
        if self.id2label is not None:
            self.id2label = _int_keys(self.id2label, "id2label")
            object.__setattr__(self, "num_labels", len(self.id2label))
        else:
            n = _require_num_labels(self.num_labels)
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
        if self.label2id is None:
            self.label2id = {name: i for i, name in self.id2label.items()}
        else:
            self.label2id = {str(k): _require_int(v, f"label2id[{k!r}]", minimum=0) for k, v in self.label2id.items()}

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if "extra" not in self.__dict__:  # still inside the dataclass __init__
            return
        if name == "num_labels" and (self.id2label is None or len(self.id2label) != value):
            n = _require_num_labels(value)
            object.__setattr__(self, "id2label", {i: f"LABEL_{i}" for i in range(n)})
            object.__setattr__(self, "label2id", {f"LABEL_{i}": i for i in range(n)})
        elif name == "id2label" and value is not None:
            id2label = _int_keys(value, "id2label")
            object.__setattr__(self, "id2label", id2label)
            object.__setattr__(self, "num_labels", len(id2label))
            object.__setattr__(self, "label2id", {v: k for k, v in id2label.items()})

    # -- validation --------------------------------------------------------------------------

    def validate(self) -> None:
        """Check every field; raise :class:`ConfigError` naming the first bad field."""
        for name in _POSITIVE_INTS:
            _require_int(getattr(self, name), name, minimum=1)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.hidden_act not in HIDDEN_ACTS:
            raise ConfigError(f"hidden_act {self.hidden_act!r} is not supported; choose one of {HIDDEN_ACTS}")
        for name in _PROBABILITIES:
            value = _require_float(getattr(self, name), name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if _require_float(self.initializer_range, "initializer_range") < 0:
            raise ConfigError(f"initializer_range must be >= 0, got {self.initializer_range}")
        if not _require_float(self.layer_norm_eps, "layer_norm_eps") > 0:
            raise ConfigError(f"layer_norm_eps must be > 0, got {self.layer_norm_eps}")
        for name in _OPTIONAL_TOKEN_IDS:
            value = getattr(self, name)
            if value is not None:
                _require_int(value, name, minimum=0)
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ConfigError(f"pad_token_id ({self.pad_token_id}) must be < vocab_size ({self.vocab_size})")
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.tie_word_embeddings:
            raise ConfigError(
                "tie_word_embeddings=True is not supported by RemBERT: the input embeddings "
                f"({self.input_embedding_size} wide) and the output embedding "
                f"({self.output_embedding_size} wide) are decoupled"
            )
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type {self.problem_type!r} is not one of {PROBLEM_TYPES} or None")
        if self.architectures is not None and not (
            isinstance(self.architectures, list) and all(isinstance(a, str) for a in self.architectures)
        ):
            raise ConfigError(f"architectures must be a list of strings, got {self.architectures!r}")
        if not isinstance(self.extra, dict):
            raise ConfigError(f"extra must be a dict, got {type(self.extra).__name__}")

    # -- derived sizes -----------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        """Width of one attention head (``hidden_size // num_attention_heads``)."""
        return self.hidden_size // self.num_attention_heads

    # -- dict / JSON -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> RemBertConfig:
        """Build a config from a ``config.json`` dictionary; unknown keys go to ``extra``.

        ``overrides`` replace values of the dictionary (as keyword arguments to
        ``transformers``' ``from_pretrained`` do).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        merged = {**data, **overrides}
        stored = merged.get("id2label")
        if "num_labels" in overrides and "id2label" not in overrides and isinstance(stored, Mapping):
            # An explicit num_labels of another count replaces the stored labels; the same count keeps
            # their names (transformers' from_pretrained semantics).
            if overrides["num_labels"] != len(stored):
                merged.pop("id2label", None)
                merged.pop("label2id", None)
            else:
                merged.pop("num_labels")
        model_type = merged.pop("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ConfigError(f"model_type is {model_type!r}, expected {MODEL_TYPE!r}: this is not a RemBERT config")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in merged.items() if k in known}
        extra = dict(merged.get("extra") or {}) if isinstance(merged.get("extra"), Mapping) else {}
        extra.update({k: v for k, v in merged.items() if k not in known and k != "extra"})
        if "id2label" in kwargs and kwargs["id2label"] is not None and "num_labels" in kwargs:
            n = kwargs.pop("num_labels")
            if isinstance(kwargs["id2label"], Mapping) and n != len(kwargs["id2label"]):
                raise ConfigError(f"num_labels ({n}) does not match the {len(kwargs['id2label'])} entries of id2label")
        try:
            return cls(**kwargs, extra=extra)
        except TypeError as exc:  # pragma: no cover - dataclass signature mismatch
            raise ConfigError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` dictionary (``model_type`` included, ``num_labels`` implied by ``id2label``)."""
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name in ("extra", "num_labels"):
                continue
            value = getattr(self, f.name)
            if f.name == "id2label":
                value = {str(k): v for k, v in (value or {}).items()}
            elif f.name == "architectures" and value is None:
                continue
            out[f.name] = value
        out["model_type"] = MODEL_TYPE
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        """The ``config.json`` text, sorted keys, two-space indent, trailing newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str], **overrides: Any) -> RemBertConfig:
        """Read a ``config.json`` file; errors name the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data, **overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **overrides: Any) -> RemBertConfig:
        """Read ``config.json`` from a checkpoint directory, or the JSON file itself."""
        from rembert_core.serialization import recover_interrupted_save

        path = Path(path)
        if path.is_dir():
            recover_interrupted_save(path)  # a checkpoint save killed after its commit point is finished first
            path = path / CONFIG_NAME
        return cls.from_json_file(path, **overrides)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` into ``directory`` (created if needed) atomically; return its path."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"cannot save config: {directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / CONFIG_NAME
        atomic_write_bytes(target, self.to_json_string().encode("utf-8"))
        return target

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RemBertConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def copy(self, **changes: Any) -> RemBertConfig:
        """A deep copy with ``changes`` applied (validated)."""
        return type(self).from_dict(json.loads(self.to_json_string()), **changes)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in a config")


def _require_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _require_num_labels(value: Any) -> int:
    n = _require_int(value, "num_labels", minimum=0)
    if n > MAX_NUM_LABELS:
        raise ConfigError(f"num_labels must be <= {MAX_NUM_LABELS}, got {n}")
    return n


def _require_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    try:
        result = float(value)  # a huge int overflows here
    except OverflowError:
        raise ConfigError(f"{name} must be a finite number, got an integer of {len(str(value))} digits") from None
    if not math.isfinite(result):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return result


def _int_keys(mapping: Any, name: str) -> dict[int, str]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{name} must be a mapping of label id to name, got {type(mapping).__name__}")
    out: dict[int, str] = {}
    for key, label in mapping.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} key {key!r} is not an integer label id") from None
        if index < 0:
            raise ConfigError(f"{name} key {key!r} is negative")
        out[index] = str(label)
    if sorted(out) != list(range(len(out))):
        raise ConfigError(f"{name} keys must be 0..{len(out) - 1}, got {sorted(out)}")
    return out
