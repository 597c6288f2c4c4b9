"""The base of every RemBERT Keras model: config, canonical tensors, loading/saving, resizing, training, export.

Also the documentation of the ``call`` arguments every model shares, written once
(:data:`CALL_ARGS`, added to each ``call`` by :func:`document_call`).

:class:`TFRemBertPreTrainedModel` (a ``keras.Model``) holds what the models share, not the network
(that is :mod:`rembert_tf.modeling`): the config, the canonical tensors (walked along each layer's
``CANONICAL_CHILDREN``), ``from_pretrained``/``save_pretrained`` (carried out by
:mod:`rembert_tf.loading`), resizing the vocabulary, the Keras hooks that ``fit``, ``evaluate`` and
``predict`` go through, and the SavedModel export. It knows the model classes only by their
attributes (``self.rembert``, ``self.cls``), so that :mod:`rembert_tf.modeling` imports it and not
the reverse.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from rembert_core import ConfigError, InputError, RemBertConfig
from rembert_tf import validation
from rembert_tf._tensorflow import keras, tf
from rembert_tf.kernels import Embedding, Linear
from rembert_tf.outputs import BaseModelOutputWithPoolingAndCrossAttentions, ModelOutput

if TYPE_CHECKING:
    from rembert_tf.modeling import TFRemBertMainLayer

__all__ = ["CALL_ARGS", "TFRemBertPreTrainedModel", "document_call"]

# -- the call arguments, documented once -----------------------------------------------------------

#: The inputs every head's :meth:`~TFRemBertPreTrainedModel.call` accepts (and its ``INPUT_NAMES`` start with).
_COMMON_INPUTS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "head_mask",
    "inputs_embeds",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
)

#: The ``call`` arguments the models share, as ``name -> "(type): description"`` (Google style, without the
#: name), written once and added to each ``call`` docstring by :func:`document_call`.
CALL_ARGS: dict[str, str] = {
    "input_ids": "(np.ndarray | tf.Tensor | dict | None): int ``(batch, seq)`` token ids; or a dict of every "
    "input (as Keras passes it).",
    "attention_mask": "(np.ndarray | tf.Tensor | None): 0/1 ``(batch, past + seq)`` or "
    "``(batch, seq, past + seq)``; default all ones.",
    "token_type_ids": "(np.ndarray | tf.Tensor | None): int ``(batch, seq)`` segment ids; default zeros.",
    "position_ids": "(np.ndarray | tf.Tensor | None): int ``(batch, seq)``; default ``0 .. seq - 1`` after the "
    "cached positions.",
    "head_mask": "(np.ndarray | tf.Tensor | None): ``(heads,)`` or ``(layers, heads)``, 1 keeps a head.",
    "inputs_embeds": "(np.ndarray | tf.Tensor | None): float ``(batch, seq, input_embedding_size)`` instead of "
    "``input_ids``.",
    "encoder_hidden_states": "(tf.Tensor | None): ``(batch, enc_seq, hidden_size)`` for cross-attention "
    "(decoders with ``add_cross_attention``).",
    "encoder_attention_mask": "(np.ndarray | tf.Tensor | None): 0/1 ``(batch, enc_seq)``.",
    "past_key_values": "(tuple | None): per layer ``(key, value[, cross_key, cross_value])`` of shape "
    "``(batch, heads, past_seq, head_dim)`` from a previous call with ``use_cache=True``.",
    "use_cache": "(bool | None): return ``past_key_values`` (decoders).",
    "output_attentions": "(bool | None): also return every layer's attention probabilities "
    "``(batch, heads, seq, seq)``.",
    "output_hidden_states": "(bool | None): also return the embeddings and every layer's output "
    "``(batch, seq, hidden_size)``.",
    "return_dict": "(bool | None): ``False`` returns a tuple of the fields that are set.",
    "training": "(bool): dropout on (Keras sets it in ``fit``).",
}

_Call = TypeVar("_Call", bound=Callable[..., Any])


def document_call(returns: type) -> Callable[[_Call], _Call]:
    """Complete a ``call`` docstring with ``Args:`` (from :data:`CALL_ARGS`), ``Returns:`` and ``Raises:``.

    The docstring holds the description and, last, an optional ``Args:`` section with the arguments
    documented differently (``labels``, other shapes). The completed ``Args:`` lists every parameter in
    signature order, each with its own entry if it has one, else the shared one; ``Returns:`` names
    ``returns``, the output class.
    """

    def decorate(call: _Call) -> _Call:
        if call.__doc__ is None:  # python -OO
            return call
        description, _, own_args = inspect.cleandoc(call.__doc__).partition("\nArgs:\n")
        own: dict[str, list[str]] = {}
        for line in own_args.splitlines():
            if not line.startswith("     "):  # "    name (type): text" starts an entry
                name = line.split(":")[0].split(" (")[0].strip()
            own.setdefault(name, []).append(line)
        args: list[str] = []
        for name in [name for name in inspect.signature(call).parameters if name != "self"]:
            if name not in own and name not in CALL_ARGS:
                raise TypeError(f"{call.__qualname__}: argument {name!r} is documented nowhere")
            args += own.pop(name, []) or textwrap.wrap(
                f"{name} {CALL_ARGS[name]}", 116, initial_indent="    ", subsequent_indent=" " * 8
            )
        if own:
            raise TypeError(f"{call.__qualname__} documents arguments it does not take: {sorted(own)}")
        returns_doc = (
            f"    :class:`~{returns.__module__}.{returns.__name__}` (or its tuple, with ``return_dict=False``)."
        )
        raises_doc = [
            "    rembert_core.InputError: an input has the wrong type, dtype, shape or values (inside a",
            "        ``tf.function``, a wrong value raises TensorFlow's ``InvalidArgumentError``, same message).",
        ]
        sections = ["Args:", *args, "", "Returns:", returns_doc, "", "Raises:", *raises_doc]
        call.__doc__ = "\n".join([description.rstrip(), "", *sections])
        return call

    return decorate


# -- the base class --------------------------------------------------------------------------------


class TFRemBertPreTrainedModel(keras.Model):
    """Base class of every RemBERT Keras model: config, checkpoints, canonical tensors, training, export.

    Subclasses set :attr:`task` (a :data:`rembert_core.TASKS` entry). Weights are created
    when the model is constructed, so a model is usable (and loadable) at once.
    """

    task: ClassVar[str] = "base"
    base_model_prefix: ClassVar[str] = "rembert"
    #: Canonical name segment -> attribute, for the task's top-level blocks.
    CANONICAL_CHILDREN: ClassVar[dict[str, str]] = {}
    #: Argument names :meth:`call` accepts besides ``training`` (also the keys of a dict input).
    INPUT_NAMES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: RemBertConfig, **kwargs: Any) -> None:
        if not isinstance(config, RemBertConfig):
            raise ConfigError(f"config must be a rembert_core.RemBertConfig, got {type(config).__name__}")
        config.validate()
        if config.add_cross_attention and not config.is_decoder:
            raise ConfigError("add_cross_attention=True needs is_decoder=True (cross-attention is a decoder feature)")
        kwargs.setdefault("name", type(self).__name__.lower())
        super().__init__(**kwargs)
        self.config = config

    # -- inputs --------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Keras' ``__call__``, after turning what users pass into tensors: a ``BatchEncoding`` or dict first
        (its flags become keywords), a list ``[input_ids, attention_mask, token_type_ids, ...]``, nested lists.
        """
        args, kwargs = validation.unpack_call_inputs(args, kwargs, self.INPUT_NAMES)
        return super().__call__(*args, **kwargs)

    def _gather_inputs(self, input_ids: Any, arguments: dict[str, Any]) -> dict[str, Any]:
        """Unpack a dict passed as the first argument (``fit``, ``export``) into the keyword arguments."""
        if isinstance(input_ids, Mapping):
            unknown = sorted(set(input_ids) - set(self.INPUT_NAMES))
            if unknown:
                raise InputError(
                    f"unknown input name(s) {unknown} for {type(self).__name__}; accepted: {list(self.INPUT_NAMES)}"
                )
            for key, value in input_ids.items():
                if arguments.get(key) is not None:
                    raise InputError(f"{key} was passed both in the input dict and as an argument")
                arguments[key] = value
            arguments.setdefault("input_ids", None)
            if "input_ids" not in input_ids:
                arguments["input_ids"] = None
        else:
            arguments["input_ids"] = input_ids
        return arguments

    def _backbone(
        self, args: dict[str, Any], training: bool, **extra: Any
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        rembert: TFRemBertMainLayer = self.rembert
        out: BaseModelOutputWithPoolingAndCrossAttentions = rembert(
            input_ids=args.get("input_ids"),
            attention_mask=args.get("attention_mask"),
            token_type_ids=args.get("token_type_ids"),
            position_ids=args.get("position_ids"),
            head_mask=args.get("head_mask"),
            inputs_embeds=args.get("inputs_embeds"),
            output_attentions=_flag(args.get("output_attentions"), self.config.output_attentions),
            output_hidden_states=_flag(args.get("output_hidden_states"), self.config.output_hidden_states),
            training=training,
            **extra,
        )
        return out

    def _finish(self, output: ModelOutput, return_dict: bool | None) -> Any:
        """The output object, or its tuple with ``return_dict=False`` (default: ``config.return_dict``)."""
        if getattr(self, "_keras_step", False) or _flag(return_dict, self.config.return_dict):
            return output
        return output.to_tuple()

    # -- canonical tensors ----------------------------------------------------------------------

    def canonical_variables(self) -> dict[str, tuple[Any, bool]]:
        """``{canonical tensor name: (Keras variable, transposed)}`` in schema order.

        ``transposed`` is True for dense kernels, stored ``[in, out]`` here and
        ``[out, in]`` in the canonical layout.
        """
        out: dict[str, tuple[Any, bool]] = {}
        _walk_canonical(self, "", out)
        return out

    def export_tensors(self) -> dict[str, np.ndarray]:
        """Every weight as a NumPy array in the canonical layout (schema names, PyTorch shapes), model dtype."""
        return {
            name: _canonical_value(var, transposed) for name, (var, transposed) in self.canonical_variables().items()
        }

    def load_tensors(self, tensors: Mapping[str, Any], *, strict: bool = True) -> list[str]:
        """Assign canonical tensors (schema names, canonical layout, any float dtype) to the variables.

        Returns the names of the variables that were not given. With ``strict``,
        unknown names or wrong shapes raise :class:`rembert_core.CheckpointError`.
        """
        from rembert_tf.loading import assign_canonical

        return assign_canonical(self, tensors, strict=strict)

    # -- checkpoints ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        config: RemBertConfig | None = None,
        output_loading_info: bool = False,
        dtype: Any = None,
        **config_overrides: Any,
    ) -> Any:
        """Load a checkpoint in any registered format (safetensors, tf_model.h5, pytorch_model.bin, TF checkpoint).

        Args:
            pretrained_model_name_or_path: a checkpoint directory, weights file or TF checkpoint prefix, or a
                Hugging Face Hub id resolved through the ``huggingface_hub`` cache (``local_files_only``,
                ``revision``, ``cache_dir`` and ``token`` are passed to it; needs ``rembert-core[hub]``).
            config: use this config instead of the directory's ``config.json``.
            output_loading_info: also return ``{"missing_keys", "unexpected_keys",
                "mismatched_keys", "newly_initialized", "unused"}``.
            dtype: a Keras dtype policy name (``"float32"``, ``"mixed_bfloat16"``) for the model.
            **config_overrides: config fields to override (``num_labels=3``); ``add_pooling_layer`` and
                ``name`` go to the model constructor instead.

        Example:
            >>> import tempfile
            >>> import numpy as np
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_tf import TFRemBertForMaskedLM
            >>> model = TFRemBertForMaskedLM(tiny_config())
            >>> directory = tempfile.mkdtemp()
            >>> files = model.save_pretrained(directory)  # config.json + model.safetensors
            >>> again = TFRemBertForMaskedLM.from_pretrained(directory)  # or "google/rembert", a .h5, a TF checkpoint
            >>> ids = np.array([[5, 6, 7]])
            >>> bool(np.allclose(model(ids).logits, again(ids).logits))
            True
        """
        from rembert_tf.loading import from_pretrained

        return from_pretrained(
            cls,
            pretrained_model_name_or_path,
            config=config,
            output_loading_info=output_loading_info,
            dtype=dtype,
            **config_overrides,
        )

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        saved_model: bool = False,
        version: int = 1,
        *,
        max_shard_size: int | str | None = None,
    ) -> list[Path]:
        """Write ``config.json`` and canonical safetensors (loadable by transformers and rembert-torch).

        Args:
            save_directory: created if needed.
            saved_model: also write a TensorFlow SavedModel with the ``serving_default`` signature of
                :meth:`export` to ``save_directory/saved_model/<version>`` (where transformers writes it).
            version: the SavedModel's version directory (TensorFlow Serving's layout).
            max_shard_size: e.g. ``"2GB"`` to split the weights into shards plus an index.

        Returns the written files (and, with ``saved_model``, the SavedModel directory).

        Example:
            >>> import tempfile
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_tf import TFRemBertModel
            >>> files = TFRemBertModel(tiny_config()).save_pretrained(tempfile.mkdtemp())
            >>> sorted(f.name for f in files)
            ['config.json', 'model.safetensors']
        """
        from rembert_tf.loading import save_pretrained

        files = save_pretrained(self, save_directory, max_shard_size=max_shard_size)
        if saved_model:
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise InputError(f"version must be a non-negative integer, got {version!r}")
            target = Path(save_directory) / "saved_model" / str(version)
            self.export(target, verbose=False)
            files.append(target)
        return files

    # -- the model API of transformers' TF classes ----------------------------------------------

    #: The input ``call`` takes first (transformers' ``main_input_name``).
    main_input_name: ClassVar[str] = "input_ids"

    def num_parameters(self, only_trainable: bool = False) -> int:
        """The number of weights (scalars), or of the trainable ones."""
        variables = self.trainable_variables if only_trainable else self.variables
        return int(sum(int(np.prod(v.shape)) for v in variables))

    def get_lm_head(self) -> keras.layers.Layer | None:
        """The LM prediction head (``cls.predictions``: dense, activation, LayerNorm, decoder), or None."""
        head = getattr(self, "cls", None)
        return None if head is None else head.predictions

    def get_bias(self) -> dict[str, Any] | None:
        """``{"decoder_bias": variable}`` of the LM head (as transformers' TF RemBERT), or None for other heads."""
        decoder = self.get_output_embeddings()
        return None if decoder is None else {"decoder_bias": decoder.bias}

    def set_bias(self, value: Mapping[str, Any]) -> None:
        """Assign the LM head's ``{"decoder_bias": (vocab_size,)}`` (same size; :meth:`resize_token_embeddings`
        changes the vocabulary).
        """
        decoder = self.get_output_embeddings()
        if decoder is None:
            raise InputError(f"{type(self).__name__} has no LM head, so no bias to set")
        if not isinstance(value, Mapping) or set(value) != {"decoder_bias"}:
            raise InputError('set_bias takes {"decoder_bias": tensor}, as get_bias returns it')
        bias = validation.to_tensor(value["decoder_bias"], "decoder_bias")
        if tuple(bias.shape) != tuple(decoder.bias.shape):
            raise InputError(
                f"decoder_bias must have shape {tuple(decoder.bias.shape)}, got {tuple(bias.shape)} "
                "(resize_token_embeddings changes the vocabulary size)"
            )
        decoder.bias.assign(tf.cast(bias, decoder.bias.dtype))

    def prepare_tf_dataset(
        self,
        dataset: Any,
        batch_size: int = 8,
        shuffle: bool = True,
        tokenizer: Any = None,
        collate_fn: Callable[..., Any] | None = None,
        collate_fn_args: dict[str, Any] | None = None,
        drop_remainder: bool | None = None,
        prefetch: bool = True,
    ) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` for ``fit`` from a ``datasets.Dataset`` (needs the ``datasets`` package).

        As transformers' method: the columns the model takes as inputs become the features, its label
        columns (``labels``, or ``label``/``label_ids`` renamed; the start/end positions) the labels;
        rows are stacked, or padded by ``tokenizer.pad``, unless ``collate_fn`` is given;
        ``drop_remainder`` defaults to ``shuffle``.

        Raises:
            ImportError: ``datasets`` is not installed.
        """
        from rembert_tf.training import prepare_tf_dataset

        return prepare_tf_dataset(
            self, dataset, batch_size, shuffle, tokenizer, collate_fn, collate_fn_args, drop_remainder, prefetch
        )

    # -- embeddings ----------------------------------------------------------------------------

    def get_input_embeddings(self) -> Embedding:
        """The word-embedding layer (``embeddings.word_embeddings``)."""
        rembert: TFRemBertMainLayer = self.rembert
        return rembert.embeddings.word_embeddings

    def set_input_embeddings(self, value: Any) -> None:
        """Assign the word embeddings: an :class:`~rembert_tf.kernels.Embedding` layer's table or an array
        ``(vocab_size, input_embedding_size)`` of the same shape (:meth:`resize_token_embeddings` resizes).
        """
        table = self.get_input_embeddings()
        weight = value.weight if isinstance(value, Embedding) else value
        weight = validation.to_tensor(weight, "value")
        if tuple(weight.shape) != tuple(table.weight.shape):
            raise InputError(
                f"the input embeddings must have shape {tuple(table.weight.shape)}, got {tuple(weight.shape)} "
                "(resize_token_embeddings changes the vocabulary size)"
            )
        table.weight.assign(tf.cast(weight, table.weight.dtype))

    def get_output_embeddings(self) -> Linear | None:
        """The LM decoder (``cls.predictions.decoder``), or None for heads without one."""
        return None

    def resize_token_embeddings(self, new_num_tokens: int | None = None) -> Embedding:
        """Resize the input word embeddings and (for LM heads) the output decoder to ``new_num_tokens`` rows.

        RemBERT's input (``input_embedding_size`` wide) and output
        (``output_embedding_size`` wide) embeddings are separate tensors, so each is
        resized on its own: existing rows are kept, new rows are set to the mean of
        the old rows (new decoder biases to the mean old bias), as ``transformers``'
        mean resizing does in expectation. Updates ``config.vocab_size``.

        Example:
            >>> import numpy as np
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_tf import TFRemBertForMaskedLM
            >>> model = TFRemBertForMaskedLM(tiny_config())  # vocab_size 301
            >>> tuple(model.resize_token_embeddings(303).weight.shape)  # (vocab, input_embedding_size)
            (303, 20)
            >>> tuple(model(np.array([[5, 302]])).logits.shape)
            (1, 2, 303)
        """
        if new_num_tokens is None:
            return self.get_input_embeddings()
        if isinstance(new_num_tokens, bool) or not isinstance(new_num_tokens, int) or new_num_tokens < 1:
            raise InputError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        pad = self.config.pad_token_id
        if pad is not None and pad >= new_num_tokens:
            raise InputError(f"new_num_tokens ({new_num_tokens}) must exceed pad_token_id ({pad})")
        table = self.get_input_embeddings()
        _resize_rows(table, "weight", new_num_tokens, transposed=False)
        table.rows = new_num_tokens
        decoder = self.get_output_embeddings()
        if decoder is not None:
            _resize_rows(decoder, "kernel", new_num_tokens, transposed=True)
            _resize_rows(decoder, "bias", new_num_tokens, transposed=False)
            decoder.out_features = new_num_tokens
        self.config.vocab_size = new_num_tokens
        return table

    # -- training ------------------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None, **kwargs: Any) -> None:
        """Keras' ``compile``; without ``loss`` the model trains on its own loss (labels in ``x`` or as ``y``).

        A flat list of ``metrics`` applies to every output of a head with several (question answering:
        ``start_logits_accuracy`` and ``end_logits_accuracy``), as in tf-keras.
        """
        from rembert_tf.training import broadcast_metrics

        super().compile(optimizer=optimizer, loss=loss, metrics=broadcast_metrics(self, metrics), **kwargs)

    def fit(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Keras' ``fit``; ``x`` (and ``validation_data``'s) may also be a ``BatchEncoding`` or other mapping."""
        if isinstance(kwargs.get("validation_data"), tuple) and kwargs["validation_data"]:
            first, *rest = kwargs["validation_data"]
            kwargs["validation_data"] = (_plain_dict(first), *rest)
        return super().fit(_plain_dict(x), y, *args, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Keras' ``evaluate``; ``x`` may also be a ``BatchEncoding`` or other mapping."""
        return super().evaluate(_plain_dict(x), y, *args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras' ``predict``; ``x`` may also be a ``BatchEncoding`` or other mapping."""
        return super().predict(_plain_dict(x), *args, **kwargs)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Keras hook of ``load_model``: compile as saved and build the optimizer (its state is loaded next)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def label_to_output_names(self) -> dict[str, str]:
        """``{label input: output field}``: ``{"labels": "logits"}``, or the start/end pair of question answering."""
        from rembert_tf.training import label_to_output_names

        return label_to_output_names(self)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """Keras hook used by ``fit``: the model's own loss when compiled without one, else the compiled loss.

        Compiled without a ``loss``, the internal PyTorch-semantics loss is used (labels in the input
        dict, or ``y`` moved there by :meth:`train_step`); with a ``loss``, it compares each label
        (``y``, or the labels in ``x``) with its output (see :mod:`rembert_tf.training`).
        """
        if isinstance(y_pred, ModelOutput):
            from rembert_tf.training import match_labels

            if getattr(self, "_compile_loss", None) is None and y_pred.get("loss") is not None:
                from rembert_tf.distributed import scale_loss_for_distribution

                # Per-replica mean; scaled like Keras' compiled losses so the replica sum is the mean's gradient.
                return scale_loss_for_distribution(y_pred["loss"])
            if getattr(self, "_compile_loss", None) is None and training:
                names = list(self.label_to_output_names())
                raise InputError(
                    f"{type(self).__name__} was compiled without a loss and got no labels: put {names} in the "
                    "input dict, pass them as y, or compile with a loss"
                    if names
                    else f"{type(self).__name__} has no loss of its own: compile it with a loss"
                )
            y, y_pred, sample_weight = match_labels(self, x, y, y_pred, sample_weight)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def train_step(self, data: Any) -> Any:
        """Keras' train step (labels given as ``y`` feed the model's own loss when compiled without one);
        under multi-worker strategies its logs come back as shape ``(1,)`` (see :meth:`test_step`).
        """
        from rembert_tf.distributed import logs_for_multi_worker
        from rembert_tf.training import labels_into_inputs

        with self._output_objects():
            return logs_for_multi_worker(super().train_step(labels_into_inputs(self, data)))

    def test_step(self, data: Any) -> Any:
        """Keras' test step; under multi-worker strategies its logs come back as shape ``(1,)``.

        Keras 3 averages each worker's logs with ``strategy.reduce("MEAN", value, axis=0)``,
        which fails on scalars (tensorflow/tensorflow#72388); a leading axis of one makes it the
        plain mean over workers, and the logs reaching callbacks are scalars again.
        """
        from rembert_tf.distributed import logs_for_multi_worker
        from rembert_tf.training import labels_into_inputs

        with self._output_objects():
            return logs_for_multi_worker(super().test_step(labels_into_inputs(self, data)))

    def predict_step(self, data: Any) -> Any:
        """Keras' predict step, giving ``predict`` a plain ``dict`` of the output's arrays.

        Keras concatenates the batches' outputs with ``keras.tree``, which cannot traverse
        the output classes: ``model.predict(x)`` returns e.g. ``{"logits": array}``, as
        ``transformers``' TF models do.
        """
        with self._output_objects():
            outputs = super().predict_step(data)
        return outputs.to_dict() if isinstance(outputs, ModelOutput) else outputs

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Keras hook (TF trainer, under a strategy): build compiled losses/metrics from one replica's batch.

        Keras averages the first distributed batch with ``strategy.reduce("MEAN", batch)`` only to
        learn its shapes, which ``MultiWorkerMirroredStrategy`` with several workers cannot do for
        a nested batch (the input dict) and raises; the first local replica's tensors have the shapes.
        """
        if iterator is not None and getattr(self, "_distribute_strategy", None) is not None:
            from rembert_tf.distributed import first_local_batch

            for _, _, batches in iterator:
                data_batch = first_local_batch(self._distribute_strategy, next(batches))
                break
            iterator = None
        with self._output_objects():
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @contextlib.contextmanager
    def _output_objects(self) -> Iterator[None]:
        """Inside Keras' steps the model returns output objects even with ``config.return_dict=False``."""
        previous = getattr(self, "_keras_step", False)
        self._keras_step = True
        try:
            yield
        finally:
            self._keras_step = previous

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Keras hook: metrics compare each label (``y``, or the labels in ``x``) with its output.

        ``labels`` with ``logits``, start/end positions with start/end logits; the token-level heads'
        metrics see only the positions not labelled -100, the causal LM's shifted (see :mod:`rembert_tf.training`).
        """
        if isinstance(y_pred, ModelOutput) and getattr(self, "_compile_metrics", None) is not None:
            from rembert_tf.training import match_labels

            y, y_pred, sample_weight = match_labels(self, x, y, y_pred, sample_weight)
            if y is None:
                names = list(self.label_to_output_names())
                raise InputError(f"the compiled metrics need labels: put {names} in the input dict or pass them as y")
        return super().compute_metrics(x, y, y_pred, sample_weight)

    # -- export --------------------------------------------------------------------------------

    def serving_input_signature(self) -> list[tf.TensorSpec]:
        """int32 ``input_ids``, ``attention_mask``, ``token_type_ids`` with dynamic batch and sequence."""
        shape = [None, None, None] if self.task == "multiple_choice" else [None, None]
        return [
            tf.TensorSpec(shape, tf.int32, name="input_ids"),
            tf.TensorSpec(shape, tf.int32, name="attention_mask"),
            tf.TensorSpec(shape, tf.int32, name="token_type_ids"),
        ]

    def serve(self, input_ids: tf.Tensor, attention_mask: tf.Tensor, token_type_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """Inference on the three int32 inputs; returns the tensor output fields as a dict."""
        kwargs: dict[str, Any] = {
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "return_dict": True,
        }
        if "use_cache" in self.INPUT_NAMES:
            kwargs["use_cache"] = False
        out = self(input_ids, training=False, **kwargs)
        return {k: v for k, v in out.items() if isinstance(v, tf.Tensor)}

    def export(
        self,
        filepath: str | os.PathLike[str],
        format: str = "tf_saved_model",
        verbose: bool = True,
        input_signature: Any = None,
        **kwargs: Any,
    ) -> None:
        """Write a TensorFlow SavedModel with a ``serve`` (= ``serving_default``) signature.

        The signature takes int32 ``input_ids``, ``attention_mask`` and
        ``token_type_ids`` of shape ``(batch, seq)`` (``(batch, choices, seq)`` for
        multiple choice), all dynamic, and returns the output fields as a dict.
        Reload with ``tf.saved_model.load(filepath).serve(...)``.

        Example:
            >>> import tempfile
            >>> import tensorflow as tf
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_tf import TFRemBertModel
            >>> directory = tempfile.mkdtemp()
            >>> TFRemBertModel(tiny_config()).export(directory, verbose=False)
            >>> ones = tf.ones((1, 3), tf.int32)
            >>> loaded = tf.saved_model.load(directory)
            >>> tuple(loaded.serve(ones, ones, 0 * ones)["last_hidden_state"].shape)  # (batch, seq, hidden_size)
            (1, 3, 48)
        """
        if format != "tf_saved_model":
            raise InputError(f"format must be 'tf_saved_model', got {format!r}")
        from keras.export import ExportArchive

        archive = ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", self.serve, input_signature=input_signature or self.serving_input_signature())
        archive.write_out(os.fspath(filepath), verbose=verbose, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """Keras config: the RemBERT config as a dict, the name, dtype policy and constructor options.

        With the classes registered as Keras serializable (package ``rembert_tf``), ``model.save("m.keras")``
        and ``keras.models.load_model("m.keras")`` round-trip without ``custom_objects``.
        """
        config: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "config": self.config.to_dict(),
        }
        if self.task == "base":
            config["add_pooling_layer"] = getattr(self.rembert, "pooler", None) is not None
        return config

    @classmethod
    def from_config(cls, config: Any, custom_objects: Any = None, **kwargs: Any) -> Any:
        """A model with fresh weights from a :class:`~rembert_core.RemBertConfig`, its dict or :meth:`get_config`.

        As transformers' ``TFPreTrainedModel.from_config``: ``kwargs`` go to the constructor
        (``name``, ``dtype``, ``add_pooling_layer`` for the bare model).

        Example:
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_tf import TFRemBertForMaskedLM
            >>> model = TFRemBertForMaskedLM.from_config(tiny_config().to_dict())
            >>> model.config.vocab_size == tiny_config().vocab_size
            True
        """
        if isinstance(config, RemBertConfig):
            return cls(config, **kwargs)
        if not isinstance(config, Mapping):
            raise ConfigError(f"from_config takes a RemBertConfig or a dict, got {type(config).__name__}")
        inner = config.get("config")
        if not isinstance(inner, Mapping | RemBertConfig):  # a RemBertConfig dict itself
            return cls(RemBertConfig.from_dict(dict(config)), **kwargs)
        options = {k: config[k] for k in ("name", "trainable", "add_pooling_layer") if k in config}
        if config.get("dtype") is not None:
            options["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        rembert_config = inner if isinstance(inner, RemBertConfig) else RemBertConfig.from_dict(dict(inner))
        return cls(rembert_config, **{**options, **kwargs})


def _plain_dict(x: Any) -> Any:
    """A mapping that is not a ``dict`` (transformers' ``BatchEncoding``) or a dict subclass (ours) as a plain
    ``dict``: Keras' data adapters recognise only those.
    """
    return dict(x) if isinstance(x, Mapping) and type(x) is not dict else x


def _flag(value: Any, default: Any) -> bool:
    """A call's output flag, or the config's when the call leaves it ``None`` (as transformers does)."""
    return bool(default if value is None else value)


def _named(namespace: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The call arguments in ``names`` (but ``input_ids``) from a ``locals()`` snapshot."""
    return {k: namespace[k] for k in names if k != "input_ids" and k in namespace}


def _walk_canonical(obj: Any, prefix: str, out: dict[str, tuple[Any, bool]]) -> None:
    if obj is None:
        return
    if isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            _walk_canonical(item, f"{prefix}{i}.", out)
        return
    params = getattr(obj, "canonical_params", None)
    if params is not None:
        for suffix, entry in params().items():
            out[prefix + suffix] = entry
    for segment, attr in getattr(obj, "CANONICAL_CHILDREN", {}).items():
        child_prefix = prefix if segment == "" else f"{prefix}{segment}."
        _walk_canonical(getattr(obj, attr, None), child_prefix, out)


def _canonical_value(var: Any, transposed: bool) -> np.ndarray:
    value = var.numpy()
    return np.ascontiguousarray(value.T) if transposed else value


def _resize_rows(layer: keras.layers.Layer, attr: str, rows: int, *, transposed: bool) -> None:
    """Replace ``layer.<attr>`` by a variable with ``rows`` rows (columns when ``transposed``)."""
    old = getattr(layer, attr)
    value = old.numpy()
    canonical = value.T if transposed else value
    n_old = canonical.shape[0]
    if rows <= n_old:
        new = canonical[:rows]
    else:
        fill = canonical.mean(axis=0, keepdims=True)
        new = np.concatenate([canonical, np.repeat(fill, rows - n_old, axis=0)], axis=0)
    new = np.ascontiguousarray(new.T if transposed else new)
    delattr(layer, attr)
    variable = layer.add_weight(name=attr, shape=new.shape, initializer="zeros", dtype=old.dtype)
    variable.assign(new)
    setattr(layer, attr, variable)
