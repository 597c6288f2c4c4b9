"""Training features: dropout, gradient checkpointing, resizing, init, attention kernels, compile and export."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rembert_core import ConfigError, RemBertConfig
from rembert_torch import (
    RemBertForCausalLM,
    RemBertForMaskedLM,
    RemBertForSequenceClassification,
    RemBertModel,
)


def _config(configs: Any, name: str = "odd", **changes: Any) -> RemBertConfig:
    return RemBertConfig(**{**configs[name], **changes})


def test_dropout_is_active_in_train_mode_only(batch_factory: Any, configs: Any) -> None:
    torch.manual_seed(0)
    config = _config(configs, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2, num_labels=3)
    model = RemBertForSequenceClassification(config)
    inputs = batch_factory(configs["odd"], batch=2, seq=6)
    model.train()
    assert not torch.equal(model(**inputs).logits, model(**inputs).logits)
    model.eval()
    assert torch.equal(model(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("task_cls", [RemBertForMaskedLM, RemBertForCausalLM])
def test_gradient_checkpointing_equals_plain_backward(
    task_cls: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    config = _config(configs, is_decoder=task_cls is RemBertForCausalLM)
    torch.manual_seed(0)
    model = task_cls(config).train()  # dropout probabilities are 0, so train mode is deterministic
    inputs = batch_factory(configs["odd"], batch=3, seq=7)
    labels = inputs["input_ids"].clone()

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        out = model(**inputs, labels=labels)
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_plain, grads_plain = run()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    loss_ckpt, grads_ckpt = run()
    model.gradient_checkpointing_disable()
    close(loss_ckpt, loss_plain, quantity="loss", name="loss")
    assert grads_ckpt.keys() == grads_plain.keys()
    for name, grad in grads_plain.items():
        close(grads_ckpt[name], grad, quantity="gradients", name=name)
    if task_cls is RemBertForCausalLM:  # the cache is off while training with checkpointing
        model.gradient_checkpointing_enable()
        assert model(**inputs, use_cache=True).past_key_values is None


@pytest.mark.oracle
def test_resize_token_embeddings(
    transformers_mod: Any, reference_checkpoint: Any, batch_factory: Any, close: Any, configs: Any
) -> None:
    path = reference_checkpoint("masked_lm", "odd")
    ref = transformers_mod.RemBertForMaskedLM.from_pretrained(path).eval()
    ours = RemBertForMaskedLM.from_pretrained(path)
    old_vocab = configs["odd"]["vocab_size"]
    old_decoder = ours.cls.predictions.decoder.weight.detach().clone()
    old_bias = ours.cls.predictions.decoder.bias.detach().clone()
    new = ours.resize_token_embeddings(old_vocab + 10, pad_to_multiple_of=8)
    size = 312  # 311 rounded up to a multiple of 8
    ref.resize_token_embeddings(old_vocab + 10, pad_to_multiple_of=8)
    assert new is ours.get_input_embeddings()
    assert new.weight.shape == (size, configs["odd"]["input_embedding_size"])
    decoder = ours.get_output_embeddings()
    assert decoder is not None
    assert decoder.weight.shape == (size, configs["odd"]["output_embedding_size"])
    assert decoder.bias.shape == (size,)
    assert ours.config.vocab_size == size == ref.config.vocab_size
    assert torch.equal(decoder.weight[:old_vocab], old_decoder)
    assert torch.equal(decoder.bias[:old_vocab], old_bias)
    assert torch.isfinite(decoder.weight).all() and torch.isfinite(new.weight).all()
    inputs = batch_factory(configs["odd"], batch=3, seq=6)
    expected = ref(**inputs).logits
    actual = ours(**inputs).logits
    assert actual.shape == expected.shape == (3, 6, size)
    close(actual[..., :old_vocab], expected[..., :old_vocab], name="logits of the old vocabulary")
    ids = torch.tensor([[size - 1, 5, 6]])  # a new token id is accepted now
    assert ours(ids).logits.shape == (1, 3, size)
    ours.resize_token_embeddings(100)  # shrinking keeps the first rows
    assert ours.get_input_embeddings().weight.shape[0] == 100 and ours.cls.predictions.decoder.bias.shape == (100,)
    assert torch.equal(ours.cls.predictions.decoder.weight, old_decoder[:100])


def test_weight_init_statistics(configs: Any) -> None:
    config = RemBertConfig(**{**configs["odd"], "hidden_size": 96, "intermediate_size": 200, "initializer_range": 0.04})
    torch.manual_seed(0)
    model = RemBertForMaskedLM(config)
    for name, param in model.named_parameters():
        if "LayerNorm.weight" in name:
            assert torch.equal(param, torch.ones_like(param)), name
        elif name.endswith("bias"):
            assert torch.equal(param, torch.zeros_like(param)), name
        else:
            assert abs(param.mean().item()) < 0.01, name
            assert abs(param.std().item() - 0.04) < 0.006, name
    word = model.get_input_embeddings().weight
    assert torch.equal(word[config.pad_token_id], torch.zeros_like(word[0]))


@pytest.mark.parametrize("is_decoder", [False, True])
def test_sdpa_and_eager_attention_agree(is_decoder: bool, batch_factory: Any, close: Any, configs: Any) -> None:
    torch.manual_seed(0)
    model = RemBertModel(_config(configs, "wide", is_decoder=is_decoder)).eval()
    inputs = batch_factory(configs["wide"], batch=3, seq=7)
    outputs = {}
    for kernel in ("sdpa", "eager", "auto"):
        model.set_attn_implementation(kernel)
        outputs[kernel] = model(**inputs, output_hidden_states=True)
    close(outputs["sdpa"].hidden_states, outputs["eager"].hidden_states, name="sdpa vs eager")
    close(outputs["sdpa"].pooler_output, outputs["eager"].pooler_output, name="sdpa vs eager pooler")
    assert not torch.isnan(outputs["sdpa"].last_hidden_state).any()
    with_probs = model(**inputs, output_attentions=True)  # always eager
    close(with_probs.last_hidden_state, outputs["sdpa"].last_hidden_state, name="eager via output_attentions")
    # Gradients agree where no row is fully padded.
    inputs["attention_mask"][2, :3] = 1
    grads = {}
    for kernel in ("sdpa", "eager"):
        model.set_attn_implementation(kernel)
        model.zero_grad(set_to_none=True)
        model(**inputs).last_hidden_state.pow(3).mean().backward()
        grads[kernel] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in grads["eager"].items():
        close(grads["sdpa"][name], grad, quantity="gradients", name=f"sdpa grad {name}")
    with pytest.raises(ConfigError, match="attn_implementation"):
        model.set_attn_implementation("flash")


def test_fully_padded_rows_give_no_nan_in_every_dtype(batch_factory: Any, configs: Any) -> None:
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        model = RemBertForCausalLM(_config(configs, is_decoder=True)).to(dtype).eval()
        inputs = batch_factory(configs["odd"], batch=3, seq=5)
        assert (inputs["attention_mask"][2] == 0).all()
        for kwargs in ({}, {"output_attentions": True}):
            out = model(**inputs, **kwargs)
            assert out.logits.dtype == dtype
            assert not torch.isnan(out.logits).any(), (dtype, kwargs)


def test_torch_compile_fullgraph(batch_factory: Any, close: Any, configs: Any) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = RemBertForMaskedLM(_config(configs, "relu")).eval()
    inputs = batch_factory(configs["relu"], batch=2, seq=6)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        expected = model(**inputs)
        actual = compiled(**inputs)
    close(actual.logits, expected.logits, name="compiled logits")
    torch._dynamo.reset()


def test_torch_export(batch_factory: Any, close: Any, configs: Any) -> None:
    torch.manual_seed(0)
    model = RemBertModel(_config(configs, "relu")).eval()
    inputs = batch_factory(configs["relu"], batch=2, seq=6)
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    exported = torch.export.export(model, args)
    out = exported.module()(*args)
    expected = model(*args)
    close(out.last_hidden_state, expected.last_hidden_state, name="exported last_hidden_state")
    close(out.pooler_output, expected.pooler_output, name="exported pooler_output")


def test_output_flags_default_from_config_and_outputs_behave_like_model_output(
    batch_factory: Any, configs: Any
) -> None:
    torch.manual_seed(0)
    config = _config(configs, extra={"output_hidden_states": True, "output_attentions": True})
    model = RemBertModel(config).eval()
    inputs = batch_factory(configs["odd"], batch=2, seq=5)
    out = model(**inputs)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert len(out.attentions) == config.num_hidden_layers
    assert out.keys() == ["last_hidden_state", "pooler_output", "hidden_states", "attentions"]
    assert out[0] is out["last_hidden_state"] is out.last_hidden_state
    assert out[1:2] == (out.pooler_output,)
    assert "past_key_values" not in out and out.get("past_key_values") is None
    with pytest.raises(KeyError, match="past_key_values"):
        _ = out["past_key_values"]
    assert dict(out.items()).keys() == set(out.keys())
    assert model(**inputs, output_hidden_states=False, output_attentions=False).keys() == [
        "last_hidden_state",
        "pooler_output",
    ]
    tup = model(**inputs, return_dict=False)
    assert isinstance(tup, tuple) and torch.equal(tup[0], out.last_hidden_state)


def test_packed_qkv_projection_keeps_parameters_names_and_training(
    batch_factory: Any, close: Any, configs: Any, tmp_path: Any
) -> None:
    """Inference packs query/key/value into one matmul without changing what the parameters are."""
    torch.manual_seed(0)
    model = RemBertModel(_config(configs, "wide")).eval()
    inputs = batch_factory(configs["wide"], batch=3, seq=7)
    names = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    attention = model.encoder.layer[0].attention.self
    with torch.no_grad():
        unpacked = model(**inputs).last_hidden_state  # first call packs
    assert attention._qkv is not None
    weight, bias = attention._qkv
    assert attention.key.weight.data_ptr() == weight[attention.all_head_size :].data_ptr()  # shared, not copied
    assert attention.value.bias.data_ptr() == bias[2 * attention.all_head_size :].data_ptr()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == names
    assert all(p is params[n] for n, p in model.named_parameters())  # same Parameter objects (optimizers)
    # The packed matmul gives the separate projections' numbers (the eager kernel computes them separately).
    with torch.no_grad():
        packed = model(**inputs).last_hidden_state
        with torch.enable_grad():
            separate = model(**inputs).last_hidden_state  # grads flow: three separate projections
    close(packed, unpacked, name="packed vs first call")
    close(packed, separate.detach(), name="packed vs separate projections")
    # In-place loads reach the packed weight; save/load keeps names and numbers.
    other = RemBertModel(_config(configs, "wide")).eval()
    model.load_state_dict(other.state_dict())
    assert attention.key.weight.data_ptr() == weight[attention.all_head_size :].data_ptr()
    with torch.no_grad():
        close(model(**inputs).last_hidden_state, other(**inputs).last_hidden_state, name="after load_state_dict")
    model.save_pretrained(tmp_path)
    again = RemBertModel.from_pretrained(tmp_path)
    with torch.no_grad():
        close(again(**inputs).last_hidden_state, other(**inputs).last_hidden_state, name="after save/load")
    # Training after packed inference (even under inference_mode): gradients reach every projection.
    with torch.inference_mode():
        model(**inputs)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(**inputs).last_hidden_state.pow(2).mean().backward()
    for name in ("query", "key", "value"):
        grad = getattr(attention, name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, name
    before = attention.value.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(attention.value.weight, before)
    # A dtype change gives new parameters: the next inference call repacks them.
    model.eval().to(torch.bfloat16)
    with torch.no_grad():
        out = model(**inputs).last_hidden_state
    assert out.dtype == torch.bfloat16 and attention._qkv is not None
    assert attention._qkv[0].dtype == torch.bfloat16
    assert attention.query.weight.data_ptr() == attention._qkv[0].data_ptr()


def _count_onednn_calls(monkeypatch: Any) -> list[int]:
    """Wrap the oneDNN linear op so a test sees how many dense layers went through it."""
    import rembert_torch.kernels as kernels

    op = kernels._onednn_linear()
    if op is None:
        pytest.skip("this torch build has no working torch.ops.mkldnn._linear_pointwise")
    calls = [0]

    def counting(*args: Any) -> torch.Tensor:
        calls[0] += 1
        return op(*args)

    monkeypatch.setattr(kernels, "_onednn_linear", lambda: counting)
    return calls


def test_onednn_inference_matches_nn_linear_and_covers_every_dense_layer(
    batch_factory: Any, close: Any, configs: Any, monkeypatch: Any
) -> None:
    """Float32 CPU inference runs each dense layer as one oneDNN call (GELU fused), with nn.Linear's numbers."""
    import rembert_torch.kernels as kernels

    calls = _count_onednn_calls(monkeypatch)
    config = _config(configs, "wide")
    torch.manual_seed(0)
    model = RemBertForMaskedLM(config).eval()
    inputs = batch_factory(configs["wide"], batch=3, seq=7)
    with torch.inference_mode():
        fast = model(**inputs).logits
    # mapping_in, per layer packed QKV + attention output + intermediate + output, LM dense + decoder
    assert calls[0] == 1 + 4 * config.num_hidden_layers + 2
    monkeypatch.setattr(kernels, "ONEDNN_INFERENCE", False)
    with torch.inference_mode():
        plain = model(**inputs).logits
    assert calls[0] == 1 + 4 * config.num_hidden_layers + 2  # switched off: no further calls
    close(fast, plain, name="oneDNN vs F.linear logits")
    assert not torch.equal(fast, plain) or config.hidden_act != "gelu"  # it really ran another kernel


@pytest.mark.parametrize("case", ["grad", "hook", "bfloat16", "autocast", "broken op"])
def test_onednn_inference_steps_aside(
    case: str, batch_factory: Any, close: Any, configs: Any, monkeypatch: Any
) -> None:
    """Gradients, hooks, other dtypes and a torch build whose op is missing or wrong take nn.Linear's path."""
    import rembert_torch.kernels as kernels

    calls = _count_onednn_calls(monkeypatch)
    torch.manual_seed(0)
    model = RemBertModel(_config(configs, "wide")).eval()
    inputs = batch_factory(configs["wide"], batch=2, seq=5)
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state
    calls[0] = 0
    if case == "grad":
        out = model(**inputs).last_hidden_state
        out.pow(2).mean().backward()
        assert model.encoder.layer[0].intermediate.dense.weight.grad is not None
        assert model.encoder.embedding_hidden_mapping_in.weight.grad.abs().sum() > 0
    elif case == "hook":
        seen: list[tuple[int, ...]] = []
        model.encoder.layer[1].output.dense.register_forward_hook(lambda m, a, o: seen.append(tuple(o.shape)))
        with torch.no_grad():
            out = model(**inputs).last_hidden_state
        assert seen == [(2, 5, model.config.hidden_size)]
        assert calls[0] > 0  # the other layers still take the fast path
    elif case == "bfloat16":
        model.to(torch.bfloat16)
        with torch.no_grad():
            out = model(**inputs).last_hidden_state
        assert calls[0] == 0
        expected = expected.to(torch.bfloat16)
    elif case == "autocast":  # bfloat16 GEMMs as F.linear under autocast gives them, not float32 ones
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(**inputs).last_hidden_state
        monkeypatch.setattr(kernels, "ONEDNN_INFERENCE", False)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            expected = model(**inputs).last_hidden_state
        assert out.dtype == torch.bfloat16 and torch.equal(out, expected)
    else:
        monkeypatch.setattr(kernels, "_onednn_linear", lambda: None)
        with torch.no_grad():
            out = model(**inputs).last_hidden_state
    if case != "hook":
        assert calls[0] == 0
    low = case in ("bfloat16", "autocast")
    close(out.detach().float(), expected.float(), dtype="bfloat16" if low else "float32", name=case)


def test_onednn_probe_rejects_an_op_that_disagrees(monkeypatch: Any) -> None:
    """The op is internal to PyTorch: a build where it computes something else is never used."""
    import rembert_torch.kernels as kernels

    class WrongOps:
        @staticmethod
        def _linear_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: Any, *args: Any) -> torch.Tensor:
            return torch.nn.functional.linear(x, weight, bias)  # ignores the GELU epilogue

    kernels._onednn_linear.cache_clear()
    try:
        monkeypatch.setattr(torch.ops, "mkldnn", WrongOps(), raising=False)
        assert kernels._onednn_linear() is None
    finally:
        monkeypatch.undo()
        kernels._onednn_linear.cache_clear()


def test_onednn_probe_under_autocast_still_finds_the_op() -> None:
    """The one-time check may first run inside a user's autocast region; it must not raise or give up there."""
    import rembert_torch.kernels as kernels

    working = kernels._onednn_linear()
    kernels._onednn_linear.cache_clear()
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert kernels._onednn_linear() is working
    finally:
        kernels._onednn_linear.cache_clear()
