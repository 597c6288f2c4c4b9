from __future__ import annotations

import pytest

from rembert_core import ARCHITECTURES, TASKS, CheckpointError, RemBertConfig, build_schema
from rembert_core.schema import Layout, infer_task


def per_layer(config: RemBertConfig) -> int:
    return 16 + (10 if config.add_cross_attention else 0)


@pytest.mark.parametrize("task", TASKS)
def test_tensor_count_and_prefix(tiny_config: RemBertConfig, task: str) -> None:
    schema = build_schema(tiny_config, task)
    pooler = task in ("base", "sequence_classification", "multiple_choice")
    head = {"base": 0, "masked_lm": 6, "causal_lm": 6, "question_answering": 2}.get(task, 2)
    expected = 7 + per_layer(tiny_config) * tiny_config.num_hidden_layers + (2 if pooler else 0) + head
    assert len(schema) == expected
    prefix = "" if task == "base" else "rembert."
    assert next(iter(schema)) == prefix + "embeddings.word_embeddings.weight"
    assert schema.pooler is pooler


def test_shapes_follow_the_config(tiny_config: RemBertConfig) -> None:
    s = build_schema(tiny_config, "masked_lm")
    assert s["rembert.embeddings.word_embeddings.weight"].shape == (301, 20)
    assert s["rembert.embeddings.token_type_embeddings.weight"].shape == (3, 20)
    assert s["rembert.encoder.embedding_hidden_mapping_in.weight"].shape == (48, 20)
    assert s["rembert.encoder.layer.1.intermediate.dense.weight"].shape == (64, 48)
    assert s["rembert.encoder.layer.1.output.dense.weight"].shape == (48, 64)
    assert s["cls.predictions.dense.weight"].shape == (36, 48)
    assert s["cls.predictions.decoder.weight"].shape == (301, 36)
    assert s["cls.predictions.decoder.bias"].shape == (301,)
    assert s["cls.predictions.LayerNorm.weight"].shape == (36,)
    assert s["cls.predictions.dense.weight"].layout is Layout.LINEAR
    assert s["rembert.embeddings.word_embeddings.weight"].layout is Layout.EMBEDDING
    assert s["cls.predictions.LayerNorm.bias"].layout is Layout.VECTOR


def test_heads(tiny_config: RemBertConfig) -> None:
    cfg = tiny_config.copy(num_labels=5)
    assert build_schema(cfg, "sequence_classification")["classifier.weight"].shape == (5, 48)
    assert build_schema(cfg, "token_classification")["classifier.weight"].shape == (5, 48)
    assert build_schema(cfg, "multiple_choice")["classifier.weight"].shape == (1, 48)
    assert build_schema(cfg, "question_answering")["qa_outputs.weight"].shape == (5, 48)


def test_cross_attention_layers(tiny_config: RemBertConfig) -> None:
    cfg = tiny_config.copy(is_decoder=True, add_cross_attention=True)
    schema = build_schema(cfg, "causal_lm")
    assert "rembert.encoder.layer.0.crossattention.self.key.weight" in schema
    assert "rembert.encoder.layer.1.crossattention.output.LayerNorm.bias" in schema


def test_validate_accepts_both_prefixes_and_reports_new_heads(tiny_config: RemBertConfig) -> None:
    base = build_schema(tiny_config, "base")
    shapes = {name: spec.shape for name, spec in base.items()}
    mlm = build_schema(tiny_config, "masked_lm")
    report = mlm.validate(shapes)  # a backbone checkpoint loaded into a head model
    assert report.ok
    assert sorted(report.newly_initialized) == sorted(n for n in mlm if n.startswith("cls."))
    assert "pooler.dense.weight" in report.unused  # the MLM model has no pooler
    assert report.matched["rembert.encoder.layer.0.attention.self.query.weight"] == (
        "encoder.layer.0.attention.self.query.weight"
    )
    # and a head checkpoint loaded into the bare model
    report = base.validate({n: s.shape for n, s in mlm.items()})
    assert report.ok
    assert set(report.unused) == {n for n in mlm if n.startswith("cls.")}
    assert report.newly_initialized == ["pooler.dense.weight", "pooler.dense.bias"]


def test_validate_reports_every_problem_at_once(tiny_config: RemBertConfig) -> None:
    schema = build_schema(tiny_config, "sequence_classification")
    shapes = {name: spec.shape for name, spec in schema.items()}
    del shapes["rembert.encoder.layer.1.output.dense.weight"]
    del shapes["rembert.embeddings.LayerNorm.bias"]
    shapes["rembert.encoder.layer.0.attention.self.key.weight"] = (48, 47)
    shapes["classifier.weight"] = (3, 48)
    shapes["rembert.encoder.layer.7.weird.weight"] = (1,)
    shapes["rembert.embeddings.position_ids"] = (1, 64)  # an old buffer: ignored silently
    dtypes = {name: "F32" for name in shapes} | {"rembert.pooler.dense.bias": "I64"}
    report = schema.validate(shapes, dtypes)
    assert not report.ok
    errors = report.errors()
    assert len(errors) == 6
    joined = "\n".join(errors)
    for needle in (
        "missing tensor rembert.encoder.layer.1.output.dense.weight (expected shape (48, 64))",
        "missing tensor rembert.embeddings.LayerNorm.bias",
        "tensor rembert.encoder.layer.0.attention.self.key.weight has shape (48, 47), expected (48, 48)",
        "tensor classifier.weight has shape (3, 48), expected (2, 48)",
        "unexpected tensor rembert.encoder.layer.7.weird.weight",
        "tensor rembert.pooler.dense.bias has dtype I64",
    ):
        assert needle in joined
    with pytest.raises(CheckpointError, match="6 problems") as info:
        report.raise_for_errors("my.safetensors")
    assert "my.safetensors does not fit the RemBertForSequenceClassification schema" in str(info.value)


def test_duplicate_spellings_are_an_error(tiny_config: RemBertConfig) -> None:
    schema = build_schema(tiny_config, "masked_lm")
    shapes = {n: s.shape for n, s in schema.items()}
    shapes["embeddings.word_embeddings.weight"] = (301, 20)  # same tensor without the prefix
    with pytest.raises(CheckpointError, match="appears twice"):
        schema.validate(shapes)


def test_parameter_counts(tiny_config: RemBertConfig) -> None:
    counts = build_schema(tiny_config, "masked_lm").parameter_counts()
    assert counts["embeddings"] == (301 + 64 + 3) * 20 + 2 * 20
    assert counts["embedding_projection"] == 48 * 20 + 48
    assert counts["head"] == 36 * 48 + 36 + 301 * 36 + 301 + 2 * 36


def test_full_size_backbone_parameter_count() -> None:
    # The paper's RemBERT: 575M backbone parameters (without the output embedding).
    counts = build_schema(RemBertConfig(), "base", add_pooling_layer=False).parameter_counts()
    assert 570e6 < sum(counts.values()) < 580e6


def test_unknown_task(tiny_config: RemBertConfig) -> None:
    with pytest.raises(CheckpointError, match="unknown task 'summarization'"):
        build_schema(tiny_config, "summarization")


def test_infer_task(tiny_config: RemBertConfig) -> None:
    for task, arch in ARCHITECTURES.items():
        assert infer_task(tiny_config.copy(architectures=[arch]), []) == task
        assert infer_task(tiny_config.copy(architectures=["TF" + arch]), []) == task
    assert infer_task(tiny_config, ["cls.predictions.decoder.weight"]) == "masked_lm"
    assert infer_task(tiny_config.copy(is_decoder=True), ["cls.predictions.decoder.weight"]) == "causal_lm"
    assert infer_task(tiny_config, ["rembert.pooler.dense.weight", "classifier.weight"]) == "sequence_classification"
    assert infer_task(tiny_config, ["classifier.weight"]) == "token_classification"
    assert infer_task(tiny_config, ["qa_outputs.weight"]) == "question_answering"
    assert infer_task(tiny_config, ["embeddings.word_embeddings.weight"]) == "base"
