"""rembert-torch: RemBERT for PyTorch, numerically interchangeable with transformers 4.57.

The model classes are imported on first access, so that ``rembert_torch.plugin``
(the ``torch`` backend's entry point) can be imported to *list* the backend
without importing torch.

Example:
    >>> import torch
    >>> from rembert_torch import RemBertConfig, RemBertForMaskedLM
    >>> config = RemBertConfig(vocab_size=301, hidden_size=48, num_attention_heads=6, num_hidden_layers=2,
    ...     input_embedding_size=20, output_embedding_size=36, intermediate_size=64)
    >>> model = RemBertForMaskedLM(config).eval()
    >>> model(torch.tensor([[5, 6, 7]])).logits.shape
    torch.Size([1, 3, 301])
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

from rembert_core import ARCHITECTURES, RemBertConfig

if TYPE_CHECKING:
    from rembert_torch.modeling import (
        RemBertForCausalLM,
        RemBertForMaskedLM,
        RemBertForMultipleChoice,
        RemBertForQuestionAnswering,
        RemBertForSequenceClassification,
        RemBertForTokenClassification,
        RemBertModel,
        RemBertPreTrainedModel,
    )
    from rembert_torch.outputs import (
        BaseModelOutputWithPoolingAndCrossAttentions,
        CausalLMOutputWithCrossAttentions,
        MaskedLMOutput,
        ModelOutput,
        MultipleChoiceModelOutput,
        QuestionAnsweringModelOutput,
        SequenceClassifierOutput,
        TokenClassifierOutput,
    )
    from rembert_torch.pipelines import pipeline

try:
    __version__ = metadata.version("rembert-torch")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

_MODELING = (
    "RemBertForCausalLM",
    "RemBertForMaskedLM",
    "RemBertForMultipleChoice",
    "RemBertForQuestionAnswering",
    "RemBertForSequenceClassification",
    "RemBertForTokenClassification",
    "RemBertModel",
    "RemBertPreTrainedModel",
)
_OUTPUTS = (
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
)
_LAZY = {**dict.fromkeys(_MODELING, "rembert_torch.modeling"), **dict.fromkeys(_OUTPUTS, "rembert_torch.outputs")}
_LAZY["pipeline"] = "rembert_torch.pipelines"

#: Task name (``rembert_core.TASKS``) -> model class name (the core table: the reference names).
TASK_CLASS_NAMES: dict[str, str] = dict(ARCHITECTURES)


def __getattr__(name: str) -> Any:
    if name == "TASK_CLASSES":
        modeling = importlib.import_module("rembert_torch.modeling")
        value: Any = {task: getattr(modeling, cls) for task, cls in TASK_CLASS_NAMES.items()}
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'rembert_torch' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


#: The model class of each core task (``rembert_core.TASKS``); imported on first access.
TASK_CLASSES: dict[str, type[RemBertPreTrainedModel]]

__all__ = [
    "TASK_CLASSES",
    "TASK_CLASS_NAMES",
    "BaseModelOutputWithPoolingAndCrossAttentions",
    "CausalLMOutputWithCrossAttentions",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "RemBertConfig",
    "RemBertForCausalLM",
    "RemBertForMaskedLM",
    "RemBertForMultipleChoice",
    "RemBertForQuestionAnswering",
    "RemBertForSequenceClassification",
    "RemBertForTokenClassification",
    "RemBertModel",
    "RemBertPreTrainedModel",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
    "__version__",
    "pipeline",
]
