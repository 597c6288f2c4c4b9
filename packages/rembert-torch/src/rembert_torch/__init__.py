"""rembert-torch: RemBERT for PyTorch, numerically interchangeable with transformers 4.57.

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

from importlib import metadata

from rembert_core import RemBertConfig
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

try:
    __version__ = metadata.version("rembert-torch")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

#: The model class of each core task (``rembert_core.TASKS``).
TASK_CLASSES: dict[str, type[RemBertPreTrainedModel]] = {
    "base": RemBertModel,
    "masked_lm": RemBertForMaskedLM,
    "causal_lm": RemBertForCausalLM,
    "sequence_classification": RemBertForSequenceClassification,
    "multiple_choice": RemBertForMultipleChoice,
    "token_classification": RemBertForTokenClassification,
    "question_answering": RemBertForQuestionAnswering,
}

__all__ = [
    "TASK_CLASSES",
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
]
