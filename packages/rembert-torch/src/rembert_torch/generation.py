"""Text generation for :class:`~rembert_torch.RemBertForCausalLM`, as transformers' ``generate``.

The decoding rules (lengths, special tokens, logits processors, greedy, sampling, beam search,
stopping) live once in :mod:`rembert_core.generation`; this module supplies the forward pass: it
feeds each :class:`~rembert_core.generation.Step` to the model with its key/value cache, reorders the
cache for beam search, and returns tensors. Defaults come from ``model.generation_config``
(``generation_config.json`` next to the checkpoint), overridden per call.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rembert_core import InputError, RemBertConfig
from rembert_core.generation import Decoding, GenerationConfig, split_generate_kwargs, transition_scores
from rembert_torch.outputs import ModelOutput, _register_pytree
from rembert_torch.validation import check_shape, require_int_tensor, require_tensor

__all__ = ["GenerateBeamDecoderOnlyOutput", "GenerateDecoderOnlyOutput", "GenerationMixin"]

Tensor = torch.Tensor


@dataclass
class GenerateDecoderOnlyOutput(ModelOutput):
    """``generate(..., return_dict_in_generate=True)`` for greedy search and sampling.

    Attributes:
        sequences: (batch * num_return_sequences, length) the prompt and the generated tokens.
        scores: per generated token, the processed scores (batch, vocab) (with ``output_scores``).
        logits: per generated token, the raw logits (batch, vocab) (with ``output_logits``).
        attentions: per generated token, the model's attentions (with ``output_attentions``).
        hidden_states: per generated token, the model's hidden states (with ``output_hidden_states``).
        past_key_values: the final key/value cache (with ``use_cache``).
    """

    sequences: Tensor | None = None
    scores: tuple[Tensor, ...] | None = None
    logits: tuple[Tensor, ...] | None = None
    attentions: tuple[tuple[Tensor, ...], ...] | None = None
    hidden_states: tuple[tuple[Tensor, ...], ...] | None = None
    past_key_values: Any = None


@dataclass
class GenerateBeamDecoderOnlyOutput(ModelOutput):
    """``generate(..., return_dict_in_generate=True)`` for beam search.

    Attributes:
        sequences: (batch * num_return_sequences, length) the best beams, best first.
        sequences_scores: (batch * num_return_sequences,) their length-penalised log-probabilities
            (with ``output_scores``).
        scores: per step, the processed log-probabilities (batch * num_beams, vocab) (with ``output_scores``).
        logits: per step, the raw logits (with ``output_logits``).
        beam_indices: (batch * num_return_sequences, generated) the beam row each token came from.
        attentions, hidden_states, past_key_values: as in
            :class:`~rembert_torch.generation.GenerateDecoderOnlyOutput`.
    """

    sequences: Tensor | None = None
    sequences_scores: Tensor | None = None
    scores: tuple[Tensor, ...] | None = None
    logits: tuple[Tensor, ...] | None = None
    beam_indices: Tensor | None = None
    attentions: tuple[tuple[Tensor, ...], ...] | None = None
    hidden_states: tuple[tuple[Tensor, ...], ...] | None = None
    past_key_values: Any = None


_register_pytree(GenerateDecoderOnlyOutput)
_register_pytree(GenerateBeamDecoderOnlyOutput)


class GenerationMixin:
    """``generate`` for a causal LM whose forward takes ``past_key_values`` and returns ``logits``."""

    config: RemBertConfig
    generation_config: GenerationConfig | None

    if TYPE_CHECKING:

        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

        def forward(self, *args: Any, **kwargs: Any) -> Any: ...

        @property
        def device(self) -> torch.device: ...

    def _call_generation_config(
        self, generation_config: GenerationConfig | None, kwargs: dict[str, Any]
    ) -> tuple[GenerationConfig, dict[str, Any], bool]:
        """The call's config (a copy of the model's or the given one, ``kwargs`` applied) and the model kwargs."""
        if generation_config is None:
            own = self.generation_config
            if own is None or (own._from_model_config and hash(own) == getattr(own, "_creation_hash", None)):
                own = GenerationConfig.from_model_config(self.config)  # legacy: generation settings in config.json
            generation_config = own
        elif not isinstance(generation_config, GenerationConfig):
            raise InputError(
                "generation_config must be a rembert_core.generation.GenerationConfig, "
                f"got {type(generation_config).__name__}"
            )
        return split_generate_kwargs(generation_config, kwargs)

    def compute_transition_scores(
        self,
        sequences: Tensor,
        scores: tuple[Tensor, ...],
        beam_indices: Tensor | None = None,
        normalize_logits: bool = False,
    ) -> Tensor:
        """The score of each generated token, (rows, generated), from ``generate``'s output, as transformers'.

        Example:
            >>> import torch
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_torch import RemBertForCausalLM
            >>> model = RemBertForCausalLM(tiny_config(is_decoder=True)).eval()
            >>> out = model.generate(torch.tensor([[5, 6]]), max_new_tokens=3, eos_token_id=None,
            ...                      return_dict_in_generate=True, output_scores=True)
            >>> model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True).shape
            torch.Size([1, 3])
        """
        result = transition_scores(
            sequences.detach().cpu().numpy(),
            [s.detach().float().cpu().numpy() for s in scores],
            None if beam_indices is None else beam_indices.detach().cpu().numpy(),
            normalize_logits=normalize_logits,
        )
        return torch.from_numpy(result).to(sequences.device)

    @torch.no_grad()
    def generate(
        self,
        inputs: Tensor | None = None,
        generation_config: GenerationConfig | Tensor | None = None,
        streamer: Any = None,
        *,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> Any:
        """Continue prompts greedily, by sampling or by beam search, as transformers' ``generate``.

        Accepts the tokenizer's whole output (``generate(**tokenizer(texts, return_tensors="pt"))``,
        ``token_type_ids`` included), ``input_ids`` alone (positionally or by name), or ``inputs_embeds``.
        Every :class:`~rembert_core.generation.GenerationConfig` attribute can be passed as a keyword
        (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``num_beams``,
        ``length_penalty``, ``early_stopping``, ``num_return_sequences``, ``no_repeat_ngram_size``,
        ``repetition_penalty``, ``bad_words_ids``, ``min_new_tokens``, ``eos_token_id`` (one id or a list),
        ``pad_token_id``, ``return_dict_in_generate``, ``output_scores``, ``output_logits``, ...); the others
        come from ``self.generation_config``. Positions come from the attention mask, so left-padded batches
        work; a right-padded batch gets transformers' warning. Unknown keywords raise an error naming them.

        Args:
            inputs: (batch, seq) prompt ids (or pass ``input_ids=`` / ``inputs_embeds=``).
            generation_config: settings replacing ``self.generation_config`` for this call. (A tensor here is
                taken as the ``attention_mask``, the signature of rembert 0.1.)
            streamer: an object with ``put(tokens)`` and ``end()`` (transformers' ``TextStreamer`` works): it
                receives the prompt, then each new token as it is chosen (not with beam search).
            generator: the ``torch.Generator`` that seeds sampling (default: torch's global RNG, so
                ``torch.manual_seed`` makes runs repeatable).
            kwargs: ``attention_mask``, ``token_type_ids``, ``inputs_embeds``, ``encoder_hidden_states``,
                ``encoder_attention_mask``, and generation-config attributes.

        Returns:
            (batch * num_return_sequences, length) token ids, or a
            :class:`~rembert_torch.generation.GenerateDecoderOnlyOutput` /
            :class:`~rembert_torch.generation.GenerateBeamDecoderOnlyOutput` with ``return_dict_in_generate=True``.

        Example:
            >>> import torch
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_torch import RemBertForCausalLM
            >>> model = RemBertForCausalLM(tiny_config(is_decoder=True)).eval()
            >>> prompt = torch.tensor([[0, 5, 6], [7, 8, 9]])  # left-padded batch
            >>> mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
            >>> out = model.generate(prompt, attention_mask=mask, max_new_tokens=4, eos_token_id=-1)
            >>> beams = model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=4, num_beams=3,
            ...                        num_return_sequences=2, eos_token_id=-1, return_dict_in_generate=True,
            ...                        output_scores=True)
            >>> out.shape, beams.sequences.shape, beams.sequences_scores.shape
            (torch.Size([2, 7]), torch.Size([4, 7]), torch.Size([4]))
        """
        if isinstance(generation_config, Tensor):  # rembert 0.1: generate(input_ids, attention_mask, ...)
            kwargs.setdefault("attention_mask", generation_config)
            generation_config = None
        config, model_kwargs, default_max = self._call_generation_config(generation_config, kwargs)
        if inputs is not None and "input_ids" in model_kwargs:
            raise InputError("pass the prompt either as `inputs` or as `input_ids`, not both")
        ids = inputs if inputs is not None else model_kwargs.pop("input_ids", None)
        embeds = model_kwargs.get("inputs_embeds")
        if ids is None and embeds is None:
            raise InputError("generate needs input_ids (or inputs_embeds): the prompt to continue")
        if embeds is not None:
            embeds = require_tensor(embeds, "inputs_embeds")
            if embeds.dim() != 3 or embeds.shape[1] < 1:
                raise InputError(f"inputs_embeds must have shape (batch, seq, hidden), got {tuple(embeds.shape)}")
        if ids is not None:
            ids = require_int_tensor(ids, "input_ids")
            if ids.dim() != 2 or (ids.shape[1] < 1 and embeds is None):
                raise InputError(f"input_ids must have shape (batch, seq) with seq >= 1, got {tuple(ids.shape)}")
            if embeds is not None:
                check_shape(ids, "input_ids", tuple(embeds.shape[:2]), "(batch, seq) of inputs_embeds")
        else:
            assert embeds is not None
            ids = torch.zeros((embeds.shape[0], 0), dtype=torch.long, device=embeds.device)
        batch = ids.shape[0]
        positions = ids.shape[1] if embeds is None else embeds.shape[1]
        mask = model_kwargs.get("attention_mask")
        if mask is not None:
            mask = require_tensor(mask, "attention_mask")
            check_shape(mask, "attention_mask", (batch, positions), "(batch, seq) of the prompt")
        types = model_kwargs.get("token_type_ids")
        if types is not None:
            types = require_int_tensor(types, "token_type_ids")
            check_shape(types, "token_type_ids", (batch, positions), "(batch, seq) of the prompt")
        cache = bool(config.use_cache or embeds is not None) and self.config.is_decoder
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        if streamer is not None:
            streamer.put(ids.cpu())
        device = ids.device
        run = Decoding(
            config,
            ids.cpu().numpy(),
            None if mask is None else mask.cpu().numpy(),
            token_type_ids=None if types is None else types.cpu().numpy(),
            embeds_length=None if embeds is None else embeds.shape[1],
            vocab_size=self.config.vocab_size,
            max_positions=self.config.max_position_embeddings,
            use_cache=cache,
            seed=seed,
            emit=None if streamer is None else (lambda tokens: streamer.put(torch.from_numpy(tokens))),
            has_default_max_length=default_max,
        )
        config = run.config
        rows = run.rows_per_input

        def expand(t: Tensor | None) -> Tensor | None:
            return None if t is None or rows == 1 else t.repeat_interleave(rows, dim=0)

        embeds = expand(embeds) if rows > 1 else embeds
        enc_states = model_kwargs.get("encoder_hidden_states")
        enc_mask = model_kwargs.get("encoder_attention_mask")
        enc_states, enc_mask = (expand(enc_states), expand(enc_mask)) if rows > 1 else (enc_states, enc_mask)
        keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.forward).parameters else {}
        past: Any = None
        attentions: list[Any] = []
        hidden_states: list[Any] = []
        while not run.done:
            step = run.next_step()
            if step.reorder is not None and past is not None:
                index = torch.from_numpy(step.reorder).to(device)
                past = tuple(tuple(t.index_select(0, index) for t in layer) for layer in past)
            out = self(
                input_ids=None if step.use_inputs_embeds else torch.from_numpy(step.input_ids).to(device),
                inputs_embeds=embeds if step.use_inputs_embeds else None,
                attention_mask=torch.from_numpy(step.attention_mask).to(device),
                position_ids=torch.from_numpy(step.position_ids).to(device),
                token_type_ids=None
                if step.token_type_ids is None
                else torch.from_numpy(step.token_type_ids).to(device),
                past_key_values=past,
                use_cache=cache,
                encoder_hidden_states=enc_states,
                encoder_attention_mask=enc_mask,
                output_attentions=config.output_attentions,
                output_hidden_states=config.output_hidden_states,
                return_dict=True,
                **keep,
            )
            past = out.past_key_values if cache else None
            if config.return_dict_in_generate and config.output_attentions:
                attentions.append(out.attentions)
            if config.return_dict_in_generate and config.output_hidden_states:
                hidden_states.append(out.hidden_states)
            run.advance(out.logits[:, -1, :].detach().float().cpu().numpy())
        if streamer is not None:
            streamer.end()
        result = run.result()
        sequences = torch.from_numpy(result.sequences).to(device)
        if not config.return_dict_in_generate:
            return sequences

        def tensors(arrays: list[np.ndarray] | None) -> tuple[Tensor, ...] | None:
            return None if arrays is None else tuple(torch.from_numpy(a).to(device) for a in arrays)

        common = {
            "sequences": sequences,
            "scores": tensors(result.scores),
            "logits": tensors(result.logits),
            "attentions": tuple(attentions) if attentions else None,
            "hidden_states": tuple(hidden_states) if hidden_states else None,
            "past_key_values": past,
        }
        if config.num_beams > 1:
            seq_scores = result.sequences_scores
            return GenerateBeamDecoderOnlyOutput(
                **common,
                sequences_scores=None if seq_scores is None else torch.from_numpy(seq_scores).to(device),
                beam_indices=None if result.beam_indices is None else torch.from_numpy(result.beam_indices).to(device),
            )
        return GenerateDecoderOnlyOutput(**common)
