"""Names of Google's original TensorFlow RemBERT checkpoints (``model.ckpt-*``), mapped to the canonical layout.

The reading itself needs TensorFlow and lives in rembert-tf (the ``tf_checkpoint``
format); the mapping is declarative and lives here, beside the other name maps.

The original variables follow BERT's layout (``bert/encoder/layer_3/attention/
self/query/kernel``) plus RemBERT's decoupled output embedding. Unlike the
reference converter, which drops them, the masked-LM head (``cls/predictions/
transform/…``, ``cls/predictions/output_bias``) and the output embedding are
kept: a pre-training checkpoint converts to a complete ``RemBertForMaskedLM``.
Optimizer slots (``adam_m``, ``adam_v``) and ``global_step`` are skipped; any
other name that no rule maps is kept as it is, so the schema check lists it.
"""

from __future__ import annotations

import re

__all__ = ["TF_CHECKPOINT_RULES", "TF_CHECKPOINT_SKIP", "tf_checkpoint_name"]

#: Variables that are not model weights.
TF_CHECKPOINT_SKIP = re.compile(r"(^|/)(adam_[mv]|AdamWeightDecayOptimizer(_\d+)?|global_step)(/|$)")

#: Renames applied in order to an original variable name; the result uses "/" until the last rule.
TF_CHECKPOINT_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^bert/", "rembert/"),
        (r"/layer_(\d+)/", r"/layer/\1/"),
        # the masked-LM head: BERT's transform block, RemBERT's decoupled output embedding
        (r"^cls/predictions/transform/", "cls/predictions/"),
        (r"^cls/predictions/output_bias$", "cls/predictions/decoder/bias"),
        (r"^(?:.*/)?output_embedding(?:s)?(?:/weight)?$", "cls/predictions/decoder/weight"),
        # leaves
        (r"/(kernel|gamma|output_weights)$", "/weight"),
        (r"/(beta|output_bias)$", "/bias"),
        (r"_embeddings$", "_embeddings/weight"),  # embedding tables are variables of their own
        (r"/", "."),
    )
)


def tf_checkpoint_name(variable: str) -> tuple[str, bool] | None:
    """``(canonical name, transpose)`` of an original checkpoint variable, or None when it is skipped.

    ``transpose`` is True for dense kernels, stored ``[in, out]``.

    Example:
        >>> tf_checkpoint_name("bert/encoder/layer_3/attention/self/query/kernel")
        ('rembert.encoder.layer.3.attention.self.query.weight', True)
        >>> tf_checkpoint_name("cls/predictions/transform/LayerNorm/gamma")
        ('cls.predictions.LayerNorm.weight', False)
        >>> tf_checkpoint_name("bert/encoder/layer_0/output/dense/kernel/adam_m") is None
        True
    """
    if TF_CHECKPOINT_SKIP.search(variable):
        return None
    transpose = variable.endswith("/kernel")
    name = variable
    for pattern, replacement in TF_CHECKPOINT_RULES:
        name = pattern.sub(replacement, name)
    return name, transpose
