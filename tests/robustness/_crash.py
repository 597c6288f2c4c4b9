"""SIGKILL trials, run inside a worker process: fork a child that saves, kill it at a random moment, verify.

Two complete states, A and B, of one kind of artifact (a PyTorch or TensorFlow checkpoint written by
``save_pretrained``, the output of ``rembert convert``, a slow or fast tokenizer's files) are known
in memory. The destination is seeded with a complete save of A. Each trial forks a child that saves
the other state over the destination; after a random delay (uniform over 1.2x the duration of an
unkilled save in a forked child, widened while no kill has landed after a save's end, so kills land
before, during and after the writes) the child gets SIGKILL. What then loads from the destination
must equal, exactly, the state before the trial or the state the child was writing; that state is
the "before" of the next trial. A and B differ in every tensor and in layout (single file vs.
shards), so any mix of their files shows.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SP_MODEL = HERE.parents[1] / "tests" / "fixtures" / "sentencepiece" / "test_model.model"
SP_MODEL_JA = HERE.parents[1] / "tests" / "fixtures" / "sentencepiece" / "test_ja_model.model"

# Big enough that a save takes tens of milliseconds (kills land inside it), small enough to be quick.
CONFIG = {
    "vocab_size": 20000,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "input_embedding_size": 32,
    "output_embedding_size": 32,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
}
SHARD = "1MB"  # state B is sharded with this limit; state A is a single file
SAMPLES = ["Hello world, <extra_a> and <extra_b>!", "吾輩は猫である。名前はまだ無い。", "  spaces\tand\nnewlines  "]


class State:
    """One complete state: how to save it (in a forked child, or as a command line), and what it reads back as."""

    def __init__(
        self, name: str, save: Callable[[Path], None], expected: Any, command: Callable[[Path], list[str]] | None = None
    ) -> None:
        self.name = name
        self.save = save
        self.expected = expected
        self.command = command


# The CLI loads no plugin entry points: converting safetensors needs none, and it starts faster.
CLI_ENV = {**os.environ, "REMBERT_PLUGINS": ""}


def _checkpoint_reader(directory: Path) -> Any:
    from rembert_core import RemBertConfig
    from rembert_core.loading import open_weights

    config = RemBertConfig.from_pretrained(directory).to_dict()
    with open_weights(directory) as weights:
        tensors = {name: np.array(weights[name]) for name in weights}
    return config, tensors


def _same_checkpoint(a: Any, b: Any) -> bool:
    (config_a, tensors_a), (config_b, tensors_b) = a, b
    return bool(
        config_a == config_b
        and tensors_a.keys() == tensors_b.keys()
        and all(np.array_equal(tensors_a[k], tensors_b[k]) for k in tensors_a)
    )


def _expected(save: Callable[[Path], None], scratch: Path) -> Any:
    shutil.rmtree(scratch, ignore_errors=True)
    save(scratch)
    return _checkpoint_reader(scratch)


def _torch_states(scratch: Path) -> tuple[list[State], Callable[[Path], Any], Callable[[Any, Any], bool]]:
    import torch

    from rembert_core import RemBertConfig
    from rembert_torch import RemBertForMaskedLM

    states = []
    for name, seed, shard in (("A", 0, None), ("B", 1, SHARD)):
        torch.manual_seed(seed)
        # The two saves differ in config.json too, so a new config beside old weights would be caught.
        model = RemBertForMaskedLM(RemBertConfig(**{**CONFIG, "initializer_range": 0.02 + 0.01 * seed})).eval()

        def save(directory: Path, model: Any = model, shard: Any = shard) -> None:
            model.save_pretrained(directory, max_shard_size=shard or "5GB")

        states.append(State(name, save, _expected(save, scratch / name)))
    return states, _checkpoint_reader, _same_checkpoint


def _tf_states(scratch: Path) -> tuple[list[State], Callable[[Path], Any], Callable[[Any, Any], bool]]:
    import tensorflow as tf

    from rembert_core import RemBertConfig
    from rembert_tf import TFRemBertForMaskedLM

    states = []
    for name, seed, shard in (("A", 0, None), ("B", 1, SHARD)):
        tf.keras.utils.set_random_seed(seed)
        # The two saves differ in config.json too, so a new config beside old weights would be caught.
        model = TFRemBertForMaskedLM(RemBertConfig(**{**CONFIG, "initializer_range": 0.02 + 0.01 * seed}))
        model(input_ids=tf.ones((1, 3), tf.int32))

        def save(directory: Path, model: Any = model, shard: Any = shard) -> None:
            model.save_pretrained(directory, max_shard_size=shard)

        states.append(State(name, save, _expected(save, scratch / name)))
    return states, _checkpoint_reader, _same_checkpoint


def _convert_states(scratch: Path) -> tuple[list[State], Callable[[Path], Any], Callable[[Any, Any], bool]]:
    """``rembert convert --overwrite`` as a real CLI process (no fork: the command is what gets killed)."""
    from rembert_core import RemBertConfig, save_safetensors

    states = []
    for name, seed, shard in (("A", 0, "0"), ("B", 1, SHARD)):
        source = scratch / f"source-{name}"
        config = RemBertConfig(**CONFIG)
        config.save_pretrained(source)
        rng = np.random.default_rng(seed)
        from rembert_core import build_schema

        tensors = {
            k: rng.normal(0, 0.02, spec.shape).astype(np.float32)
            for k, spec in build_schema(config, "masked_lm").items()
        }
        save_safetensors(tensors, source, max_shard_size="3MB")

        def command(directory: Path, source: Path = source, shard: str = shard) -> list[str]:
            return [
                sys.executable, "-m", "rembert_core.cli", "convert", str(source), str(directory),
                "--overwrite", "--no-progress", "--max-shard-size", shard,
            ]  # fmt: skip

        def save(directory: Path, command: Any = command) -> None:
            subprocess.run(command(directory), check=True, capture_output=True, env=CLI_ENV, timeout=300)

        states.append(State(name, save, _expected(save, scratch / name), command=command))
    return states, _checkpoint_reader, _same_checkpoint


def _tokenizer_states(fast: bool) -> Callable[[Path], tuple[list[State], Callable[[Path], Any], Any]]:
    def build(scratch: Path) -> tuple[list[State], Callable[[Path], Any], Any]:
        from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

        cls = RemBertTokenizerFast if fast else RemBertTokenizer

        def reader(directory: Path) -> Any:
            tok = cls.from_pretrained(directory)
            return [tok(text)["input_ids"] for text in SAMPLES] + [len(tok)]

        states = []
        for name, model, extra in (("A", SP_MODEL, ["<extra_a>"]), ("B", SP_MODEL_JA, ["<extra_b>"])):
            tok = cls(str(model))
            tok.add_tokens(extra)

            def save(directory: Path, tok: Any = tok) -> None:
                tok.save_pretrained(directory)

            shutil.rmtree(scratch / name, ignore_errors=True)
            save(scratch / name)
            states.append(State(name, save, reader(scratch / name)))
        return states, reader, lambda a, b: a == b

    return build


KINDS = {
    "torch": _torch_states,
    "tf": _tf_states,
    "convert": _convert_states,
    "tokenizer_slow": _tokenizer_states(False),
    "tokenizer_fast": _tokenizer_states(True),
}


def _fork(save: Callable[[], None]) -> int:
    """Fork a child that runs ``save``; return its pid once it has started."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: announce, then save (until killed)
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, b"go")
            save()
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    os.read(read_end, 2)
    os.close(read_end)
    return pid


def _timed_in_child(save: Callable[[], None]) -> float:
    """Seconds a save takes in a forked child, as in the trials (copy-on-write faults included)."""
    start = time.perf_counter()
    pid = _fork(save)
    while time.perf_counter() - start < 120:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if status:
                raise RuntimeError(f"the timing save failed in the forked child (status {status})")
            return time.perf_counter() - start
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise RuntimeError("the timing save in a forked child did not finish in 120 s (a lock held across fork?)")


def kill_trials(kind: str, root: str, trials: int, seed: int) -> dict[str, Any]:
    """Run ``trials`` SIGKILL trials of ``kind`` under ``root``; returns outcome counts or the first failure."""
    rng = random.Random(seed)
    root_path = Path(root)
    states, read, same = KINDS[kind](root_path / "expected")
    by_name = {s.name: s for s in states}
    dest = root_path / "dest"
    by_name["A"].save(dest)
    if by_name["B"].command is not None:
        start = time.perf_counter()
        by_name["B"].save(root_path / "timing")
        duration = time.perf_counter() - start
    else:
        duration = _timed_in_child(lambda: by_name["B"].save(root_path / "timing"))

    def identify(directory: Path) -> str:
        try:
            got = read(directory)
        except Exception as exc:  # a destination that does not load is a failure too
            return f"does not load: {type(exc).__name__}: {exc}"
        for state in states:
            if same(got, state.expected):
                return state.name
        return "loads, but is neither A nor B (a mix)"

    current = identify(dest)
    if current != "A":
        return {"failure": f"the seeded state A reads back as: {current}"}
    outcomes = {"kept previous": 0, "new complete": 0}
    delays = []
    scale = 1.2 * duration
    for trial in range(trials):
        target = "B" if current == "A" else "A"
        if trial and trial % 5 == 0 and not outcomes["new complete"]:
            scale *= 2  # saves run slower than the timing run (a loaded machine): reach their end too
        delay = rng.uniform(0, scale)
        delays.append(delay)
        command = by_name[target].command
        if command is not None:
            proc = subprocess.Popen(command(dest), env=CLI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        else:
            pid = _fork(lambda target=target: by_name[target].save(dest))
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        got = identify(dest)
        if got not in (current, target):
            return {
                "failure": f"trial {trial}: killed {delay * 1000:.1f} ms into saving {target} over {current}: {got}",
                "files": sorted(p.name for p in dest.iterdir()),
            }
        outcomes["kept previous" if got == current else "new complete"] += 1
        current = got
    leftovers = sorted(p.name for p in dest.iterdir() if p.name.startswith("."))
    return {
        "outcomes": outcomes,
        "save_ms": round(duration * 1000, 1),
        "max_delay_ms": round(max(delays) * 1000, 1),
        "leftover_temporary_files": len(leftovers),
    }
