"""Text generation for ``TFRemBertForCausalLM``, as transformers' ``generate``: :class:`TFGenerationMixin`.

The decoding rules (lengths, special tokens, logits processors, greedy, sampling, beam search, stopping)
live once in :mod:`rembert_core.generation`, shared with rembert-torch; this module supplies the forward
pass: it feeds each :class:`~rembert_core.generation.Step` to the model with its key/value cache, reorders
the cache for beam search, and returns int32 tensors (as transformers' TF ``generate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rembert_core import InputError, RemBertConfig
from rembert_core.generation import Decoding, GenerationConfig, split_generate_kwargs, transition_scores
from rembert_tf._tensorflow import tf
from rembert_tf.outputs import ModelOutput
from rembert_tf.validation import Tensor, require_rank, to_tensor

__all__ = ["TFGenerateBeamDecoderOnlyOutput", "TFGenerateDecoderOnlyOutput", "TFGenerationMixin"]


@dataclass
class TFGenerateDecoderOnlyOutput(ModelOutput):
    """``generate(..., return_dict_in_generate=True)`` for greedy search and sampling (see the torch class)."""

    sequences: Any = None
    scores: Any = None
    logits: Any = None
    attentions: Any = None
    hidden_states: Any = None


@dataclass
class TFGenerateBeamDecoderOnlyOutput(ModelOutput):
    """``generate(..., return_dict_in_generate=True)`` for beam search (see the torch class)."""

    sequences: Any = None
    sequences_scores: Any = None
    scores: Any = None
    logits: Any = None
    beam_indices: Any = None
    attentions: Any = None
    hidden_states: Any = None


def _numpy(value: Any, name: str) -> np.ndarray:
    return np.asarray(to_tensor(value, name))


class TFGenerationMixin:
    """Adds :meth:`generate` (and ``generation_config``) to a model whose call returns ``logits``."""

    if TYPE_CHECKING:
        config: RemBertConfig

        def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    @classmethod
    def can_generate(cls) -> bool:
        """True: this class has ``generate``."""
        return True

    @property
    def generation_config(self) -> GenerationConfig:
        """``generate``'s defaults: set, or derived from the model config (its special tokens)."""
        own: GenerationConfig | None = self.__dict__.get("_rembert_generation_config")
        return own if own is not None else GenerationConfig.from_model_config(self.config)

    @generation_config.setter
    def generation_config(self, value: GenerationConfig) -> None:
        if not isinstance(value, GenerationConfig):
            raise InputError(f"generation_config must be a GenerationConfig, got {type(value).__name__}")
        self.__dict__["_rembert_generation_config"] = value

    def compute_transition_scores(
        self,
        sequences: Tensor,
        scores: tuple[Tensor, ...],
        beam_indices: Tensor | None = None,
        normalize_logits: bool = False,
    ) -> Any:
        """The score of each generated token, (rows, generated), from ``generate``'s output, as transformers'."""
        result = transition_scores(
            np.asarray(sequences).astype(np.int64),
            [np.asarray(s, dtype=np.float32) for s in scores],
            None if beam_indices is None else np.asarray(beam_indices).astype(np.int64),
            normalize_logits=normalize_logits,
        )
        return tf.constant(result)

    def generate(
        self,
        inputs: Tensor | None = None,
        generation_config: GenerationConfig | Tensor | None = None,
        *,
        seed: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Continue prompts greedily, by sampling or by beam search, with the same options as rembert-torch's.

        Takes the tokenizer's whole output (``generate(**tokenizer(texts, return_tensors="tf"))``), ``input_ids``
        alone or ``inputs_embeds``, and every :class:`~rembert_core.generation.GenerationConfig` attribute as a
        keyword (``max_new_tokens``, ``do_sample``, ``top_k``, ``top_p``, ``temperature``, ``num_beams``,
        ``length_penalty``, ``early_stopping``, ``num_return_sequences``, ``no_repeat_ngram_size``,
        ``repetition_penalty``, ``bad_words_ids``, ``min_new_tokens``, ``eos_token_id``, ``pad_token_id``,
        ``return_dict_in_generate``, ``output_scores``, ...). Greedy and beam results equal the PyTorch model's on
        the same weights. ``seed`` seeds sampling (default: drawn from TensorFlow's global generator, so
        ``tf.random.set_seed`` makes runs repeatable). A tensor as the second argument is the attention mask.

        Returns:
            int32 ``(batch * num_return_sequences, length)``, or a
            :class:`~rembert_tf.generation.TFGenerateDecoderOnlyOutput` /
            :class:`~rembert_tf.generation.TFGenerateBeamDecoderOnlyOutput` with ``return_dict_in_generate=True``.

        Example:
            >>> import numpy as np
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_tf import TFRemBertForCausalLM
            >>> model = TFRemBertForCausalLM(tiny_config(is_decoder=True))
            >>> out = model.generate(np.array([[5, 6, 7]]), max_new_tokens=4, eos_token_id=None)
            >>> beams = model.generate(np.array([[5, 6, 7]]), max_new_tokens=4, num_beams=3, eos_token_id=None)
            >>> tuple(out.shape), tuple(beams.shape)
            ((1, 7), (1, 7))
        """
        if generation_config is not None and not isinstance(generation_config, GenerationConfig):
            kwargs.setdefault("attention_mask", generation_config)  # rembert 0.1: generate(input_ids, attention_mask)
            generation_config = None
        base = generation_config if generation_config is not None else self.generation_config
        config, model_kwargs, default_max = split_generate_kwargs(base, kwargs)
        if inputs is not None and "input_ids" in model_kwargs:
            raise InputError("pass the prompt either as `inputs` or as `input_ids`, not both")
        raw_ids = inputs if inputs is not None else model_kwargs.pop("input_ids", None)
        embeds = model_kwargs.get("inputs_embeds")
        if raw_ids is None and embeds is None:
            raise InputError("generate needs input_ids (or inputs_embeds): the prompt to continue")
        if embeds is not None:
            embeds = tf.convert_to_tensor(embeds)
            require_rank(embeds, "inputs_embeds", (3,), "(batch, seq, hidden)")
        ids: np.ndarray
        if raw_ids is not None:
            ids_t = to_tensor(raw_ids, "input_ids")
            require_rank(ids_t, "input_ids", (2,), "(batch, seq)")
            ids = np.asarray(ids_t).astype(np.int64)
            if ids.shape[1] < 1 and embeds is None:
                raise InputError(f"input_ids must have shape (batch, seq) with seq >= 1, got {ids.shape}")
        else:
            assert embeds is not None
            ids = np.zeros((int(embeds.shape[0]), 0), dtype=np.int64)
        positions = ids.shape[1] if embeds is None else int(embeds.shape[1])
        mask = model_kwargs.get("attention_mask")
        mask_np = None if mask is None else _numpy(mask, "attention_mask")
        types = model_kwargs.get("token_type_ids")
        types_np = None if types is None else _numpy(types, "token_type_ids")
        for name, value in (("attention_mask", mask_np), ("token_type_ids", types_np)):
            if value is not None and value.shape != (ids.shape[0], positions):
                raise InputError(f"{name} has shape {value.shape}, expected {(ids.shape[0], positions)}")
        cache = bool(config.use_cache or embeds is not None) and self.config.is_decoder
        if seed is None:
            seed = int(tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int64))
        run = Decoding(
            config,
            ids,
            mask_np,
            token_type_ids=types_np,
            embeds_length=None if embeds is None else positions,
            vocab_size=self.config.vocab_size,
            max_positions=self.config.max_position_embeddings,
            use_cache=cache,
            seed=seed,
            has_default_max_length=default_max,
        )
        config = run.config
        rows = run.rows_per_input

        def expand(t: Any) -> Any:
            return None if t is None else (tf.repeat(tf.convert_to_tensor(t), rows, axis=0) if rows > 1 else t)

        embeds = expand(embeds)
        enc_states = expand(model_kwargs.get("encoder_hidden_states"))
        enc_mask = expand(model_kwargs.get("encoder_attention_mask"))
        past: Any = None
        attentions: list[Any] = []
        hidden_states: list[Any] = []
        while not run.done:
            step = run.next_step()
            if step.reorder is not None and past is not None:
                index = tf.constant(step.reorder, dtype=tf.int32)
                past = tuple(tuple(tf.gather(t, index, axis=0) for t in layer) for layer in past)
            out = self(
                input_ids=None if step.use_inputs_embeds else tf.constant(step.input_ids, dtype=tf.int32),
                inputs_embeds=embeds if step.use_inputs_embeds else None,
                attention_mask=tf.constant(step.attention_mask, dtype=tf.int32),
                position_ids=tf.constant(step.position_ids, dtype=tf.int32),
                token_type_ids=None if step.token_type_ids is None else tf.constant(step.token_type_ids, tf.int32),
                past_key_values=past,
                use_cache=cache,
                encoder_hidden_states=enc_states,
                encoder_attention_mask=enc_mask,
                output_attentions=config.output_attentions,
                output_hidden_states=config.output_hidden_states,
                return_dict=True,
                training=False,
            )
            past = out.past_key_values if cache else None
            if config.return_dict_in_generate and config.output_attentions:
                attentions.append(out.attentions)
            if config.return_dict_in_generate and config.output_hidden_states:
                hidden_states.append(out.hidden_states)
            run.advance(np.asarray(tf.cast(out.logits[:, -1, :], tf.float32)))
        result = run.result()
        sequences = tf.constant(result.sequences, dtype=tf.int32)
        if not config.return_dict_in_generate:
            return sequences

        def tensors(arrays: list[np.ndarray] | None) -> tuple[Any, ...] | None:
            return None if arrays is None else tuple(tf.constant(a) for a in arrays)

        common = {
            "sequences": sequences,
            "scores": tensors(result.scores),
            "logits": tensors(result.logits),
            "attentions": tuple(attentions) if attentions else None,
            "hidden_states": tuple(hidden_states) if hidden_states else None,
        }
        if config.num_beams > 1:
            seq_scores = result.sequences_scores
            indices = result.beam_indices
            return TFGenerateBeamDecoderOnlyOutput(
                **common,
                sequences_scores=None if seq_scores is None else tf.constant(seq_scores),
                beam_indices=None if indices is None else tf.constant(indices, dtype=tf.int32),
            )
        return TFGenerateDecoderOnlyOutput(**common)
