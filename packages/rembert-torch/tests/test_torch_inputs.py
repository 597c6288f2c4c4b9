"""The bad-input catalogue: each mistake is a clear InputError (a ValueError) raised before any kernel runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from rembert_core import ConfigError, InputError, RemBertConfig
from rembert_torch import (
    RemBertForCausalLM,
    RemBertForMaskedLM,
    RemBertForMultipleChoice,
    RemBertForQuestionAnswering,
    RemBertForSequenceClassification,
    RemBertForTokenClassification,
    RemBertModel,
)

IDS = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    return dict(
        vocab_size=301,
        hidden_size=48,
        num_attention_heads=6,
        num_hidden_layers=2,
        input_embedding_size=20,
        output_embedding_size=36,
        intermediate_size=64,
        type_vocab_size=3,
        max_position_embeddings=10,
        num_labels=3,
    )


def _build(cls: type, cfg: dict[str, Any], **changes: Any) -> Any:
    torch.manual_seed(0)
    model = cls(RemBertConfig(**{**cfg, **changes})).eval()
    calls: list[int] = []
    model.base_model.embeddings.register_forward_pre_hook(lambda *_: calls.append(1))
    model.kernel_calls = calls
    return model


def _raises(model: Any, match: str, **kwargs: Any) -> None:
    with pytest.raises(InputError, match=match) as info:
        model(**kwargs)
    assert isinstance(info.value, ValueError)
    assert model.kernel_calls == [], "the error must come before any computation"


BASE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("id too large", {"input_ids": torch.tensor([[5, 301]])}, r"input_ids contains 301, outside .*\[0, 301\)"),
    ("negative id", {"input_ids": torch.tensor([[-1, 3]])}, r"input_ids contains -1"),
    ("float ids", {"input_ids": IDS.float()}, r"input_ids must be an integer tensor, got dtype torch.float32"),
    ("bool ids", {"input_ids": IDS.bool()}, r"input_ids must be an integer tensor"),
    ("1-D ids", {"input_ids": torch.tensor([5, 6])}, r"input_ids must have shape \(batch, seq\), got \(2,\)"),
    ("list ids", {"input_ids": [[5, 6]]}, r"input_ids must be a torch.Tensor, got list"),
    ("neither", {}, r"pass input_ids \(batch, seq\) or inputs_embeds"),
    ("both", {"input_ids": IDS, "inputs_embeds": torch.zeros(2, 4, 20)}, r"either input_ids or inputs_embeds"),
    ("embeds width", {"inputs_embeds": torch.zeros(2, 4, 48)}, r"inputs_embeds must have shape .*got \(2, 4, 48\)"),
    ("int embeds", {"inputs_embeds": torch.zeros(2, 4, 20, dtype=torch.long)}, r"inputs_embeds must be a floating"),
    ("too long", {"input_ids": torch.ones(1, 11, dtype=torch.long)}, r"sequence length 11 exceeds max_position_emb"),
    (
        "token type too large",
        {"input_ids": IDS, "token_type_ids": torch.full((2, 4), 3)},
        r"token_type_ids contains 3, outside the allowed range \[0, 3\)",
    ),
    (
        "token type shape",
        {"input_ids": IDS, "token_type_ids": torch.zeros(2, 3, dtype=torch.long)},
        r"token_type_ids has shape \(2, 3\), expected \(2, 4\)",
    ),
    (
        "float token types",
        {"input_ids": IDS, "token_type_ids": torch.zeros(2, 4)},
        r"token_type_ids must be an integer tensor",
    ),
    (
        "mask shape",
        {"input_ids": IDS, "attention_mask": torch.ones(2, 5)},
        r"attention_mask has shape \(2, 5\), expected \(2, 4\)",
    ),
    (
        "mask rank",
        {"input_ids": IDS, "attention_mask": torch.ones(2)},
        r"attention_mask must have shape \(2, 4\) or \(2, 4, 4\), got \(2,\)",
    ),
    (
        "complex mask",
        {"input_ids": IDS, "attention_mask": torch.ones(2, 4, dtype=torch.complex64)},
        r"attention_mask must be a bool, integer or float tensor",
    ),
    (
        "position too large",
        {"input_ids": IDS, "position_ids": torch.tensor([[0, 1, 2, 10]])},
        r"position_ids contains 10, outside the allowed range \[0, 10\)",
    ),
    (
        "position shape",
        {"input_ids": IDS, "position_ids": torch.tensor([[0, 1, 2]])},
        r"position_ids has shape \(1, 3\), expected \(2, 4\), \(1, 4\) or \(4,\)",
    ),
    (
        "head mask shape",
        {"input_ids": IDS, "head_mask": torch.ones(3, 6)},
        r"head_mask has shape \(3, 6\), expected \(6,\), \(2, 6\)",
    ),
]


@pytest.mark.parametrize(("kwargs", "match"), [c[1:] for c in BASE_CASES], ids=[c[0] for c in BASE_CASES])
def test_bad_backbone_inputs(kwargs: dict[str, Any], match: str, cfg: dict[str, Any]) -> None:
    _raises(_build(RemBertModel, cfg), match, **kwargs)


HEAD_CASES: list[tuple[str, type, dict[str, Any], dict[str, Any], str]] = [
    (
        "mlm labels shape",
        RemBertForMaskedLM,
        {},
        {"labels": IDS[:, :3]},
        r"labels has shape \(2, 3\), expected \(2, 4\)",
    ),
    ("mlm label range", RemBertForMaskedLM, {}, {"labels": torch.full((2, 4), 301)}, r"labels contains 301"),
    ("mlm float labels", RemBertForMaskedLM, {}, {"labels": IDS.float()}, r"labels must be an integer tensor"),
    (
        "clm labels shape",
        RemBertForCausalLM,
        {"is_decoder": True},
        {"labels": IDS.T},
        r"labels has shape \(4, 2\), expected \(2, 4\)",
    ),
    (
        "seq labels shape",
        RemBertForSequenceClassification,
        {},
        {"labels": torch.tensor([0, 1, 2])},
        r"labels has shape \(3,\), expected \(2,\)",
    ),
    (
        "seq label range",
        RemBertForSequenceClassification,
        {},
        {"labels": torch.tensor([0, 3])},
        r"labels contains 3, outside the allowed range \[0, 3\)",
    ),
    (
        "multi-label shape",
        RemBertForSequenceClassification,
        {"problem_type": "multi_label_classification"},
        {"labels": torch.ones(2, 2)},
        r"labels has shape \(2, 2\), expected \(2, 3\)",
    ),
    (
        "regression int labels",
        RemBertForSequenceClassification,
        {"num_labels": 1},
        {"labels": torch.tensor([1, 0])},
        r"labels for regression must be floating point",
    ),
    (
        "token labels shape",
        RemBertForTokenClassification,
        {},
        {"labels": torch.zeros(2, dtype=torch.long)},
        r"labels has shape \(2,\), expected \(2, 4\)",
    ),
    (
        "token label range",
        RemBertForTokenClassification,
        {},
        {"labels": torch.full((2, 4), 7)},
        r"labels contains 7",
    ),
    (
        "qa positions shape",
        RemBertForQuestionAnswering,
        {"num_labels": 2},
        {"start_positions": torch.zeros(2, 2, dtype=torch.long), "end_positions": torch.zeros(2, dtype=torch.long)},
        r"start_positions has shape \(2, 2\), expected \(2,\)",
    ),
    (
        "qa one position",
        RemBertForQuestionAnswering,
        {"num_labels": 2},
        {"start_positions": torch.zeros(2, dtype=torch.long)},
        r"pass both start_positions and end_positions",
    ),
    (
        "qa float positions",
        RemBertForQuestionAnswering,
        {"num_labels": 2},
        {"start_positions": torch.zeros(2), "end_positions": torch.zeros(2)},
        r"start_positions must be an integer tensor",
    ),
]


@pytest.mark.parametrize(
    ("cls", "changes", "kwargs", "match"), [c[1:] for c in HEAD_CASES], ids=[c[0] for c in HEAD_CASES]
)
def test_bad_head_labels(cls: type, changes: dict[str, Any], kwargs: dict[str, Any], match: str, cfg: Any) -> None:
    _raises(_build(cls, cfg, **changes), match, input_ids=IDS, attention_mask=MASK, **kwargs)


def test_bad_multiple_choice_inputs(cfg: dict[str, Any]) -> None:
    model = _build(RemBertForMultipleChoice, cfg)
    ids = IDS[:, None, :].expand(2, 3, 4)
    _raises(model, r"input_ids must have shape \(batch, num_choices, seq\), got \(2, 4\)", input_ids=IDS)
    _raises(model, r"attention_mask has shape \(2, 4\), expected \(2, 3, 4\)", input_ids=ids, attention_mask=MASK)
    _raises(model, r"labels has shape \(2, 1\), expected \(2,\)", input_ids=ids, labels=torch.zeros(2, 1).long())
    _raises(model, r"labels contains 3, outside the allowed range \[0, 3\)", input_ids=ids, labels=torch.tensor([0, 3]))
    _raises(model, r"pass input_ids \(batch, num_choices, seq\) or inputs_embeds")


def test_bad_decoder_inputs(cfg: dict[str, Any]) -> None:
    plain = _build(RemBertForCausalLM, cfg, is_decoder=True)
    enc = torch.zeros(2, 3, 48)
    _raises(plain, r"no cross-attention layers", input_ids=IDS, encoder_hidden_states=enc)
    cross = _build(RemBertForCausalLM, cfg, is_decoder=True, add_cross_attention=True)
    _raises(
        cross,
        r"encoder_hidden_states has shape \(2, 3, 20\)",
        input_ids=IDS,
        encoder_hidden_states=torch.zeros(2, 3, 20),
    )
    _raises(
        cross,
        r"encoder_attention_mask has shape \(2, 4\)",
        input_ids=IDS,
        encoder_hidden_states=enc,
        encoder_attention_mask=torch.ones(2, 4),
    )
    past = cross(IDS, use_cache=True).past_key_values
    cross.kernel_calls.clear()
    _raises(cross, r"past_key_values has 1 layers, but num_hidden_layers=2", input_ids=IDS, past_key_values=past[:1])
    _raises(
        cross,
        r"past_key_values\[0\]\[0\] has shape \(2, 6, 4, 8\), expected \(1, 6, 4, 8\)",
        input_ids=IDS[:1],
        past_key_values=past,
    )
    _raises(cross, r"past_key_values\[0\] must be a tuple of 2 or 4 tensors", input_ids=IDS, past_key_values=[[1]])
    _raises(
        cross,
        r"attention_mask has shape \(2, 4\), expected \(2, 8\)",
        input_ids=IDS,
        attention_mask=MASK,
        past_key_values=past,
    )
    _raises(
        cross,
        r"sequence length 12 \(8 cached \+ 4 new\) exceeds max_position_embeddings=10",
        input_ids=IDS,
        past_key_values=tuple((torch.cat([k, k], 2), torch.cat([v, v], 2)) for k, v in past),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_new_tokens": -1}, r"max_new_tokens must be an integer >= 0, got -1"),
        ({"max_new_tokens": 7}, r"prompt length 4 \+ 7 new tokens exceeds max_position_embeddings=10"),
        ({"do_sample": True, "temperature": 0.0}, r"temperature must be > 0"),
        ({"do_sample": True, "top_p": 1.5}, r"top_p must be >= 0.0 and <= 1.0, got 1.5"),
        ({"do_sample": True, "top_k": -1}, r"top_k must be an integer >= 0"),
        ({"num_beams": 2, "num_return_sequences": 3}, r"num_return_sequences \(3\) must be <= num_beams \(2\)"),
        ({"max_new_tokens": 0}, r"Input length of input_ids is 4, but `max_length` is set to 4"),
        ({"top_n": 3}, r"model_kwargs` are not used by the model: \['top_n'\]"),
        ({"num_beam_groups": 2}, r"generate does not implement num_beam_groups=2"),
        ({"attention_mask": torch.ones(2, 3)}, r"attention_mask has shape \(2, 3\), expected \(2, 4\)"),
    ],
)
def test_bad_generate_arguments(kwargs: dict[str, Any], match: str, cfg: dict[str, Any]) -> None:
    model = _build(RemBertForCausalLM, cfg, is_decoder=True)
    with pytest.raises(InputError, match=match):
        model.generate(IDS, **{"max_new_tokens": 2, **kwargs})
    assert model.kernel_calls == []


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda c: RemBertModel(RemBertConfig(**{**c, "add_cross_attention": True})), "needs is_decoder=True"),
        (lambda c: RemBertForQuestionAnswering(RemBertConfig(**c)), "needs num_labels=2"),
        (lambda c: RemBertModel(c), "must be a rembert_core.RemBertConfig"),
    ],
    ids=["cross-attention encoder", "qa labels", "dict config"],
)
def test_bad_configs(build: Callable[[dict[str, Any]], Any], match: str, cfg: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=match):
        build(cfg)


def test_valid_edge_inputs_run(cfg: dict[str, Any]) -> None:
    model = _build(RemBertModel, cfg)
    full_length = torch.randint(0, 301, (1, 10))  # exactly max_position_embeddings
    assert model(full_length).last_hidden_state.shape == (1, 10, 48)
    positions = torch.tensor([3, 2, 1, 0])
    assert torch.equal(  # 1-D position ids broadcast over the batch, as in the reference
        model(IDS, position_ids=positions).last_hidden_state,
        model(IDS, position_ids=positions.expand(2, 4)).last_hidden_state,
    )
    ids32 = IDS.to(torch.int32)  # any integer dtype
    assert torch.equal(model(ids32, attention_mask=MASK.bool()).last_hidden_state, model(IDS, MASK).last_hidden_state)
    labelled = _build(RemBertForMaskedLM, cfg)
    labels = torch.full((2, 4), -100)
    labels[0, 1] = 300
    assert torch.isfinite(labelled(IDS, labels=labels).loss)


# -- found by the robustness suite (tests/robustness) -------------------------------------------


@pytest.mark.parametrize("value", [7.0, -1.0, float("inf"), float("nan"), 2.0**31])
def test_attention_mask_values_outside_zero_one_are_refused(cfg: dict[str, Any], value: float) -> None:
    """A mask value of 7 (or inf, NaN) used to give non-finite hidden states silently."""
    model = RemBertModel(RemBertConfig(**cfg)).eval()
    mask = MASK.clone().float()
    mask[0, 1] = value
    with pytest.raises(InputError, match=r"attention_mask contains .*values must be in \[0, 1\]"):
        model(IDS, attention_mask=mask)
    assert torch.isfinite(model(IDS, attention_mask=MASK * 0.5).last_hidden_state).all()  # soft masks still work


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8, torch.int8])
def test_small_integer_ids_work_like_int64(cfg: dict[str, Any], dtype: torch.dtype) -> None:
    """int16 token_type_ids/position_ids/input_ids used to fail inside nn.Embedding with a bare RuntimeError."""
    model = RemBertModel(RemBertConfig(**cfg)).eval()
    types = torch.tensor([[0, 1, 2, 0], [1, 1, 0, 0]])
    positions = torch.arange(4).expand(2, 4)
    expected = model(IDS, token_type_ids=types, position_ids=positions).last_hidden_state
    got = model(IDS.to(dtype), token_type_ids=types.to(dtype), position_ids=positions.to(dtype)).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_output_flags_come_from_the_config_when_the_call_omits_them() -> None:
    """As in transformers: config.return_dict / output_hidden_states / output_attentions are the defaults."""
    from rembert_core.testing import tiny_config
    from rembert_torch import RemBertModel

    torch.manual_seed(0)
    model = RemBertModel(tiny_config()).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    assert model(ids).hidden_states is None and model(ids).attentions is None
    model.config.output_hidden_states = True
    model.config.output_attentions = True
    out = model(ids)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert model(ids, output_attentions=False).attentions is None  # the call wins
    model.config.return_dict = False
    as_tuple = model(ids)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.last_hidden_state)
    assert not isinstance(model(ids, return_dict=True), tuple)
