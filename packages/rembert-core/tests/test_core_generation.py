"""rembert_core.generation without any framework: GenerationConfig, the logits processors and the decoding loop.

The loop is driven by toy "models" (logits as a function of the sequence so far), so greedy and beam search
can be checked against exhaustive search; the frameworks' token-identity with transformers is tested in
tests/test_generation_reference.py.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rembert_core import ConfigError, InputError, RemBertConfig
from rembert_core.errors import ConfigFileError
from rembert_core.generation import Decoding, GenerationConfig, process_logits
from rembert_core.testing import tiny_config

VOCAB = 6


def toy_logits(ids: np.ndarray) -> np.ndarray:
    """Deterministic logits from the last two tokens of each row: (rows, VOCAB)."""
    rows = []
    for row in ids:
        seed = int(row[-1]) * 7 + (int(row[-2]) if len(row) > 1 else 0) * 13
        rows.append(np.random.default_rng(seed).normal(size=VOCAB) * 2)
    return np.asarray(rows, dtype=np.float32)


def run(config: GenerationConfig, prompt: np.ndarray, mask: np.ndarray | None = None, **kwargs: object) -> Decoding:
    decoding = Decoding(config, prompt, mask, vocab_size=VOCAB, max_positions=64, use_cache=True, **kwargs)  # type: ignore[arg-type]
    while not decoding.done:
        step = decoding.next_step()
        decoding.advance(toy_logits(decoding._current_ids()))
        assert step.input_ids.shape[1] >= 1
    return decoding


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1, keepdims=True)


# -- GenerationConfig ----------------------------------------------------------------------------------


def test_config_defaults_update_and_validation() -> None:
    config = GenerationConfig()
    assert (config.max_length, config.top_k, config.num_beams, config.early_stopping) == (20, 50, 1, False)
    assert config.update(num_beams=3, colour="red") == {"colour": "red"} and config.num_beams == 3
    for bad, match in (
        ({"num_beams": 0}, "num_beams must be an integer >= 1"),
        ({"top_p": 1.5}, "top_p must be >= 0.0 and <= 1.0"),
        ({"early_stopping": "sometimes"}, "early_stopping must be True, False or 'never'"),
        ({"bad_words_ids": [[1], []]}, "bad_words_ids must be a non-empty list"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences \\(3\\) must be <= num_beams"),
        ({"num_return_sequences": 2}, "Greedy methods without beam search"),
        ({"do_sample": True, "temperature": 0.0}, "temperature must be > 0"),
        ({"eos_token_id": "x"}, "eos_token_id must be a token id"),
    ):
        with pytest.raises(ConfigError, match=match):
            GenerationConfig(**bad)
    before = config.to_dict()
    with pytest.raises(ConfigError):
        config.update(num_beams=-1)
    assert config.to_dict() == before  # a refused update changes nothing
    assert GenerationConfig(num_beam_groups=2, top_k=5).unsupported() == {"num_beam_groups": 2}


def test_config_file_round_trip(tmp_path: Path) -> None:
    config = GenerationConfig(num_beams=4, eos_token_id=[2, 3], custom_key=[1, 2])
    path = config.save_pretrained(tmp_path)
    data = json.loads(path.read_text())
    assert data == {"custom_key": [1, 2], "eos_token_id": [2, 3], "num_beams": 4}  # only what differs, as transformers
    again = GenerationConfig.from_pretrained(tmp_path, top_k=7)
    assert again.num_beams == 4 and again.top_k == 7 and again.custom_key == [1, 2]  # type: ignore[attr-defined]
    assert again.eos_token_ids == [2, 3]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(ConfigFileError) as info:
        GenerationConfig.from_pretrained(tmp_path / "missing")
    assert isinstance(info.value, OSError)
    (tmp_path / "generation_config.json").write_text("[1, 2]")
    with pytest.raises(ConfigFileError, match="must be a JSON object"):
        GenerationConfig.from_pretrained(tmp_path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_config_from_model_config() -> None:
    model_config = RemBertConfig(**{**tiny_config().to_dict(), "num_beams": 3, "output_scores": True})
    config = GenerationConfig.from_model_config(model_config)
    assert (config.eos_token_id, config.pad_token_id, config.bos_token_id) == (2, 0, 1)
    assert config.num_beams == 3 and config.return_dict_in_generate  # an output flag turns the dict output on
    assert json.loads(config.to_json_string())["_from_model_config"] is True


# -- logits processors ----------------------------------------------------------------------------------


def test_processors() -> None:
    ids = np.array([[1, 2, 1, 2], [3, 3, 4, 5]])
    scores = np.array([[1.0, -2.0, 3.0, 0.5, 0.1, 0.2], [0.3, 0.2, 0.1, -1.0, 2.0, 4.0]], dtype=np.float32)
    out = process_logits(GenerationConfig(repetition_penalty=2.0), ids, scores, prompt_length=4)
    assert out[0, 1] == -4.0 and out[0, 2] == 1.5 and out[0, 0] == 1.0  # negative x penalty, positive / penalty
    out = process_logits(GenerationConfig(no_repeat_ngram_size=2), ids, scores, prompt_length=4)
    assert np.isneginf(out[0, 1]) and np.isfinite(out[0]).sum() == 5  # "2 1" was seen: after 2, 1 is banned
    assert np.isneginf(out[1]).sum() == 0  # 5 never came before
    out = process_logits(GenerationConfig(bad_words_ids=[[4], [1, 2, 0]]), ids, scores, prompt_length=4)
    assert np.isneginf(out[:, 4]).all() and np.isneginf(out[0, 0]) and np.isfinite(out[1, 0])
    out = process_logits(GenerationConfig(min_new_tokens=2, eos_token_id=[5, 0]), ids, scores, prompt_length=3)
    assert np.isneginf(out[:, [0, 5]]).all()
    sampled = GenerationConfig(do_sample=True, top_k=2, temperature=0.5)
    out = process_logits(sampled, ids, scores, prompt_length=4)
    assert np.isfinite(out).sum(axis=1).tolist() == [2, 2] and out[1, 5] == 8.0
    nucleus = GenerationConfig(do_sample=True, top_k=0, top_p=0.6)
    out = process_logits(nucleus, ids, scores, prompt_length=4)
    probs = np.exp(scores - scores.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for row in range(2):
        kept = np.isfinite(out[row])
        assert probs[row][kept].sum() >= 0.6 and probs[row][kept].min() >= probs[row][~kept].max()


# -- decoding -------------------------------------------------------------------------------------------


def test_greedy_follows_the_argmax_and_stops_at_eos() -> None:
    prompt = np.array([[1, 2], [3, 4]])
    decoding = run(GenerationConfig(max_new_tokens=5, eos_token_id=None), prompt)
    out = decoding.result().sequences
    for row in out:
        for t in range(2, out.shape[1]):
            assert row[t] == int(np.argmax(toy_logits(row[None, :t])[0]))
    eos = int(out[0, 3])
    stopped = run(GenerationConfig(max_new_tokens=5, eos_token_id=eos, pad_token_id=0), prompt).result().sequences
    assert stopped[0, 3] == eos and (stopped[0, 4:] == 0).all()


def test_beam_search_with_enough_beams_is_exhaustive_search() -> None:
    """With beams >= every prefix and length_penalty 0, beam search returns the best sequences overall."""
    steps = 3
    config = GenerationConfig(
        max_new_tokens=steps,
        num_beams=VOCAB**2,
        num_return_sequences=3,
        length_penalty=0.0,
        early_stopping="never",
        eos_token_id=None,
        output_scores=True,
        return_dict_in_generate=True,
    )
    prompt = np.array([[1, 2]])
    result = run(config, prompt).result()
    totals = {}
    for tail in itertools.product(range(VOCAB), repeat=steps):
        seq = [1, 2, *tail]
        totals[tuple(seq)] = sum(log_softmax(toy_logits(np.array([seq[:t]])))[0, seq[t]] for t in range(2, len(seq)))
    best = sorted(totals, key=totals.get, reverse=True)[:3]  # type: ignore[arg-type]
    assert [tuple(row) for row in result.sequences.tolist()] == best
    assert np.allclose(result.sequences_scores, [totals[b] for b in best], atol=1e-4)


def test_decoding_feeds_the_cache_and_embeddings() -> None:
    config = GenerationConfig(max_new_tokens=2, eos_token_id=None)
    decoding = Decoding(
        config,
        np.zeros((2, 0), np.int64),
        np.array([[0, 1, 1], [1, 1, 1]]),
        embeds_length=3,
        vocab_size=VOCAB,
        max_positions=64,
        use_cache=True,
    )
    first = decoding.next_step()
    assert first.use_inputs_embeds and first.position_ids.tolist() == [[1, 0, 1], [0, 1, 2]]
    decoding.advance(np.zeros((2, VOCAB), np.float32))
    second = decoding.next_step()
    assert not second.use_inputs_embeds and second.input_ids.shape == (2, 1)
    assert second.position_ids.tolist() == [[2], [3]] and second.attention_mask.shape == (2, 4)
    decoding.advance(np.zeros((2, VOCAB), np.float32))
    assert decoding.done and decoding.result().sequences.shape == (2, 2)  # only the new tokens


def test_decoding_errors() -> None:
    prompt = np.array([[1, 2, 3]])
    with pytest.raises(InputError, match="generate does not implement penalty_alpha"):
        Decoding(GenerationConfig(penalty_alpha=0.6), prompt, None, vocab_size=VOCAB, max_positions=64, use_cache=True)
    with pytest.raises(InputError, match="Input length of input_ids is 3, but `max_length` is set to 3"):
        Decoding(GenerationConfig(max_length=3), prompt, None, vocab_size=VOCAB, max_positions=64, use_cache=True)
    with pytest.raises(InputError, match="exceeds max_position_embeddings=8"):
        Decoding(GenerationConfig(max_new_tokens=6), prompt, None, vocab_size=VOCAB, max_positions=8, use_cache=True)
    with pytest.raises(InputError, match="attention_mask must have shape"):
        Decoding(GenerationConfig(), prompt, np.ones((1, 2)), vocab_size=VOCAB, max_positions=64, use_cache=True)
    decoding = Decoding(
        GenerationConfig(max_new_tokens=1), prompt, None, vocab_size=VOCAB, max_positions=64, use_cache=True
    )
    with pytest.raises(InputError, match="logits of shape"):
        decoding.advance(np.zeros((1, VOCAB + 1), np.float32))


def test_sampling_is_seeded_and_respects_top_k() -> None:
    config = GenerationConfig(do_sample=True, top_k=2, max_new_tokens=6, eos_token_id=None, num_return_sequences=3)
    prompt = np.array([[1, 2], [3, 4]])
    a = run(config, prompt, seed=5).result().sequences
    b = run(config, prompt, seed=5).result().sequences
    assert np.array_equal(a, b) and a.shape == (6, 8)
    for row in a:
        for t in range(2, row.size):
            top2 = np.argsort(toy_logits(row[None, :t])[0])[-2:]
            assert row[t] in top2


def test_split_generate_kwargs() -> None:
    from rembert_core.generation import split_generate_kwargs

    base = GenerationConfig(num_beams=2)
    config, model_kwargs, default_max = split_generate_kwargs(base, {"attention_mask": 1, "max_new_tokens": 3})
    assert (config.num_beams, config.max_new_tokens, model_kwargs, default_max) == (2, 3, {"attention_mask": 1}, True)
    assert base.max_new_tokens is None  # the base config is not changed
    assert split_generate_kwargs(base, {"max_length": 9})[2] is False
    with pytest.raises(InputError, match=r"not used by the model: \['top_n'\]"):
        split_generate_kwargs(base, {"top_n": 3})
    with pytest.raises(InputError, match="generate: GenerationConfig.num_beams"):
        split_generate_kwargs(base, {"num_beams": 0})
