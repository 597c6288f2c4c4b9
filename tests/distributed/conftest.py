"""Helpers of the multi-process tests: free loopback ports, bounded subprocesses, the example trainers.

Every process is started in its own session and killed as a group when it overruns its
time limit, so a hung collective fails the test instead of blocking CI. Ports are chosen at
runtime by binding port 0 on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "distributed"
TRAIN_TORCH = EXAMPLES / "train_torch.py"
TRAIN_TF = EXAMPLES / "train_tf.py"
#: Upper bound of one training process (or process group) in these tests; a few steps of a tiny model
#: take seconds, the bound leaves room for a loaded 2-core CI machine and catches hangs.
TIMEOUT_S = 240


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together while choosing, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def base_env() -> dict[str, str]:
    """The environment of a training process: one thread per process, loopback only, quiet TensorFlow."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONUNBUFFERED="1",
    )
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env.pop("TF_CONFIG", None)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


@dataclass
class Finished:
    returncode: int
    output: str


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = TIMEOUT_S) -> Finished:
    """Wait for ``proc``; on timeout kill its whole process group and fail with its output."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(
            f"{proc.args!r} did not finish within {timeout}s; output:\n{log.read_text(errors='replace')[-4000:]}"
        ) from None
    return Finished(proc.returncode, log.read_text(errors="replace"))


def run(cmd: list[str], log: Path, env: dict[str, str] | None = None, *, expect_ok: bool = True) -> Finished:
    done = finish(start(cmd, env or base_env(), log), log)
    if expect_ok and done.returncode != 0:
        raise AssertionError(f"{cmd!r} exited with {done.returncode}; output:\n{done.output[-4000:]}")
    return done


def torchrun(nproc: int, args: list[str], log: Path, *, expect_ok: bool = True) -> Finished:
    """The torch example under ``torchrun`` on 127.0.0.1 with a free port (``nproc`` = 0: plain python)."""
    if nproc == 0:
        return run([sys.executable, str(TRAIN_TORCH), *args], log, expect_ok=expect_ok)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "--max_restarts",
        "0",
        str(TRAIN_TORCH),
        *args,
    ]
    return run(cmd, log, expect_ok=expect_ok)


def read_losses(path: Path) -> dict[int, float]:
    """``{step: loss}`` from a trainer's JSON-lines log (a later line for the same step wins)."""
    out: dict[int, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out[int(record["step"])] = float(record["loss"])
    return out


def read_lines(path: Path) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["loss"])) for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())]


@pytest.fixture(scope="session")
def launch() -> ModuleType:
    """This module: the launch and log helpers above, for the test modules (conftest is not importable)."""
    return sys.modules[__name__]
