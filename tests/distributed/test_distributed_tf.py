"""model.fit under tf.distribute against one replica: MirroredStrategy x2 and MultiWorkerMirroredStrategy x2.

Every run is ``examples/distributed/train_tf.py`` fine-tuning the same sequence-classification
checkpoint (written by rembert-torch, loaded with ``from_pretrained`` inside the strategy's scope)
on the same global batches of 8 rows, without dropout. The MultiWorkerMirroredStrategy run has
two worker processes on 127.0.0.1 (``TF_CONFIG`` with free ports), one TensorFlow thread each.
Per-step losses and final weights must match the single-replica run within the float32 tolerance
table; only the chief writes a checkpoint, and it loads in rembert-torch with TF's logits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from rembert_core.serialization import open_checkpoint
from rembert_core.tolerances import assert_close

STEPS = 4
TINY = dict(
    vocab_size=256,
    hidden_size=64,
    num_attention_heads=4,
    num_hidden_layers=2,
    input_embedding_size=32,
    output_embedding_size=48,
    intermediate_size=128,
    max_position_embeddings=64,
    pad_token_id=0,
    num_labels=2,
    classifier_dropout_prob=0.0,
)


def _weights(path: Path) -> dict[str, np.ndarray]:
    with open_checkpoint(path) as ckpt:
        return {name: np.array(ckpt[name]) for name in ckpt.infos()}


@pytest.fixture(scope="module")
def tf_runs(tmp_path_factory: pytest.TempPathFactory, launch: ModuleType) -> dict[str, Path]:
    import torch

    from rembert_core import RemBertConfig
    from rembert_torch import RemBertForSequenceClassification

    root = tmp_path_factory.mktemp("tf-runs")
    torch.manual_seed(0)
    RemBertForSequenceClassification(RemBertConfig(**TINY)).save_pretrained(root / "start")
    common = [str(launch.TRAIN_TF), "--model", str(root / "start"), "--steps", str(STEPS), "--dropout", "0"]
    common += ["--global-batch-size", "8", "--seq-len", "16", "--threads", "1"]

    def args(name: str, *extra: str) -> list[str]:
        out = root / name
        out.mkdir(exist_ok=True)
        return [sys.executable, *common, *extra, "--log-json", str(out / "losses.jsonl"), "--output-dir"]

    launch.run([*args("single", "--strategy", "default"), str(root / "single" / "final")], root / "single.log")
    mirrored = [*args("mirrored", "--strategy", "mirrored", "--cpu-replicas", "2"), str(root / "mirrored" / "final")]
    launch.run(mirrored, root / "mirrored.log")

    ports = launch.free_ports(2)
    workers = []
    for index in range(2):
        env = launch.base_env()
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        cmd = [*args("multi_worker", "--strategy", "multi_worker"), str(root / "multi_worker" / f"final-{index}")]
        if index:  # the same log path for both would interleave; only the chief writes it anyway
            cmd[cmd.index("--log-json") + 1] = str(root / "multi_worker" / "losses-worker1.jsonl")
        log = root / f"multi_worker-{index}.log"
        workers.append((launch.start(cmd, env, log), log))
    try:
        for proc, log in workers:
            done = launch.finish(proc, log)
            assert done.returncode == 0, f"worker exited with {done.returncode}:\n{done.output[-4000:]}"
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {name: root / name for name in ("start", "single", "mirrored", "multi_worker")}


@pytest.mark.parametrize("strategy", ["mirrored", "multi_worker"])
def test_two_replicas_match_one(tf_runs: dict[str, Path], strategy: str, launch: ModuleType) -> None:
    single = launch.read_losses(tf_runs["single"] / "losses.jsonl")
    multi = launch.read_losses(tf_runs[strategy] / "losses.jsonl")
    assert sorted(single) == sorted(multi) == list(range(1, STEPS + 1))
    for step in single:
        assert_close(multi[step], single[step], quantity="loss", cross_framework=False, name=f"loss step {step}")
    assert single[STEPS] != single[1], "the weights did not change: the comparison would prove nothing"
    final = tf_runs[strategy] / ("final-0" if strategy == "multi_worker" else "final")
    expected = _weights(tf_runs["single"] / "final")
    got = _weights(final)
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert_close(got[name], expected[name], quantity="weights", cross_framework=False, name=name)


def test_only_the_chief_writes(tf_runs: dict[str, Path]) -> None:
    assert (tf_runs["multi_worker"] / "final-0" / "model.safetensors").is_file()
    assert not (tf_runs["multi_worker"] / "final-1").exists()
    assert not (tf_runs["multi_worker"] / "losses-worker1.jsonl").exists()


def test_multi_worker_checkpoint_loads_in_torch(tf_runs: dict[str, Path]) -> None:
    import torch

    from rembert_tf import TFRemBertForSequenceClassification
    from rembert_torch import RemBertForSequenceClassification

    path = tf_runs["multi_worker"] / "final-0"
    assert json.loads((path / "config.json").read_text())["architectures"] == ["RemBertForSequenceClassification"]
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 256, size=(4, 16)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[2, 9:] = 0
    tf_model = TFRemBertForSequenceClassification.from_pretrained(path)
    expected = np.asarray(tf_model(ids, attention_mask=mask, training=False).logits)
    pt = RemBertForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        got = pt(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    assert_close(got, expected, quantity="activations", name="torch logits of the MultiWorkerMirrored checkpoint")
    start = _weights(tf_runs["start"])
    trained = _weights(path)
    assert any(not np.array_equal(start[n], trained[n]) for n in start), "training changed nothing"
