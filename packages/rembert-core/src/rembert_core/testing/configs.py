"""The small configs every test suite and docstring uses, written once.

Import :func:`tiny_config` from :mod:`rembert_core.testing`; it needs neither pytest nor a framework.
"""

from __future__ import annotations

from typing import Any

from rembert_core.config import RemBertConfig

__all__ = ["TEST_CONFIGS", "tiny_config"]

#: Small configs of the test suites, by name, as keyword arguments of :class:`RemBertConfig`. Each one
#: stresses something: "tiny" is :func:`tiny_config` (the parity engine's and the docstrings' config);
#: "odd" has head_dim 8 over 6 heads, widths 20/36, vocab 301, 3 token types; "wide" a gelu_new config
#: with another epsilon, init range and pad id; "relu" one relu layer with an output embedding wider
#: than the hidden size; "small" and "deep" the TensorFlow suite's configs (3 layers, intermediate 52);
#: "micro" the robustness suite's (one narrow layer, so thousands of fuzzed loads stay fast).
TEST_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=301,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=6,
        input_embedding_size=20,
        output_embedding_size=36,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=3,
        num_labels=3,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "odd": dict(
        vocab_size=301,
        hidden_size=48,
        num_attention_heads=6,
        num_hidden_layers=2,
        input_embedding_size=20,
        output_embedding_size=36,
        intermediate_size=64,
        type_vocab_size=3,
        max_position_embeddings=40,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "wide": dict(
        vocab_size=97,
        hidden_size=32,
        num_attention_heads=4,
        num_hidden_layers=3,
        input_embedding_size=16,
        output_embedding_size=24,
        intermediate_size=37,
        type_vocab_size=2,
        max_position_embeddings=32,
        hidden_act="gelu_new",
        layer_norm_eps=1e-6,
        initializer_range=0.05,
        pad_token_id=3,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "relu": dict(
        vocab_size=64,
        hidden_size=24,
        num_attention_heads=3,
        num_hidden_layers=1,
        input_embedding_size=12,
        output_embedding_size=40,
        intermediate_size=30,
        type_vocab_size=4,
        max_position_embeddings=24,
        hidden_act="relu",
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "small": dict(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        input_embedding_size=16,
        output_embedding_size=24,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=2,
    ),
    "deep": dict(
        vocab_size=301,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=6,
        input_embedding_size=20,
        output_embedding_size=36,
        intermediate_size=52,
        max_position_embeddings=64,
        type_vocab_size=3,
    ),
    "micro": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        input_embedding_size=8,
        output_embedding_size=12,
        intermediate_size=24,
        max_position_embeddings=32,
        type_vocab_size=2,
    ),
}


def tiny_config(name: str = "tiny", **changes: Any) -> RemBertConfig:
    """A small :class:`RemBertConfig` from :data:`TEST_CONFIGS` (default ``"tiny"``), with ``changes`` applied.

    Example:
        >>> from rembert_core.testing import tiny_config
        >>> config = tiny_config(num_labels=5)
        >>> config.hidden_size, config.num_attention_heads, config.num_labels
        (48, 6, 5)
    """
    if name not in TEST_CONFIGS:
        raise KeyError(f"unknown test config {name!r}; choose one of {sorted(TEST_CONFIGS)}")
    return RemBertConfig(**{**TEST_CONFIGS[name], **changes})
