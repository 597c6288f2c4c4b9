"""The decoding loop of ``generate``, framework-free: logits processing, greedy, sampling and beam search.

A framework package supplies only the forward pass. :class:`Decoding` says what to feed next
(:meth:`Decoding.next_step`: the new token ids, the attention mask, position and token-type ids, and
which cache rows to keep), takes the last position's logits as a NumPy array (:meth:`Decoding.advance`)
and, when it is :attr:`~Decoding.done`, gives the sequences and scores (:meth:`Decoding.result`). The
rules are transformers 4.57's ``generate`` (``_sample`` and the vectorised ``_beam_search``), so greedy
and beam outputs are token-identical to the reference on the same logits; the arithmetic is float32 as
there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rembert_core.errors import InputError
from rembert_core.generation.config import GenerationConfig

__all__ = ["Decoding", "DecodingResult", "Step", "process_logits"]

_NEG = np.float32(-1.0e9)
logger = logging.getLogger(__name__)


@dataclass
class Step:
    """What the framework feeds the model next (all NumPy, batch = batch x beams or x returned sequences).

    ``input_ids`` are the positions not yet in the cache (all of them without a cache); on the first step of
    an ``inputs_embeds`` call they are replaced by the embeddings (``use_inputs_embeds``). ``reorder`` (rows
    of the cache to gather, beam search) applies to the cache before this forward.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    position_ids: np.ndarray
    token_type_ids: np.ndarray | None
    use_inputs_embeds: bool
    reorder: np.ndarray | None


@dataclass
class DecodingResult:
    """What ``generate`` returns, before the framework turns it into tensors."""

    sequences: np.ndarray
    scores: list[np.ndarray] | None = None
    logits: list[np.ndarray] | None = None
    sequences_scores: np.ndarray | None = None
    beam_indices: np.ndarray | None = None
    steps: int = 0


def _topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and indices of the k largest entries of each row, in descending order (ties: lower index)."""
    k = min(k, x.shape[-1])
    if k < x.shape[-1]:
        part = np.argpartition(-x, k - 1, axis=-1)[..., :k]
    else:
        part = np.broadcast_to(np.arange(x.shape[-1]), x.shape).copy()
    vals = np.take_along_axis(x, part, axis=-1)
    order = np.lexsort((part, -vals), axis=-1)
    idx = np.take_along_axis(part, order, axis=-1)
    return np.take_along_axis(x, idx, axis=-1), idx


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(shifted, dtype=np.float32)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def process_logits(
    config: GenerationConfig, ids: np.ndarray, scores: np.ndarray, *, prompt_length: int, min_keep: int = 1
) -> np.ndarray:
    """Apply the logits processors ``config`` asks for, in transformers' order. ``ids`` (N, T), ``scores`` (N, V)."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    vocab = scores.shape[-1]
    eos = config.eos_token_ids
    if config.repetition_penalty != 1.0 and ids.shape[1] > 0:
        picked = np.take_along_axis(scores, ids, axis=1)
        penalty = np.float32(config.repetition_penalty)
        picked = np.where(picked < 0, picked * penalty, picked / penalty)
        np.put_along_axis(scores, ids, picked, axis=1)
    n = config.no_repeat_ngram_size
    if n and ids.shape[1] + 1 >= n:
        for row in range(ids.shape[0]):
            tokens = ids[row].tolist()
            prefix = tuple(tokens[len(tokens) + 1 - n :]) if n > 1 else ()
            banned = [g[-1] for g in zip(*[tokens[i:] for i in range(n)], strict=False) if tuple(g[:-1]) == prefix]
            scores[row, banned] = -np.inf
    if config.bad_words_ids:
        bad = [seq for seq in config.bad_words_ids if not (eos and len(seq) == 1 and seq[0] in eos)]
        too_big = sorted({t for seq in bad for t in seq if t >= vocab})
        if too_big:
            raise InputError(f"bad_words_ids holds token ids {too_big} outside the vocabulary (size {vocab})")
        bias = np.zeros_like(scores)
        for seq in bad:
            if len(seq) == 1:
                bias[:, seq[0]] = -np.inf
            elif len(seq) <= ids.shape[1]:
                match = np.all(ids[:, ids.shape[1] - len(seq) + 1 :] == np.asarray(seq[:-1]), axis=1)
                bias[match, seq[-1]] += -np.inf
        scores = scores + bias
    if eos is not None:
        eos_in_vocab = [t for t in eos if 0 <= t < vocab]
        if config.min_length and ids.shape[1] < config.min_length:
            scores[:, eos_in_vocab] = -np.inf
        if config.min_new_tokens and ids.shape[1] - prompt_length < config.min_new_tokens:
            scores[:, eos_in_vocab] = -np.inf
    if config.do_sample:
        if config.temperature is not None and config.temperature != 1.0:
            scores = scores / np.float32(config.temperature)
        if config.top_k:
            k = min(max(config.top_k, min_keep), vocab)
            kth = _topk(scores, k)[0][:, -1:]
            scores = np.where(scores < kth, np.float32(-np.inf), scores)
        if config.top_p is not None and config.top_p < 1.0:
            order = np.argsort(scores, axis=-1, kind="stable")
            sorted_scores = np.take_along_axis(scores, order, axis=-1)
            cumulative = np.cumsum(_softmax(sorted_scores), axis=-1)
            remove_sorted = cumulative <= (1 - config.top_p)
            remove_sorted[:, -min_keep:] = False
            remove = np.zeros_like(remove_sorted)
            np.put_along_axis(remove, order, remove_sorted, axis=-1)
            scores = np.where(remove, np.float32(-np.inf), scores)
    return scores.astype(np.float32, copy=False)


class Decoding:
    """One ``generate`` call's state: feed :meth:`next_step` to the model, give :meth:`advance` its logits.

    Args:
        config: the call's generation config (validated; lengths not yet resolved).
        input_ids: (batch, prompt) int prompt ids; (batch, 0) when the prompt is given as embeddings only.
        attention_mask: (batch, prompt_positions) or None (inferred from ``pad_token_id`` as transformers does).
        token_type_ids: (batch, prompt_positions) or None.
        embeds_length: the number of prompt positions given as ``inputs_embeds`` (None: ids only).
        vocab_size: logits width.
        max_positions: the model's ``max_position_embeddings``.
        use_cache: whether the framework keeps keys/values between steps.
        seed: seed of the sampler (the framework draws it from its own RNG).
        emit: called with each step's new tokens (batch,) as they are chosen (a streamer).
    """

    def __init__(
        self,
        config: GenerationConfig,
        input_ids: np.ndarray,
        attention_mask: np.ndarray | None,
        *,
        token_type_ids: np.ndarray | None = None,
        embeds_length: int | None = None,
        vocab_size: int,
        max_positions: int,
        use_cache: bool,
        seed: int | None = None,
        emit: Callable[[np.ndarray], None] | None = None,
        has_default_max_length: bool = True,
    ) -> None:
        self.config = config = config.copy()
        bad = config.unsupported()
        if bad:
            raise InputError(
                f"generate does not implement {', '.join(f'{k}={v!r}' for k, v in bad.items())}; "
                "rembert's generate supports greedy, sampling (temperature, top_k, top_p) and beam search "
                "(num_beams, length_penalty, early_stopping, num_return_sequences, no_repeat_ngram_size, "
                "repetition_penalty, bad_words_ids, min/max lengths)"
            )
        batch, prompt = input_ids.shape
        positions = prompt if embeds_length is None else embeds_length
        self.eos = config.eos_token_ids
        if config.pad_token_id is None and self.eos is not None:
            logger.warning("Setting `pad_token_id` to `eos_token_id`:%s for open-end generation.", self.eos[0])
            config.pad_token_id = self.eos[0]
        self.pad = config.pad_token_id
        if attention_mask is None:
            attention_mask = np.ones((batch, positions), dtype=np.int64)
            if embeds_length is None and self.pad is not None and prompt:
                has_pad = bool(np.any(input_ids == self.pad))
                if has_pad and not (self.eos and self.pad in self.eos):
                    attention_mask = (input_ids != self.pad).astype(np.int64)
        if attention_mask.shape != (batch, positions):
            raise InputError(f"attention_mask must have shape {(batch, positions)}, got {attention_mask.shape}")
        if (
            self.pad is not None
            and batch > 1
            and prompt
            and embeds_length is None
            and np.any(input_ids[:, -1] == self.pad)
        ):
            logger.warning(
                "A decoder-only architecture is being used, but right-padding was detected! For correct "
                "generation results, please set `padding_side='left'` when initializing the tokenizer."
            )
        # lengths, as transformers' _prepare_generated_length
        if config.max_new_tokens is not None:
            config.max_length = config.max_new_tokens + prompt
        elif embeds_length is not None and prompt != embeds_length:
            config.max_length -= embeds_length
        elif has_default_max_length and config.max_length == 20:
            config.max_length = min(config.max_length + prompt, max_positions)
        if config.min_new_tokens is not None:
            config.min_length = config.min_new_tokens + prompt
        elif embeds_length is not None and prompt != embeds_length:
            config.min_length = max(config.min_length - embeds_length, 0)
        if prompt >= config.max_length:
            raise InputError(
                f"Input length of input_ids is {prompt}, but `max_length` is set to {config.max_length}. "
                "This can lead to unexpected behavior. You should consider increasing `max_length` or, better yet, "
                "setting `max_new_tokens`."
            )
        total_positions = positions + (config.max_length - prompt)
        if total_positions > max_positions:
            raise InputError(
                f"prompt length {positions} + {config.max_length - prompt} new tokens exceeds "
                f"max_position_embeddings={max_positions}"
            )
        if config.num_beams > 1 and emit is not None:
            raise InputError(
                "`streamer` cannot be used with beam search (yet!). Make sure that `num_beams` is set to 1."
            )
        self.batch = batch
        self.beams = config.num_beams
        self.expand = config.num_beams if config.num_beams > 1 else config.num_return_sequences
        self.prompt = prompt
        self.vocab = vocab_size
        self.use_cache = use_cache
        self.embeds_length = embeds_length
        self.emit = emit
        self.rng = np.random.default_rng(seed)
        self.start = time.monotonic()
        rep = self.expand
        self.ids = np.repeat(input_ids.astype(np.int64), rep, axis=0)
        self.mask = np.repeat(attention_mask.astype(np.int64), rep, axis=0)
        self.token_types = None if token_type_ids is None else np.repeat(token_type_ids.astype(np.int64), rep, axis=0)
        self.fed = 0  # positions already in the cache
        self.first = True
        self.done = False
        self.steps = 0
        self.scores: list[np.ndarray] | None = [] if config.return_dict_in_generate and config.output_scores else None
        self.logits: list[np.ndarray] | None = [] if config.return_dict_in_generate and config.output_logits else None
        self.reorder: np.ndarray | None = None
        if self.beams > 1:
            self._init_beams()
        else:
            self.unfinished = np.ones(self.ids.shape[0], dtype=bool)

    # -- the framework's side ---------------------------------------------------------------------------

    @property
    def rows_per_input(self) -> int:
        """How many rows each input becomes (beams, or returned sequences when sampling)."""
        return self.expand

    def next_step(self) -> Step:
        """The inputs of the next forward pass."""
        if self.done:
            raise RuntimeError("generation is finished")
        ids = self._current_ids()
        mask = self.mask
        positions = np.cumsum(mask, axis=-1) - 1
        positions = np.where(mask == 0, 1, positions)
        embeds = self.first and self.embeds_length is not None
        if self.use_cache and not self.first:
            new = ids[:, -1:]
            width = 1
        else:
            new = ids
            width = self.embeds_length if embeds and self.embeds_length is not None else ids.shape[1]
            if self.embeds_length is not None and not embeds:
                width = mask.shape[1]
        types = None if self.token_types is None else self.token_types[:, -width:]
        return Step(
            input_ids=new,
            attention_mask=mask,
            position_ids=positions[:, -width:],
            token_type_ids=types,
            use_inputs_embeds=embeds,
            reorder=self.reorder if self.use_cache and not self.first else None,
        )

    def advance(self, logits: np.ndarray) -> np.ndarray:
        """Take the last position's logits (rows, vocab); return the tokens chosen for each row."""
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != (self.ids.shape[0], self.vocab):
            raise InputError(f"logits of shape {logits.shape} do not fit {self.ids.shape[0]} rows x {self.vocab}")
        self.first = False
        self.steps += 1
        tokens = self._advance_beams(logits) if self.beams > 1 else self._advance_single(logits)
        if self.config.max_time is not None and time.monotonic() - self.start > self.config.max_time:
            self.done = True
        return tokens

    def result(self) -> DecodingResult:
        """The sequences (and scores) once :attr:`done`."""
        if self.beams > 1:
            return self._beam_result()
        return DecodingResult(sequences=self.ids, scores=self.scores, logits=self.logits, steps=self.steps)

    # -- greedy and sampling (transformers' _sample) -----------------------------------------------------

    def _current_ids(self) -> np.ndarray:
        if self.beams > 1:
            flat: np.ndarray = self.running_sequences[:, :, : self.cur_len].reshape(self.batch * self.beams, -1)
            return flat
        return self.ids

    def _advance_single(self, logits: np.ndarray) -> np.ndarray:
        scores = process_logits(self.config, self.ids, logits, prompt_length=self.prompt)
        if self.logits is not None:
            self.logits.append(logits.copy())
        if self.scores is not None:
            self.scores.append(scores.copy())
        tokens: np.ndarray
        if self.config.do_sample:
            probs = _softmax(scores).astype(np.float64)
            probs /= probs.sum(axis=-1, keepdims=True)
            cdf = np.cumsum(probs, axis=-1)
            draws = self.rng.random(probs.shape[0]) * cdf[:, -1]
            tokens = np.minimum((cdf < draws[:, None]).sum(axis=-1), self.vocab - 1).astype(np.int64)
        else:
            tokens = np.argmax(scores, axis=-1).astype(np.int64)
        if self.eos is not None and self.pad is not None:
            tokens = np.where(self.unfinished, tokens, self.pad).astype(np.int64)
        self._append(tokens)
        if self.emit is not None:
            self.emit(tokens)
        stop: np.ndarray = np.full(tokens.shape, self.ids.shape[1] >= self.config.max_length, dtype=bool)
        if self.eos is not None:
            stop |= np.isin(tokens, self.eos)
        self.unfinished &= ~stop
        self.done = not bool(self.unfinished.any())
        return tokens

    def _append(self, tokens: np.ndarray) -> None:
        self.ids = np.concatenate([self.ids, tokens[:, None]], axis=1)
        self.mask = np.concatenate([self.mask, np.ones_like(self.mask[:, :1])], axis=1)
        if self.token_types is not None:
            self.token_types = np.concatenate([self.token_types, self.token_types[:, -1:]], axis=1)

    # -- beam search (transformers' vectorised _beam_search) ---------------------------------------------

    def _init_beams(self) -> None:
        cfg, batch, beams = self.config, self.batch, self.beams
        n_eos = len(self.eos) if self.eos is not None else 0
        self.beams_to_keep = max(2, 1 + n_eos) * beams
        self.top_num_beam_mask = np.arange(self.beams_to_keep) < beams
        # transformers' `pad_token_id or eos_token_id[0] if eos_token_id is not None else -1`: a pad id of 0 is
        # falsy there, so finished beams are filled with the first eos id then, and with -1 without eos ids
        fill = (self.pad or self.eos[0]) if self.eos is not None else -1
        self.cur_len = self.prompt
        self.running_sequences = np.full((batch, beams, cfg.max_length), fill, dtype=np.int64)
        self.running_sequences[:, :, : self.prompt] = self.ids.reshape(batch, beams, -1)
        self.sequences = self.running_sequences.copy()
        self.running_beam_scores = np.zeros((batch, beams), dtype=np.float32)
        self.running_beam_scores[:, 1:] = _NEG
        self.beam_scores = np.full((batch, beams), _NEG, dtype=np.float32)
        self.is_sent_finished = np.zeros((batch, beams), dtype=bool)
        self.heuristic_unsatisfied = np.ones((batch, 1), dtype=bool)
        self.hits = np.zeros((batch, beams), dtype=bool)
        self.running_beam_indices = np.full((batch, beams, cfg.max_length - self.prompt), -1, dtype=np.int64)
        self.beam_indices = self.running_beam_indices.copy()

    def _gather(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        while idx.ndim < x.ndim:
            idx = idx[..., None]
        return np.take_along_axis(x, idx, axis=1)

    def _advance_beams(self, logits: np.ndarray) -> np.ndarray:
        cfg, batch, beams, vocab = self.config, self.batch, self.beams, self.vocab
        cur_len, prompt = self.cur_len, self.prompt
        flat_running = self._current_ids()
        min_keep = (len(self.eos) + 1) if self.eos is not None else 2
        log_probs = _log_softmax(logits).astype(np.float32)
        log_probs = process_logits(cfg, flat_running, log_probs, prompt_length=prompt, min_keep=min_keep)
        if self.logits is not None:
            self.logits.append(logits.copy())
        if self.scores is not None:
            self.scores.append(log_probs.copy())
        acc = log_probs.reshape(batch, beams, vocab) + self.running_beam_scores[:, :, None]
        acc = acc.reshape(batch, beams * vocab)
        # c. top-K continuations
        if cfg.do_sample:
            keys = acc.astype(np.float64) + self.rng.gumbel(size=acc.shape)
            keys = np.where(np.isfinite(acc), keys, -np.inf)
            topk_indices = _topk(keys, self.beams_to_keep)[1]
            topk_log_probs = np.take_along_axis(acc, topk_indices, axis=1)
        else:
            topk_log_probs, topk_indices = _topk(acc, self.beams_to_keep)
        topk_beam = topk_indices // vocab
        topk_running_beam_indices = self._gather(self.running_beam_indices, topk_beam)
        topk_running_sequences = self._gather(self.running_sequences, topk_beam)
        topk_ids = topk_indices % vocab
        topk_running_sequences[:, :, cur_len] = topk_ids
        batch_modified = topk_beam + np.arange(batch)[:, None] * beams
        topk_running_beam_indices[:, :, cur_len - prompt] = batch_modified
        # d. which continuations finished
        hits: np.ndarray = np.full(topk_ids.shape, cur_len + 1 >= cfg.max_length, dtype=bool)
        if self.eos is not None:
            hits |= np.isin(topk_ids, self.eos)
        if cfg.max_time is not None and time.monotonic() - self.start > cfg.max_time:
            hits[:] = True
        self.hits = hits
        # e. the running beams of the next step
        running_log_probs = (topk_log_probs + hits.astype(np.float32) * _NEG).astype(np.float32)
        next_topk = _topk(running_log_probs, beams)[1]
        self.running_sequences = self._gather(topk_running_sequences, next_topk)
        self.running_beam_scores = self._gather(running_log_probs, next_topk)
        self.running_beam_indices = self._gather(topk_running_beam_indices, next_topk)
        # f. the finished beams
        just_finished = hits & self.top_num_beam_mask[None, :]
        finished_scores = (topk_log_probs / np.float32((cur_len + 1 - prompt) ** cfg.length_penalty)).astype(np.float32)
        full = np.all(self.is_sent_finished, axis=-1, keepdims=True) & (cfg.early_stopping is True)
        finished_scores = finished_scores + full.astype(np.float32) * _NEG
        finished_scores = finished_scores + (~self.heuristic_unsatisfied).astype(np.float32) * _NEG
        finished_scores = finished_scores + (~just_finished).astype(np.float32) * _NEG
        merged_sequences = np.concatenate([self.sequences, topk_running_sequences], axis=1)
        merged_scores = np.concatenate([self.beam_scores, finished_scores], axis=1)
        merged_indices = np.concatenate([self.beam_indices, topk_running_beam_indices], axis=1)
        merged_finished = np.concatenate([self.is_sent_finished, just_finished], axis=1)
        keep = _topk(merged_scores, beams)[1]
        self.sequences = self._gather(merged_sequences, keep)
        self.beam_scores = self._gather(merged_scores, keep)
        self.beam_indices = self._gather(merged_indices, keep)
        self.is_sent_finished = self._gather(merged_finished, keep)
        # g. the cache rows of the next step, the stopping rule
        self.reorder = self.running_beam_indices[..., cur_len - prompt].reshape(-1)
        self.cur_len = cur_len = cur_len + 1
        self.mask = np.concatenate([self.mask, np.ones_like(self.mask[:, :1])], axis=1)
        if self.token_types is not None:
            self.token_types = np.concatenate([self.token_types, self.token_types[:, -1:]], axis=1)
        if cfg.early_stopping == "never" and cfg.length_penalty > 0.0:
            best_length = cfg.max_length - prompt
        else:
            best_length = cur_len - prompt
        best_running = self.running_beam_scores[:, :1] / np.float32(best_length**cfg.length_penalty)
        worst_finished = np.where(
            self.is_sent_finished, np.min(self.beam_scores, axis=1, keepdims=True), np.float32(-1.0e9)
        )
        self.heuristic_unsatisfied = self.heuristic_unsatisfied & np.any(
            best_running > worst_finished, axis=-1, keepdims=True
        )
        improvement_possible = bool(np.any(self.heuristic_unsatisfied))
        open_beam = not (bool(np.all(self.is_sent_finished)) and cfg.early_stopping is True)
        valid = not bool(np.all(hits))
        self.done = not (improvement_possible and open_beam and valid)
        return self.running_sequences[:, :, cur_len - 1].reshape(-1)

    def _beam_result(self) -> DecodingResult:
        n = self.config.num_return_sequences
        sequences = self.sequences[:, :n, :].reshape(self.batch * n, -1)
        scores = self.beam_scores[:, :n].reshape(-1)
        indices = self.beam_indices[:, :n, :].reshape(self.batch * n, -1)
        generated = int(((indices + 1) != 0).sum(axis=1).max()) if indices.size else 0
        return DecodingResult(
            sequences=sequences[:, : self.prompt + generated],
            scores=self.scores,
            logits=self.logits,
            sequences_scores=scores if self.config.output_scores else None,
            beam_indices=indices[:, :generated],
            steps=self.steps,
        )


def transition_scores(
    sequences: np.ndarray,
    scores: list[np.ndarray],
    beam_indices: np.ndarray | None = None,
    *,
    normalize_logits: bool = False,
) -> np.ndarray:
    """The score of each generated token: ``(rows, generated)``, as transformers' ``compute_transition_scores``.

    ``scores`` are ``generate``'s per-step ``(rows, vocab)`` scores (``output_scores=True``); ``beam_indices``
    its beam rows (beam search), else each row follows itself. Positions after a beam ended are 0.
    """
    if not scores:
        return np.zeros((sequences.shape[0], 0), dtype=np.float32)
    vocab = scores[0].shape[-1]
    if beam_indices is None:
        beam_indices = np.broadcast_to(np.arange(scores[0].shape[0])[:, None], (scores[0].shape[0], len(scores)))
    stacked = np.stack(scores).reshape(len(scores), -1).T  # (rows * vocab, steps)
    if normalize_logits:
        per_row = stacked.reshape(-1, vocab, stacked.shape[-1])
        shifted = per_row - per_row.max(axis=1, keepdims=True)
        per_row = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        stacked = per_row.reshape(-1, stacked.shape[-1])
    ended = beam_indices < 0
    length = int((~ended).sum(-1).max()) if ended.size else 0
    indices = np.where(ended[:, :length], 0, beam_indices[:, :length]).astype(np.int64) * vocab
    indices = sequences[:, sequences.shape[-1] - length :] + indices
    out = np.take_along_axis(stacked, indices, axis=0).astype(np.float32)
    out[ended[:, :length]] = 0
    return out
