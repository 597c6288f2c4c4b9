"""``transformers_tf``: transformers' TensorFlow RemBERT classes (on tf-keras) behind the Backend contract.

transformers names its TF variables after the PyTorch ``state_dict`` keys (``.../attention/self/query/kernel``
is ``...attention.self.query.weight``, transposed); its own ``convert_tf_weight_name_to_pt_weight_name`` gives
each variable its canonical name and layout, which is all loading, exporting and gradients need. TensorFlow,
tf-keras and transformers are imported when the backend is first used.

Losses: transformers' TF heads return per-example losses for sequence classification, multiple choice and
question answering, and a ``(1,)``-shaped mean for the language-model and token heads. The backend reports
their mean, the convention of the PyTorch classes that the contract follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rembert_core import TASKS, Backend, CheckpointError, InputError, RemBertConfig
from rembert_reference._common import (
    architecture,
    check_ids,
    quiet_transformers,
    reference_config,
    transformers_version,
)

__all__ = ["TransformersTFBackend", "TransformersTFModel"]

_FLOAT_INPUTS = ("inputs_embeds", "encoder_hidden_states")
_LABELS = ("labels", "start_positions", "end_positions")


@dataclass
class TransformersTFModel:
    """What :meth:`TransformersTFBackend.build_model` returns: the built Keras model and its variables by name."""

    module: Any  # transformers.TFRemBertFor... (a tf-keras Model), built
    task: str
    #: canonical name -> (variable, transposed: the variable holds the canonical tensor transposed)
    variables: dict[str, tuple[Any, bool]] = field(default_factory=dict)


class TransformersTFBackend(Backend):
    """transformers 4.57's RemBERT TensorFlow classes (``TFRemBertModel``, ...), in float32, inference mode."""

    name = "transformers_tf"
    distribution = "rembert-reference"
    tasks = TASKS
    dtypes = ("float32",)
    requires = ("tensorflow", "tf_keras", "transformers")
    #: transformers' TF classes add -10000 to masked scores where its PyTorch classes add the dtype's minimum,
    #: so a row that is padding only attends as if unmasked: parity compares this backend on the other rows.
    padding_only_rows = False

    def __init__(self) -> None:
        self.version = transformers_version()
        self.reference = f"transformers {self.version} (TensorFlow classes, tf-keras)"

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> TransformersTFModel:
        """transformers' TF class for ``task``, built on its dummy inputs; weights random until loaded."""
        import transformers
        from transformers.modeling_tf_pytorch_utils import convert_tf_weight_name_to_pt_weight_name

        if dtype not in self.dtypes:
            raise InputError(
                f"dtype {dtype!r} is not supported by the {self.name} backend; choose one of {self.dtypes}"
            )
        cls = getattr(transformers, "TF" + architecture(task))
        with quiet_transformers():
            module = cls(reference_config(config))
            module(module.dummy_inputs, training=False)
        # The bare model's canonical names have no "rembert." prefix; its TF variables do (the main layer).
        prefix = f"{module.base_model_prefix}." if task == "base" else ""
        model = TransformersTFModel(module, task)
        for variable in module.weights:
            name, transpose = convert_tf_weight_name_to_pt_weight_name(
                variable.name, start_prefix_to_remove=prefix, tf_weight_shape=variable.shape
            )
            model.variables[name] = (variable, transpose.name != "NO")
        return model

    def load_tensors(self, model: TransformersTFModel, tensors: Mapping[str, np.ndarray]) -> None:
        """Assign every variable from its canonical tensor (transposed where transformers' TF layout differs)."""
        missing = [name for name in model.variables if name not in tensors]
        if missing:
            raise CheckpointError(f"{len(missing)} tensors missing for {model.task}, e.g. {missing[0]!r}")
        for name, (variable, transpose) in model.variables.items():
            array = np.asarray(tensors[name], dtype=np.float32)
            variable.assign(array.T if transpose else array)

    def export_tensors(self, model: TransformersTFModel) -> dict[str, np.ndarray]:
        """Every variable as a canonical float32 tensor."""
        out: dict[str, np.ndarray] = {}
        for name, (variable, transpose) in model.variables.items():
            array = np.asarray(variable.numpy(), dtype=np.float32)
            out[name] = np.ascontiguousarray(array.T) if transpose else array
        return out

    @staticmethod
    def _inputs(inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        import tensorflow as tf

        out: dict[str, Any] = {}
        for key, value in inputs.items():
            if value is None:
                continue
            array = np.asarray(value)
            if key in _FLOAT_INPUTS or array.dtype.kind == "f":
                out[key] = tf.constant(array, dtype=tf.float32)
            else:
                out[key] = tf.constant(array, dtype=tf.int64)
        return out

    def forward(
        self,
        model: TransformersTFModel,
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        """Run the transformers TF model (``training=False``); outputs as float32 NumPy arrays."""
        import tensorflow as tf

        check_ids(inputs, model.module.config)
        kwargs = self._inputs(inputs)
        if past_key_values is not None:
            kwargs["past_key_values"] = tuple(
                tuple(tf.constant(np.asarray(a, dtype=np.float32)) for a in layer) for layer in past_key_values
            )
        if model.task in ("base", "causal_lm"):
            kwargs["use_cache"] = use_cache
        with quiet_transformers():
            out = model.module(
                **kwargs,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
                training=False,
            )
        result = {key: _numpy(value) for key, value in out.items() if value is not None}
        if "loss" in result:
            result["loss"] = np.asarray(np.mean(result["loss"]), dtype=np.float32)
        return result

    def gradients(
        self, model: TransformersTFModel, inputs: Mapping[str, np.ndarray]
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The mean loss and its gradient with respect to every canonical tensor (float32, canonical layout)."""
        import tensorflow as tf

        check_ids(inputs, model.module.config)
        kwargs = self._inputs(inputs)
        if not any(k in kwargs for k in _LABELS):
            raise InputError("gradients need labels (or start_positions and end_positions) in the inputs")
        names = list(model.variables)
        variables = [model.variables[name][0] for name in names]
        with tf.GradientTape() as tape, quiet_transformers():
            out = model.module(**kwargs, return_dict=True, training=False)
            loss = tf.reduce_mean(out.loss)
        grads: dict[str, np.ndarray] = {}
        for name, variable, grad in zip(names, variables, tape.gradient(loss, variables), strict=True):
            if grad is None:
                value = np.zeros(tuple(variable.shape), np.float32)
            else:
                value = np.asarray(tf.convert_to_tensor(grad).numpy(), dtype=np.float32)  # IndexedSlices too
            grads[name] = np.ascontiguousarray(value.T) if model.variables[name][1] else value
        pad = model.module.config.pad_token_id
        for name in (n for n in grads if n.endswith("embeddings.word_embeddings.weight")):
            if pad is not None:
                grads[name][pad] = 0.0  # the PyTorch classes' padding_idx: the padding row is never trained
        return float(loss.numpy()), grads


def _numpy(value: Any) -> Any:
    """TF tensors to float32 NumPy arrays (ids stay ints), tuples to lists, cache layers to tuples."""
    if hasattr(value, "numpy"):
        array = np.asarray(value.numpy())
        return array.astype(np.float32) if array.dtype.kind == "f" else array
    if isinstance(value, tuple | list):
        items = [_numpy(v) for v in value]
        return items if all(isinstance(v, np.ndarray) for v in items) else [tuple(v) for v in items]
    return value
