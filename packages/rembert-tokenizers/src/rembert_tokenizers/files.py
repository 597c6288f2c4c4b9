"""The tokenizer's files: ``save_vocabulary``, ``save_pretrained`` and what ``from_pretrained`` reads.

The reference formats (``tokenizer_config.json``, ``special_tokens_map.json``, ``added_tokens.json``,
``sentencepiece.model``; the fast tokenizer adds ``tokenizer.json``), written atomically: a crash while
saving over a previous tokenizer leaves its files, not a mix of old and new ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from rembert_core import CheckpointError, InputError
from rembert_core.serialization import atomic_write_bytes, atomic_write_files, check_file
from rembert_tokenizers.special_tokens import SPECIAL_TOKEN_ATTRIBUTES, SpecialTokensMixin
from rembert_tokenizers.vocabulary import AddedToken, _short_repr

__all__ = [
    "ADDED_TOKENS_FILE",
    "SPECIAL_TOKENS_MAP_FILE",
    "TOKENIZER_CONFIG_FILE",
    "VOCAB_FILE",
    "FilesMixin",
    "directory_file",
]

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
VOCAB_FILE = "sentencepiece.model"

#: from_pretrained arguments of the reference that concern hub downloads; accepted and ignored.
_HUB_ARGUMENTS = (
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "subfolder",
    "trust_remote_code",
    "use_fast",
    "proxies",
    "_from_auto",
)


class FilesMixin(SpecialTokensMixin):
    """Writing the reference files, and reading their options back for ``from_pretrained``."""

    def save_vocabulary(self, save_directory: str | os.PathLike[str], filename_prefix: str | None = None) -> tuple[str]:
        """Write the SentencePiece model as ``[prefix-]sentencepiece.model`` in ``save_directory``.

        Args:
            save_directory (str | os.PathLike): an existing directory.
            filename_prefix (str | None): prefix of the file name.

        Returns:
            tuple[str]: the path written.

        Raises:
            rembert_core.CheckpointError: ``save_directory`` is not a directory.

        Example:
            >>> from rembert_tokenizers import RemBertTokenizerFast
            >>> tokenizer = RemBertTokenizerFast("tests/fixtures/sentencepiece/test_model.model")
            >>> import os, tempfile
            >>> directory = tempfile.mkdtemp()
            >>> (path,) = tokenizer.save_vocabulary(directory)
            >>> os.path.basename(path)
            'sentencepiece.model'
            >>> RemBertTokenizerFast(path)("Hello world")["input_ids"]
            [1000, 151, 88, 21, 887, 1001]
        """
        directory = os.fspath(save_directory)
        if not os.path.isdir(directory):
            raise CheckpointError(f"save_directory {directory!r} is not a directory")
        path = os.path.join(directory, (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILE)
        atomic_write_bytes(path, self._model_proto_bytes())
        return (path,)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        filename_prefix: str | None = None,
        legacy_format: bool | None = None,
        **kwargs: Any,
    ) -> tuple[str, ...]:
        """Write ``tokenizer_config.json``, ``special_tokens_map.json``, ``sentencepiece.model``
        (and ``tokenizer.json`` for the fast tokenizer) in the reference formats.

        ``legacy_format`` as in the reference: ``None`` writes both formats; ``True`` only the slow one
        (``sentencepiece.model``, ``added_tokens.json``); ``False`` (fast tokenizer only) only ``tokenizer.json``,
        which the slow class cannot load.

        Example::

            tokenizer.save_pretrained("out/")
            transformers.RemBertTokenizer.from_pretrained("out/")  # reads the same files
        """
        if legacy_format is not None and not isinstance(legacy_format, bool):
            raise InputError(f"legacy_format must be None, True or False, got {legacy_format!r}")
        if legacy_format is False and not self.is_fast:
            raise InputError(
                "Only fast tokenizers (instances of PreTrainedTokenizerFast) can be saved in non legacy format."
            )
        directory = os.fspath(save_directory)
        if os.path.isfile(directory):
            raise CheckpointError(f"save_directory {directory!r} is a file, not a directory")
        os.makedirs(directory, exist_ok=True)
        prefix = filename_prefix + "-" if filename_prefix else ""

        def encode(payload: Any) -> bytes:
            return (json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

        # Every file is staged first and all are renamed together at the end (atomic_write_files), so a
        # crash while saving over a previous tokenizer leaves its files, not a mix of old and new ones.
        files: dict[str, bytes] = {
            os.path.join(directory, prefix + SPECIAL_TOKENS_MAP_FILE): encode(self._special_tokens_map_json()),
        }
        added = {t.content: i for i, t in sorted(self._added_tokens.items()) if i >= self.vocab_size}
        added_path = os.path.join(directory, prefix + ADDED_TOKENS_FILE)
        slow_files, fast_files = legacy_format is not False, legacy_format is not True
        if added and slow_files:
            files[added_path] = encode(added)
        if slow_files:
            files[os.path.join(directory, prefix + VOCAB_FILE)] = self._model_proto_bytes()
        if fast_files:
            files.update(self._extra_payloads(directory, filename_prefix))
        files[os.path.join(directory, prefix + TOKENIZER_CONFIG_FILE)] = encode(self._config())
        # A previous save's added_tokens.json would otherwise add its tokens to this tokenizer on loading.
        atomic_write_files(files, remove=() if added or not slow_files else (added_path,))
        written = [os.path.join(directory, prefix + name) for name in (TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE)]
        written += [path for path in files if path not in written]
        return tuple(written)

    def _extra_payloads(self, directory: str, filename_prefix: str | None) -> dict[str, bytes]:
        """Files beyond the SentencePiece model and the JSON configs (the fast tokenizer's tokenizer.json)."""
        return {}

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = dict(getattr(self, "_extra_init_kwargs", self.init_kwargs))
        config["added_tokens_decoder"] = {str(i): t.to_dict() for i, t in sorted(self._added_tokens.items())}
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            value = self._special_value(name)
            if value is not None:
                config[name] = value
        if self._additional_special:
            config["additional_special_tokens"] = self.additional_special_tokens
        config.update(
            {
                "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
                "do_lower_case": self.do_lower_case,
                "extra_special_tokens": {},
                "keep_accents": self.keep_accents,
                "model_max_length": self.model_max_length,
                "remove_space": self.remove_space,
                "tokenizer_class": self._class_name,
            }
        )
        if self.padding_side != "right":
            config["padding_side"] = self.padding_side
        if self.truncation_side != "right":
            config["truncation_side"] = self.truncation_side
        return dict(sorted(config.items()))

    def _special_tokens_map_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            token = self._special.get(name)
            if token is None:
                continue
            default_flags = AddedToken(token.content, special=True, normalized=False)
            if token == default_flags:
                result[name] = token.content
            else:
                result[name] = {k: v for k, v in token.to_dict().items() if k != "special"}
        if self._additional_special:
            result["additional_special_tokens"] = self.additional_special_tokens
        return dict(sorted(result.items()))

    @staticmethod
    def _read_json(path: str, *, root: str | None = None) -> dict[str, Any]:
        """A JSON object file of a tokenizer directory ``root``, read under the file policy (``check_file``)."""
        try:
            check_file(path, root=root)  # a regular file; a link only inside the directory (or to hub blobs)
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            # ValueError: JSONDecodeError, or a number of more than 4,300 digits; RecursionError: nesting too deep
            raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return data

    @classmethod
    def _pretrained_kwargs(cls, directory: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments from ``tokenizer_config.json``/``special_tokens_map.json``; ``kwargs`` win.

        Every file is read under the file policy of :func:`rembert_core.serialization.check_file` and
        checked field by field: a malformed file raises :class:`~rembert_core.CheckpointError` naming the
        file and the field.
        """
        config_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
        config = cls._read_json(config_path, root=directory) if os.path.lexists(config_path) else {}
        for key in (
            "tokenizer_class",
            "auto_map",
            "processor_class",
            "extra_special_tokens",
            "tokenizer_file",
            "vocab_file",
            "name_or_path",
            "legacy",
            "sp_model_kwargs",
            "split_special_tokens",
            "_added_tokens_source",  # set below, never taken from the file
        ):
            config.pop(key, None)
        _check_options(config, config_path)
        added_source = f"{config_path} (field 'added_tokens_decoder')"
        special_path = os.path.join(directory, SPECIAL_TOKENS_MAP_FILE)
        if os.path.lexists(special_path):
            special_map = cls._read_json(special_path, root=directory)
            taken = {
                key: value
                for key, value in special_map.items()
                if (key in SPECIAL_TOKEN_ATTRIBUTES or key == "additional_special_tokens") and key not in config
            }
            _check_options(taken, special_path)
            config.update(taken)
        added_path = os.path.join(directory, ADDED_TOKENS_FILE)
        if os.path.lexists(added_path) and "added_tokens_decoder" not in config:
            added = cls._read_json(added_path, root=directory)
            specials = {_content(config.get(k)) for k in SPECIAL_TOKEN_ATTRIBUTES}
            decoder: dict[int, dict[str, Any]] = {}
            for content, index in added.items():
                if not isinstance(index, int) or isinstance(index, bool):
                    raise CheckpointError(
                        f"{added_path}: token {content!r} has the id {_short_repr(index)}, not an integer"
                    )
                if index in decoder:
                    raise CheckpointError(
                        f"{added_path}: token {content!r} has the id {index}, already given to "
                        f"{decoder[index]['content']!r}"
                    )
                decoder[index] = {"content": content, "special": content in specials}
            config["added_tokens_decoder"] = decoder
            added_source = added_path
        for name in SPECIAL_TOKEN_ATTRIBUTES:
            value = config.get(name)
            if isinstance(value, Mapping):
                config[name] = AddedToken.from_value(value, special=True, argument=name)
        for key in _HUB_ARGUMENTS:  # accepted for compatibility; only local directories are read
            kwargs.pop(key, None)
        if "added_tokens_decoder" in config and "added_tokens_decoder" not in kwargs:
            config["_added_tokens_source"] = added_source
        config.update(kwargs)
        config["name_or_path"] = directory
        return config


def directory_file(directory: str, name: str) -> str | None:
    """``directory/name`` if the directory holds that name, checked by the file policy; None if it holds none.

    The file policy (:func:`rembert_core.serialization.check_file`): a regular file, not a FIFO or a
    device; a symbolic link only to a file inside the directory (or to a Hugging Face cache snapshot's
    blobs) unless ``REMBERT_FOLLOW_SYMLINKS=1``. Anything else raises :class:`~rembert_core.CheckpointError`.
    """
    path = os.path.join(directory, name)
    if not os.path.lexists(path):
        return None
    try:
        check_file(path, root=directory)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is a symbolic link to a file that does not exist") from None
    return path


def _content(value: Any) -> str | None:
    """The text of a special-token value of a file (a str or an AddedToken dict)."""
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


#: Options of tokenizer_config.json whose values must be booleans.
_BOOL_OPTIONS = ("do_lower_case", "remove_space", "keep_accents", "clean_up_tokenization_spaces")


def _check_options(config: Mapping[str, Any], path: str) -> None:
    """The fields of ``tokenizer_config.json`` (or ``special_tokens_map.json``) that the constructor reads.

    Raises :class:`~rembert_core.CheckpointError` naming ``path`` and the field, instead of a
    ``TypeError`` (a ``"self"`` key) or characters taken for tokens (a string ``additional_special_tokens``).
    """

    def bad(key: str, expected: str) -> CheckpointError:
        value = config[key]
        return CheckpointError(
            f"{path}: field {key!r} must be {expected}, got {type(value).__name__} {_short_repr(value)}"
        )

    if "self" in config:
        raise CheckpointError(f"{path}: field 'self' is not a tokenizer option")
    for key in _BOOL_OPTIONS:
        if key in config and not isinstance(config[key], bool):
            raise bad(key, "true or false")
    if "model_max_length" in config:
        value = config["model_max_length"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise bad("model_max_length", "a positive integer")
    for key in ("padding_side", "truncation_side"):
        if key in config and config[key] not in ("left", "right"):
            raise bad(key, "'left' or 'right'")
    for key in SPECIAL_TOKEN_ATTRIBUTES:
        if key in config:
            _check_token(config[key], path, key, optional=True)
    if "additional_special_tokens" in config:
        value = config["additional_special_tokens"]
        if value is not None:
            if not isinstance(value, list):
                # transformers 4.57 refuses a str here in tokenizer_config.json (AssertionError) and ignores it in
                # special_tokens_map.json; taken as a list, its characters became special tokens.
                raise bad("additional_special_tokens", "a list of tokens")
            for index, item in enumerate(value):
                _check_token(item, path, f"additional_special_tokens[{index}]", optional=False)
    if "added_tokens_decoder" in config:
        decoder = config["added_tokens_decoder"]
        if not isinstance(decoder, Mapping):
            raise bad("added_tokens_decoder", "an object of id -> token")
        for key, value in decoder.items():
            _check_token(value, path, f"added_tokens_decoder[{key!r}]", optional=False)


def _check_token(value: Any, path: str, field: str, *, optional: bool) -> None:
    """A token of a file: a non-empty str or an AddedToken object (``{"content": ..., "lstrip": ...}``)."""
    if value is None and optional:
        return
    try:
        AddedToken.from_value(value, special=True, argument=field)
    except InputError as exc:
        raise CheckpointError(f"{path}: field {exc}") from exc
