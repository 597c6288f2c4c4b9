"""The fast paths of issue 22 against the reference (transformers 4.57) on the same weights.

Masked-LM loss without the full logits (``return_logits=False``), causal-LM ``logits_to_keep``, unpadded
execution of the heads that read no padded position (sequence classification, multiple choice, masked-LM
loss) on padded batches (rows fully padded, one-token rows, equal lengths, left and right padding), in
inference and training, and the attention kernel choice (matmul-softmax in bfloat16 on CPU).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import rembert_torch.kernels as kernels
from rembert_core import RemBertConfig
from rembert_torch import (
    RemBertForCausalLM,
    RemBertForMaskedLM,
    RemBertForMultipleChoice,
    RemBertForSequenceClassification,
)

SEQ = 9


def _masks() -> dict[str, torch.Tensor]:
    """Padding layouts (batch 4, seq 9) the unpadded paths must handle."""
    right = torch.tensor([[1] * 9, [1] * 3 + [0] * 6, [1] + [0] * 8, [1] * 6 + [0] * 3])
    return {
        "right": right,
        "left": right.flip(-1),
        "fully_padded_row": torch.tensor([[1] * 5 + [0] * 4, [0] * 9, [1] * 2 + [0] * 7, [1] * 9]),
        "one_token_rows": torch.tensor([[1] + [0] * 8] * 3 + [[1] * 4 + [0] * 5]),
        "equal_lengths": torch.tensor([[1] * 5 + [0] * 4] * 4),
        "no_padding": torch.ones(4, SEQ, dtype=torch.long),
    }


MASKS = _masks()


def _inputs(config: dict[str, Any], mask: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, config["vocab_size"], mask.shape, generator=gen).masked_fill(mask == 0, 0)
    types = torch.randint(0, config["type_vocab_size"], mask.shape, generator=gen)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _no_dropout(*models: torch.nn.Module) -> None:
    for model in models:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0


def _count_unpadded(monkeypatch: Any) -> list[int]:
    calls: list[int] = []
    original = kernels.unpadded_attention

    def counting(*args: Any) -> torch.Tensor:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr("rembert_torch.layers.unpadded_attention", counting)
    return calls


def _grads(ours: torch.nn.Module, ref: torch.nn.Module, close: Any) -> None:
    expected = dict(ref.named_parameters())
    for name, param in ours.named_parameters():
        if param.grad is None:
            ref_grad = expected[name].grad
            assert ref_grad is None or not ref_grad.any(), name
            continue
        close(param.grad, expected[name].grad, quantity="gradients", name=f"grad {name}")


# -- masked LM without the full logits -----------------------------------------------------------


@pytest.mark.parametrize("layout", ["right", "left", "fully_padded_row", "no_padding"])
def test_masked_lm_loss_without_logits_matches_reference(
    layout: str, transformers_mod: Any, reference_checkpoint: Any, configs: Any, close: Any, monkeypatch: Any
) -> None:
    path = reference_checkpoint("masked_lm", "odd")
    ref = transformers_mod.RemBertForMaskedLM.from_pretrained(path).train()
    ours = RemBertForMaskedLM.from_pretrained(path).train()
    _no_dropout(ref, ours)
    inputs = _inputs(configs["odd"], MASKS[layout])
    labels = torch.full(MASKS[layout].shape, -100)
    real = MASKS[layout].nonzero()
    picked = real[torch.arange(0, len(real), 3)]  # every third real token labelled
    labels[picked[:, 0], picked[:, 1]] = inputs["input_ids"][picked[:, 0], picked[:, 1]]
    calls = _count_unpadded(monkeypatch)

    expected = ref(**inputs, labels=labels)
    expected.loss.backward()
    out = ours(**inputs, labels=labels, return_logits=False)
    assert out.logits is None
    out.loss.backward()
    close(out.loss, expected.loss, quantity="loss", name="loss")
    _grads(ours, ref, close)
    assert bool(calls) == (layout in ("right", "left", "fully_padded_row"))


def test_masked_lm_return_logits_default_and_config(reference_checkpoint: Any, configs: Any, close: Any) -> None:
    path = reference_checkpoint("masked_lm", "odd")
    ours = RemBertForMaskedLM.from_pretrained(path).eval()
    inputs = _inputs(configs["odd"], MASKS["right"])
    labels = inputs["input_ids"].masked_fill(MASKS["right"] == 0, -100)
    with torch.no_grad():
        full = ours(**inputs, labels=labels)
        assert full.logits.shape == (*labels.shape, configs["odd"]["vocab_size"])  # default unchanged
        ours.config.return_logits = False  # a training loop's switch: applies where labels are given
        lean = ours(**inputs, labels=labels)
        assert ours(**inputs).logits is not None  # no labels: logits as always
        assert ours(**inputs, labels=labels, return_logits=True).logits is not None  # the call wins
    assert lean.logits is None
    close(lean.loss, full.loss, quantity="loss", name="loss")


def test_masked_lm_label_on_a_padded_position_runs_padded(
    transformers_mod: Any, reference_checkpoint: Any, configs: Any, close: Any, monkeypatch: Any
) -> None:
    path = reference_checkpoint("masked_lm", "odd")
    ref = transformers_mod.RemBertForMaskedLM.from_pretrained(path).eval()
    ours = RemBertForMaskedLM.from_pretrained(path).eval()
    inputs = _inputs(configs["odd"], MASKS["right"])
    labels = torch.full(MASKS["right"].shape, -100)
    labels[1, 7] = 5  # a padded position
    labels[0, 0] = 6
    calls = _count_unpadded(monkeypatch)
    with torch.no_grad():
        close(ours(**inputs, labels=labels, return_logits=False).loss, ref(**inputs, labels=labels).loss, name="loss")
    assert not calls


# -- causal LM: logits_to_keep ------------------------------------------------------------------


@pytest.mark.parametrize("keep", [1, 3, "tensor"])
def test_causal_lm_logits_to_keep(
    keep: Any, transformers_mod: Any, reference_checkpoint: Any, configs: Any, close: Any
) -> None:
    path = reference_checkpoint("causal_lm", "odd", is_decoder=True)
    ref = transformers_mod.RemBertForCausalLM.from_pretrained(path).eval()
    ours = RemBertForCausalLM.from_pretrained(path).eval()
    inputs = _inputs(configs["odd"], MASKS["right"])
    labels = inputs["input_ids"].masked_fill(MASKS["right"] == 0, -100)
    kept: Any = torch.tensor([0, 4, 8]) if keep == "tensor" else keep
    with torch.no_grad():
        expected = ref(**inputs, labels=labels)
        out = ours(**inputs, labels=labels, logits_to_keep=kept)
    positions = kept if isinstance(kept, torch.Tensor) else slice(-kept, None)
    close(out.logits, expected.logits[:, positions], name="logits")
    close(out.loss, expected.loss, quantity="loss", name="loss")


# -- unpadded execution --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(MASKS))
def test_sequence_classification_unpadded_matches_reference(
    layout: str, transformers_mod: Any, reference_checkpoint: Any, configs: Any, close: Any, monkeypatch: Any
) -> None:
    path = reference_checkpoint("sequence_classification", "odd")
    ref = transformers_mod.RemBertForSequenceClassification.from_pretrained(path).train()
    ours = RemBertForSequenceClassification.from_pretrained(path).train()
    _no_dropout(ref, ours)
    inputs = _inputs(configs["odd"], MASKS[layout], seed=1)
    labels = torch.tensor([0, 1, 1, 0])
    calls = _count_unpadded(monkeypatch)
    with torch.no_grad():
        close(ours.eval()(**inputs).logits, ref.eval()(**inputs).logits, name="logits")
    ours.train()
    ref.train()
    expected = ref(**inputs, labels=labels)
    expected.loss.backward()
    out = ours(**inputs, labels=labels)
    out.loss.backward()
    close(out.logits, expected.logits, name="logits (train)")
    close(out.loss, expected.loss, quantity="loss", name="loss")
    _grads(ours, ref, close)
    # rows whose position 0 is padding (left padding, a fully padded row) run padded; pooled heads unpad
    # even a batch without padding (their last layer computes position 0 only)
    assert bool(calls) == (layout in ("right", "one_token_rows", "equal_lengths", "no_padding"))


def test_multiple_choice_unpadded_matches_reference(
    transformers_mod: Any, reference_checkpoint: Any, configs: Any, close: Any, monkeypatch: Any
) -> None:
    path = reference_checkpoint("multiple_choice", "odd")
    ref = transformers_mod.RemBertForMultipleChoice.from_pretrained(path).eval()
    ours = RemBertForMultipleChoice.from_pretrained(path).eval()
    inputs = {k: v.reshape(2, 2, SEQ) for k, v in _inputs(configs["odd"], MASKS["right"]).items()}
    calls = _count_unpadded(monkeypatch)
    with torch.no_grad():
        expected = ref(**inputs, labels=torch.tensor([1, 0]))
        out = ours(**inputs, labels=torch.tensor([1, 0]))
    close(out.logits, expected.logits, name="logits")
    close(out.loss, expected.loss, quantity="loss", name="loss")
    assert calls


def test_outputs_that_need_padded_positions_run_padded(
    transformers_mod: Any, reference_checkpoint: Any, configs: Any, close: Any, monkeypatch: Any
) -> None:
    path = reference_checkpoint("sequence_classification", "odd")
    ref = transformers_mod.RemBertForSequenceClassification.from_pretrained(path).eval()
    ours = RemBertForSequenceClassification.from_pretrained(path).eval()
    inputs = _inputs(configs["odd"], MASKS["right"])
    calls = _count_unpadded(monkeypatch)
    with torch.no_grad():
        expected = ref(**inputs, output_hidden_states=True, output_attentions=True)
        out = ours(**inputs, output_hidden_states=True, output_attentions=True)
    close(out.hidden_states, expected.hidden_states, name="hidden_states")
    close(out.attentions, expected.attentions, quantity="attentions", name="attentions")
    assert not calls
    monkeypatch.setattr(kernels, "UNPAD", False)
    with torch.no_grad():
        close(ours(**inputs).logits, expected.logits, name="logits")
    assert not calls


def test_unpadding_plan() -> None:
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    plan = kernels.plan_unpadding(mask)
    assert plan is not None
    assert plan.lengths == (2, 2, 1, 0)
    assert plan.runs == ((0, 2, 2), (4, 1, 1))  # equal-length neighbours share one attention call
    assert plan.index.tolist() == [0, 1, 4, 5, 8]
    assert plan.starts.tolist()[:3] == [0, 2, 4]
    assert kernels.plan_unpadding(mask, pooled=True) is None  # the last row has no position 0
    assert kernels.plan_unpadding(torch.ones(4, 4)) is None  # nothing to save
    full = kernels.plan_unpadding(torch.ones(4, 4), pooled=True)  # but a pooled head's last layer saves
    assert full is not None and full.pool_only and full.runs == ((0, 4, 4),)
    assert kernels.plan_unpadding(mask[:1]) is None  # one row
    assert kernels.plan_unpadding(mask * 2) is None  # not a 0/1 mask
    assert kernels.plan_unpadding(torch.zeros(2, 3)) is None  # no real token


# -- attention kernel ---------------------------------------------------------------------------


def test_attention_kernel_choice() -> None:
    q = torch.zeros(1, 2, 8, 4, dtype=torch.bfloat16)
    long = torch.zeros(1, 2, 512, 4, dtype=torch.bfloat16)
    assert kernels.attention_kernel("auto", q, q, q, None, None, False) == "matmul"  # short bfloat16
    assert kernels.attention_kernel("auto", long, long, long, None, None, False) == "sdpa"
    trained = long.clone().requires_grad_()
    assert kernels.attention_kernel("auto", trained, trained, trained, None, None, False) == "matmul"
    assert kernels.attention_kernel("auto", q.float(), q.float(), q.float(), None, None, False) == "sdpa"
    assert kernels.attention_kernel("sdpa", q, q, q, None, None, False) == "sdpa"
    assert kernels.attention_kernel("eager", q.float(), q.float(), q.float(), None, None, False) == "eager"
    assert kernels.attention_kernel("auto", q, q, q, None, None, True) == "eager"  # probabilities wanted


@pytest.mark.parametrize("layout", ["right", "no_padding"])
def test_bfloat16_and_autocast_match_reference(
    layout: str, transformers_mod: Any, reference_checkpoint: Any, configs: Any, close: Any
) -> None:
    path = reference_checkpoint("sequence_classification", "odd")
    ref = transformers_mod.RemBertForSequenceClassification.from_pretrained(path).train()
    ours = RemBertForSequenceClassification.from_pretrained(path).train()
    _no_dropout(ref, ours)
    inputs = _inputs(configs["odd"], MASKS[layout], seed=2)
    labels = torch.tensor([0, 1, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = ref(**inputs, labels=labels)
        out = ours(**inputs, labels=labels)
    expected.loss.backward()
    out.loss.backward()
    close(out.logits, expected.logits, dtype="bfloat16", name="logits")
    close(out.loss, expected.loss, dtype="bfloat16", quantity="loss", name="loss")
    for name, param in ours.named_parameters():
        if param.grad is not None:
            ref_grad = dict(ref.named_parameters())[name].grad
            close(param.grad, ref_grad, dtype="bfloat16", quantity="gradients", name=f"grad {name}")
    with torch.no_grad():
        ref16, ours16 = ref.eval().to(torch.bfloat16), ours.eval().to(torch.bfloat16)
        close(ours16(**inputs).logits, ref16(**inputs).logits, dtype="bfloat16", name="bfloat16 logits")


def test_config_attribute_is_additive() -> None:
    assert RemBertConfig().extra.get("return_logits", True) is True


# -- int8 dynamic quantisation ------------------------------------------------------------------


def test_int8_quantize_stays_within_its_bounds(reference_checkpoint: Any, configs: Any, close: Any) -> None:
    from rembert_torch.quantization import quantize

    path = reference_checkpoint("masked_lm", "odd")
    model = RemBertForMaskedLM.from_pretrained(path).eval()
    quantized = quantize(model)
    assert quantized is not model and type(quantized.cls.predictions.decoder).__module__.startswith("torch.ao")
    assert type(model.cls.predictions.decoder) is kernels.Linear  # the original is untouched
    assert type(quantized.rembert.encoder.embedding_hidden_mapping_in) is torch.nn.Linear  # FLOAT32_LAYERS
    inputs = _inputs(configs["odd"], MASKS["right"])
    real = MASKS["right"].bool()
    with torch.no_grad():
        expected = model(**inputs, output_hidden_states=True)
        out = quantized(**inputs, output_hidden_states=True)
    close(out.hidden_states[-1][real], expected.hidden_states[-1][real], dtype="int8", name="last hidden state")
    close(out.logits[real], expected.logits[real], dtype="int8", name="logits")
    with pytest.raises(ValueError, match="int8"):
        quantize(model.to(torch.bfloat16))
    with pytest.raises(ValueError, match="mode"):
        quantize(model, "int4")


# -- random configurations and padded batches ----------------------------------------------------


def _random_case(seed: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    import random

    rng = random.Random(seed)
    heads = rng.choice([1, 2, 3, 4])
    config = {
        "vocab_size": rng.randint(20, 120),
        "hidden_size": heads * rng.choice([2, 4, 5, 8]),
        "num_hidden_layers": rng.randint(1, 3),
        "num_attention_heads": heads,
        "input_embedding_size": rng.randint(3, 20),
        "output_embedding_size": rng.randint(3, 20),
        "intermediate_size": rng.randint(4, 40),
        "hidden_act": rng.choice(["gelu", "relu", "gelu_new", "silu"]),
        "type_vocab_size": rng.randint(1, 3),
        "max_position_embeddings": 32,
        "num_labels": 2,
        "pad_token_id": 0,
    }
    batch, seq = rng.randint(2, 5), rng.randint(1, 12)
    lengths = [rng.randint(1, seq) for _ in range(batch)]
    mask = torch.tensor([[1] * n + [0] * (seq - n) for n in lengths])
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, config["vocab_size"], (batch, seq), generator=gen).masked_fill(mask == 0, 0)
    types = torch.randint(0, config["type_vocab_size"], (batch, seq), generator=gen)
    return config, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.mark.parametrize("seed", range(8))
def test_random_configs_unpadded_heads_match_reference(
    seed: int, transformers_mod: Any, tmp_path: Any, close: Any
) -> None:
    config, inputs = _random_case(seed)
    labels = inputs["input_ids"].masked_fill(
        (inputs["attention_mask"] == 0) | (torch.arange(len(inputs["input_ids"][0])) % 2 == 1), -100
    )
    for task, cls, ours_cls, kwargs in (
        ("mlm", transformers_mod.RemBertForMaskedLM, RemBertForMaskedLM, {"labels": labels}),
        ("cls", transformers_mod.RemBertForSequenceClassification, RemBertForSequenceClassification, {}),
    ):
        torch.manual_seed(seed)
        ref = cls(transformers_mod.RemBertConfig(**config, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
        ref.save_pretrained(tmp_path / task)
        ours = ours_cls.from_pretrained(tmp_path / task).train()
        ref.train()
        _no_dropout(ref, ours)
        if task == "cls":
            kwargs = {"labels": torch.arange(len(inputs["input_ids"])) % 2}
        expected = ref(**inputs, **kwargs)
        out = ours(**inputs, **kwargs, **({"return_logits": False} if task == "mlm" else {}))
        if task == "cls":
            close(out.logits, expected.logits, name=f"{task} logits")
        if torch.isnan(expected.loss):  # no labelled token: both are nan
            assert torch.isnan(out.loss)
            continue
        close(out.loss, expected.loss, quantity="loss", name=f"{task} loss")
        expected.loss.backward()
        out.loss.backward()
        _grads(ours, ref, close)
