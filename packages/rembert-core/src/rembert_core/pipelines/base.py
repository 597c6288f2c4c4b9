"""What every pipeline shares: the model runner contract, batching by length, streaming, the progress bar.

A pipeline is framework-free. It turns each input into one or more *features* (token ids of one model
row, with what post-processing needs), runs the features through a :class:`ModelRunner` in padded
batches, and turns each input's features back into a result. A runner is the only framework part:
NumPy ids in, NumPy outputs out, exactly the :meth:`rembert_core.Backend.forward` contract, so any
registered backend (torch, TF, the NumPy example, a third party's) runs every task
(:class:`BackendRunner`).

Batching: inputs are read in windows of ``batch_size * WINDOW_BATCHES``; inside a window the features
are sorted by length and cut into batches of ``batch_size``, each padded to its longest row, so similar
lengths share a batch and little padding is computed. Results come back in input order, window by
window, so a generator of inputs is streamed.
"""

from __future__ import annotations

import abc
import inspect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rembert_core.backend import Backend
from rembert_core.config import RemBertConfig
from rembert_core.errors import InputError

__all__ = [
    "PROGRESS_THRESHOLD",
    "WINDOW_BATCHES",
    "BackendRunner",
    "Feature",
    "ModelRunner",
    "Pipeline",
    "softmax",
]

#: A progress bar is shown for inputs of known length above this many items (``progress=False`` hides it).
PROGRESS_THRESHOLD = 256
#: Inputs are read (and their features sorted by length) in windows of this many batches.
WINDOW_BATCHES = 16
#: Model inputs a feature may carry, padded with these values.
_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0}


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """A numerically stable softmax (the maximum subtracted first), in the input's float dtype."""
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=axis, keepdims=True))


class ModelRunner(abc.ABC):
    """A model of one head, run on NumPy ids: what a pipeline needs from a framework.

    ``config`` is the model's :class:`~rembert_core.RemBertConfig` (labels, problem type, special ids);
    ``head`` the :data:`rembert_core.TASKS` entry it implements.
    """

    config: RemBertConfig
    head: str

    @abc.abstractmethod
    def forward(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        """The model's output fields (``logits``, ``start_logits``, ``last_hidden_state``, ...) as NumPy arrays.

        ``inputs`` holds ``input_ids``, ``attention_mask`` and ``token_type_ids``, int64 arrays of shape
        (batch, seq), right-padded.
        """

    def generate(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, *, max_new_tokens: int, **options: Any
    ) -> np.ndarray:
        """Token ids of ``input_ids`` continued (batch, seq + new), for ``text-generation``.

        The default decodes greedily through :meth:`forward` (one full forward per new token, no cache):
        enough for any backend; framework runners call their model's ``generate`` instead.
        """
        if options.get("do_sample"):
            raise InputError(f"do_sample=True needs a framework runner with generate(); {type(self).__name__} has none")
        unknown = set(options) - {"do_sample"}
        if unknown:
            raise InputError(f"{type(self).__name__} decodes greedily and takes no {sorted(unknown)}")
        eos = self.config.eos_token_id
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        ids = np.asarray(input_ids, dtype=np.int64)
        mask = np.asarray(attention_mask, dtype=np.int64)
        done = np.zeros(len(ids), dtype=bool)
        for _ in range(max_new_tokens):
            logits = np.asarray(self.forward({"input_ids": ids, "attention_mask": mask})["logits"])
            # The last real position of each row (prompts are left-padded by the caller).
            step = np.argmax(logits[:, -1, :], axis=-1).astype(np.int64)
            step = np.where(done, pad, step)
            ids = np.concatenate([ids, step[:, None]], axis=1)
            mask = np.concatenate([mask, (~done).astype(np.int64)[:, None]], axis=1)
            if eos is not None:
                done |= step == eos
            if done.all():
                break
        return ids


class BackendRunner(ModelRunner):
    """A model built by a :class:`~rembert_core.Backend`, run through :meth:`Backend.forward`."""

    def __init__(self, backend: Backend, model: Any, config: RemBertConfig, head: str) -> None:
        self.backend = backend
        self.model = model
        self.config = config
        self.head = head

    def forward(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, Any]:
        return self.backend.forward(self.model, inputs)

    def __repr__(self) -> str:
        return f"BackendRunner(backend={self.backend.name!r}, head={self.head!r})"


@dataclass
class Feature:
    """One model row: its 1-D inputs, what post-processing needs, and (after the forward pass) its outputs."""

    inputs: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs["input_ids"])


def _is_stream(inputs: Any) -> bool:
    return isinstance(inputs, Iterator) or (
        isinstance(inputs, Iterable) and not isinstance(inputs, (str, bytes, dict, list, tuple))
    )


class Pipeline(abc.ABC):
    """Base class of the task pipelines: call it on one input, a list, or any iterable (streamed).

    Subclasses set :attr:`task`, :attr:`heads`, :attr:`token_outputs` and implement :meth:`_options`,
    :meth:`preprocess` and :meth:`postprocess`.
    """

    #: Task name (a key of :data:`rembert_core.pipelines.TASKS`).
    task: ClassVar[str] = ""
    #: Model heads (:data:`rembert_core.TASKS`) the task runs on.
    heads: ClassVar[tuple[str, ...]] = ()
    #: Output fields with a sequence axis (cut back to each feature's own length after padding).
    token_outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        runner: ModelRunner,
        tokenizer: Any,
        *,
        batch_size: int = 8,
        progress: bool = True,
        **options: Any,
    ) -> None:
        if runner.head not in self.heads:
            raise InputError(
                f"the model's head is {runner.head!r}, which does not fit the task {self.task!r} "
                f"(it needs one of {self.heads})"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if tokenizer is None:
            raise InputError(f"the {self.task!r} pipeline needs a tokenizer")
        self.runner = runner
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.model = getattr(runner, "model", None)
        self.options = self._parse_options(options)
        self.check_options(self.options)

    @property
    def config(self) -> RemBertConfig:
        """The model's config."""
        return self.runner.config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, runner={self.runner!r}, batch_size={self.batch_size})"

    # -- the task's part -------------------------------------------------------------------------

    #: Check the task options (raise :class:`InputError` naming a bad one); return them, with the defaults
    #: when called from ``__init__`` (before :attr:`options` exists). Each task defines it with its options
    #: as keyword-only arguments.
    _options: Callable[..., dict[str, Any]]

    def _parse_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        signature = inspect.signature(self._options)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        unknown = sorted(set(options) - set(signature.parameters))
        if unknown and not takes_any:
            known = ", ".join(signature.parameters) or "none"
            raise InputError(f"the {self.task!r} pipeline has no option(s) {', '.join(unknown)} (its options: {known})")
        return self._options(**options)

    def check_options(self, options: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Raise :class:`InputError` for a combination of options (defaults and the call's) that cannot work."""

    def check(self, item: Any, options: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Raise :class:`InputError` if ``item`` cannot be processed (called for every input before any forward)."""

    @abc.abstractmethod
    def preprocess(self, item: Any, options: Mapping[str, Any]) -> list[Feature]:
        """The model rows of one input."""

    @abc.abstractmethod
    def postprocess(self, item: Any, features: list[Feature], options: Mapping[str, Any]) -> Any:
        """The result of one input from its features (their :attr:`Feature.outputs` filled in)."""

    def _normalize(self, inputs: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Turn the call's arguments into (inputs, options); tasks with keyword inputs override it."""
        return inputs, kwargs

    def _is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, str)

    def _finish(self, inputs: Any, results: list[Any], options: Mapping[str, Any]) -> Any:
        """The call's return value for a list input (tasks with transformers' quirks override it)."""
        return results

    def _finish_single(self, result: Any, options: Mapping[str, Any]) -> Any:
        return result

    # -- calling ---------------------------------------------------------------------------------

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        """Run the task on one input, a list of inputs, or an iterable of inputs (results streamed in order)."""
        inputs, kwargs = self._normalize(inputs, kwargs)
        options = {**self.options, **self._parse_options(kwargs)} if kwargs else self.options
        self.check_options(options)
        if self._is_single(inputs):
            self.check(inputs, options)
            return self._finish_single(next(self._run([inputs], options)), options)
        if _is_stream(inputs):
            return self._run(inputs, options)
        if not isinstance(inputs, (list, tuple)):
            raise InputError(
                f"the {self.task!r} pipeline takes a string, a list or an iterable, got {type(inputs).__name__}"
            )
        items = list(inputs)
        for item in items:
            self.check(item, options)
        results = list(self._run(items, options, total=len(items)))
        return self._finish(inputs, results, options)

    def _run(self, items: Iterable[Any], options: Mapping[str, Any], total: int | None = None) -> Iterator[Any]:
        bar = None
        if self.progress and total is not None and total > PROGRESS_THRESHOLD:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=self.task, unit="input")
        try:
            iterator = iter(items)
            while window := list(itertools.islice(iterator, self.batch_size * WINDOW_BATCHES)):
                if total is None:
                    for item in window:
                        self.check(item, options)
                features = [self.preprocess(item, options) for item in window]
                self._forward([f for fs in features for f in fs], options)
                for item, fs in zip(window, features, strict=True):
                    yield self.postprocess(item, fs, options)
                if bar is not None:
                    bar.update(len(window))
        finally:
            if bar is not None:
                bar.close()

    def _forward(self, features: Sequence[Feature], options: Mapping[str, Any]) -> None:
        """Run ``features`` in batches of similar length; store each one's outputs in it."""
        order = sorted(range(len(features)), key=lambda i: len(features[i]))
        pad_id = self.tokenizer.pad_token_id
        pad_id = 0 if pad_id is None else pad_id
        for start in range(0, len(order), self.batch_size):
            batch = [features[i] for i in order[start : start + self.batch_size]]
            width = max(len(f) for f in batch)
            arrays: dict[str, np.ndarray] = {}
            for name in batch[0].inputs:
                value = _PAD_VALUES.get(name, pad_id)
                array = np.full((len(batch), width), value, dtype=np.int64)
                for row, feature in enumerate(batch):
                    array[row, : len(feature)] = feature.inputs[name]
                arrays[name] = array
            outputs = self.runner.forward(arrays)
            for row, feature in enumerate(batch):
                feature.outputs = {
                    key: np.asarray(outputs[key][row, : len(feature)])
                    if key in self.token_outputs
                    else np.asarray(outputs[key][row])
                    for key in self._output_keys(outputs)
                }

    def _output_keys(self, outputs: Mapping[str, Any]) -> list[str]:
        return [k for k, v in outputs.items() if isinstance(v, np.ndarray) and v.ndim >= 1 and k != "loss"]

    # -- helpers for the tasks -------------------------------------------------------------------

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's encoding (lists, no tensors) of one text or pair."""
        return self.tokenizer(*args, **kwargs)

    def feature(self, encoding: Mapping[str, Any], row: int | None = None, **meta: Any) -> Feature:
        """A :class:`Feature` from the model inputs of a tokenizer encoding (``row`` of a batched one)."""
        inputs: dict[str, np.ndarray] = {}
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in encoding and encoding[name] is not None:
                value = encoding[name] if row is None else encoding[name][row]
                inputs[name] = np.asarray(value, dtype=np.int64)
        if "attention_mask" not in inputs:
            inputs["attention_mask"] = np.ones_like(inputs["input_ids"])
        return Feature(inputs, dict(meta))
