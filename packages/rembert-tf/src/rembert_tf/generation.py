"""Greedy decoding for the causal LM: :class:`TFGenerationMixin`, inherited by ``TFRemBertForCausalLM``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rembert_core import InputError, RemBertConfig
from rembert_tf._tensorflow import tf
from rembert_tf.validation import Tensor, require_rank, to_tensor

__all__ = ["TFGenerationMixin"]


class TFGenerationMixin:
    """Adds :meth:`generate` to a model whose call returns ``logits`` and ``past_key_values``."""

    if TYPE_CHECKING:
        config: RemBertConfig

        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        max_new_tokens: int = 20,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        use_cache: bool = True,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
    ) -> tf.Tensor:
        """Greedy decoding, as ``transformers``' ``generate(do_sample=False)``.

        Args:
            input_ids: int ``(batch, prompt_len)``.
            attention_mask: 0/1 ``(batch, prompt_len)`` (left padding); default: ``input_ids != pad_token_id``
                when the prompt contains the pad token, else all ones.
            max_new_tokens: tokens to add.
            eos_token_id / pad_token_id: default from the config; a sequence that produced ``eos`` is then
                padded with ``pad``; decoding stops when all have.
            use_cache: decode incrementally with the key/value cache (same result as without).

        Returns:
            int32 ``(batch, prompt_len + generated)``.

        Example:
            >>> import numpy as np
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_tf import TFRemBertForCausalLM
            >>> config = tiny_config(is_decoder=True, eos_token_id=None)  # no end token: always 4 new tokens
            >>> model = TFRemBertForCausalLM(config)
            >>> out = model.generate(np.array([[5, 6, 7]]), max_new_tokens=4)
            >>> tuple(out.shape)
            (1, 7)
            >>> bool(np.array_equal(out, model.generate(np.array([[5, 6, 7]]), max_new_tokens=4, use_cache=False)))
            True
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        ids = tf.cast(to_tensor(input_ids, "input_ids"), tf.int32)
        require_rank(ids, "input_ids", (2,), "(batch, seq)")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
        if attention_mask is None:
            if pad is not None and pad != eos and bool(tf.reduce_any(ids == pad)):
                mask = tf.cast(ids != pad, tf.int32)
            else:
                mask = tf.ones_like(ids)
        else:
            mask = tf.cast(to_tensor(attention_mask, "attention_mask"), tf.int32)
        finished = tf.zeros([tf.shape(ids)[0]], dtype=tf.bool)
        past = None
        for _ in range(max_new_tokens):
            positions = tf.cumsum(mask, axis=-1) - 1
            positions = tf.where(mask == 0, tf.ones_like(positions), positions)
            if past is None:
                step_ids, step_positions = ids, positions
            else:
                step_ids, step_positions = ids[:, -1:], positions[:, -1:]
            out = self(
                step_ids,
                attention_mask=mask,
                position_ids=step_positions,
                past_key_values=past,
                use_cache=use_cache,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                training=False,
            )
            next_ids = tf.cast(tf.argmax(out.logits[:, -1, :], axis=-1), tf.int32)
            if eos is not None:
                if pad is not None:
                    next_ids = tf.where(finished, tf.fill(tf.shape(next_ids), pad), next_ids)
                finished = tf.logical_or(finished, next_ids == eos)
            ids = tf.concat([ids, next_ids[:, None]], axis=1)
            mask = tf.concat([mask, tf.ones_like(next_ids)[:, None]], axis=1)
            past = out.past_key_values if use_cache else None
            if eos is not None and bool(tf.reduce_all(finished)):
                break
        return ids
