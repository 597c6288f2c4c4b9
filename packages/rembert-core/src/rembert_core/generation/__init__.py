"""Generation shared by every framework: :class:`GenerationConfig` and the decoding loop (:class:`Decoding`).

A framework's ``generate`` builds a :class:`Decoding`, runs the model on each :meth:`Decoding.next_step`
and hands the last position's logits to :meth:`Decoding.advance`; everything else (lengths, special
tokens, logits processors, greedy, sampling, beam search, stopping) lives here once.
"""

from __future__ import annotations

from rembert_core.generation.config import (
    GENERATE_UNSUPPORTED,
    GENERATION_CONFIG_NAME,
    GENERATION_DEFAULTS,
    MODEL_KWARGS,
    GenerationConfig,
    split_generate_kwargs,
)
from rembert_core.generation.search import Decoding, DecodingResult, Step, process_logits, transition_scores

__all__ = [
    "GENERATE_UNSUPPORTED",
    "GENERATION_CONFIG_NAME",
    "GENERATION_DEFAULTS",
    "MODEL_KWARGS",
    "Decoding",
    "DecodingResult",
    "GenerationConfig",
    "Step",
    "process_logits",
    "split_generate_kwargs",
    "transition_scores",
]
