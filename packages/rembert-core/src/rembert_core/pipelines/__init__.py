"""Pipelines: transformers' ``pipeline()`` tasks, written once without a framework, run on any backend.

The pre- and post-processing of every task lives here, in NumPy; a model is reached only through a
:class:`ModelRunner` (NumPy ids in, NumPy outputs out). :func:`pipeline` builds the model of a
checkpoint on any registered backend (``"numpy"``, ``"torch"``, ``"tf"``, a third party's) through the
:class:`~rembert_core.Backend` contract, so a backend plugin gets every task without pipeline code;
``rembert_torch.pipeline`` and ``rembert_tf.pipeline`` also take their framework's model objects.

Example:
    >>> from rembert_core.pipelines import TASKS
    >>> sorted(TASKS)[:3]
    ['feature-extraction', 'fill-mask', 'question-answering']
"""

from __future__ import annotations

from rembert_core.pipelines.base import BackendRunner, Feature, ModelRunner, Pipeline
from rembert_core.pipelines.factory import (
    ALIASES,
    TASKS,
    checkpoint_directory,
    head_for,
    load_runner,
    load_tokenizer,
    make_pipeline,
    model_and_tokenizer,
    pipeline,
    resolve_task,
)
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
    "BackendRunner",
    "Feature",
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "ModelRunner",
    "Pipeline",
    "QuestionAnsweringPipeline",
    "TextClassificationPipeline",
    "TextGenerationPipeline",
    "TokenClassificationPipeline",
    "ZeroShotClassificationPipeline",
    "checkpoint_directory",
    "head_for",
    "load_runner",
    "load_tokenizer",
    "make_pipeline",
    "model_and_tokenizer",
    "pipeline",
    "resolve_task",
]
