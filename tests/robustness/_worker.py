"""A subprocess that runs risky operations for the robustness suite, one JSON request per line.

A crash (segfault, abort) or hang here cannot take pytest down: the parent (:class:`Worker`) sees the
process die or time out, reports the case, and starts a fresh worker. The worker caps its address
space (``RLIMIT_AS``), so a reader that believes a header claiming terabytes fails with
``MemoryError`` here, which the invariant counts as a failure, instead of swapping the machine.

Each reply classifies the outcome: ``ok``, ``library_error`` (a :class:`rembert_core.RemBertError`),
or ``bare`` (any other exception: a failure of the invariant), with the exception type and message.
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# -- operations (run inside the worker) --------------------------------------------------------

_CACHE: dict[str, Any] = {}


def op_config(path: str) -> Any:
    from rembert_core import RemBertConfig

    config = RemBertConfig.from_json_file(path)
    return config.to_dict()["hidden_size"]


def _read_all(source: Any) -> int:
    total = 0
    with source:
        for name in source:
            total += int(source[name].nbytes)
    return total


def op_weights(path: str) -> Any:
    from rembert_core.loading import open_weights

    return _read_all(open_weights(path))


def op_safetensors(path: str) -> Any:
    from rembert_core.serialization import open_checkpoint

    checkpoint = open_checkpoint(path)
    total = _read_all(checkpoint)
    for name, info in open_checkpoint(path).infos().items():  # the streaming reader too
        if info.shape:
            open_checkpoint(path).read_rows(name, 0, info.shape[0])
    return total


def op_h5(path: str) -> Any:
    from rembert_core.io.h5 import open_h5

    return _read_all(open_h5(Path(path)))


def op_torch_bin(path: str) -> Any:
    from rembert_torch.loading import open_torch_bin

    return _read_all(open_torch_bin(path))


def op_torch_from_pretrained(path: str) -> Any:
    from rembert_torch import RemBertModel

    model = RemBertModel.from_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def op_tf_from_pretrained(path: str) -> Any:
    from rembert_tf import TFRemBertModel

    model = TFRemBertModel.from_pretrained(path)
    return int(sum(int(v.shape.num_elements()) for v in model.weights))


def op_inspect(path: str) -> Any:
    from rembert_core.cli import _inspect_payload

    return _inspect_payload(Path(path), None)["task"]


def op_convert(src: str, dst: str) -> Any:
    from rembert_core.convert import convert_checkpoint

    return convert_checkpoint(src, dst).tensors


def op_tf_checkpoint(path: str) -> Any:
    from rembert_tf.loading import open_tf_checkpoint

    return _read_all(open_tf_checkpoint(Path(path)))


def _tokenizer(kind: str, model: str) -> Any:
    key = f"{kind}:{model}"
    if key not in _CACHE:
        from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

        cls = RemBertTokenizerFast if kind == "fast" else RemBertTokenizer
        _CACHE[key] = cls(model)
    return _CACHE[key]


def op_tokenize(kind: str, model: str, text: Any, pair: Any = None, kwargs: dict[str, Any] | None = None) -> Any:
    tok = _tokenizer(kind, model)
    encoding = tok(text, pair, **(kwargs or {})) if pair is not None else tok(text, **(kwargs or {}))
    ids = encoding["input_ids"]
    first = ids[0] if ids and isinstance(ids[0], list) else ids  # one text, or the first of a batch
    decoded = tok.decode(first)
    return [ids, decoded, len(tok)]


def op_decode(kind: str, model: str, ids: list[int]) -> Any:
    return _tokenizer(kind, model).decode(ids)


def op_tokenizer_from_pretrained(kind: str, path: str) -> Any:
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    cls = RemBertTokenizerFast if kind == "fast" else RemBertTokenizer
    return cls.from_pretrained(path)("hello world")["input_ids"]


def _array(spec: dict[str, Any]) -> Any:
    import numpy as np

    return np.array(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])


def op_torch_forward(inputs: dict[str, Any], task: str = "base") -> Any:
    import torch
    from _util import TINY

    import rembert_torch
    from rembert_core import RemBertConfig

    key = f"torch:{task}"
    if key not in _CACHE:
        torch.manual_seed(0)
        cls = {"base": rembert_torch.RemBertModel, "masked_lm": rembert_torch.RemBertForMaskedLM}[task]
        _CACHE[key] = cls(RemBertConfig(**TINY)).eval()
    model = _CACHE[key]
    kwargs = {name: torch.from_numpy(_array(spec)) for name, spec in inputs.items()}
    with torch.no_grad():
        out = model(**kwargs)
    first = out[0]
    return [list(first.shape), bool(torch.isfinite(first).all())]


def op_tf_forward(inputs: dict[str, Any], task: str = "base") -> Any:
    import tensorflow as tf
    from _util import TINY

    import rembert_tf
    from rembert_core import RemBertConfig

    key = f"tf:{task}"
    if key not in _CACHE:
        tf.random.set_seed(0)
        cls = {"base": rembert_tf.TFRemBertModel, "masked_lm": rembert_tf.TFRemBertForMaskedLM}[task]
        _CACHE[key] = cls(RemBertConfig(**TINY))
    model = _CACHE[key]
    kwargs = {name: tf.constant(_array(spec)) for name, spec in inputs.items()}
    out = model(**kwargs)
    first = out[0]
    return [list(first.shape), bool(tf.reduce_all(tf.math.is_finite(first)))]


def op_kill_trials(kind: str, root: str, trials: int, seed: int) -> Any:
    from _crash import kill_trials

    return kill_trials(kind, root, trials, seed)


def op_threads(kind: str, calls: int) -> Any:
    from _longrun import threads

    return threads(kind, calls)


def op_leak(kind: str, iterations: int, warmup: int) -> Any:
    from _longrun import leak

    return leak(kind, iterations, warmup)


def op_tokenizer_ids(kind: str, path: str, text: str) -> Any:
    """A tokenizer directory's ids for ``text``, with its [CLS] and [SEP] ids and its size (id stability)."""
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    tok = (RemBertTokenizerFast if kind == "fast" else RemBertTokenizer).from_pretrained(path)
    return [tok(text)["input_ids"], tok.cls_token_id, tok.sep_token_id, len(tok)]


OPS = {name.removeprefix("op_"): fn for name, fn in globals().items() if name.startswith("op_")}


def serve() -> None:
    sys.path.insert(0, str(HERE))
    limit = int(os.environ.get("ROBUSTNESS_WORKER_AS_BYTES", "0"))
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from rembert_core import RemBertError

    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    for line in sys.stdin:
        request = json.loads(line)
        try:
            value = OPS[request["op"]](**request["args"])
            reply = {"status": "ok", "value": value}
        except RemBertError as exc:
            reply = {"status": "library_error", "type": type(exc).__name__, "message": str(exc)[:500]}
        except BaseException as exc:  # the invariant's failure: report it, keep serving
            reply = {
                "status": "bare",
                "type": type(exc).__name__,
                "message": str(exc)[:500],
                "traceback": traceback.format_exc()[-3000:],
            }
        try:
            text = json.dumps(reply)
        except (TypeError, ValueError):
            reply.pop("value", None)
            text = json.dumps(reply)
        out.write(text + "\n")
        out.flush()


# -- the parent side ---------------------------------------------------------------------------


class Worker:
    """A restartable worker process; :meth:`call` never raises for a crash or a hang, it reports them."""

    def __init__(self, *, address_space: int | None = 8 * 2**30, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if address_space:
            self.env["ROBUSTNESS_WORKER_AS_BYTES"] = str(address_space)
        self.proc: subprocess.Popen[str] | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "_worker.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=self.env,
            )
        return self.proc

    def call(self, op: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stdin.close()
            self.restarts += 1
            return {"status": "hang", "timeout": timeout}
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            proc.stdout.close()
            proc.stdin.close()
            self.restarts += 1
            return {"status": "crash", "returncode": code}
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def check(reply: dict[str, Any], what: str) -> None:
    """The invariant: a correct result or a library error, never a crash, hang or bare exception."""
    assert reply["status"] in ("ok", "library_error"), f"{what}: {json.dumps(reply, indent=1)[:4000]}"


if __name__ == "__main__":
    serve()
