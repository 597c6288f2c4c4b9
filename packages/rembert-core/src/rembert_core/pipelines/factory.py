"""Building a pipeline: the task table, the checkpoint's model on a backend, the tokenizer beside it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rembert_core.backend import Backend
from rembert_core.errors import InputError, PluginError
from rembert_core.pipelines.base import BackendRunner, ModelRunner, Pipeline
from rembert_core.pipelines.feature_extraction import FeatureExtractionPipeline
from rembert_core.pipelines.fill_mask import FillMaskPipeline
from rembert_core.pipelines.question_answering import QuestionAnsweringPipeline
from rembert_core.pipelines.text_classification import TextClassificationPipeline
from rembert_core.pipelines.text_generation import TextGenerationPipeline
from rembert_core.pipelines.token_classification import TokenClassificationPipeline
from rembert_core.pipelines.zero_shot import ZeroShotClassificationPipeline

__all__ = [
    "ALIASES",
    "TASKS",
    "checkpoint_directory",
    "head_for",
    "load_runner",
    "load_tokenizer",
    "make_pipeline",
    "model_and_tokenizer",
    "pipeline",
    "resolve_task",
]

#: Task name -> pipeline class.
TASKS: dict[str, type[Pipeline]] = {
    cls.task: cls
    for cls in (
        FillMaskPipeline,
        TextClassificationPipeline,
        TokenClassificationPipeline,
        QuestionAnsweringPipeline,
        FeatureExtractionPipeline,
        TextGenerationPipeline,
        ZeroShotClassificationPipeline,
    )
}

#: Other names of tasks (transformers' aliases).
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def resolve_task(task: str) -> type[Pipeline]:
    """The pipeline class of ``task`` (a name or an alias); :class:`InputError` lists the tasks otherwise."""
    name = ALIASES.get(task, task) if isinstance(task, str) else task
    if name not in TASKS:
        known = ", ".join([*TASKS, *(f"{a} (= {t})" for a, t in ALIASES.items())])
        raise InputError(f"unknown pipeline task {task!r}; the tasks are: {known}")
    return TASKS[name]


def head_for(task: str) -> str:
    """The model head (:data:`rembert_core.TASKS`) a checkpoint is loaded as for ``task``."""
    return resolve_task(task).heads[0]


def load_tokenizer(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """The tokenizer saved beside a checkpoint: the ``fast`` one if it can be used, else ``sentencepiece``.

    Tokenizers come from the registered tokenizer plugins (``rembert-tokenizers`` registers both).
    """
    from rembert_core.plugins import get_tokenizer

    errors = []
    for name in ("fast", "sentencepiece"):
        try:
            cls = get_tokenizer(name).load()
        except (PluginError, ImportError) as exc:
            errors.append(f"{name}: {exc}")
            continue
        return cls.from_pretrained(path, **kwargs)
    raise PluginError(
        f"no tokenizer could be loaded for {os.fspath(path)!r} (pip install rembert-tokenizers): " + "; ".join(errors)
    )


def checkpoint_directory(model: str | os.PathLike[str], **hub: Any) -> str:
    """The local directory of a checkpoint directory, weights file or Hub id (``hub``: revision, token, ...)."""
    from rembert_core.io.hub import resolve_checkpoint

    resolved = resolve_checkpoint(model, **{k: v for k, v in hub.items() if v not in (None, False)})
    return os.fspath(resolved if resolved.is_dir() else resolved.parent)


def model_and_tokenizer(
    task_class: type[Pipeline],
    model: Any,
    tokenizer: Any,
    head_classes: Mapping[str, Any],
    loading: Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """The framework packages' ``pipeline()`` first step: (model object, tokenizer object).

    ``model`` a checkpoint directory or Hub id is loaded with ``head_classes[head]`` (the task's head,
    ``from_pretrained(model, **loading)``) and refused with :class:`InputError` when the checkpoint has no
    weights for that head (a pipeline on an untrained head gives noise); its tokenizer is the one saved
    beside it unless ``tokenizer`` is given. A model object needs ``tokenizer``; a tokenizer directory is
    loaded (:func:`load_tokenizer`).
    """
    if model is None:
        raise InputError(f"pipeline({task_class.task!r}) needs model= (a checkpoint directory, Hub id or model)")
    if isinstance(model, str | os.PathLike):
        path = model
        model = _load_head(head_classes[task_class.heads[0]], path, task_class.task, dict(loading or {}))
        if tokenizer is None:
            tokenizer = load_tokenizer(checkpoint_directory(path))  # a Hub id: its cached snapshot
    elif tokenizer is None:
        raise InputError("a pipeline on a model object needs tokenizer= (a tokenizer or its directory)")
    if isinstance(tokenizer, str | os.PathLike):
        tokenizer = load_tokenizer(tokenizer)
    return model, tokenizer


def _load_head(model_class: Any, path: str | os.PathLike[str], task: str, kwargs: dict[str, Any]) -> Any:
    """Load ``path`` with the task's head class; refuse a checkpoint that has no weights for that head."""
    model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    missing = info["newly_initialized"]
    if model_class.task == "base":  # the backbone of a masked-LM checkpoint has no pooler; features need none
        missing = [n for n in missing if ".pooler." not in n and not n.startswith("pooler.")]
    if missing:
        raise _missing_head(path, model.config.architectures, model_class.task, task, missing)
    return model


def _missing_head(
    path: str | os.PathLike[str], architectures: list[str] | None, head: str, task: str, missing: list[str]
) -> InputError:
    """The error for a checkpoint without the weights of the head ``task`` needs (naming a few of them)."""
    found = ", ".join(architectures or []) or "unknown"
    return InputError(
        f"the checkpoint at {os.fspath(path)} (architecture {found}) has no {head!r} head, which the task "
        f"{task!r} needs (missing: {', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})"
    )


def load_runner(
    model: str | os.PathLike[str], head: str, task: str, backend: Backend, *, dtype: str = "float32"
) -> BackendRunner:
    """The checkpoint at ``model`` built as ``head`` on ``backend``.

    The checkpoint must hold every tensor of the head (:class:`InputError` names the head, the task
    and the checkpoint's architecture otherwise): a pipeline on an untrained head gives noise.
    """
    from rembert_core.loading import plan_load
    from rembert_core.schema import build_schema

    if head not in backend.tasks:
        raise InputError(f"the {backend.name!r} backend cannot build the {head!r} head the task {task!r} needs")
    with plan_load(model) as plan:
        config = plan.config
        schema = build_schema(config, head)
        report = plan.match(schema)
        # (the backbone of a masked-LM checkpoint has no pooler: feature extraction does not need one)
        missing = [n for n in report.newly_initialized if head != "base" or schema[n].component != "pooler"]
        if missing:
            raise _missing_head(model, config.architectures, head, task, missing)
        built = backend.build_model(config, head, dtype=dtype)
        tensors = {name: plan.weights[key] for name, key in plan.matched()}
    if report.newly_initialized:  # a pooler the checkpoint lacks: zeros (the pipelines never read it)
        import numpy as np

        for name in report.newly_initialized:
            tensors[name] = np.zeros(schema[name].shape, dtype=np.float32)
    backend.load_tensors(built, tensors)
    return BackendRunner(backend, built, config, head)


def make_pipeline(
    task: str,
    runner: ModelRunner,
    tokenizer: Any,
    *,
    batch_size: int | None = None,
    progress: bool = True,
    **options: Any,
) -> Pipeline:
    """The pipeline of ``task`` over an already-built :class:`ModelRunner` and tokenizer."""
    cls = resolve_task(task)
    return cls(runner, tokenizer, batch_size=batch_size or 8, progress=progress, **options)


def pipeline(
    task: str,
    model: Any = None,
    *,
    tokenizer: Any = None,
    backend: str | Backend = "numpy",
    dtype: str = "float32",
    batch_size: int | None = None,
    progress: bool = True,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    **options: Any,
) -> Pipeline:
    """A pipeline for ``task`` on any registered backend (the framework-free entry point).

    Args:
        task: ``"fill-mask"``, ``"text-classification"`` (``"sentiment-analysis"``),
            ``"token-classification"`` (``"ner"``), ``"question-answering"``, ``"feature-extraction"``,
            ``"text-generation"`` or ``"zero-shot-classification"``.
        model: a checkpoint directory or Hub id, or a :class:`ModelRunner` already built.
        tokenizer: a tokenizer object, or a directory to load one from; by default the one saved beside
            the checkpoint (the fast tokenizer when ``tokenizers`` is installed).
        backend: the name of a registered backend (``"numpy"``, ``"torch"``, ``"tf"``, a plugin's) or a
            :class:`Backend` object.
        dtype: the dtype the backend computes in.
        batch_size: rows per forward pass (default 8); inputs are sorted by length within windows.
        progress: show a progress bar for inputs of known length over a few hundred items.
        revision, cache_dir, local_files_only, token: for Hub ids.
        options: the task's options (``top_k``, ``aggregation_strategy``, ...), defaults of every call.

    Example:
        >>> from rembert_core import pipeline
        >>> fill = pipeline("fill-mask", model="path/to/checkpoint", backend="numpy")  # doctest: +SKIP
        >>> fill("Hello [MASK]!")  # doctest: +SKIP
    """
    cls = resolve_task(task)
    if model is None:
        raise InputError(f"pipeline({cls.task!r}) needs model= (a checkpoint directory, Hub id or model runner)")
    if isinstance(model, ModelRunner):
        runner: ModelRunner = model
    elif isinstance(model, (str, os.PathLike)):
        from rembert_core.plugins import get_backend

        resolved_backend = get_backend(backend) if isinstance(backend, str) else backend
        hub = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
        path = checkpoint_directory(model, **hub)
        runner = load_runner(path, cls.heads[0], cls.task, resolved_backend, dtype=dtype)
        if tokenizer is None:
            tokenizer = load_tokenizer(path)
    else:
        raise InputError(
            f"model must be a checkpoint directory, a Hub id or a ModelRunner, got {type(model).__name__} "
            "(framework model objects go to rembert_torch.pipeline / rembert_tf.pipeline)"
        )
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer is None:
        raise InputError("a pipeline on a model object needs tokenizer= (a tokenizer or its directory)")
    return cls(runner, tokenizer, batch_size=batch_size or 8, progress=progress, **options)
