"""The parity engine's mechanics, with a toy NumPy backend (the real backends are compared in tests/)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rembert_core import Backend, RemBertConfig, hookimpl, register_plugin
from rembert_core.cli import main
from rembert_core.parity import default_config, make_inputs, run_parity, seeded_tensors


class ToyBackend(Backend):
    """A deterministic function of the canonical tensors: embeddings -> projection -> tanh, sum-of-squares loss.

    ``perturb`` adds a tiny error to one tensor at load time, as a buggy backend would.
    """

    tasks = ("base", "masked_lm", "causal_lm")
    dtypes = ("float32", "float64")

    def __init__(self, name: str, perturb: str | None = None, scale: float = 1e-3) -> None:
        self.name = name
        self.perturb = perturb
        self.scale = scale

    def build_model(self, config: RemBertConfig, task: str, *, dtype: str = "float32") -> dict[str, Any]:
        return {"config": config, "task": task, "dtype": np.dtype(dtype), "w": {}}

    def load_tensors(self, model: dict[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
        model["w"] = {k: np.asarray(v) for k, v in tensors.items()}
        if self.perturb is not None:
            model["w"][self.perturb] = model["w"][self.perturb] + np.float32(self.scale)

    def export_tensors(self, model: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in model["w"].items()}

    def _names(self, model: dict[str, Any]) -> tuple[str, str]:
        prefix = "" if model["task"] == "base" else "rembert."
        return prefix + "embeddings.word_embeddings.weight", prefix + "encoder.embedding_hidden_mapping_in.weight"

    def forward(
        self,
        model: dict[str, Any],
        inputs: Mapping[str, np.ndarray],
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        use_cache: bool = False,
        past_key_values: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> dict[str, Any]:
        emb_name, proj_name = self._names(model)
        dt = model["dtype"]
        emb = model["w"][emb_name].astype(dt)[inputs["input_ids"]]
        hidden = np.tanh(emb @ model["w"][proj_name].astype(dt).T)
        out: dict[str, Any] = {"last_hidden_state": hidden.astype(np.float32)}
        if model["task"] != "base":
            out["logits"] = hidden.sum(-1, keepdims=True).astype(np.float32)
        if use_cache:
            out["past_key_values"] = [(hidden, hidden)]
        if output_hidden_states:
            out["hidden_states"] = [emb.astype(np.float32), hidden.astype(np.float32)]
        return out

    def gradients(self, model: dict[str, Any], inputs: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        emb_name, proj_name = self._names(model)
        dt = model["dtype"]
        w_emb = model["w"][emb_name].astype(dt)
        w_proj = model["w"][proj_name].astype(dt)
        emb = w_emb[inputs["input_ids"]]
        hidden = np.tanh(emb @ w_proj.T)
        loss = float(np.sum(hidden**2))
        d_hidden = 2 * hidden
        d_pre = d_hidden * (1 - hidden**2)
        d_proj = np.einsum("bsh,bse->he", d_pre, emb)
        d_emb_rows = d_pre @ w_proj
        d_emb = np.zeros_like(w_emb)
        np.add.at(d_emb, inputs["input_ids"], d_emb_rows)
        grads = {name: np.zeros(np.shape(v), np.float32) for name, v in model["w"].items()}
        grads[emb_name] = d_emb.astype(np.float32)
        grads[proj_name] = d_proj.astype(np.float32)
        return loss, grads


def test_embedded_default_is_deterministic() -> None:
    config = default_config()
    assert (config.hidden_size, config.num_attention_heads, config.input_embedding_size) == (48, 6, 20)
    a, b = seeded_tensors(config, "masked_lm", 0), seeded_tensors(config, "masked_lm", 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(
        a["cls.predictions.dense.weight"], seeded_tensors(config, "masked_lm", 1)["cls.predictions.dense.weight"]
    )
    assert np.all(a["rembert.embeddings.word_embeddings.weight"][config.pad_token_id] == 0)
    full = default_config("full", layers=3)
    assert (full.hidden_size, full.num_attention_heads, full.intermediate_size) == (1152, 18, 4608)
    assert (full.input_embedding_size, full.output_embedding_size, full.num_hidden_layers) == (256, 1664, 3)


@pytest.mark.parametrize(
    "task",
    [
        "masked_lm",
        "causal_lm",
        "sequence_classification",
        "multiple_choice",
        "token_classification",
        "question_answering",
    ],
)
def test_inputs_are_padded_batches_with_labels(task: str) -> None:
    config = default_config()
    inputs = make_inputs(config, task, batch=3, seq_len=9)
    ids = inputs["input_ids"]
    assert ids.shape == ((3, 2, 9) if task == "multiple_choice" else (3, 9))
    assert inputs["attention_mask"][0].all()
    assert not inputs["attention_mask"][1].all()
    assert (ids[inputs["attention_mask"] == 0] == config.pad_token_id).all()
    assert inputs["token_type_ids"].max() < config.type_vocab_size
    assert ("labels" in inputs) or ("start_positions" in inputs)


def test_agreeing_backends_pass_with_a_full_table() -> None:
    report = run_parity(
        [ToyBackend("a"), ToyBackend("b")],
        tasks=["base", "masked_lm"],
        dtypes=["float32"],
        reference=ToyBackend("ref"),
    )
    assert report.ok, report.render()
    quantities = {c.quantity for c in report.comparisons}
    assert {"last_hidden_state", "hidden_states", "grad", "loss(grad)", "roundtrip"} <= quantities
    pairs = {(c.left, c.right) for c in report.comparisons}
    assert ("a:float32", "ref:float64") in pairs
    assert ("b:float32", "a:float32") in pairs
    table = report.render()
    assert "PASS" in table
    assert "a:float32" in table


def test_a_perturbed_weight_is_caught_and_named() -> None:
    bad = ToyBackend("buggy", perturb="rembert.encoder.embedding_hidden_mapping_in.weight", scale=1e-3)
    report = run_parity([ToyBackend("good"), bad], tasks=["masked_lm"], dtypes=["float32"], reference=ToyBackend("ref"))
    assert not report.ok
    failures = report.failures
    assert {(f.left, f.right) for f in failures} >= {
        ("buggy:float32", "ref:float64"),
        ("buggy:float32", "good:float32"),
    }
    assert all(f.task == "masked_lm" for f in failures)
    roundtrip = [f for f in failures if f.quantity == "roundtrip"]
    assert roundtrip
    assert roundtrip[0].worst == "rembert.encoder.embedding_hidden_mapping_in.weight"
    grad = next(f for f in failures if f.quantity == "grad")
    assert grad.worst.startswith("rembert.")
    assert "FAIL" in report.render(only_failures=True)


def test_unsupported_cases_are_skipped_and_errors_recorded() -> None:
    class Broken(ToyBackend):
        def forward(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise RuntimeError("kernel exploded")

    report = run_parity([ToyBackend("a"), Broken("broken")], tasks=["base", "question_answering"], dtypes=["float32"])
    assert any("question_answering" in s for s in report.skipped)
    assert any("broken:float32 base: RuntimeError: kernel exploded" in e for e in report.errors)
    assert not report.ok


def test_report_json(tmp_path: Path) -> None:
    report = run_parity([ToyBackend("a")], tasks=["base"], dtypes=["float32"], reference=ToyBackend("ref"))
    payload = json.loads(report.to_json())
    assert payload["ok"] is True
    assert payload["backends"] == ["a"]
    assert payload["reference"] == "ref:float64"
    assert payload["comparisons"][0]["task"] == "base"


class ToyPlugin:
    def __init__(self, *backends: Backend) -> None:
        self.backends = backends

    @hookimpl
    def register_backends(self, register: Any) -> None:
        for backend in self.backends:
            register(backend)


def test_cli_parity_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register_plugin(ToyPlugin(ToyBackend("toya"), ToyBackend("toyb"), ToyBackend("numpy")), name="toys")
    out = tmp_path / "report.json"
    args = ["parity", "--tasks", "base,masked_lm", "--dtypes", "float32", "--no-progress", "--no-tokenizers"]
    code = main([*args, "--report", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "PASS" in text
    assert json.loads(out.read_text())["reference"] == "numpy:float64"


def test_cli_parity_fails_on_a_perturbed_backend(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ToyBackend("toybad", perturb="embeddings.word_embeddings.weight", scale=1e-2)
    register_plugin(ToyPlugin(ToyBackend("toyc"), bad), name="toys2")
    code = main(
        [
            "parity",
            "--backends",
            "toyc,toybad",
            "--tasks",
            "base",
            "--dtypes",
            "float32",
            "--reference",
            "none",
            "--no-progress",
            "--no-tokenizers",
        ]
    )
    text = capsys.readouterr().out
    assert code == 1
    assert "toybad:float32  toyc:float32  base" in text or "toybad:float32" in text
    assert "FAIL" in text


def test_cli_parity_with_a_checkpoint(make_checkpoint: Any, capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_checkpoint("masked_lm")
    register_plugin(ToyPlugin(ToyBackend("toyd")), name="toys3")
    code = main(
        ["parity", str(directory), "--dtypes", "float32", "--reference", "none", "--no-progress", "--no-tokenizers"]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "masked_lm" in text
    assert "roundtrip" in text


def test_cli_parity_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["parity", "--backends", "nope", "--no-progress"])
    assert code == 2
    assert "no backend named 'nope'" in capsys.readouterr().err


def test_conformance_kit_checks_the_contract() -> None:
    from rembert_core.testing import BackendConformance

    class ToyConformance(BackendConformance):
        backend = ToyBackend("toy")
        reference = ToyBackend("toyref")

    kit = ToyConformance()
    kit.test_declares_name_tasks_and_dtypes()
    kit.test_export_returns_the_loaded_tensors()
    kit.test_agrees_with_reference()
    with pytest.raises(KeyError, match="pooler_output"):  # the toy has no pooler: the kit notices
        kit.test_forward_returns_the_reference_fields()

    class Lying(ToyConformance):
        backend = ToyBackend("liar", perturb="embeddings.word_embeddings.weight")

    with pytest.raises(AssertionError, match=r"base: embeddings.word_embeddings.weight changed"):
        Lying().test_export_returns_the_loaded_tensors()
    with pytest.raises(AssertionError, match="FAIL"):
        Lying().test_agrees_with_reference()


def test_two_sided_bounds_are_twice_the_table() -> None:
    from rembert_core.tolerances import TOLERANCES, get_tolerance

    for (dtype, quantity, scope), tol in TOLERANCES.items():
        if scope != "cross_framework":
            continue
        pair = get_tolerance(dtype, quantity, two_sided=True)
        assert (pair.atol, pair.rtol) == (2 * tol.atol, 2 * tol.rtol)
        assert tol.reason in pair.reason


# -- the ratio to the bound, the summary, the references --------------------------------------------------------


class ReferenceToy(ToyBackend):
    """A toy that declares itself a reference implementation, as the transformers plugin's backends do."""

    reference = "toyformers 9.9 (toy classes)"


class PaddingRowsToy(ToyBackend):
    """A toy that says it computes rows of padding only its own way (as transformers' TF classes do)."""

    padding_only_rows = False


def test_ratio_is_the_error_as_a_fraction_of_its_bound() -> None:
    bad = ToyBackend("bad", perturb="embeddings.word_embeddings.weight", scale=1e-3)
    report = run_parity([ToyBackend("good"), bad], tasks=["base"], dtypes=["float32"], reference=ToyBackend("ref"))
    for c in report.comparisons:
        if c.quantity == "roundtrip":
            assert c.ratio == (0.0 if c.passed else float("inf"))
        else:
            assert c.passed == (c.ratio <= 1.0), c
    worst = max((c for c in report.comparisons if c.quantity == "last_hidden_state"), key=lambda c: c.ratio)
    assert worst.ratio > 1.0 and not worst.passed
    assert worst.ratio >= worst.max_abs / (worst.atol + worst.rtol * 1.0)  # |b| <= 1 after tanh


def test_summary_puts_the_reference_on_the_right_and_states_the_rule_first() -> None:
    report = run_parity(
        [ToyBackend("ours"), ReferenceToy("toyformers")],
        tasks=["base", "masked_lm"],
        dtypes=["float32"],
        reference=ToyBackend("exact"),
    )
    assert report.references == {"toyformers": "toyformers 9.9 (toy classes)"}
    rows = report.summary_rows()
    assert [(r.left, r.right, r.group) for r in rows] == [
        ("ours:float32", "toyformers:float32", "reference"),
        ("ours:float32", "exact:float64", "exact"),
        ("toyformers:float32", "exact:float64", "exact"),
    ]
    assert set(rows[0].cells) == {"base", "masked_lm"} and rows[0].passed
    text = report.summary()
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if "|a - b| <= atol + rtol * |b|" in line)
    table = next(i for i, line in enumerate(lines) if line.startswith("pair of runs"))
    assert rule < table
    assert text.count("|a - b| <= atol + rtol * |b|") == 1  # stated once
    assert lines[table + 1].startswith("ours:float32 vs toyformers:float32") and lines[table + 1].endswith("PASS")
    verdict = text.split("\n\n")[-1].replace("\n", " ")
    assert verdict.startswith("PASS: ours agrees with toyformers 9.9 (toy classes) and the float64 reference")
    assert "max abs" not in text  # the per-field table is for --verbose and the reports


def test_a_backend_that_leaves_out_padding_rows_is_compared_on_the_real_rows() -> None:
    report = run_parity([ToyBackend("full"), PaddingRowsToy("partial")], tasks=["base"], dtypes=["float32"], batch=3)
    rows = {(c.left, c.right): c.rows for c in report.comparisons if c.quantity == "last_hidden_state"}
    assert rows == {("partial:float32", "full:float32"): "rows with a real token"}
    assert report.notes == [
        "partial is compared on the rows with a real token (it computes rows of padding only its own way)"
    ]
    assert report.ok


def test_a_framework_that_cannot_be_imported_is_reported_once() -> None:
    class Missing(ToyBackend):
        def build_model(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ModuleNotFoundError("No module named 'noframework'")

    report = run_parity([ToyBackend("a"), Missing("gone")], tasks=["base", "masked_lm"], dtypes=["float32"])
    assert report.errors == ["gone: cannot import its framework (ModuleNotFoundError: No module named 'noframework')"]
    assert not report.ok


def test_report_round_trips_through_json_and_renders_html(tmp_path: Path) -> None:
    from rembert_core.parity import ParityReport

    report = run_parity(
        [ToyBackend("a"), ReferenceToy("toyformers")], tasks=["base"], dtypes=["float32"], reference=ToyBackend("r")
    )
    payload = json.loads(report.to_json())
    assert payload["rule"].startswith("Rule: a value a matches")
    assert payload["summary"][0]["left"] == "a:float32" and payload["summary"][0]["right"] == "toyformers:float32"
    again = ParityReport.from_dict(payload)
    assert again.summary() == report.summary()
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert 'class="fields sortable"' in page and "<svg" in page and "<script>" in page
    assert page.count("<tr>") == len(report.comparisons) + len(report.summary_rows()) + 2  # + the heading rows
