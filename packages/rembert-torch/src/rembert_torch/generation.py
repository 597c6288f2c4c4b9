"""Text generation for :class:`~rembert_torch.RemBertForCausalLM`: greedy or sampled, with the key/value cache.

:class:`GenerationMixin` holds ``generate`` and what only it uses; the model class holds the forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rembert_core import InputError, RemBertConfig
from rembert_torch.validation import check_shape, require_int_tensor, require_tensor

__all__ = ["GenerationMixin"]

Tensor = torch.Tensor


class GenerationMixin:
    """``generate`` for a causal LM whose forward takes ``past_key_values`` and returns ``logits``."""

    config: RemBertConfig

    if TYPE_CHECKING:

        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
    ) -> Tensor:
        """Extend ``input_ids`` by up to ``max_new_tokens`` tokens, greedily or by sampling, using the cache.

        Positions come from the attention mask (``cumsum - 1``), as in the
        reference's ``generate``, so left-padded batches work. A sequence that
        produced ``eos_token_id`` (default ``config.eos_token_id``) is continued with
        ``pad_token_id``; generation stops when all have.

        Args:
            input_ids: (batch, seq) prompt ids.
            attention_mask: (batch, seq) prompt mask (default all ones).
            max_new_tokens: number of tokens to add at most.
            do_sample: sample from the (temperature / top-k / top-p filtered) distribution instead of argmax.
            temperature: divides the logits when sampling (> 0).
            top_k: keep the k most likely tokens when sampling.
            top_p: keep the smallest set of tokens whose probability reaches top_p when sampling.
            eos_token_id: stop token (None: ``config.eos_token_id``; -1 never stops early).
            pad_token_id: filler after eos (None: ``config.pad_token_id``, else eos).
            use_cache: reuse keys/values between steps (decoders).
            generator: random generator for sampling.
            encoder_hidden_states: cross-attention inputs, as in ``forward``.
            encoder_attention_mask: their mask, as in ``forward``.

        Returns:
            (batch, seq + generated) token ids.

        Example:
            >>> import torch
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_torch import RemBertForCausalLM
            >>> model = RemBertForCausalLM(tiny_config(is_decoder=True)).eval()
            >>> prompt = torch.tensor([[0, 5, 6], [7, 8, 9]])  # left-padded batch
            >>> mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
            >>> out = model.generate(prompt, mask, max_new_tokens=4, eos_token_id=-1)
            >>> again = model.generate(prompt, mask, max_new_tokens=4, eos_token_id=-1, use_cache=False)
            >>> out.shape, torch.equal(out, again)
            (torch.Size([2, 7]), True)
            >>> sampled = model.generate(prompt, mask, max_new_tokens=4, do_sample=True, top_k=10, top_p=0.9,
            ...                          generator=torch.Generator().manual_seed(0))
        """
        ids = require_int_tensor(input_ids, "input_ids")
        if ids.dim() != 2 or ids.shape[1] < 1:
            raise InputError(f"input_ids must have shape (batch, seq) with seq >= 1, got {tuple(ids.shape)}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        if ids.shape[1] + max_new_tokens > self.config.max_position_embeddings:
            raise InputError(
                f"prompt length {ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                f"max_position_embeddings={self.config.max_position_embeddings}"
            )
        if do_sample and not temperature > 0:
            raise InputError(f"temperature must be > 0 when sampling, got {temperature}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise InputError(f"top_p must be in (0, 1], got {top_p}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        eos = None if eos is not None and eos < 0 else eos
        pad = pad_token_id if pad_token_id is not None else self.config.pad_token_id
        pad = pad if pad is not None else (eos if eos is not None else 0)
        mask = torch.ones_like(ids) if attention_mask is None else require_tensor(attention_mask, "attention_mask")
        check_shape(mask, "attention_mask", tuple(ids.shape), "same as input_ids")
        mask = mask.to(torch.long)
        cache = use_cache and self.config.is_decoder
        past: Any = None
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # (batch, total)
            step_ids, step_pos = (ids[:, -1:], positions[:, -1:]) if past is not None else (ids, positions)
            out = self(
                step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                past_key_values=past,
                use_cache=cache,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                return_dict=True,
            )
            past = out.past_key_values if cache else None
            scores = out.logits[:, -1, :].float()  # (batch, vocab)
            next_tokens = _sample(scores / temperature, top_k, top_p, generator) if do_sample else scores.argmax(dim=-1)
            next_tokens = torch.where(finished, torch.full_like(next_tokens, pad), next_tokens)
            ids = torch.cat([ids, next_tokens[:, None]], dim=-1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            if eos is not None:
                finished = finished | (next_tokens == eos)
                if bool(finished.all()):
                    break
        return ids


def _sample(logits: Tensor, top_k: int | None, top_p: float | None, generator: torch.Generator | None) -> Tensor:
    """One token per row from softmax(logits) restricted by top-k then top-p. (batch, vocab) -> (batch,)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (batch, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # keep the token that crosses top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
