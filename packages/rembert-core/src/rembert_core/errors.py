"""The exception hierarchy of every rembert package.

All errors the library raises on purpose derive from :class:`RemBertError`, so a
service can catch one type. Each subclass also derives from the builtin that
callers of ``transformers`` already catch (``ValueError``, ``OSError``), so code
written against the reference keeps working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConfigFileError",
    "InputError",
    "PluginError",
    "RemBertError",
]


class RemBertError(Exception):
    """Base class of every error raised on purpose by rembert."""


class ConfigError(RemBertError, ValueError):
    """A configuration is invalid (bad value, wrong type, wrong ``model_type``)."""


class ConfigFileError(ConfigError, OSError):
    """A ``config.json`` that does not exist or cannot be read: a :class:`ConfigError` and an ``OSError``.

    transformers raises ``OSError`` for a path without a config, so code written against it keeps
    catching the same thing.
    """


class CheckpointError(RemBertError, OSError):
    """A checkpoint file or directory is missing, corrupt, or does not fit the schema."""


class InputError(RemBertError, ValueError):
    """A model or tokenizer input is invalid (wrong shape, dtype or value)."""


class PluginError(RemBertError, RuntimeError):
    """A plugin failed to load or register, or a backend/tokenizer name is unknown or taken."""
