"""The ``tf`` backend plugin: registration without importing TensorFlow, the core contract, no torch needed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from rembert_core import build_schema
from rembert_core.testing import BackendConformance
from rembert_tf.plugin import TFBackend


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300, check=False
    )


class TestTFBackendConformance(BackendConformance):
    """The core conformance kit (its reference check runs against the float64 NumPy backend when installed)."""

    backend = TFBackend()


def test_entry_point_registers_tf_without_importing_tensorflow():
    result = _python(
        """
        import sys
        import rembert_tf.plugin
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "plugin import loaded TF"
        import os
        os.environ["REMBERT_PLUGINS"] = "tf"
        from rembert_core import get_backend
        backend = get_backend("tf")
        assert backend.distribution == "rembert-tf" and backend.name == "tf"
        assert "tensorflow" not in sys.modules, "registration loaded TF"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_runs_with_torch_blocked():
    result = _python(
        """
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from rembert_tf import RemBertConfig, TFRemBertForMaskedLM
        config = RemBertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               input_embedding_size=8, output_embedding_size=12, intermediate_size=20)
        model = TFRemBertForMaskedLM(config)
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d)
            again = TFRemBertForMaskedLM.from_pretrained(d)
        ids = np.array([[1, 2, 3]])
        assert np.array_equal(model(ids).logits.numpy(), again(ids).logits.numpy())
        assert sys.modules["torch"] is None
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_torch_is_not_needed_by_the_package():
    """Importing and using rembert_tf never imports torch (checked in this process too)."""
    before = "torch" in sys.modules
    import rembert_tf.loading
    import rembert_tf.modeling  # noqa: F401

    assert ("torch" in sys.modules) == before


def test_gradients_are_canonical_and_transposed(config_factory, batch_factory):
    backend = TFBackend()
    config = config_factory("tiny", num_labels=3)
    model = backend.build_model(config, "sequence_classification")
    inputs = {**batch_factory(config), "labels": np.array([0, 1, 2])}
    loss, grads = backend.gradients(model, inputs)
    assert set(grads) == set(build_schema(config, "sequence_classification"))
    variables = model.canonical_variables()
    with tf.GradientTape() as tape:
        out = model(**inputs)
    kernel = variables["classifier.weight"][0]
    direct = tape.gradient(out.loss, kernel).numpy()
    np.testing.assert_array_equal(grads["classifier.weight"], direct.T)
    assert loss == pytest.approx(float(out.loss.numpy()))
    assert np.abs(grads["rembert.embeddings.word_embeddings.weight"]).sum() > 0


def test_forward_with_cache_and_bfloat16(config_factory, batch_factory):
    backend = TFBackend()
    config = config_factory("tiny", is_decoder=True)
    model32 = backend.build_model(config, "causal_lm")
    model16 = backend.build_model(config, "causal_lm", dtype="bfloat16")
    backend.load_tensors(model16, backend.export_tensors(model32))
    batch = batch_factory(config, pad=False)
    out = backend.forward(model32, {"input_ids": batch["input_ids"][:, :5]}, use_cache=True)
    assert len(out["past_key_values"]) == config.num_hidden_layers
    step = backend.forward(
        model32, {"input_ids": batch["input_ids"][:, 5:6]}, use_cache=True, past_key_values=out["past_key_values"]
    )
    full = backend.forward(model32, {"input_ids": batch["input_ids"][:, :6]})
    np.testing.assert_allclose(step["logits"][:, 0], full["logits"][:, 5], atol=5e-5, rtol=1e-4)
    low = backend.forward(model16, {"input_ids": batch["input_ids"]})
    assert low["logits"].dtype == np.float32
