"""Decoder mode: causal mask, cross-attention, key/value cache, generate; against the reference and ourselves."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rembert_core import RemBertConfig
from rembert_torch import RemBertForCausalLM, RemBertModel

DECODER = {"is_decoder": True, "add_cross_attention": True}


def _legacy(value: Any) -> Any:
    to_legacy = getattr(value, "to_legacy_cache", None)
    if not callable(to_legacy):
        return value
    return tuple(tuple(t for t in layer if t is not None) for layer in to_legacy())


def _encoder_inputs(cfg: dict[str, Any], batch: int = 3, enc_len: int = 5, seed: int = 7) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, enc_len, cfg["hidden_size"], generator=gen)
    mask = torch.ones(batch, enc_len, dtype=torch.long)
    mask[1, enc_len - 2 :] = 0
    if batch > 2:
        mask[2, :] = 0  # a fully padded encoder row
    return {"encoder_hidden_states": states, "encoder_attention_mask": mask}


@pytest.mark.oracle
@pytest.mark.parametrize("config_name", ["odd", "wide"])
def test_cross_attention_decoder_matches_reference(
    config_name: str,
    transformers_mod: Any,
    reference_checkpoint: Any,
    batch_factory: Any,
    close: Any,
    configs: Any,
) -> None:
    cfg = {**configs[config_name], **DECODER}
    path = reference_checkpoint("causal_lm", config_name, **DECODER)
    ref = transformers_mod.RemBertForCausalLM.from_pretrained(path).eval()
    ours = RemBertForCausalLM.from_pretrained(path)
    inputs = {**batch_factory(cfg, batch=3, seq=6), **_encoder_inputs(cfg)}
    labels = inputs["input_ids"].clone()
    expected = ref(**inputs, labels=labels, output_attentions=True, output_hidden_states=True)
    actual = ours(**inputs, labels=labels, output_attentions=True, output_hidden_states=True)
    assert list(actual.keys()) == list(expected.keys())
    for key in expected.keys():  # noqa: SIM118 - ModelOutput iteration order is the point
        kind = "attentions" if "attentions" in key else "loss" if key == "loss" else "activations"
        close(actual[key], _legacy(expected[key]), quantity=kind, name=f"decoder/{key}")
    assert all(len(layer) == 4 for layer in actual.past_key_values)
    # Gradients through the causal + cross-attention path.
    expected = ref(**inputs, labels=labels)
    actual = ours(**inputs, labels=labels)
    expected.loss.backward()
    actual.loss.backward()
    ref_params = dict(ref.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None, name
        close(param.grad, ref_params[name].grad, quantity="gradients", name=f"decoder grad {name}")


@pytest.mark.oracle
def test_incremental_step_matches_reference_with_its_cache(
    transformers_mod: Any, reference_checkpoint: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    cfg = {**configs["odd"], **DECODER}
    path = reference_checkpoint("causal_lm", "odd", **DECODER)
    ref = transformers_mod.RemBertForCausalLM.from_pretrained(path).eval()
    ours = RemBertForCausalLM.from_pretrained(path)
    inputs = batch_factory(cfg, batch=2, seq=7)
    enc = _encoder_inputs(cfg, batch=2)
    prefix = {k: v[:, :5] for k, v in inputs.items()}
    first_ref = ref(**prefix, **enc, use_cache=True)
    first_ours = ours(**prefix, **enc, use_cache=True)
    ref_cache = _legacy(first_ref.past_key_values)  # before the reference updates its cache in place
    close(first_ours.past_key_values, ref_cache, name="first-step cache")
    step = {
        "input_ids": inputs["input_ids"][:, 5:],
        "token_type_ids": inputs["token_type_ids"][:, 5:],
        "attention_mask": inputs["attention_mask"],
    }
    second_ref = ref(**step, **enc, past_key_values=first_ref.past_key_values, use_cache=True)
    # Ours continues from the reference's own cache object and from our tuples alike.
    from_ref_cache = ours(**step, **enc, past_key_values=ref_cache, use_cache=True)
    from_ours = ours(**step, **enc, past_key_values=first_ours.past_key_values, use_cache=True)
    cache_object = transformers_mod.EncoderDecoderCache.from_legacy_cache(ref_cache)  # a transformers Cache
    from_cache_object = ours(**step, **enc, past_key_values=cache_object, use_cache=True)
    for actual in (from_ref_cache, from_ours, from_cache_object):
        close(actual.logits, second_ref.logits, name="second-step logits")
        close(actual.past_key_values, _legacy(second_ref.past_key_values), name="second-step cache")


@pytest.mark.parametrize("cross", [False, True])
def test_incremental_decoding_equals_full_forward(cross: bool, batch_factory: Any, close: Any, configs: Any) -> None:
    cfg = {**configs["odd"], "is_decoder": True, "add_cross_attention": cross}
    torch.manual_seed(0)
    model = RemBertForCausalLM(RemBertConfig(**cfg)).eval()
    inputs = batch_factory(cfg, batch=3, seq=8, fully_padded_row=False)
    enc = _encoder_inputs(cfg, batch=3) if cross else {}
    full = model(**inputs, **enc, use_cache=True)
    past = None
    for t in range(8):
        out = model(
            inputs["input_ids"][:, t : t + 1],
            token_type_ids=inputs["token_type_ids"][:, t : t + 1],
            attention_mask=inputs["attention_mask"][:, : t + 1],
            past_key_values=past,
            use_cache=True,
            **enc,
        )
        close(out.logits[:, 0], full.logits[:, t], name=f"step {t} logits")
        past = out.past_key_values
    close(past, full.past_key_values, name="final cache")
    # Two chunks at once also agree.
    first = model(**{k: v[:, :5] for k, v in inputs.items()}, **enc, use_cache=True)
    rest = model(
        inputs["input_ids"][:, 5:],
        token_type_ids=inputs["token_type_ids"][:, 5:],
        attention_mask=inputs["attention_mask"],
        past_key_values=first.past_key_values,
        **enc,
    )
    close(rest.logits, full.logits[:, 5:], name="chunked logits")


def test_decoder_is_causal_and_encoder_is_not(configs: Any) -> None:
    ids = torch.tensor([[5, 6, 7, 8]])
    changed = torch.tensor([[5, 6, 7, 9]])
    for is_decoder in (True, False):
        torch.manual_seed(0)
        model = RemBertModel(RemBertConfig(**{**configs["odd"], "is_decoder": is_decoder})).eval()
        a = model(ids).last_hidden_state
        b = model(changed).last_hidden_state
        assert torch.equal(a[:, :3], b[:, :3]) is is_decoder


@pytest.mark.oracle
def test_greedy_generate_matches_reference(transformers_mod: Any, reference_checkpoint: Any, configs: Any) -> None:
    path = reference_checkpoint("causal_lm", "odd", is_decoder=True)
    ref = transformers_mod.RemBertForCausalLM.from_pretrained(path).eval()
    ours = RemBertForCausalLM.from_pretrained(path)
    prompt = torch.tensor([[0, 0, 17, 45, 9], [33, 8, 120, 7, 64]])  # row 0 left-padded
    mask = (prompt != 0).long()
    expected = ref.generate(
        prompt, attention_mask=mask, max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    actual = ours.generate(prompt, attention_mask=mask, max_new_tokens=6, eos_token_id=-1)
    assert torch.equal(actual, expected), (actual, expected)
    no_cache = ours.generate(prompt, attention_mask=mask, max_new_tokens=6, eos_token_id=-1, use_cache=False)
    assert torch.equal(no_cache, expected)


def test_generate_sampling_and_eos(configs: Any) -> None:
    torch.manual_seed(0)
    model = RemBertForCausalLM(RemBertConfig(**{**configs["odd"], "is_decoder": True})).eval()
    prompt = torch.tensor([[4, 5, 6], [7, 8, 9]])
    a = model.generate(
        prompt,
        max_new_tokens=5,
        do_sample=True,
        top_k=20,
        top_p=0.9,
        temperature=0.7,
        generator=torch.Generator().manual_seed(1),
        eos_token_id=-1,
    )
    b = model.generate(
        prompt,
        max_new_tokens=5,
        do_sample=True,
        top_k=20,
        top_p=0.9,
        temperature=0.7,
        generator=torch.Generator().manual_seed(1),
        eos_token_id=-1,
    )
    assert torch.equal(a, b) and a.shape == (2, 8)
    assert torch.equal(a[:, :3], prompt)
    # top_k=1 sampling is greedy.
    greedy = model.generate(prompt, max_new_tokens=5, eos_token_id=-1)
    top1 = model.generate(prompt, max_new_tokens=5, do_sample=True, top_k=1, eos_token_id=-1)
    assert torch.equal(greedy, top1)
    # Stopping: make the first greedy token the eos token; that row then gets padding.
    eos = int(greedy[0, 3])
    stopped = model.generate(prompt, max_new_tokens=5, eos_token_id=eos, pad_token_id=0)
    assert stopped[0, 3] == eos
    assert (stopped[0, 4:] == 0).all()
    if (greedy[1] != eos).all():
        assert stopped.shape[1] == 8
