"""``generate`` and the model-level drop-in points of rembert-torch against transformers 4.57 on the same weights.

Greedy and beam search must be token-identical to the reference (padded batches, several eos ids, every beam
option), their scores within the tolerance table; sampling is checked for its rules (seeded, top-k=1 is greedy);
generation_config.json, pruning, state-dict loading, dict-like outputs and DataCollatorWithPadding are checked
against the reference's own behaviour.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rembert_core import InputError, RemBertConfig
from rembert_core.generation import GenerationConfig
from rembert_core.testing import tiny_config
from rembert_core.tolerances import assert_close

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.oracle

from rembert_torch import (  # noqa: E402
    RemBertForCausalLM,
    RemBertForMaskedLM,
    RemBertForSequenceClassification,
    RemBertModel,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sentencepiece"
PROMPT = [[0, 0, 17, 45, 9, 3], [33, 8, 120, 7, 64, 2], [0, 0, 0, 0, 5, 6]]  # rows 0 and 2 left-padded


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """A seeded tiny decoder saved by transformers, loaded by both libraries."""
    transformers.logging.set_verbosity_error()
    folder = tmp_path_factory.mktemp("decoder")
    settings = {**tiny_config().to_dict(), "is_decoder": True, "initializer_range": 0.2, "max_position_embeddings": 64}
    torch.manual_seed(3)
    transformers.RemBertForCausalLM(transformers.RemBertConfig(**settings)).eval().save_pretrained(folder)
    ref = transformers.RemBertForCausalLM.from_pretrained(folder).eval()
    ours = RemBertForCausalLM.from_pretrained(folder)
    return folder, ref, ours


def _inputs() -> dict[str, Any]:
    ids = torch.tensor(PROMPT)
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _frequent_token(ref: Any) -> int:
    """A token greedy decoding produces early, so that eos-based stopping really happens."""
    out = ref.generate(**_inputs(), max_new_tokens=4, do_sample=False, eos_token_id=None, pad_token_id=0)
    return int(out[1, len(PROMPT[0]) + 1])


def _scores_close(actual: tuple[Any, ...], expected: tuple[Any, ...], name: str) -> None:
    assert len(actual) == len(expected), name
    for step, (a, e) in enumerate(zip(actual, expected, strict=True)):
        a_np, e_np = a.numpy(), e.numpy()
        assert np.array_equal(np.isneginf(a_np), np.isneginf(e_np)), f"{name}[{step}]: -inf positions differ"
        finite = np.isfinite(e_np)
        assert_close(a_np[finite], e_np[finite], quantity="activations", name=f"{name}[{step}]")


STRATEGIES: list[dict[str, Any]] = [
    {},
    {"num_beams": 3},
    {"num_beams": 4, "num_return_sequences": 3, "length_penalty": 0.5},
    {"num_beams": 3, "early_stopping": True, "length_penalty": 2.0},
    {"num_beams": 2, "early_stopping": "never", "length_penalty": 1.5},
    {"num_beams": 3, "no_repeat_ngram_size": 2},
    {"no_repeat_ngram_size": 1},
    {"repetition_penalty": 1.4},
    {"num_beams": 2, "repetition_penalty": 0.8},
    {"bad_words_ids": [[11], [45, 9], [8, 120, 7]]},
    {"min_new_tokens": 5},
    {"num_beams": 3, "min_new_tokens": 4},
    {"max_length": 12},
]


@pytest.mark.parametrize("eos", ["frequent", "several", "none"])
@pytest.mark.parametrize("options", STRATEGIES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "greedy")
def test_greedy_and_beam_search_match_reference(decoder: Any, options: dict[str, Any], eos: str) -> None:
    _, ref, ours = decoder
    frequent = _frequent_token(ref)
    eos_id: Any = {"frequent": frequent, "several": [frequent, 4, 200], "none": None}[eos]
    kwargs = {"max_new_tokens": 9, **options} if "max_length" not in options else dict(options)
    kwargs.update(eos_token_id=eos_id, pad_token_id=0, return_dict_in_generate=True, output_scores=True)
    expected = ref.generate(**_inputs(), **kwargs, output_logits=True)
    actual = ours.generate(**_inputs(), **kwargs, output_logits=True)
    assert torch.equal(actual.sequences, expected.sequences), (actual.sequences, expected.sequences)
    _scores_close(actual.scores, expected.scores, "scores")
    _scores_close(actual.logits, expected.logits, "logits")
    if options.get("num_beams", 1) > 1:
        assert_close(actual.sequences_scores.numpy(), expected.sequences_scores.numpy(), name="sequences_scores")
        assert torch.equal(actual.beam_indices, expected.beam_indices.long())
    # the plain tensor result is the same sequences
    plain = ours.generate(**_inputs(), **{k: v for k, v in kwargs.items() if k != "return_dict_in_generate"})
    assert torch.equal(plain, expected.sequences)


def test_generate_without_cache_and_from_positional_ids(decoder: Any) -> None:
    _, ref, ours = decoder
    inputs = _inputs()
    expected = ref.generate(**inputs, max_new_tokens=6, num_beams=2, eos_token_id=None, pad_token_id=0)
    assert torch.equal(
        ours.generate(
            inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            max_new_tokens=6,
            num_beams=2,
            eos_token_id=None,
            pad_token_id=0,
            use_cache=False,
        ),
        expected,
    )


def test_generate_takes_the_tokenizers_whole_output(tmp_path: Path) -> None:
    """``generate(**tokenizer(texts, return_tensors="pt"))`` with token_type_ids, left padding, as transformers."""
    tokenizer = transformers.RemBertTokenizerFast(vocab_file=str(FIXTURES / "test_model.model"), padding_side="left")
    settings = {**tiny_config().to_dict(), "is_decoder": True, "vocab_size": len(tokenizer), "initializer_range": 0.2}
    settings["max_position_embeddings"] = 128
    torch.manual_seed(5)
    transformers.RemBertForCausalLM(transformers.RemBertConfig(**settings)).save_pretrained(tmp_path)
    ref = transformers.RemBertForCausalLM.from_pretrained(tmp_path).eval()
    ours = RemBertForCausalLM.from_pretrained(tmp_path)
    lines = [
        line for line in (FIXTURES / "botchan.txt").read_text(encoding="utf-8").splitlines() if 20 < len(line) < 90
    ]
    for texts, pairs in ((lines[:3], None), (lines[3:5], lines[5:7])):
        batch = tokenizer(texts, pairs, return_tensors="pt", padding=True)
        assert "token_type_ids" in batch
        for options in ({}, {"num_beams": 3, "num_return_sequences": 2}):
            expected = ref.generate(**batch, max_new_tokens=7, **options)
            actual = ours.generate(**batch, max_new_tokens=7, **options)
            assert torch.equal(actual, expected)


def test_generate_from_inputs_embeds(decoder: Any) -> None:
    _, ref, ours = decoder
    inputs = _inputs()
    embeds = ref.get_input_embeddings()(inputs["input_ids"]).detach()
    for options in ({}, {"num_beams": 3}):
        expected = ref.generate(
            inputs_embeds=embeds,
            attention_mask=inputs["attention_mask"],
            max_new_tokens=5,
            eos_token_id=None,
            pad_token_id=0,
            **options,
        )
        actual = ours.generate(
            inputs_embeds=embeds,
            attention_mask=inputs["attention_mask"],
            max_new_tokens=5,
            eos_token_id=None,
            pad_token_id=0,
            **options,
        )
        assert torch.equal(actual, expected)  # only the new tokens, as the reference returns
        both = ours.generate(
            inputs["input_ids"],
            inputs_embeds=embeds,
            attention_mask=inputs["attention_mask"],
            max_new_tokens=5,
            eos_token_id=None,
            pad_token_id=0,
            **options,
        )
        assert torch.equal(both[:, len(PROMPT[0]) :], expected)


def test_sampling_rules(decoder: Any) -> None:
    _, _, ours = decoder
    inputs = _inputs()
    torch.manual_seed(11)
    a = ours.generate(**inputs, do_sample=True, top_k=20, top_p=0.8, temperature=0.7, max_new_tokens=6)
    torch.manual_seed(11)
    b = ours.generate(**inputs, do_sample=True, top_k=20, top_p=0.8, temperature=0.7, max_new_tokens=6)
    assert torch.equal(a, b)  # torch.manual_seed makes sampling repeatable
    greedy = ours.generate(**inputs, max_new_tokens=6, eos_token_id=None)
    assert torch.equal(ours.generate(**inputs, do_sample=True, top_k=1, max_new_tokens=6, eos_token_id=None), greedy)
    many = ours.generate(**inputs, do_sample=True, num_return_sequences=4, max_new_tokens=6, eos_token_id=None)
    assert many.shape == (12, len(PROMPT[0]) + 6)
    assert torch.equal(many[::4, : len(PROMPT[0])], inputs["input_ids"])
    sampled = ours.generate(**inputs, do_sample=True, num_beams=3, max_new_tokens=5, eos_token_id=None)
    assert sampled.shape == (3, len(PROMPT[0]) + 5)
    # with top_k the scores outside the k best are -inf
    out = ours.generate(
        **inputs,
        do_sample=True,
        top_k=5,
        max_new_tokens=2,
        eos_token_id=None,
        return_dict_in_generate=True,
        output_scores=True,
    )
    assert all(int(torch.isfinite(s).sum(-1).max()) <= 5 for s in out.scores)


def test_streamer_receives_tokens_as_they_come(decoder: Any) -> None:
    _, _, ours = decoder
    received: list[list[int]] = []

    class Collect:
        def put(self, value: Any) -> None:
            received.append(value.reshape(-1).tolist())

        def end(self) -> None:
            received.append(["end"])  # type: ignore[list-item]

    ids = torch.tensor([PROMPT[1]])
    out = ours.generate(ids, max_new_tokens=5, eos_token_id=None, streamer=Collect())
    assert received[0] == PROMPT[1] and received[-1] == ["end"]
    assert [t for step in received[1:-1] for t in step] == out[0, len(PROMPT[1]) :].tolist()
    with pytest.raises(InputError, match="streamer` cannot be used with beam search"):
        ours.generate(ids, max_new_tokens=2, num_beams=2, streamer=Collect())


def test_right_padding_warning(decoder: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, _, ours = decoder
    ids = torch.tensor([[5, 6, 0], [7, 8, 9]])
    with caplog.at_level(logging.WARNING):
        ours.generate(ids, attention_mask=(ids != 0).long(), max_new_tokens=2)
    assert "right-padding was detected" in caplog.text


def test_generation_config_file_round_trips_with_transformers(tmp_path: Path, decoder: Any) -> None:
    folder = decoder[0]
    ours = RemBertForCausalLM.from_pretrained(folder)  # a copy: the fixture's model keeps its defaults
    assert ours.generation_config.eos_token_id == transformers.GenerationConfig.from_pretrained(folder).eos_token_id
    # ours saved -> read by transformers
    ours.generation_config = GenerationConfig(num_beams=3, max_new_tokens=4, eos_token_id=[2, 7], pad_token_id=0)
    ours.save_pretrained(tmp_path / "ours")
    assert (tmp_path / "ours" / "generation_config.json").is_file()
    theirs = transformers.GenerationConfig.from_pretrained(tmp_path / "ours")
    assert (theirs.num_beams, theirs.max_new_tokens, theirs.eos_token_id) == (3, 4, [2, 7])
    ref = transformers.RemBertForCausalLM.from_pretrained(tmp_path / "ours").eval()
    inputs = _inputs()
    assert torch.equal(ours.generate(**inputs), ref.generate(**inputs))  # both take the file's defaults
    # transformers saved -> read by ours; per-call arguments override the file
    ref.generation_config.no_repeat_ngram_size = 2
    ref.save_pretrained(tmp_path / "ref")
    loaded = RemBertForCausalLM.from_pretrained(tmp_path / "ref")
    assert loaded.generation_config.no_repeat_ngram_size == 2
    assert torch.equal(loaded.generate(**inputs, num_beams=2), ref.generate(**inputs, num_beams=2))
    # masked-LM models cannot generate and write no generation config, as in transformers
    assert not RemBertForMaskedLM.can_generate() and RemBertForCausalLM.can_generate()
    RemBertForMaskedLM(tiny_config()).save_pretrained(tmp_path / "mlm")
    assert not (tmp_path / "mlm" / "generation_config.json").exists()


def test_legacy_generation_settings_in_config_json(tmp_path: Path) -> None:
    """An old config.json holding num_beams etc. (no generation_config.json) drives generate, as in transformers."""
    import json

    torch.manual_seed(1)
    settings = {**tiny_config().to_dict(), "is_decoder": True}
    transformers.RemBertForCausalLM(transformers.RemBertConfig(**settings)).save_pretrained(tmp_path)
    (tmp_path / "generation_config.json").unlink()
    data = json.loads((tmp_path / "config.json").read_text())
    data.update(num_beams=3, no_repeat_ngram_size=2)
    (tmp_path / "config.json").write_text(json.dumps(data))
    ref = transformers.RemBertForCausalLM.from_pretrained(tmp_path).eval()
    ours = RemBertForCausalLM.from_pretrained(tmp_path)
    expected = ref.generate(**_inputs(), max_new_tokens=5)
    assert torch.equal(expected, ref.generate(**_inputs(), max_new_tokens=5, num_beams=3, no_repeat_ngram_size=2))
    assert torch.equal(ours.generate(**_inputs(), max_new_tokens=5), expected)


@pytest.mark.parametrize("heads", [{0: [0]}, {1: [1], 0: [0, 1]}, {0: [1]}])
def test_prune_heads_matches_reference_and_survives_save(tmp_path: Path, heads: dict[int, list[int]]) -> None:
    settings = {**tiny_config().to_dict(), "num_attention_heads": 2}
    torch.manual_seed(2)
    transformers.RemBertModel(transformers.RemBertConfig(**settings)).save_pretrained(tmp_path / "base")
    ref = transformers.RemBertModel.from_pretrained(tmp_path / "base").eval()
    ours = RemBertModel.from_pretrained(tmp_path / "base")
    ids = torch.tensor(PROMPT)
    mask = (ids != 0).long()
    # pruning every head of a layer is allowed by neither; keep at least one
    safe = {layer: h[:1] if len(h) >= 2 else h for layer, h in heads.items()}
    ref.prune_heads(safe)
    ours.prune_heads(safe)
    assert ours.config.pruned_heads == {k: sorted(v) for k, v in safe.items()}
    expected = ref(ids, attention_mask=mask).last_hidden_state
    assert_close(ours(ids, attention_mask=mask).last_hidden_state.detach().numpy(), expected.detach().numpy())
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    for folder in ("ours", "ref"):
        again = RemBertModel.from_pretrained(tmp_path / folder)
        theirs = transformers.RemBertModel.from_pretrained(tmp_path / folder).eval()
        assert_close(again(ids, attention_mask=mask).last_hidden_state.detach().numpy(), expected.detach().numpy())
        assert_close(theirs(ids, attention_mask=mask).last_hidden_state.detach().numpy(), expected.detach().numpy())
    with pytest.raises(InputError, match="layer 9"):
        ours.prune_heads({9: [0]})


def test_from_pretrained_with_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(4)
    source = transformers.RemBertForMaskedLM(transformers.RemBertConfig(**tiny_config().to_dict())).eval()
    source.save_pretrained(tmp_path)
    state = source.state_dict()
    ids = torch.tensor(PROMPT)
    expected = source(ids).logits.detach().numpy()
    config = RemBertConfig.from_pretrained(tmp_path)
    for model in (
        RemBertForMaskedLM.from_pretrained(None, config=config, state_dict=state),
        RemBertForMaskedLM.from_pretrained(tmp_path, state_dict=state),
    ):
        assert_close(model(ids).logits.detach().numpy(), expected)
    # a classifier from a masked-LM state dict: the new head is initialised and reported, as the reference does
    model, info = RemBertForSequenceClassification.from_pretrained(
        None, config=config, state_dict=state, output_loading_info=True
    )
    _, their_info = transformers.RemBertForSequenceClassification.from_pretrained(
        None, config=transformers.RemBertConfig.from_pretrained(tmp_path), state_dict=state, output_loading_info=True
    )
    assert sorted(info["missing_keys"]) == sorted(their_info["missing_keys"])
    assert sorted(info["unexpected_keys"]) == sorted(their_info["unexpected_keys"])
    with pytest.raises(InputError, match="needs config="):
        RemBertForMaskedLM.from_pretrained(None, state_dict=state)


def test_model_api_points() -> None:
    config = tiny_config(is_decoder=True)
    model = RemBertForCausalLM(config)
    assert model.main_input_name == "input_ids" == transformers.RemBertForCausalLM.main_input_name
    model.resize_token_embeddings(config.vocab_size + 5)
    assert model.vocab_size == model.config.vocab_size == tiny_config().vocab_size + 5
    with torch.device("meta"), pytest.raises(InputError, match="meta"):
        RemBertForCausalLM.from_pretrained("unused")
    legacy = tiny_config()
    legacy.extra["gradient_checkpointing"] = True
    assert RemBertModel(legacy).is_gradient_checkpointing and "gradient_checkpointing" not in legacy.extra


def test_outputs_are_dict_like_as_transformers() -> None:
    model = RemBertForMaskedLM(tiny_config()).eval()
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        out = model(ids, labels=ids, output_hidden_states=True)
    assert list(out.keys()) == ["loss", "logits", "hidden_states"]
    assert [k for k, _ in out.items()] == list(out.keys())
    assert out.to_tuple()[1] is out["logits"] is out.logits
    out["logits"] = out.logits * 0
    assert float(out.logits.abs().sum()) == 0.0 and float(out[1].abs().sum()) == 0.0
    rebuilt = type(out)({"loss": out.loss, "logits": out.logits})
    assert list(rebuilt.keys()) == ["loss", "logits"]
    assert dict(**out)["loss"] is out.loss  # ** unpacking, as code written for transformers does


def test_data_collator_with_padding_feeds_our_model() -> None:
    tokenizer = transformers.RemBertTokenizerFast(vocab_file=str(FIXTURES / "test_model.model"))
    settings = {
        **tiny_config().to_dict(),
        "vocab_size": len(tokenizer),
        "num_labels": 3,
        "max_position_embeddings": 128,
    }
    torch.manual_seed(6)
    ref = transformers.RemBertForSequenceClassification(transformers.RemBertConfig(**settings)).eval()
    ours = RemBertForSequenceClassification(RemBertConfig(**settings)).eval()
    ours.load_state_dict(ref.state_dict())
    lines = [
        line for line in (FIXTURES / "botchan.txt").read_text(encoding="utf-8").splitlines() if 10 < len(line) < 80
    ]
    features = [{**tokenizer(line), "labels": i % 3} for i, line in enumerate(lines[:6])]
    batch = transformers.DataCollatorWithPadding(tokenizer)(features)
    expected = ref(**batch)
    actual = ours(**batch)
    assert_close(actual.logits.detach().numpy(), expected.logits.detach().numpy())
    assert_close(actual.loss.detach().numpy(), expected.loss.detach().numpy(), quantity="loss")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        model = RemBertForCausalLM(tiny_config(is_decoder=True))
        model.save_pretrained(tmp_path)
    finally:
        os.umask(old)
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


@pytest.mark.parametrize("options", [*STRATEGIES[:6], {"repetition_penalty": 1.3, "min_new_tokens": 3}])
def test_tf_generate_mirrors_torch(decoder: Any, options: dict[str, Any]) -> None:
    """TFRemBertForCausalLM.generate: the same options, the same tokens and scores as the PyTorch model."""
    pytest.importorskip("tensorflow")
    from rembert_tf import TFRemBertForCausalLM

    folder, ref, ours = decoder
    tf_model = TFRemBertForCausalLM.from_pretrained(folder)
    eos = [_frequent_token(ref), 4]
    kwargs = {"max_new_tokens": 8, **options} if "max_length" not in options else dict(options)
    kwargs.update(eos_token_id=eos, pad_token_id=0, return_dict_in_generate=True, output_scores=True)
    expected = ours.generate(**_inputs(), **kwargs)
    inputs = {k: v.numpy() for k, v in _inputs().items()}
    actual = tf_model.generate(**inputs, **kwargs)
    assert np.array_equal(actual.sequences.numpy(), expected.sequences.numpy())
    for step, (a, e) in enumerate(zip(actual.scores, expected.scores, strict=True)):
        finite = np.isfinite(e.numpy())
        assert np.array_equal(finite, np.isfinite(a.numpy())), step
        assert_close(a.numpy()[finite], e.numpy()[finite], name=f"scores[{step}]")


def test_from_pretrained_quantize_int8(tmp_path: Path) -> None:
    from rembert_torch.quantization import quantize

    torch.manual_seed(8)
    RemBertForSequenceClassification(tiny_config()).save_pretrained(tmp_path)
    ids = torch.tensor(PROMPT)
    mask = (ids != 0).long()
    float32 = RemBertForSequenceClassification.from_pretrained(tmp_path)
    loaded = RemBertForSequenceClassification.from_pretrained(tmp_path, quantize="int8")
    dense = loaded.rembert.encoder.layer[0].output.dense
    assert type(dense).__module__.startswith("torch.ao.nn.quantized.dynamic")
    with torch.no_grad():
        same = quantize(float32)(ids, attention_mask=mask).logits.numpy()
        got = loaded(ids, attention_mask=mask).logits.numpy()
        exact = float32(ids, attention_mask=mask).logits.numpy()
    assert_close(got, same, name="quantize= vs quantize()")
    assert_close(got, exact, dtype="int8", name="int8 vs float32")
    with pytest.raises(ValueError, match="quantize must be one of"):
        RemBertForSequenceClassification.from_pretrained(tmp_path, quantize="int4")


def test_from_pretrained_takes_transformers_loading_arguments(tmp_path: Path) -> None:
    torch.manual_seed(9)
    transformers.RemBertForMaskedLM(transformers.RemBertConfig(**tiny_config().to_dict())).save_pretrained(
        tmp_path / "sub"
    )
    ref = transformers.RemBertForMaskedLM.from_pretrained(tmp_path, subfolder="sub").eval()
    loading = {"trust_remote_code": False, "use_safetensors": True, "proxies": None, "force_download": False}
    ours = RemBertForMaskedLM.from_pretrained(tmp_path, subfolder="sub", low_cpu_mem_usage=True, **loading)
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        assert_close(ours(ids).logits.numpy(), ref(ids).logits.numpy())
    assert not set(loading) & set(ours.config.to_dict())  # download settings never land in config.json
    with pytest.raises(OSError, match="no subfolder 'missing'"):
        RemBertForMaskedLM.from_pretrained(tmp_path, subfolder="missing")
    with pytest.raises(OSError, match="variant='fp16'"):
        RemBertForMaskedLM.from_pretrained(tmp_path / "sub", variant="fp16")


@pytest.mark.parametrize("options", [{}, {"num_beams": 3, "num_return_sequences": 2}, {"do_sample": True, "top_k": 5}])
@pytest.mark.parametrize("normalize", [False, True])
def test_compute_transition_scores_matches_reference(decoder: Any, options: dict[str, Any], normalize: bool) -> None:
    _, ref, ours = decoder
    eos = [_frequent_token(ref)]
    out = ours.generate(
        **_inputs(),
        max_new_tokens=6,
        eos_token_id=eos,
        pad_token_id=0,
        output_scores=True,
        return_dict_in_generate=True,
        **options,
    )
    beams = getattr(out, "beam_indices", None)
    expected = ref.compute_transition_scores(out.sequences, out.scores, beams, normalize_logits=normalize)
    actual = ours.compute_transition_scores(out.sequences, out.scores, beams, normalize_logits=normalize)
    finite = torch.isfinite(expected)
    assert torch.equal(finite, torch.isfinite(actual))
    assert_close(actual[finite].numpy(), expected[finite].numpy(), name="transition scores")


def test_tf_generation_config_file(tmp_path: Path, decoder: Any) -> None:
    pytest.importorskip("tensorflow")
    from rembert_tf import TFRemBertForCausalLM

    folder = decoder[0]
    ours = RemBertForCausalLM.from_pretrained(folder)  # a copy: the fixture's model keeps its defaults
    ours.generation_config = GenerationConfig(num_beams=3, max_new_tokens=4, eos_token_id=None, pad_token_id=0)
    ours.save_pretrained(tmp_path / "torch")
    tf_model = TFRemBertForCausalLM.from_pretrained(tmp_path / "torch")
    assert tf_model.generation_config.num_beams == 3
    inputs = _inputs()
    expected = ours.generate(**inputs).numpy()
    assert np.array_equal(tf_model.generate(**{k: v.numpy() for k, v in inputs.items()}).numpy(), expected)
    tf_model.save_pretrained(tmp_path / "tf")
    assert GenerationConfig.from_pretrained(tmp_path / "tf").num_beams == 3
    assert transformers.GenerationConfig.from_pretrained(tmp_path / "tf").num_beams == 3
