"""``GenerationConfig``: the defaults of ``generate``, read from and written to ``generation_config.json``.

The same attribute names, defaults and file as transformers' ``GenerationConfig``, so a
``generation_config.json`` written by either library is read by the other. Every attribute
transformers knows is accepted and written back; the ones our ``generate`` does not implement
(``GENERATE_UNSUPPORTED``) make ``generate`` raise a clear error when they are set, instead of
being silently ignored. Unknown keys are kept as attributes and written back.

Example:
    >>> from rembert_core.generation import GenerationConfig
    >>> config = GenerationConfig(num_beams=4, max_new_tokens=8)
    >>> config.num_beams, config.length_penalty
    (4, 1.0)
    >>> unused = config.update(top_k=10, colour="red")
    >>> config.top_k, unused
    (10, {'colour': 'red'})
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from rembert_core.errors import ConfigError, ConfigFileError, InputError
from rembert_core.io.atomic import atomic_write_bytes, check_file

__all__ = [
    "GENERATE_UNSUPPORTED",
    "GENERATION_CONFIG_NAME",
    "GENERATION_DEFAULTS",
    "MODEL_KWARGS",
    "GenerationConfig",
    "split_generate_kwargs",
]

GENERATION_CONFIG_NAME = "generation_config.json"

#: transformers 4.57's ``GenerationConfig()`` attributes and defaults (what ``to_diff_dict`` compares with).
GENERATION_DEFAULTS: dict[str, Any] = {
    # length
    "max_length": 20,
    "max_new_tokens": None,
    "min_length": 0,
    "min_new_tokens": None,
    "early_stopping": False,
    "max_time": None,
    "stop_strings": None,
    # strategy
    "do_sample": False,
    "num_beams": 1,
    "num_beam_groups": 1,
    "penalty_alpha": None,
    "dola_layers": None,
    # cache
    "use_cache": True,
    "cache_implementation": None,
    "cache_config": None,
    "return_legacy_cache": True,
    "prefill_chunk_size": None,
    # logits manipulation
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "diversity_penalty": 0.0,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "force_words_ids": None,
    "renormalize_logits": False,
    "constraints": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "remove_invalid_values": False,
    "exponential_decay_length_penalty": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "token_healing": False,
    "guidance_scale": None,
    "low_memory": None,
    "watermarking_config": None,
    # outputs
    "num_return_sequences": 1,
    "output_attentions": False,
    "output_hidden_states": False,
    "output_scores": False,
    "output_logits": None,
    "return_dict_in_generate": False,
    # special tokens
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "encoder_no_repeat_ngram_size": 0,
    "decoder_start_token_id": None,
    "is_assistant": False,
    # assisted generation
    "num_assistant_tokens": 20,
    "num_assistant_tokens_schedule": "constant",
    "assistant_confidence_threshold": 0.4,
    "prompt_lookup_num_tokens": None,
    "max_matching_ngram_size": None,
    "assistant_early_exit": None,
    "assistant_lookbehind": 10,
    "target_lookbehind": 10,
    "compile_config": None,
    "disable_compile": False,
}

#: Attributes our ``generate`` does not implement, with the value that means "off". ``generate`` raises an
#: error naming the attribute when one holds anything else (transformers features for other architectures or
#: decoding strategies: contrastive search, diverse/constrained beams, assisted decoding, watermarking, ...).
GENERATE_UNSUPPORTED: dict[str, Any] = {
    "stop_strings": None,
    "num_beam_groups": 1,
    "penalty_alpha": None,
    "dola_layers": None,
    "cache_implementation": None,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "diversity_penalty": 0.0,
    "encoder_repetition_penalty": 1.0,
    "force_words_ids": None,
    "constraints": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "exponential_decay_length_penalty": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "token_healing": False,
    "guidance_scale": None,
    "low_memory": None,
    "watermarking_config": None,
    "encoder_no_repeat_ngram_size": 0,
    "prompt_lookup_num_tokens": None,
    "assistant_early_exit": None,
}

#: Model-config attributes ``from_model_config`` copies (transformers copies every key the two share).
_FROM_MODEL_CONFIG = tuple(GENERATION_DEFAULTS)


def _check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"GenerationConfig.{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(name: str, value: Any, *, low: float, high: float | None = None, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"GenerationConfig.{name} must be a number, got {value!r}")
    if (value <= low if open_low else value < low) or (high is not None and value > high):
        bound = f"{'>' if open_low else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"GenerationConfig.{name} must be {bound}, got {value!r}")


def _token_ids(name: str, value: Any) -> list[int] | None:
    """``eos_token_id``-like values as a list (one id or several), validated."""
    if value is None:
        return None
    ids = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(ids, list | tuple) or any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise ConfigError(f"GenerationConfig.{name} must be a token id or a list of token ids, got {value!r}")
    return list(ids)


class GenerationConfig:
    """The settings of one ``generate`` call; transformers' attribute names, defaults and JSON file.

    ``GenerationConfig(**kwargs)`` sets any attribute (unknown names are kept as attributes and written
    back, as transformers does). :meth:`validate` checks values and combinations; ``generate`` calls it.
    """

    # The attributes generate reads (every GENERATION_DEFAULTS name is set by __init__).
    max_length: int
    max_new_tokens: int | None
    min_length: int
    min_new_tokens: int | None
    early_stopping: bool | str
    max_time: float | None
    do_sample: bool
    num_beams: int
    use_cache: bool
    temperature: float | None
    top_k: int | None
    top_p: float | None
    repetition_penalty: float
    length_penalty: float
    no_repeat_ngram_size: int
    bad_words_ids: list[list[int]] | None
    num_return_sequences: int
    output_attentions: bool
    output_hidden_states: bool
    output_scores: bool
    output_logits: bool | None
    return_dict_in_generate: bool
    pad_token_id: int | None
    bos_token_id: int | None
    eos_token_id: int | list[int] | None
    decoder_start_token_id: int | None
    #: Set when the config was derived from a model config (transformers writes it to the JSON file).
    _from_model_config: bool
    _creation_hash: int | None = None

    def __init__(self, **kwargs: Any) -> None:
        for name, default in GENERATION_DEFAULTS.items():
            setattr(self, name, copy.deepcopy(default))
        self._from_model_config = bool(kwargs.pop("_from_model_config", False))
        self.transformers_version: str | None = kwargs.pop("transformers_version", None)
        for name, value in kwargs.items():
            setattr(self, name, value)
        self.validate()

    # -- building ----------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> GenerationConfig:
        """A config from ``data`` (a ``generation_config.json`` dict), ``kwargs`` applied on top."""
        return cls(**{**data, **kwargs})

    @classmethod
    def from_model_config(cls, model_config: Any) -> GenerationConfig:
        """The generation defaults a model config holds (special tokens and the legacy generation attributes).

        As transformers: every attribute the model config shares with ``GenerationConfig`` and that is not
        ``None`` is copied; the result is marked ``_from_model_config``.
        """
        data = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
        values = {k: data[k] for k in _FROM_MODEL_CONFIG if k in data and data[k] is not None}
        config = cls(**values, _from_model_config=True)
        if not config.return_dict_in_generate and (
            config.output_scores or config.output_attentions or config.output_hidden_states or config.output_logits
        ):
            config.return_dict_in_generate = True
        config._creation_hash = hash(config)  # generate re-derives it from the model config while unchanged
        return config

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name: str | os.PathLike[str], config_file_name: str | None = None, **kwargs: Any
    ) -> GenerationConfig:
        """Read ``generation_config.json`` from a directory (or the file itself); ``kwargs`` override it."""
        path = Path(pretrained_model_name)
        root: Path | None = None
        if path.is_dir():
            root = path
            path = path / (config_file_name or GENERATION_CONFIG_NAME)
        if not path.is_file():
            raise ConfigFileError(f"{path}: no {GENERATION_CONFIG_NAME} there")
        check_file(path, root=root)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigFileError(f"{path}: cannot read generation config ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigFileError(f"{path}: a generation config must be a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data, **kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    # -- writing -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every attribute (defaults included), as the JSON file would hold them with ``use_diff=False``."""
        out = {k: copy.deepcopy(v) for k, v in vars(self).items() if not k.startswith("_") or k == "_from_model_config"}
        if not out.get("_from_model_config"):
            out.pop("_from_model_config", None)
        if out.get("transformers_version") is None:
            out.pop("transformers_version", None)
        return dict(sorted(out.items()))

    def to_diff_dict(self) -> dict[str, Any]:
        """The attributes that differ from ``GenerationConfig()``'s (what ``save_pretrained`` writes)."""
        return {k: v for k, v in self.to_dict().items() if k not in GENERATION_DEFAULTS or GENERATION_DEFAULTS[k] != v}

    def to_json_string(self, use_diff: bool = True) -> str:
        """The ``generation_config.json`` text (sorted keys, two-space indent, trailing newline)."""
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike[str], use_diff: bool = True) -> Path:
        """Write :meth:`to_json_string` to ``json_file_path`` atomically (mode as a plain ``open`` gives)."""
        path = Path(json_file_path)
        atomic_write_bytes(path, self.to_json_string(use_diff=use_diff).encode("utf-8"))
        return path

    def save_pretrained(self, save_directory: str | os.PathLike[str], config_file_name: str | None = None) -> Path:
        """Write ``generation_config.json`` into ``save_directory`` (created if needed); return its path."""
        directory = Path(save_directory)
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"cannot save generation config: {directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        return self.to_json_file(directory / (config_file_name or GENERATION_CONFIG_NAME))

    # -- using -------------------------------------------------------------------------------------------

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set the attributes ``kwargs`` names that the config has; return the others, unused (transformers)."""
        unused = {k: v for k, v in kwargs.items() if not hasattr(self, k) or k.startswith("_")}
        saved = {k: getattr(self, k) for k in kwargs if k not in unused}
        for name, value in kwargs.items():
            if name not in unused:
                setattr(self, name, value)
        try:
            self.validate()
        except ConfigError:
            for name, value in saved.items():
                setattr(self, name, value)
            raise
        return unused

    def copy(self) -> GenerationConfig:
        """A deep copy."""
        return copy.deepcopy(self)

    @property
    def eos_token_ids(self) -> list[int] | None:
        """``eos_token_id`` as a list (it may be one id or several), or ``None``."""
        return _token_ids("eos_token_id", self.eos_token_id)

    def validate(self) -> None:
        """Check every value we use and its combinations; errors name the attribute (``ConfigError``)."""
        for name in ("max_length", "min_length", "no_repeat_ngram_size"):
            _check_int(name, getattr(self, name), 0)
        for name in ("num_beams", "num_return_sequences"):
            _check_int(name, getattr(self, name), 1)
        _check_int("max_new_tokens", self.max_new_tokens, 0, optional=True)
        _check_int("min_new_tokens", self.min_new_tokens, 0, optional=True)
        _check_int("top_k", self.top_k, 0, optional=True)
        if self.temperature is not None:
            _check_float("temperature", self.temperature, low=0.0, open_low=self.do_sample)
        if self.top_p is not None:
            _check_float("top_p", self.top_p, low=0.0, high=1.0)
        _check_float("repetition_penalty", self.repetition_penalty, low=0.0, open_low=True)
        _check_float("length_penalty", self.length_penalty, low=float("-inf"))
        if self.max_time is not None:
            _check_float("max_time", self.max_time, low=0.0, open_low=True)
        if self.early_stopping not in (True, False, "never"):
            raise ConfigError(
                f"GenerationConfig.early_stopping must be True, False or 'never', got {self.early_stopping!r}"
            )
        for name in ("do_sample", "use_cache", "output_scores", "return_dict_in_generate"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"GenerationConfig.{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("pad_token_id", "bos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"GenerationConfig.{name} must be a token id, got {value!r}")
        _token_ids("eos_token_id", self.eos_token_id)
        if self.bad_words_ids is not None:
            bad = self.bad_words_ids
            if (
                not isinstance(bad, list)
                or not bad
                or any(not isinstance(seq, list) or not seq for seq in bad)
                or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for seq in bad for i in seq)
            ):
                raise ConfigError(
                    "GenerationConfig.bad_words_ids must be a non-empty list of non-empty lists of token ids, "
                    f"got {bad!r}"
                )
        if self.num_return_sequences > self.num_beams and self.num_beams > 1:
            raise ConfigError(
                f"GenerationConfig.num_return_sequences ({self.num_return_sequences}) must be <= num_beams "
                f"({self.num_beams}) for beam search"
            )
        if self.num_return_sequences > 1 and self.num_beams == 1 and not self.do_sample:
            raise ConfigError(
                "Greedy methods without beam search do not support `num_return_sequences` different than 1 "
                f"(got {self.num_return_sequences}); set do_sample=True or num_beams >= num_return_sequences"
            )

    def unsupported(self) -> dict[str, Any]:
        """The attributes set to something our ``generate`` does not implement (name -> value)."""
        return {k: getattr(self, k) for k, off in GENERATE_UNSUPPORTED.items() if getattr(self, k, off) != off}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenerationConfig):
            return NotImplemented
        return self.to_json_string(use_diff=False) == other.to_json_string(use_diff=False)

    def __hash__(self) -> int:
        return hash(self.to_json_string(use_diff=False))

    def __repr__(self) -> str:
        return f"GenerationConfig {self.to_json_string()}"


#: Keyword arguments of ``generate`` that go to the model rather than to the generation config.
MODEL_KWARGS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "inputs_embeds",
    "encoder_hidden_states",
    "encoder_attention_mask",
)


def split_generate_kwargs(
    base: GenerationConfig, kwargs: dict[str, Any]
) -> tuple[GenerationConfig, dict[str, Any], bool]:
    """``generate``'s keywords as transformers splits them: ``(config, model kwargs, has_default_max_length)``.

    ``config`` is a copy of ``base`` with the generation keywords applied; the model inputs
    (:data:`MODEL_KWARGS`) are returned apart; a keyword that is neither raises transformers'
    "model_kwargs are not used" error (an :class:`~rembert_core.InputError`), as does an invalid value.
    """
    config = base.copy()
    model_kwargs = {k: v for k, v in kwargs.items() if k in MODEL_KWARGS}
    settings = {k: v for k, v in kwargs.items() if k not in MODEL_KWARGS}
    has_default_max_length = settings.get("max_length") is None and config.max_length is not None
    try:
        unused = config.update(**settings)
    except ConfigError as exc:
        raise InputError(f"generate: {exc}") from None
    if unused:
        raise InputError(
            f"The following `model_kwargs` are not used by the model: {sorted(unused)} (note: typos in the "
            "generate arguments will also show up in this list)"
        )
    return config, model_kwargs, has_default_max_length
