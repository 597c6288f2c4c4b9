"""Every hook a rembert plugin can implement, with its contract.

A plugin is a module (or object) named by an entry point in the ``rembert``
group, e.g. in its ``pyproject.toml``::

    [project.entry-points.rembert]
    numpy = "rembert_numpy.plugin"

and implements hooks with :data:`hookimpl`::

    from rembert_core import hookimpl

    @hookimpl
    def register_backends(register):
        register(NumpyBackend())

Versioning (:data:`HOOKSPEC_VERSION`): hooks only ever *gain* keyword
arguments, never lose or rename them, and pluggy lets an implementation accept
fewer arguments than its spec, so a plugin written against version 1 keeps
working. New hooks are optional to implement. A hook that must change
incompatibly gets a new name; the old one stays, marked with pluggy's
``warn_on_impl`` (a deprecation warning for implementers) for at least one minor
release before it is removed, and the removal bumps :data:`HOOKSPEC_VERSION`.
A plugin may check ``rembert_core.hookspecs.HOOKSPEC_VERSION`` at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from rembert_core.backend import Backend, TokenizerSpec
    from rembert_core.formats import CheckpointFormat

__all__ = ["HOOKSPEC_VERSION", "PROJECT_NAME", "hookimpl", "hookspec"]

#: The pluggy project name and the entry-point group plugins register in.
PROJECT_NAME = "rembert"

#: Version of the hook specifications in this module (see the module docstring).
HOOKSPEC_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register model backends by calling ``register(backend)`` once per backend.

    ``backend`` is an instance of :class:`rembert_core.backend.Backend`; its
    ``name`` must be unique among all installed plugins. Constructing it must
    not import the framework (torch, tensorflow, ...): the host calls this hook
    to *list* backends, and imports happen when a backend is used. If the hook
    raises, every backend it registered is discarded and the plugin is reported
    as failed; other plugins are unaffected.
    """


@hookspec
def register_tokenizers(register: Callable[[TokenizerSpec], None]) -> None:
    """Register tokenizers by calling ``register(spec)`` once per tokenizer.

    ``spec`` is a :class:`rembert_core.backend.TokenizerSpec` naming the class
    by import path, so registering imports nothing heavy. Names must be unique
    among all installed plugins. Failure handling is as for
    :func:`register_backends`.
    """


@hookspec
def register_checkpoint_formats(register: Callable[[CheckpointFormat], None]) -> None:
    """Register checkpoint readers by calling ``register(fmt)`` once per format.

    ``fmt`` is a :class:`rembert_core.formats.CheckpointFormat`: a unique name,
    a cheap ``detect(path)`` returning the file it would read (or None), an
    ``opener`` import path of a function returning a
    :class:`rembert_core.serialization.TensorSource` with canonical names and
    layouts, and a ``precedence`` (lower wins when a directory holds several
    formats). ``rembert convert``, ``rembert inspect`` and every backend's
    ``from_pretrained`` read checkpoints through the registered formats.
    Failure handling is as for :func:`register_backends`.
    """
