"""tf_model.h5 written by transformers' TF classes reads (without TensorFlow) as the tensors transformers' PyTorch
classes load from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rembert_core import RemBertConfig, build_schema, open_checkpoint
from rembert_core.cli import main
from rembert_core.convert import convert_checkpoint
from rembert_core.loading import match_weights, open_weights

pytest.importorskip("transformers")
pytest.importorskip("h5py")
pytestmark = pytest.mark.oracle

TASKS = {
    "base": "RemBertModel",
    "masked_lm": "RemBertForMaskedLM",
    "causal_lm": "RemBertForCausalLM",
    "sequence_classification": "RemBertForSequenceClassification",
    "multiple_choice": "RemBertForMultipleChoice",
    "token_classification": "RemBertForTokenClassification",
    "question_answering": "RemBertForQuestionAnswering",
}

CONFIG = {
    "vocab_size": 301,
    "hidden_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 6,
    "input_embedding_size": 20,
    "output_embedding_size": 36,
    "intermediate_size": 64,
    "type_vocab_size": 3,
    "num_labels": 3,
}


@pytest.fixture(scope="module")
def reference_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For each task: tf/ (tf_model.h5 by the TF classes) and pt/ (the same weights loaded by the PT classes)."""
    root = tmp_path_factory.mktemp("h5ref")
    script = textwrap.dedent(
        f"""
        import transformers
        from transformers.modeling_tf_pytorch_utils import load_tf2_checkpoint_in_pytorch_model

        tasks = {TASKS!r}
        for task, arch in tasks.items():
            kwargs = dict({CONFIG!r})
            if task == "causal_lm":
                kwargs.update(is_decoder=True, add_cross_attention=True)
            if task == "question_answering":
                kwargs.update(num_labels=2)  # start and end
            config = transformers.RemBertConfig(**kwargs)
            tf_model = getattr(transformers, "TF" + arch)(config)
            tf_model(tf_model.dummy_inputs)
            tf_model.save_pretrained("{root}/" + task + "/tf")
            # (from_pretrained(from_tf=True) leaves every weight on the meta device in 4.57; load explicitly)
            pt_model = getattr(transformers, arch)(config)
            load_tf2_checkpoint_in_pytorch_model(pt_model, "{root}/" + task + "/tf/tf_model.h5")
            pt_model.save_pretrained("{root}/" + task + "/pt")
        """
    )
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.parametrize("task", list(TASKS))
def test_h5_reads_as_the_reference_pytorch_weights(reference_dirs: Path, task: str) -> None:
    tf_dir, pt_dir = reference_dirs / task / "tf", reference_dirs / task / "pt"
    config = RemBertConfig.from_pretrained(tf_dir)
    schema = build_schema(config, task)
    with open_weights(tf_dir) as h5, open_checkpoint(pt_dir) as pt:
        assert h5.format == "tf_h5"
        report = match_weights(h5, schema, source=str(tf_dir))
        assert report.ok
        assert not report.newly_initialized
        for name, key in report.matched.items():
            pt_key = schema.canonical_name(key)
            expected = pt[pt_key if pt_key in pt else schema.backbone_name(pt_key or key)]
            np.testing.assert_array_equal(h5[key], expected, err_msg=name)


def test_inspect_and_convert_h5(reference_dirs: Path, tmp_path: Path) -> None:
    tf_dir = reference_dirs / "masked_lm" / "tf"
    assert main(["inspect", str(tf_dir)]) == 0
    out = tmp_path / "converted"
    result = convert_checkpoint(tf_dir, out)
    assert result.format == "tf_h5"
    assert result.task == "masked_lm"
    with open_checkpoint(out) as converted, open_checkpoint(reference_dirs / "masked_lm" / "pt") as pt:
        assert set(converted) == set(pt)
        for name in pt:
            np.testing.assert_array_equal(converted[name], pt[name])
