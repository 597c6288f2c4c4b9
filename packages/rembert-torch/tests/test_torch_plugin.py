"""The torch backend plugin: entry point, the core contract, and the promises about imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
import torch

from rembert_core import TASKS, build_schema, get_backend
from rembert_core.parity import default_config, make_inputs, seeded_tensors, task_config
from rembert_core.testing import BackendConformance
from rembert_torch import TASK_CLASSES
from rembert_torch.plugin import TorchBackend


class TestTorchBackendConformance(BackendConformance):
    """The core conformance kit (its reference check runs against the float64 NumPy backend when installed)."""

    backend = TorchBackend()


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )


def test_backend_comes_from_the_entry_point() -> None:
    backend = get_backend("torch")
    assert isinstance(backend, TorchBackend)
    assert backend.distribution == "rembert-torch"
    assert set(backend.tasks) == set(TASKS)
    assert backend.dtypes == ("float32", "bfloat16", "float16")


def test_plugin_module_does_not_import_torch() -> None:
    result = _run_python(
        """
        import sys
        import rembert_torch.plugin
        from rembert_core import get_backends
        assert "torch" in get_backends(), get_backends()
        assert "torch" not in sys.modules, "listing backends imported torch"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_rembert_torch_works_with_tensorflow_blocked() -> None:
    result = _run_python(
        """
        import sys
        for name in ("tensorflow", "keras", "tf_keras"):
            sys.modules[name] = None  # any import of them now fails
        import torch
        import rembert_torch
        from rembert_torch import RemBertConfig, RemBertForMaskedLM
        from rembert_core import get_backend
        config = RemBertConfig(vocab_size=50, hidden_size=12, num_attention_heads=2, num_hidden_layers=1,
                               input_embedding_size=8, output_embedding_size=10, intermediate_size=16)
        model = RemBertForMaskedLM(config).eval()
        assert model(torch.tensor([[3, 4, 5]])).logits.shape == (1, 3, 50)
        assert get_backend("torch").name == "torch"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("task", TASKS)
def test_backend_matches_the_model_it_wraps(task: str) -> None:
    backend = TorchBackend()
    config = task_config(default_config(), task)
    tensors = seeded_tensors(config, task)
    model = backend.build_model(config, task)
    backend.load_tensors(model, tensors)
    assert isinstance(model, TASK_CLASSES[task]) and not model.training
    inputs = make_inputs(config, task)
    out = backend.forward(model, inputs, output_hidden_states=True)
    with torch.no_grad():  # the backend runs without autograd, so on the SDPA kernel
        direct = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_hidden_states=True)
    for key, value in direct.items():
        if key in ("hidden_states", "past_key_values"):
            continue
        np.testing.assert_array_equal(out[key], value.detach().numpy(), err_msg=key)
    assert len(out["hidden_states"]) == config.num_hidden_layers + 1
    if task == "base":
        return
    loss, grads = backend.gradients(model, inputs)
    assert set(grads) == set(build_schema(config, task))
    np.testing.assert_allclose(loss, float(out["loss"]), rtol=1e-6)
    model.zero_grad(set_to_none=True)
    direct = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    direct.loss.backward()
    for name, param in model.named_parameters():
        expected = np.zeros(param.shape, np.float32) if param.grad is None else param.grad.numpy()
        np.testing.assert_allclose(grads[name], expected, rtol=1e-6, atol=1e-9, err_msg=name)


def test_backend_half_precision_and_cache() -> None:
    backend = TorchBackend()
    config = task_config(default_config(), "causal_lm")
    tensors = seeded_tensors(config, "causal_lm")
    inputs = make_inputs(config, "causal_lm")
    for dtype in ("bfloat16", "float16"):
        model = backend.build_model(config, "causal_lm", dtype=dtype)
        backend.load_tensors(model, tensors)
        assert model.dtype == getattr(torch, dtype)
        exported = backend.export_tensors(model)
        assert str(exported["cls.predictions.decoder.weight"].dtype) == dtype
        out = backend.forward(model, inputs)
        assert out["logits"].dtype == np.float32 and np.isfinite(out["logits"]).all()
    model = backend.build_model(config, "causal_lm")
    backend.load_tensors(model, tensors)
    first = backend.forward(model, {k: v for k, v in inputs.items() if k != "labels"}, use_cache=True)
    past = first["past_key_values"]
    assert len(past) == config.num_hidden_layers and all(len(layer) == 4 for layer in past)
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for layer in past for a in layer)


def test_backend_rejects_unknown_inputs_and_missing_labels() -> None:
    from rembert_core import InputError

    backend = TorchBackend()
    config = default_config()
    model = backend.build_model(config, "masked_lm")
    backend.load_tensors(model, seeded_tensors(config, "masked_lm"))
    inputs = make_inputs(config, "masked_lm")
    with pytest.raises(InputError, match="unknown input 'input_idz'"):
        backend.forward(model, {"input_idz": inputs["input_ids"]})
    with pytest.raises(InputError, match="gradients need labels"):
        backend.gradients(model, {"input_ids": inputs["input_ids"]})
    with pytest.raises(InputError, match="unknown task"):
        backend.build_model(config, "translation")
    with pytest.raises(InputError, match="dtype 'float64' is not supported"):
        backend.build_model(config, "base", dtype="float64")


@pytest.mark.oracle
def test_backend_numbers_match_transformers(transformers_mod: Any) -> None:
    """The backend's forward and gradients on the parity inputs against the reference PyTorch class."""
    from rembert_core.tolerances import assert_close

    backend = TorchBackend()
    for task in ("masked_lm", "causal_lm"):
        config = task_config(default_config(), task)
        tensors = seeded_tensors(config, task)
        model = backend.build_model(config, task)
        backend.load_tensors(model, tensors)
        ref_config = transformers_mod.RemBertConfig(**{k: v for k, v in config.to_dict().items() if k != "extra"})
        ref = getattr(transformers_mod, TASK_CLASSES[task].__name__)(ref_config).eval()
        ref.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
        inputs = make_inputs(config, task)
        out = backend.forward(model, inputs, output_attentions=True)
        expected = ref(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_attentions=True)
        assert_close(out["logits"], expected.logits.detach().numpy(), cross_framework=False, name=f"{task} logits")
        loss, grads = backend.gradients(model, inputs)
        ref.zero_grad()
        ref(**{k: torch.from_numpy(v) for k, v in inputs.items()}).loss.backward()
        assert_close(np.float32(loss), expected.loss.detach().numpy(), quantity="loss", cross_framework=False)
        for name, param in ref.named_parameters():
            assert_close(
                grads[name], param.grad.numpy(), quantity="gradients", cross_framework=False, name=f"{task} {name}"
            )


def test_public_api_exports() -> None:
    import rembert_core
    import rembert_torch

    assert rembert_torch.RemBertConfig is rembert_core.RemBertConfig
    for name in rembert_torch.__all__:
        assert getattr(rembert_torch, name) is not None, name
    assert set(rembert_torch.TASK_CLASSES) == set(TASKS)
    assert {cls.task for cls in rembert_torch.TASK_CLASSES.values()} == set(TASKS)
    with pytest.raises(AttributeError, match="no attribute 'RemBertForPreTraining'"):
        _ = rembert_torch.RemBertForPreTraining
