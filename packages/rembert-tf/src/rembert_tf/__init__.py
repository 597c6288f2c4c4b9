"""rembert-tf: RemBERT for TensorFlow / Keras 3, loading the canonical checkpoints without torch.

The model classes import TensorFlow and Keras 3 (``import keras``, never
``tf_keras``) on first access (PEP 562 lazy attributes), so ``rembert_tf.plugin``
and ``rembert_tf.outputs`` can be imported without loading TensorFlow. Keras 3
must run on its TensorFlow backend, which is its default:
the package sets no environment variable and raises ImportError with the fix if
``KERAS_BACKEND`` selects another backend. ``TF_USE_LEGACY_KERAS`` only affects
``tf.keras`` and does not matter here.

Example:
    >>> import numpy as np
    >>> from rembert_tf import RemBertConfig, TFRemBertForMaskedLM
    >>> config = RemBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...                        input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
    >>> out = TFRemBertForMaskedLM(config)(np.array([[5, 6, 7]]))
    >>> tuple(out.logits.shape)
    (1, 3, 100)
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

from rembert_core import RemBertConfig
from rembert_tf.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from rembert_tf.pipelines import pipeline  # imports no TensorFlow until a model runs

if TYPE_CHECKING:
    from rembert_tf.modeling import (
        TFRemBertForCausalLM,
        TFRemBertForMaskedLM,
        TFRemBertForMultipleChoice,
        TFRemBertForQuestionAnswering,
        TFRemBertForSequenceClassification,
        TFRemBertForTokenClassification,
        TFRemBertMainLayer,
        TFRemBertModel,
        TFRemBertPreTrainedModel,
    )

#: Names resolved from rembert_tf.modeling on first access (importing TensorFlow then).
_LAZY = frozenset(
    {
        "TFRemBertForCausalLM",
        "TFRemBertForMaskedLM",
        "TFRemBertForMultipleChoice",
        "TFRemBertForQuestionAnswering",
        "TFRemBertForSequenceClassification",
        "TFRemBertForTokenClassification",
        "TFRemBertMainLayer",
        "TFRemBertModel",
        "TFRemBertPreTrainedModel",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("rembert_tf.modeling"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rembert_tf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)


try:
    __version__ = metadata.version("rembert-tf")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

__all__ = [
    "BaseModelOutputWithPastAndCrossAttentions",
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "RemBertConfig",
    "SequenceClassifierOutput",
    "TFRemBertForCausalLM",
    "TFRemBertForMaskedLM",
    "TFRemBertForMultipleChoice",
    "TFRemBertForQuestionAnswering",
    "TFRemBertForSequenceClassification",
    "TFRemBertForTokenClassification",
    "TFRemBertMainLayer",
    "TFRemBertModel",
    "TFRemBertPreTrainedModel",
    "TokenClassifierOutput",
    "__version__",
    "pipeline",
]
