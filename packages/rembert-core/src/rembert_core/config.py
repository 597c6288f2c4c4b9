"""``RemBertConfig``: the hyper-parameters of a RemBERT model, read from and written to ``config.json``.

The fields and defaults are those of the reference implementation
(``transformers.RemBertConfig``), which are the sizes of ``google/rembert``.
Everything else a transformers ``PretrainedConfig`` accepts is accepted too:
the output flags (``return_dict``, ``output_attentions``, ...), ``dtype``
(``torch_dtype``), ``pruned_heads``, the generation defaults old configs hold,
and any unknown key. Those values live in :attr:`RemBertConfig.extra` (see
there) and are read and assigned as attributes, as in transformers.

Written files follow transformers' ``use_diff`` rule, so a config saved here
and one saved by transformers hold the same keys and values; a round trip in
either direction loses nothing.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import difflib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

from rembert_core.errors import CheckpointError, ConfigError, ConfigFileError
from rembert_core.io.atomic import atomic_write_bytes, check_file
from rembert_core.io.dtypes import DTYPES

__all__ = ["CONFIG_NAME", "HIDDEN_ACTS", "PROBLEM_TYPES", "ConfigFileError", "RemBertConfig"]

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

#: transformers' ``PretrainedConfig`` defaults of the keys RemBERT's own fields share with it: with the
#: attributes below they are the defaults ``use_diff`` compares against (as transformers does).
_PRETRAINED_FIELD_DEFAULTS: dict[str, Any] = {
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "tie_word_embeddings": True,
    "is_decoder": False,
    "add_cross_attention": False,
    "architectures": None,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "problem_type": None,
}

#: ``from_pretrained`` arguments transformers accepts that say how to find the file, not what it holds.
_LOADING_ARGUMENTS = (
    "proxies",
    "resume_download",
    "use_auth_token",
    "trust_remote_code",
    "mirror",
    "_from_auto",
    "_from_pipeline",
    "_commit_hash",
)


# -- transformers' attributes --------------------------------------------------------------------

T = TypeVar("T")
Check = Callable[[Any, str, "RemBertConfig"], T]


class _Attribute(Generic[T]):
    """One attribute of transformers' ``PretrainedConfig`` that RemBERT's architecture does not define.

    Its value lives in ``config.extra[name]`` once set (by a keyword argument, a ``config.json`` key or an
    assignment), so framework code reading ``config.extra`` sees it; unset, it reads as ``default``.
    Assigned values are checked (and normalised) by ``check``.
    """

    def __init__(self, default: T, check: Check[T]) -> None:
        self.default = default
        self.check = check
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, config: None, owner: type | None = None) -> _Attribute[T]: ...
    @overload
    def __get__(self, config: RemBertConfig, owner: type | None = None) -> T: ...
    def __get__(self, config: RemBertConfig | None, owner: type | None = None) -> T | _Attribute[T]:
        if config is None:
            return self
        if self.name in config.extra:
            return config.extra[self.name]  # type: ignore[no-any-return]
        # (a tuple, not ``dict | list``: torch.compile traces this in every forward and cannot trace unions)
        if isinstance(self.default, (dict, list)):  # mutated in place (config.pruned_heads[0] = [1]): keep it
            return config.extra.setdefault(self.name, _copy.deepcopy(self.default))  # type: ignore[no-any-return]
        return self.default

    def __set__(self, config: RemBertConfig, value: Any) -> None:
        config.extra[self.name] = self.check(value, self.name, config)


def _bool(value: Any, name: str, config: RemBertConfig) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be a bool, got {value!r}")
    return value


def _optional(check: Check[T]) -> Check[T | None]:
    def optional(value: Any, name: str, config: RemBertConfig) -> T | None:
        return None if value is None else check(value, name, config)

    return optional


def _str(value: Any, name: str, config: RemBertConfig) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _path(value: Any, name: str, config: RemBertConfig) -> str:
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(f"{name} must be a string or a path, got {value!r}")
    return str(os.fspath(value))


def _int_at_least(minimum: int) -> Check[int]:
    def check(value: Any, name: str, config: RemBertConfig) -> int:
        return _require_int(value, name, minimum=minimum)

    return check


def _number(minimum: float | None = None, maximum: float | None = None, *, open_min: bool = False) -> Check[float]:
    def check(value: Any, name: str, config: RemBertConfig) -> float:
        number = _require_float(value, name)
        low = minimum is not None and (number <= minimum if open_min else number < minimum)
        if low or (maximum is not None and number > maximum):
            bounds = f"{'(' if open_min else '['}{minimum}, {maximum if maximum is not None else 'inf'}]"
            raise ConfigError(f"{name} must be in {bounds}, got {value!r}")
        return value  # type: ignore[no-any-return]  # as given: 1 stays 1, as transformers keeps it

    return check


def _int_list(value: Any, name: str, config: RemBertConfig) -> list[int]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{name} must be a list of token ids, got {value!r}")
    return [_require_int(v, f"{name}[{i}]", minimum=0) for i, v in enumerate(value)]


def _int_lists(value: Any, name: str, config: RemBertConfig) -> list[list[int]]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{name} must be a list of lists of token ids, got {value!r}")
    return [_int_list(v, f"{name}[{i}]", config) for i, v in enumerate(value)]


def _ids(value: Any, name: str, config: RemBertConfig) -> int | list[int]:
    return _int_list(value, name, config) if isinstance(value, list | tuple) else _token_id(value, name, config)


def _token_id(value: Any, name: str, config: RemBertConfig) -> int:
    return _require_int(value, name, minimum=0)


def _early_stopping(value: Any, name: str, config: RemBertConfig) -> bool | str:
    if value != "never" and not isinstance(value, bool):
        raise ConfigError(f"{name} must be True, False or 'never', got {value!r}")
    return value  # type: ignore[no-any-return]


def _decay_penalty(value: Any, name: str, config: RemBertConfig) -> list[int | float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"{name} must be a pair (start_index, decay_factor), got {value!r}")
    return [_require_int(value[0], f"{name}[0]", minimum=0), _require_float(value[1], f"{name}[1]")]


def _str_keyed(value: Any, name: str, config: RemBertConfig) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{name} must be a mapping with string keys, got {value!r}")
    return dict(value)


def _dtype(value: Any, name: str, config: RemBertConfig) -> str:
    """A dtype name (``"float16"``) from a name, ``"torch.float16"``, a torch/NumPy/TF dtype object."""
    if isinstance(value, str):
        text = value
    elif isinstance(getattr(value, "name", None), str):  # NumPy and TensorFlow dtypes
        text = value.name
    else:
        text = str(value)  # torch.float16 prints as "torch.float16"
    text = text.removeprefix("torch.")
    if text not in _DTYPE_NAMES:
        raise ConfigError(f"{name} must name a dtype ({', '.join(_DTYPE_NAMES)}), got {value!r}")
    return text


_DTYPE_NAMES = tuple(d.name for d in DTYPES)


def _pruned_heads(value: Any, name: str, config: RemBertConfig) -> dict[int, list[int]]:
    """``{layer: [head, ...]}`` with int keys (JSON writes them as strings), every index in range."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping of layer index to a list of head indices, got {value!r}")
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    out: dict[int, list[int]] = {}
    for key, pruned in value.items():
        try:
            layer = int(key)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{name} key {key!r} is not a layer index") from None
        if not 0 <= layer < layers:
            raise ConfigError(f"{name} names layer {layer}, but num_hidden_layers is {layers}")
        indices = _int_list(pruned, f"{name}[{layer}]", config)
        if any(h >= heads for h in indices):
            raise ConfigError(f"{name}[{layer}] names head {max(indices)}, but num_attention_heads is {heads}")
        out[layer] = indices
    return out


# -- the config ----------------------------------------------------------------------------------


@dataclass(eq=False, init=False)
class RemBertConfig:
    """Configuration of a RemBERT model (defaults: the full-size ``google/rembert``).

    Every argument name and default matches ``transformers.RemBertConfig``, and so do the
    arguments of transformers' ``PretrainedConfig`` (``return_dict``, ``output_hidden_states``,
    ``dtype``, ``pruned_heads``, generation defaults, ...). Arguments the config does not know are
    kept (in ``config.extra``) and saved, as transformers keeps them. ``num_labels`` may be passed
    instead of ``id2label`` (labels are then named ``LABEL_0`` …); setting ``config.num_labels``
    later regenerates the labels. Invalid values raise :class:`~rembert_core.ConfigError` naming
    the field when the config is built.

    Example:
        >>> from rembert_core import RemBertConfig
        >>> config = RemBertConfig(hidden_size=48, num_attention_heads=6, num_labels=3, return_dict=False)
        >>> config.id2label[2], config.return_dict, config.output_hidden_states
        ('LABEL_2', False, False)
    """

    model_type: ClassVar[str] = MODEL_TYPE

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
    #: Every ``config.json`` key that is not one of the fields above: the transformers attributes below
    #: once set (``dtype``, ``output_attentions``, ...) and unknown keys (``auto_map``, ...), written back.
    extra: dict[str, Any] = field(default_factory=dict)

    # -- transformers' PretrainedConfig attributes, held in ``extra`` once set ----------------------
    # Model outputs (the models use them when a call does not pass the flag).
    return_dict = _Attribute(True, _bool)  # forward returns output objects; False: plain tuples
    output_attentions = _Attribute(False, _bool)  # forward returns the attention probabilities
    output_hidden_states = _Attribute(False, _bool)  # forward returns every layer's hidden states
    torchscript = _Attribute(False, _bool)  # transformers' TorchScript mode: forces tuples (use_return_dict)
    dtype = _Attribute[str | None](None, _optional(_dtype))  # dtype of the saved weights (a name, "float32")
    pruned_heads = _Attribute[dict[int, list[int]]]({}, _pruned_heads)  # {layer: [heads]} removed by prune_heads
    chunk_size_feed_forward = _Attribute(0, _int_at_least(0))  # feed-forward in chunks of this many positions
    # Model kind and task.
    is_encoder_decoder = _Attribute(False, _bool)  # True only for encoder-decoder wrappers
    cross_attention_hidden_size = _Attribute[int | None](None, _optional(_int_at_least(1)))  # encoder width
    tie_encoder_decoder = _Attribute(False, _bool)  # encoder-decoder wrappers tie the two stacks
    finetuning_task = _Attribute[str | None](None, _optional(_str))  # name of the fine-tuning task
    task_specific_params = _Attribute[dict[str, Any] | None](None, _optional(_str_keyed))  # per-task settings
    # Tokenizer.
    tokenizer_class = _Attribute[str | None](None, _optional(_str))  # tokenizer class name (informative)
    prefix = _Attribute[str | None](None, _optional(_str))  # text prepended to every input
    sep_token_id = _Attribute[int | None](None, _optional(_token_id))  # [SEP]
    decoder_start_token_id = _Attribute[int | None](None, _optional(_token_id))  # first decoder token
    # Generation defaults of old configs (transformers still loads them; generation_config.json supersedes).
    max_length = _Attribute[int | None](20, _optional(_int_at_least(0)))  # total length of generated sequences
    min_length = _Attribute[int | None](0, _optional(_int_at_least(0)))  # shortest generated sequence
    do_sample = _Attribute[bool | None](False, _optional(_bool))  # sample instead of greedy / beam search
    early_stopping = _Attribute[bool | str | None](False, _optional(_early_stopping))  # beam search stop rule
    num_beams = _Attribute[int | None](1, _optional(_int_at_least(1)))  # beams of beam search
    temperature = _Attribute[float | None](1.0, _optional(_number(0.0)))  # softmax temperature of sampling
    top_k = _Attribute[int | None](50, _optional(_int_at_least(0)))  # sample among the k likeliest tokens
    top_p = _Attribute[float | None](1.0, _optional(_number(0.0, 1.0)))  # nucleus sampling mass
    typical_p = _Attribute[float | None](1.0, _optional(_number(0.0, 1.0)))  # typical sampling mass
    repetition_penalty = _Attribute[float | None](1.0, _optional(_number(0.0, open_min=True)))  # 1.0: none
    length_penalty = _Attribute[float | None](1.0, _optional(_number()))  # beam score exponent on length
    no_repeat_ngram_size = _Attribute[int | None](0, _optional(_int_at_least(0)))  # n-grams never repeated
    encoder_no_repeat_ngram_size = _Attribute[int | None](0, _optional(_int_at_least(0)))  # ... of the input
    bad_words_ids = _Attribute[list[list[int]] | None](None, _optional(_int_lists))  # sequences never produced
    num_return_sequences = _Attribute[int | None](1, _optional(_int_at_least(1)))  # sequences per input
    output_scores = _Attribute[bool | None](False, _optional(_bool))  # generate returns the scores
    return_dict_in_generate = _Attribute[bool | None](False, _optional(_bool))  # generate returns an object
    forced_bos_token_id = _Attribute[int | list[int] | None](None, _optional(_ids))  # forced first token
    forced_eos_token_id = _Attribute[int | list[int] | None](None, _optional(_ids))  # forced last token(s)
    remove_invalid_values = _Attribute[bool | None](False, _optional(_bool))  # replace nan/inf scores
    exponential_decay_length_penalty = _Attribute[list[int | float] | None](None, _optional(_decay_penalty))
    suppress_tokens = _Attribute[list[int] | None](None, _optional(_int_list))  # tokens never produced
    begin_suppress_tokens = _Attribute[list[int] | None](None, _optional(_int_list))  # ... as first token
    num_beam_groups = _Attribute[int | None](1, _optional(_int_at_least(1)))  # diverse beam search groups
    diversity_penalty = _Attribute[float | None](0.0, _optional(_number()))  # diverse beam search penalty
    # Bookkeeping transformers writes.
    tf_legacy_loss = _Attribute(False, _bool)  # transformers' old TF loss reduction (unused here)
    use_bfloat16 = _Attribute(False, _bool)  # transformers' old TF flag (unused here)
    transformers_version = _Attribute[str | None](None, _optional(_str))  # version that wrote the file
    _name_or_path = _Attribute("", _path)  # where the model was loaded from (never written by use_diff)

    def __init__(
        self,
        vocab_size: int = 250300,
        hidden_size: int = 1152,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 18,
        input_embedding_size: int = 256,
        output_embedding_size: int = 1664,
        intermediate_size: int = 4608,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        classifier_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        use_cache: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 312,
        eos_token_id: int | None = 313,
        tie_word_embeddings: bool = False,
        is_decoder: bool = False,
        add_cross_attention: bool = False,
        num_labels: int = 2,
        id2label: Mapping[int, str] | None = None,
        label2id: Mapping[str, int] | None = None,
        problem_type: str | None = None,
        architectures: list[str] | None = None,
        extra: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Build and validate a config.

        ``kwargs`` are attributes of transformers' ``PretrainedConfig`` (``return_dict=False``,
        ``torch_dtype="bfloat16"``, ``attn_implementation="eager"``, ``max_length=64``, ...) or unknown
        keys, kept in ``config.extra`` and saved as transformers keeps them (a name close to a known one
        gets a warning naming it).
        """
        given = locals()
        self.__dict__["extra"] = {}
        self.__dict__["_attn_implementation_value"] = None
        for f in _FIELDS:
            if f.name != "extra":
                self.__dict__[f.name] = given[f.name]
        self._init_labels()
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigError(f"extra must be a dict, got {type(extra).__name__}")
        stored = dict(extra or {})
        for given_values in (stored, kwargs):  # transformers' older name of dtype: `dtype` wins when both are set
            torch_dtype = given_values.pop("torch_dtype", None)
            if torch_dtype is not None and given_values.get("dtype") is None:
                given_values["dtype"] = torch_dtype
        kwargs.pop("_commit_hash", None)  # where transformers' hub cache found the file: not part of the config
        for key, value in stored.items():
            self._set_extra(key, value, warn=False)
        for key, value in kwargs.items():
            self._set_extra(key, value, warn=True)
        self.validate()

    # -- attributes --------------------------------------------------------------------------------

    def _init_labels(self) -> None:
        if self.id2label is not None:
            id2label = _int_keys(self.id2label, "id2label")
            self.__dict__.update(id2label=id2label, num_labels=len(id2label))
        else:
            n = _require_num_labels(self.num_labels)
            self.__dict__["id2label"] = {i: f"LABEL_{i}" for i in range(n)}
        if self.label2id is None:
            self.__dict__["label2id"] = {name: i for i, name in self.__dict__["id2label"].items()}
        else:
            if not isinstance(self.label2id, Mapping):
                raise ConfigError(f"label2id must be a mapping of label name to id, got {self.label2id!r}")
            self.__dict__["label2id"] = {
                str(k): _require_int(v, f"label2id[{k!r}]", minimum=0) for k, v in self.label2id.items()
            }

    def _set_extra(self, key: str, value: Any, *, warn: bool) -> None:
        """A keyword argument or ``extra`` key that is not a field: an attribute of transformers', or unknown."""
        if not isinstance(key, str):
            raise ConfigError(f"config keys must be strings, got {key!r}")
        if key == "attn_implementation":  # (transformers keeps it as _attn_implementation)
            key = "_attn_implementation"
        attribute = getattr(type(self), key, None)
        if key in _FIELD_NAMES:
            pass  # (an `extra` dict holding a field's name: the field wins, as it always did)
        elif isinstance(attribute, _Attribute) or (isinstance(attribute, property) and attribute.fset is not None):
            setattr(self, key, value)  # dtype, torch_dtype, name_or_path, ...
        else:
            if warn:
                _warn_if_misspelt(key, stacklevel=4)
            self.extra[key] = value

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "num_labels":  # regenerates the labels when the count changes (transformers semantics)
            n = _require_num_labels(value)
            if self.id2label is None or len(self.id2label) != n:
                self.__dict__.update(
                    id2label={i: f"LABEL_{i}" for i in range(n)}, label2id={f"LABEL_{i}": i for i in range(n)}
                )
            self.__dict__["num_labels"] = n
        elif name == "id2label" and value is not None:
            id2label = _int_keys(value, "id2label")
            self.__dict__.update(
                id2label=id2label, num_labels=len(id2label), label2id={v: k for k, v in id2label.items()}
            )
        elif name in _FIELD_NAMES or name.startswith("_") or hasattr(type(self), name):
            object.__setattr__(self, name, value)  # a field, a transformers attribute (checked), a property
        else:  # an attribute of the user's own: kept and saved, as transformers does
            _warn_if_misspelt(name, stacklevel=3)
            self.extra[name] = value

    def __getattr__(self, name: str) -> Any:
        """An unknown key of ``config.json`` or one the user assigned, as an attribute (as in transformers)."""
        extra = self.__dict__.get("extra")
        if not name.startswith("__") and extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def _attn_implementation(self) -> str | None:
        """The attention kernel asked for (``attn_implementation=``); not written to ``config.json``."""
        return self.__dict__.get("_attn_implementation_value")

    @_attn_implementation.setter
    def _attn_implementation(self, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"attn_implementation must be a string or None, got {value!r}")
        self.__dict__["_attn_implementation_value"] = value

    @property
    def torch_dtype(self) -> str | None:
        """transformers' older name of :attr:`dtype`."""
        return self.dtype

    @torch_dtype.setter
    def torch_dtype(self, value: Any) -> None:
        self.dtype = value

    @property
    def name_or_path(self) -> str:
        """Where the model was loaded from, as transformers records it."""
        return self._name_or_path

    @name_or_path.setter
    def name_or_path(self, value: Any) -> None:
        self._name_or_path = value

    @property
    def use_return_dict(self) -> bool:
        """Whether models return output objects: ``return_dict``, unless ``torchscript`` forces tuples."""
        return bool(self.return_dict) and not self.torchscript

    @property
    def head_dim(self) -> int:
        """Width of one attention head (``hidden_size // num_attention_heads``)."""
        return self.hidden_size // self.num_attention_heads

    def update(self, values: Mapping[str, Any]) -> None:
        """Set each attribute of ``values`` (as transformers' ``update``)."""
        for key, value in values.items():
            setattr(self, key, value)

    # -- validation --------------------------------------------------------------------------------

    def validate(self) -> None:
        """Check every field; raise :class:`ConfigError` naming the first bad field.

        transformers' attributes held in ``config.extra`` are checked (and normalised) too.
        """
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
        for name, attribute in _ATTRIBUTES.items():
            if name in self.extra:
                self.extra[name] = attribute.check(self.extra[name], name, self)

    # -- dict / JSON -------------------------------------------------------------------------------

    @overload
    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, return_unused_kwargs: Literal[False] = False, **overrides: Any
    ) -> RemBertConfig: ...
    @overload
    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, return_unused_kwargs: Literal[True], **overrides: Any
    ) -> tuple[RemBertConfig, dict[str, Any]]: ...
    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, return_unused_kwargs: bool = False, **overrides: Any
    ) -> RemBertConfig | tuple[RemBertConfig, dict[str, Any]]:
        """Build a config from a ``config.json`` dictionary; unknown keys go to ``extra``.

        ``overrides`` replace values of the dictionary (as keyword arguments to ``transformers``'
        ``from_pretrained`` do). With ``return_unused_kwargs=True`` the result is ``(config, unused)``,
        ``unused`` holding the overrides that are not config attributes (not applied), as transformers
        returns them (``dtype`` is applied and also returned, for the model loader, as there).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        data = {**data}
        data.pop("attn_implementation", None)  # only the keyword argument counts (transformers ignores the key)
        unused: dict[str, Any] = {}
        if "torch_dtype" in overrides:
            torch_dtype = overrides.pop("torch_dtype")
            if torch_dtype is not None:
                overrides.setdefault("dtype", torch_dtype)
        if "dtype" in overrides:
            data.pop("torch_dtype", None)
        if return_unused_kwargs:
            extra = data.get("extra")
            present = set(data) | (set(extra) if isinstance(extra, Mapping) else set())
            unused = {k: v for k, v in overrides.items() if not cls._is_attribute(k) and k not in present}
            overrides = {k: v for k, v in overrides.items() if k not in unused}
            if "dtype" in overrides:
                unused["dtype"] = overrides["dtype"]
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
        kwargs = {k: v for k, v in merged.items() if k in _FIELD_NAMES and k != "extra"}
        extra = dict(merged.get("extra") or {}) if isinstance(merged.get("extra"), Mapping) else {}
        extra.update({k: v for k, v in merged.items() if k not in _FIELD_NAMES})
        if "id2label" in kwargs and kwargs["id2label"] is not None and "num_labels" in kwargs:
            n = kwargs.pop("num_labels")
            if isinstance(kwargs["id2label"], Mapping) and n != len(kwargs["id2label"]):
                raise ConfigError(f"num_labels ({n}) does not match the {len(kwargs['id2label'])} entries of id2label")
        config = cls(**kwargs, extra=extra)
        return (config, unused) if return_unused_kwargs else config

    @classmethod
    def _is_attribute(cls, name: str) -> bool:
        return name in _FIELD_NAMES or name in ("attn_implementation", "torch_dtype") or hasattr(cls, name)

    def to_dict(self) -> dict[str, Any]:
        """Every attribute, as ``config.json`` holds it (``model_type`` included; ``num_labels`` is implied by
        ``id2label``; transformers' attributes that were never set appear with their defaults)."""
        out: dict[str, Any] = {name: _copy.deepcopy(a.default) for name, a in _ATTRIBUTES.items()}
        out.update(self.extra)
        for f in _FIELDS:
            if f.name not in ("extra", "num_labels"):
                out[f.name] = getattr(self, f.name)
        out["id2label"] = {str(k): v for k, v in (self.id2label or {}).items()}
        out["pruned_heads"] = {str(k): list(v) for k, v in out["pruned_heads"].items()}
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_diff_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` less transformers' attributes left at their defaults (transformers' ``use_diff``).

        A key is dropped when it is one of ``PretrainedConfig``'s and equals both its default there and
        this class's default; RemBERT's own sizes are always kept, as transformers keeps them.
        """
        class_defaults = _class_defaults(type(self))
        return {
            k: v
            for k, v in self.to_dict().items()
            if k != "_name_or_path"
            and not (k in _PRETRAINED_DEFAULTS and v == _PRETRAINED_DEFAULTS[k] and v == class_defaults.get(k, v))
        }

    def to_json_string(self, use_diff: bool = True) -> str:
        """The ``config.json`` text (sorted keys, two-space indent, trailing newline).

        ``use_diff=True`` (the default, as in transformers) writes :meth:`to_diff_dict`, which is what
        :meth:`save_pretrained` writes; ``use_diff=False`` writes :meth:`to_dict`.
        """
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike[str], use_diff: bool = True) -> Path:
        """Write :meth:`to_json_string` to ``json_file_path`` (atomically); return its path."""
        path = Path(json_file_path)
        atomic_write_bytes(path, self.to_json_string(use_diff=use_diff).encode("utf-8"))
        return path

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str], **overrides: Any) -> RemBertConfig:
        """Read a ``config.json`` file; errors name the file."""
        path = Path(path)
        data = _read_json(path)
        try:
            return cls.from_dict(data, return_unused_kwargs=False, **overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @overload
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        return_unused_kwargs: Literal[False] = False,
        **kwargs: Any,
    ) -> RemBertConfig: ...
    @overload
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        return_unused_kwargs: Literal[True],
        **kwargs: Any,
    ) -> tuple[RemBertConfig, dict[str, Any]]: ...
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        subfolder: str = "",
        return_unused_kwargs: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        revision: str | None = None,
        **overrides: Any,
    ) -> RemBertConfig | tuple[RemBertConfig, dict[str, Any]]:
        """Read ``config.json`` from a checkpoint directory, the JSON file itself, or a Hub repository.

        Args:
            pretrained_model_name_or_path: a directory, a ``config.json`` path, or a Hub id
                (``"google/rembert"``: only ``config.json`` is fetched, through the Hub cache; needs
                ``huggingface_hub``).
            subfolder: the folder of the directory or repository that holds ``config.json``.
            return_unused_kwargs: return ``(config, unused)``; ``unused`` holds the ``overrides`` that
                are not config attributes, which are then not applied (as in transformers). Without it
                they are kept in ``config.extra``.
            cache_dir, force_download, local_files_only, token, revision: Hub download settings.
            overrides: values replacing those of the file (``num_labels=5``, ``output_hidden_states=True``).

        Raises:
            ConfigFileError: (an ``OSError``) no config at that path or in that repository.
            ConfigError: the file is not valid JSON or holds an invalid value (named with the file).
        """
        for name in _LOADING_ARGUMENTS:  # transformers' download arguments: nothing to do with the config
            overrides.pop(name, None)
        path = _config_path(
            pretrained_model_name_or_path,
            subfolder,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            revision=revision,
        )
        directory = Path(pretrained_model_name_or_path)
        data = _read_json(path, root=path.parent if directory.is_dir() else None)
        try:
            if return_unused_kwargs:
                return cls.from_dict(data, return_unused_kwargs=True, **overrides)
            return cls.from_dict(data, return_unused_kwargs=False, **overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` into ``directory`` (created if needed) atomically; return its path.

        The file holds :meth:`to_diff_dict`, as transformers' ``save_pretrained`` writes it.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"cannot save config: {directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        return self.to_json_file(directory / CONFIG_NAME)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RemBertConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def copy(self, **changes: Any) -> RemBertConfig:
        """A deep copy with ``changes`` applied (validated)."""
        state = {f.name: _copy.deepcopy(getattr(self, f.name)) for f in _FIELDS if f.name != "num_labels"}
        config = type(self).from_dict(state, return_unused_kwargs=False, **changes)
        if "attn_implementation" not in changes:
            config._attn_implementation = self._attn_implementation
        return config


_FIELDS = dataclasses.fields(RemBertConfig)
_FIELD_NAMES = frozenset(f.name for f in _FIELDS)
_ATTRIBUTES: dict[str, _Attribute[Any]] = {
    name: value for name, value in vars(RemBertConfig).items() if isinstance(value, _Attribute)
}
#: Everything transformers' ``PretrainedConfig()`` holds, in ``to_dict`` form.
_PRETRAINED_DEFAULTS: dict[str, Any] = {
    **{name: a.default for name, a in _ATTRIBUTES.items()},
    **_PRETRAINED_FIELD_DEFAULTS,
}
_CLASS_DEFAULTS: dict[type, dict[str, Any]] = {}


def _class_defaults(cls: type[RemBertConfig]) -> dict[str, Any]:
    if cls not in _CLASS_DEFAULTS:
        _CLASS_DEFAULTS[cls] = cls().to_dict()
    return _CLASS_DEFAULTS[cls]


def _warn_if_misspelt(name: str, *, stacklevel: int) -> None:
    known = sorted(_FIELD_NAMES | set(_ATTRIBUTES) | {"torch_dtype", "attn_implementation", "name_or_path"})
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
    if close:
        warnings.warn(
            f"RemBertConfig got {name!r}, which is not one of its attributes (kept in `extra` and saved); "
            f"did you mean {close[0]!r}?",
            UserWarning,
            stacklevel=stacklevel,
        )


# -- files -----------------------------------------------------------------------------------------


def _config_path(
    name: str | os.PathLike[str],
    subfolder: str,
    *,
    cache_dir: str | os.PathLike[str] | None,
    force_download: bool,
    local_files_only: bool,
    token: str | bool | None,
    revision: str | None,
) -> Path:
    """The local ``config.json`` that ``name`` (a directory, a file or a Hub id) and ``subfolder`` name."""
    from rembert_core.io.atomic import recover_interrupted_save

    path = Path(name)
    if path.is_dir():
        recover_interrupted_save(path)  # a checkpoint save killed after its commit point is finished first
        folder = path / subfolder if subfolder else path
        if folder != path and folder.is_dir():
            recover_interrupted_save(folder)
        return folder / CONFIG_NAME
    if path.exists() or not _looks_like_hub_id(str(name)):
        return path
    return _download_config(
        str(name),
        subfolder,
        cache_dir=cache_dir,
        force_download=force_download,
        local_files_only=local_files_only,
        token=token,
        revision=revision,
    )


def _looks_like_hub_id(name: str) -> bool:
    from rembert_core.io.hub import _HUB_ID

    return not (os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1) and bool(_HUB_ID.match(name))


def _download_config(
    repo_id: str,
    subfolder: str,
    *,
    cache_dir: str | os.PathLike[str] | None,
    force_download: bool,
    local_files_only: bool,
    token: str | bool | None,
    revision: str | None,
) -> Path:
    """``config.json`` of a Hub repository, through the Hub cache (only that file is fetched)."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise ConfigFileError(
            f"config file not found: {repo_id} is not a local path, and reading it from the Hugging Face Hub "
            "needs huggingface_hub: pip install rembert-core[hub]"
        ) from None
    where = f"{repo_id}/{subfolder}" if subfolder else repo_id
    try:
        return Path(
            hf_hub_download(
                repo_id=repo_id,
                filename=CONFIG_NAME,
                subfolder=subfolder or None,
                revision=revision,
                cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        )
    except LocalEntryNotFoundError:
        if local_files_only:
            reason = "local_files_only=True"
        elif os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            reason = "HF_HUB_OFFLINE is set"
        else:
            reason = "the Hub could not be reached"
        raise ConfigFileError(
            f"config file not found: {CONFIG_NAME} of {where!r} is not in the local Hugging Face cache and was "
            f"not downloaded ({reason}); pass a local path, or fetch it first with `huggingface-cli download "
            f"{repo_id}`"
        ) from None
    except RevisionNotFoundError:
        raise ConfigFileError(f"config file not found: {repo_id!r} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ConfigFileError(
            f"config file not found: no repository {repo_id!r} on the Hugging Face Hub (or it is private: pass token=)"
        ) from None
    except EntryNotFoundError:
        raise ConfigFileError(f"config file not found: {where!r} has no {CONFIG_NAME}") from None
    except Exception as exc:  # network errors, gated repositories, ...
        raise ConfigFileError(f"cannot fetch {CONFIG_NAME} of {where!r}: {type(exc).__name__}: {exc}") from None


def _read_json(path: Path, root: Path | None = None) -> Any:
    """The parsed JSON of ``path``: a missing or unreadable file is a :class:`ConfigFileError`.

    The file must be a regular file (a FIFO would block, a device read forever); with ``root`` (the
    checkpoint directory it was found in) a symbolic link must stay inside it, as for every file a
    checkpoint directory holds (:func:`rembert_core.io.atomic.check_file`).
    """
    try:
        check_file(path, root=root)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"config file not found: {path}") from None
    except CheckpointError as exc:  # not a regular file, or a link leaving its directory
        raise ConfigFileError(f"cannot read config file {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


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
