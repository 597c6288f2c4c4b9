"""The conformance kit for backend plugins: subclass :class:`BackendConformance` in your own tests.

::

    # tests/test_conformance.py of a third-party backend
    from rembert_core.testing import BackendConformance
    from my_backend.plugin import MyBackend

    class TestMyBackend(BackendConformance):
        backend = MyBackend()

pytest collects the inherited ``test_*`` methods; each checks one part of the
contract in :mod:`rembert_core.backend` on the embedded parity config, and
``test_agrees_with_reference`` runs the parity engine against the reference
backend (the float64 NumPy backend when installed; set ``reference`` to choose
another, or ``None`` to skip that one test). Importing this module needs pytest
(the kit is for test suites; rembert-core itself does not depend on pytest).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
import pytest

from rembert_core.backend import DTYPES, Backend
from rembert_core.config import RemBertConfig
from rembert_core.errors import PluginError
from rembert_core.parity import default_config, make_inputs, run_parity, seeded_tensors, task_config
from rembert_core.schema import TASKS, build_schema

__all__ = ["BackendConformance"]

_UNSET: Any = object()


class BackendConformance:
    """Contract and numerical tests every backend should pass. Set :attr:`backend` in a subclass."""

    #: The backend under test.
    backend: ClassVar[Backend]
    #: Backend to agree with; default: the installed "numpy" backend run in float64.
    reference: ClassVar[Backend | None] = _UNSET
    #: Dtype the reference computes in.
    reference_dtype: ClassVar[str] = "float64"
    #: The config the checks run on (default: the parity engine's tiny config).
    config: ClassVar[RemBertConfig | None] = None

    # -- helpers -------------------------------------------------------------------------------

    def _config(self, task: str) -> RemBertConfig:
        return task_config(self.config or default_config(), task)

    def _model(self, task: str, dtype: str = "float32") -> Any:
        config = self._config(task)
        model = self.backend.build_model(config, task, dtype=dtype)
        self.backend.load_tensors(model, seeded_tensors(config, task))
        return model

    def _float_dtype(self) -> str:
        return "float32" if "float32" in self.backend.dtypes else self.backend.dtypes[0]

    # -- the contract --------------------------------------------------------------------------

    def test_declares_name_tasks_and_dtypes(self) -> None:
        backend = self.backend
        assert isinstance(backend, Backend), f"{type(backend).__name__} must subclass rembert_core.Backend"
        assert isinstance(backend.name, str)
        assert backend.name.isidentifier(), f"backend name {backend.name!r} must be an identifier"
        assert backend.tasks, "a backend must declare at least one task"
        assert set(backend.tasks) <= set(TASKS), f"unknown tasks {set(backend.tasks) - set(TASKS)}"
        assert backend.dtypes, "a backend must declare at least one dtype"
        assert set(backend.dtypes) <= set(DTYPES), f"unknown dtypes {set(backend.dtypes) - set(DTYPES)}"
        assert backend.describe()["name"] == backend.name

    def test_export_returns_the_loaded_tensors(self) -> None:
        for task in self.backend.tasks:
            config = self._config(task)
            tensors = seeded_tensors(config, task)
            model = self.backend.build_model(config, task, dtype="float32")
            self.backend.load_tensors(model, tensors)
            exported = self.backend.export_tensors(model)
            assert set(exported) == set(tensors), f"{task}: exported names differ from the schema"
            for name, value in tensors.items():
                assert np.asarray(exported[name]).shape == value.shape, f"{task}: {name} shape"
                assert np.array_equal(np.asarray(exported[name], dtype=np.float32), value), f"{task}: {name} changed"

    def test_forward_returns_the_reference_fields(self) -> None:
        dtype = self._float_dtype()
        for task in self.backend.tasks:
            config = self._config(task)
            inputs = make_inputs(config, task, batch=2, seq_len=6)
            out = self.backend.forward(
                self._model(task, dtype), inputs, output_hidden_states=True, output_attentions=True
            )
            batch, seq = 2, 6
            rows = batch * 2 if task == "multiple_choice" else batch
            layers = config.num_hidden_layers
            if task == "base":
                assert np.shape(out["last_hidden_state"]) == (rows, seq, config.hidden_size)
                assert np.shape(out["pooler_output"]) == (rows, config.hidden_size)
            hidden = out["hidden_states"]
            assert len(hidden) == layers + 1, f"{task}: hidden_states needs num_hidden_layers + 1 entries"
            assert all(np.shape(h) == (rows, seq, config.hidden_size) for h in hidden)
            attentions = out["attentions"]
            assert len(attentions) == layers
            assert all(np.shape(a) == (rows, config.num_attention_heads, seq, seq) for a in attentions)
            expected_logits = {
                "masked_lm": (batch, seq, config.vocab_size),
                "causal_lm": (batch, seq, config.vocab_size),
                "sequence_classification": (batch, config.num_labels),
                "multiple_choice": (batch, 2),
                "token_classification": (batch, seq, config.num_labels),
            }
            if task in expected_logits:
                assert np.shape(out["logits"]) == expected_logits[task], f"{task}: logits shape"
            if task == "question_answering":
                assert np.shape(out["start_logits"]) == (batch, seq)
                assert np.shape(out["end_logits"]) == (batch, seq)
            if task != "base":
                assert np.isfinite(float(np.asarray(out["loss"]))), f"{task}: loss must be finite with labels"
            for value in out.values():
                for array in value if isinstance(value, list | tuple) else [value]:
                    if isinstance(array, np.ndarray) and array.dtype.kind == "f":
                        assert array.dtype == np.float32, "outputs must be float32 NumPy arrays"

    def test_gradients_cover_every_canonical_tensor(self) -> None:
        dtype = self._float_dtype()
        for task in self.backend.tasks:
            if task == "base":
                continue  # the bare model has no loss
            config = self._config(task)
            loss, grads = self.backend.gradients(self._model(task, dtype), make_inputs(config, task))
            schema = build_schema(config, task)
            assert np.isfinite(loss)
            assert set(grads) == set(schema), f"{task}: gradients must be keyed by every schema name"
            for name, spec in schema.items():
                assert np.shape(grads[name]) == spec.shape, f"{task}: gradient of {name} has the wrong shape"

    def test_missing_tensor_is_a_checkpoint_error(self) -> None:
        from rembert_core.errors import CheckpointError

        task = self.backend.tasks[0]
        config = self._config(task)
        tensors = seeded_tensors(config, task)
        dropped = next(name for name in tensors if "encoder.layer.0.attention.self.query.weight" in name)
        del tensors[dropped]
        model = self.backend.build_model(config, task, dtype="float32")
        with pytest.raises(CheckpointError, match=re.escape(dropped)):
            self.backend.load_tensors(model, tensors)

    def test_out_of_range_token_id_is_an_input_error(self) -> None:
        from rembert_core.errors import InputError

        task = self.backend.tasks[0]
        config = self._config(task)
        inputs = make_inputs(config, task)
        inputs["input_ids"] = inputs["input_ids"].copy()
        inputs["input_ids"].flat[1] = config.vocab_size
        with pytest.raises(InputError, match="input_ids"):
            self.backend.forward(self._model(task), inputs)

    def test_cache_step_equals_full_forward(self) -> None:
        if "causal_lm" not in self.backend.tasks:
            pytest.skip("the backend has no causal LM")
        from rembert_core.parity import _cache_step
        from rembert_core.tolerances import assert_close

        config = self._config("causal_lm")
        inputs = make_inputs(config, "causal_lm", batch=2, seq_len=7)
        model = self._model("causal_lm")
        full = self.backend.forward(model, inputs)["logits"][:, -1]
        assert_close(_cache_step(self.backend, model, inputs), full, name="cache step logits", cross_framework=False)

    def test_agrees_with_reference(self) -> None:
        reference = self.reference
        if reference is _UNSET:
            from rembert_core.plugins import get_backend

            try:
                reference = get_backend("numpy")
            except PluginError:
                pytest.skip("no reference backend: install the rembert-numpy example plugin or set `reference`")
        if reference is None:
            pytest.skip("reference explicitly disabled")
        assert reference is not None
        report = run_parity(
            [self.backend],
            tasks=self.backend.tasks,
            dtypes=[d for d in self.backend.dtypes if d != "float64"] or ["float64"],
            config=self.config or default_config(),
            reference=reference,
            reference_dtype=self.reference_dtype,
        )
        assert report.ok, "\n" + report.render(only_failures=True)
