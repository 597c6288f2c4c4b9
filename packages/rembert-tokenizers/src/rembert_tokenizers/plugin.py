"""The ``rembert`` plugin of rembert-tokenizers: registers both tokenizers with the core hook.

Importing this module imports neither ``sentencepiece`` nor ``tokenizers``: the specs
name the classes by import path, loaded on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from rembert_core import TokenizerSpec, hookimpl

__all__ = ["TOKENIZER_SPECS", "register_tokenizers"]

TOKENIZER_SPECS = (
    TokenizerSpec(
        "sentencepiece",
        "rembert_tokenizers:RemBertTokenizer",
        kind="slow",
        description="RemBERT tokenizer on sentencepiece (the reference slow tokenizer's ids)",
    ),
    TokenizerSpec(
        "fast",
        "rembert_tokenizers:RemBertTokenizerFast",
        kind="fast",
        description="RemBERT tokenizer on HF tokenizers (same ids as 'sentencepiece', batched in Rust)",
    ),
)


@hookimpl
def register_tokenizers(register: Callable[[TokenizerSpec], None]) -> None:
    """Register ``sentencepiece`` (slow) and ``fast``."""
    for spec in TOKENIZER_SPECS:
        register(spec)
