"""Data-parallel and sharded training of RemBERT on ``torch.distributed``: DDP, FSDP2 and checkpoints.

Everything here runs on PyTorch's own engines; this module only wires RemBERT into them:

* :func:`init_distributed` joins the process group ``torchrun`` describes (``gloo`` on CPU,
  ``nccl`` on GPU) or runs as a single process when launched with plain ``python``.
* :func:`apply_ddp` wraps a model in :class:`~torch.nn.parallel.DistributedDataParallel`.
* :func:`apply_fsdp` shards a model with FSDP2 (:func:`torch.distributed.fsdp.fully_shard`):
  one FSDP unit per encoder layer plus the root (embeddings, pooler and heads), an optional
  :class:`~torch.distributed.fsdp.MixedPrecisionPolicy` (bfloat16 compute, float32 gradient
  reduction and float32 sharded master weights) and optional CPU offload. Gradient
  checkpointing (:meth:`~rembert_torch.RemBertPreTrainedModel.gradient_checkpointing_enable`)
  composes with it: each checkpointed layer is an FSDP unit and is re-gathered for recomputation.
* :func:`gather_full_state_dict` and :func:`save_distributed` turn a DDP or FSDP model into one
  canonical safetensors directory (``config.json`` + ``model.safetensors``, the reference layout)
  written by rank 0 through :meth:`~rembert_torch.RemBertPreTrainedModel.save_pretrained`; it loads
  in rembert-torch, rembert-tf and transformers on any number of processes.
* :func:`save_training_state`, :func:`load_training_state` and :func:`latest_training_state`
  write and read resumable checkpoints: model (canonical safetensors), optimizer state keyed by
  parameter name, step, RNG states of every rank and caller data. A checkpoint directory appears
  whole or not at all (written under a temporary name and renamed), and it does not depend on
  the number of processes or the strategy that wrote it.

Example (``torchrun --nproc_per_node 2 train.py``)::

    ctx = init_distributed()
    model = RemBertForMaskedLM(config).to(ctx.device)
    model = apply_fsdp(model, param_dtype=torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # fused: docs/finetuning.md
    ...
    save_training_state("checkpoints", model, optimizer, step=100)
    save_distributed(model, "final")
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.nn.parallel import DistributedDataParallel

from rembert_core import CheckpointError, ConfigError
from rembert_core.serialization import atomic_write_bytes, open_checkpoint

__all__ = [
    "LATEST_NAME",
    "TRAINING_STATE_NAME",
    "DistributedContext",
    "TrainingState",
    "all_reduce_mean",
    "apply_ddp",
    "apply_fsdp",
    "barrier",
    "gather_full_state_dict",
    "init_distributed",
    "latest_training_state",
    "load_training_state",
    "save_distributed",
    "save_training_state",
    "unwrap_model",
]

#: File in a training-state directory holding optimizer state, step, RNG states and caller data.
TRAINING_STATE_NAME = "training_state.pt"
#: File in a checkpoint root naming the newest complete training-state directory.
LATEST_NAME = "latest"
_STEP_DIR = re.compile(r"^step-(\d+)$")


# -- process group -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank, the world size, its device and the backend in use."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    #: ``"gloo"``, ``"nccl"``, ... or None for a single process without a process group.
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that logs and writes files)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use."""
        return self.backend is not None


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(
    backend: str | None = None, *, device: str | torch.device | None = None, timeout: timedelta | None = None
) -> DistributedContext:
    """Join the process group described by the launcher's environment, or run as one process.

    Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` set) this calls :func:`torch.distributed.init_process_group` with
    ``backend`` (default: ``nccl`` when CUDA is available, else ``gloo``) and binds the
    process to ``cuda:LOCAL_RANK`` on GPU machines. Without those variables it returns a
    single-process context and creates no process group. Calling it again returns the
    existing group's context.

    Args:
        backend: ``"gloo"``, ``"nccl"`` or another backend torch knows; default by device.
        device: override the device (``"cpu"`` forces CPU training with ``gloo`` on a GPU machine).
        timeout: collective timeout passed to ``init_process_group``.
    """
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    use_cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
    local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0
    if use_cuda:
        resolved = torch.device("cuda", local_rank) if device is None else torch.device(device)
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    else:
        resolved = torch.device("cpu")
    if not launched:
        return DistributedContext(rank=0, world_size=1, local_rank=0, device=resolved, backend=None)
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed support")
    if not dist.is_initialized():
        chosen = backend or ("nccl" if resolved.type == "cuda" else "gloo")
        kwargs: dict[str, Any] = {"backend": chosen}
        if timeout is not None:
            kwargs["timeout"] = timeout
        if resolved.type == "cuda":
            kwargs["device_id"] = resolved
        dist.init_process_group(**kwargs)
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=resolved,
        backend=str(dist.get_backend()),
    )


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _distributed() else 0


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    if _distributed():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all ranks (``value`` itself without a process group); ``value`` is not modified."""
    if not _distributed():
        return value.detach().clone()
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


# -- wrapping ------------------------------------------------------------------------------------


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a :class:`DistributedDataParallel` wrapper (FSDP2 models are not wrapped)."""
    while isinstance(model, DistributedDataParallel):
        model = model.module
    return model


def _rembert_model(model: nn.Module) -> Any:
    from rembert_torch.pretrained import RemBertPreTrainedModel

    inner = unwrap_model(model)
    if not isinstance(inner, RemBertPreTrainedModel):
        raise ConfigError(f"expected a rembert_torch RemBertPreTrainedModel, got {type(inner).__name__}")
    return inner


def apply_ddp(model: nn.Module, **kwargs: Any) -> DistributedDataParallel:
    """Wrap ``model`` in :class:`DistributedDataParallel` on its current device (needs a process group).

    ``kwargs`` go to ``DistributedDataParallel`` (e.g. ``find_unused_parameters=True`` when a
    head's parameters are unused, ``gradient_as_bucket_view=True``).
    """
    if not _distributed():
        raise ConfigError("DistributedDataParallel needs a process group; call init_distributed() under torchrun")
    _rembert_model(model)
    device = next(model.parameters()).device
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device])
    return DistributedDataParallel(model, **kwargs)


def _dtype(value: torch.dtype | str | None, what: str) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    from rembert_torch.loading import resolve_dtype

    try:
        return resolve_dtype(value)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def apply_fsdp(
    model: nn.Module,
    *,
    mesh: Any = None,
    param_dtype: torch.dtype | str | None = None,
    reduce_dtype: torch.dtype | str | None = torch.float32,
    reshard_after_forward: bool = True,
    cpu_offload: bool = False,
) -> nn.Module:
    """Shard a RemBERT model with FSDP2: one unit per encoder layer, then the root; returns ``model``.

    Each ``RemBertLayer`` of ``model.base_model.encoder.layer`` becomes its own
    ``fully_shard`` unit, so only one layer's full parameters are materialised at a time;
    the root unit holds the embeddings, the projection into the encoder, the pooler and
    the task head. The sharded parameters (the optimizer's master weights) keep the
    model's dtype (normally float32); ``param_dtype`` only sets the compute dtype.

    Call it after moving the model to its device and, if wanted, after
    ``gradient_checkpointing_enable()``; create the optimizer afterwards, from the
    returned model's (sharded) parameters.

    Args:
        model: a ``RemBertPreTrainedModel`` (not wrapped in DDP).
        mesh: a 1-D :class:`~torch.distributed.device_mesh.DeviceMesh`; default: all ranks.
        param_dtype: compute dtype of the gathered parameters, e.g. ``torch.bfloat16`` for
            mixed precision; None computes in the parameters' dtype.
        reduce_dtype: dtype of the gradient reduce-scatter (float32 by default, so that
            bfloat16 gradients are summed in float32).
        reshard_after_forward: free each layer's gathered parameters after its forward
            (re-gathered for backward); False trades memory for less communication.
        cpu_offload: keep the sharded parameters, gradients and optimizer state in CPU memory, computing on
            the accelerator (the model must be on one).
    """
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    if isinstance(model, DistributedDataParallel):
        raise ConfigError("apply_fsdp takes the bare model, not one wrapped in DistributedDataParallel")
    rembert = _rembert_model(model)
    if cpu_offload and next(model.parameters()).device.type == "cpu":
        raise ConfigError(
            "cpu_offload needs the model on an accelerator (e.g. CUDA); a CPU model already is in CPU memory"
        )
    if not _distributed() and mesh is None:
        raise ConfigError("FSDP needs a process group; call init_distributed() under torchrun")
    compute = _dtype(param_dtype, "param_dtype")
    reduce = _dtype(reduce_dtype, "reduce_dtype")
    options: dict[str, Any] = {
        "mp_policy": MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=reduce),
        "offload_policy": CPUOffloadPolicy() if cpu_offload else OffloadPolicy(),
        "reshard_after_forward": reshard_after_forward,
    }
    if mesh is not None:
        options["mesh"] = mesh
    for layer in rembert.base_model.encoder.layer:
        fully_shard(layer, **options)
    # The root: its gathered parameters are needed again right away by backward, keep them.
    fully_shard(model, **{**options, "reshard_after_forward": False})
    return model


# -- full state dict and canonical save ----------------------------------------------------------


def gather_full_state_dict(model: nn.Module, *, all_ranks: bool = False) -> dict[str, torch.Tensor]:
    """The model's full (unsharded) state dict as CPU tensors with canonical names.

    Works for plain, DDP and FSDP2 models. By default only rank 0 receives the tensors
    (other ranks get an empty dict, so the gathered model is held once); ``all_ranks``
    gives every rank a copy. Every rank must call it (it runs collectives).
    """
    if not _distributed():
        state = get_model_state_dict(model)
    else:
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=not all_ranks))
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):  # pragma: no cover - a model state dict holds tensors only
            raise CheckpointError(f"state dict entry {name} is a {type(tensor).__name__}, not a tensor")
        out[name] = tensor.detach().cpu()
    return out


def save_distributed(
    model: nn.Module, save_directory: str | os.PathLike[str], *, max_shard_size: int | str | None = "5GB"
) -> None:
    """Write a DDP or FSDP2 model as one canonical checkpoint directory (rank 0 writes; every rank calls).

    The full state dict is gathered on rank 0 and written by
    :meth:`~rembert_torch.RemBertPreTrainedModel.save_pretrained` (``config.json`` with the
    model class in ``architectures`` plus safetensors), so the result is the same as saving
    the model trained in one process: it loads with ``from_pretrained`` in rembert-torch,
    rembert-tf or transformers, on any number of processes. Ranks wait for the write.
    """
    rembert = _rembert_model(model)
    state = gather_full_state_dict(model)
    if _rank() == 0:
        rembert.save_pretrained(save_directory, max_shard_size=max_shard_size, state_dict=state)
    barrier()


# -- resumable training state --------------------------------------------------------------------


@dataclass
class TrainingState:
    """What :func:`load_training_state` restored: the step reached and the caller's extra data."""

    step: int
    directory: Path
    extra: dict[str, Any] = field(default_factory=dict)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _gather_objects(obj: Any) -> list[Any]:
    if not _distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if not _distributed():
        return dict(get_optimizer_state_dict(model, optimizer))
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return dict(get_optimizer_state_dict(model, optimizer, options=options))


def _step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def save_training_state(
    directory: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    *,
    extra: Mapping[str, Any] | None = None,
    keep_last: int | None = 2,
) -> Path:
    """Write a resumable checkpoint ``directory/step-NNNNNNNN`` and point ``directory/latest`` at it.

    The checkpoint holds the model as a canonical safetensors directory
    (:func:`save_distributed`, loadable anywhere), and ``training_state.pt`` with the full
    optimizer state keyed by parameter name, ``step``, the RNG states (torch, CUDA,
    Python ``random``) of every rank, the world size and ``extra`` (JSON-compatible data:
    numbers, strings, lists, dicts). Rank 0 writes everything under a temporary name and
    renames the directory when it is complete, then rewrites ``latest`` atomically, so a
    crash at any moment leaves the previous checkpoint intact. Every rank must call this
    (it gathers the sharded state). Older ``step-*`` directories beyond the newest
    ``keep_last`` are removed (None keeps all). Returns the checkpoint directory.

    With several machines, ``directory`` should be on a filesystem every rank can read
    (for resuming); only rank 0 writes.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ConfigError(f"step must be a non-negative integer, got {step!r}")
    if keep_last is not None and keep_last < 1:
        raise ConfigError(f"keep_last must be at least 1 or None, got {keep_last!r}")
    extra_data = dict(extra or {})
    try:
        json.dumps(extra_data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"extra must be JSON-compatible: {exc}") from None
    rembert = _rembert_model(model)
    root = Path(directory)
    weights = gather_full_state_dict(model)
    optimizer_state = _optimizer_state(model, optimizer)
    rng_states = _gather_objects(_rng_state())
    world_size = dist.get_world_size() if _distributed() else 1
    final = _step_dir(root, step)
    if _rank() == 0:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
        try:
            rembert.save_pretrained(tmp, state_dict=weights)
            payload = {
                "step": step,
                "world_size": world_size,
                "optimizer": optimizer_state,
                "rng": rng_states,
                "extra_json": json.dumps(extra_data),
            }
            torch.save(payload, tmp / TRAINING_STATE_NAME)
            for file in tmp.iterdir():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_bytes(root / LATEST_NAME, (final.name + "\n").encode("utf-8"))
        _prune(root, keep_last, keep=final)
    barrier()
    return final


def _prune(root: Path, keep_last: int | None, *, keep: Path) -> None:
    for leftover in root.glob(".step-*.tmp"):  # from writers that crashed mid-save
        shutil.rmtree(leftover, ignore_errors=True)
    if keep_last is None:
        return
    steps = sorted(
        (int(match.group(1)), path)
        for path in root.iterdir()
        if path.is_dir() and (match := _STEP_DIR.match(path.name)) is not None
    )
    for _, path in steps[:-keep_last]:
        if path != keep:
            shutil.rmtree(path, ignore_errors=True)


def latest_training_state(directory: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint under ``directory`` (from ``latest``), or None if there is none yet."""
    root = Path(directory)
    pointer = root / LATEST_NAME
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not _STEP_DIR.match(name):
        raise CheckpointError(f"{pointer} names {name!r}, not a step-NNNNNNNN checkpoint directory")
    path = root / name
    if not (path / TRAINING_STATE_NAME).is_file():
        raise CheckpointError(f"{pointer} names {name}, but {path / TRAINING_STATE_NAME} does not exist")
    return path


def _read_weights(path: Path, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from rembert_torch.loading import numpy_to_torch

    with open_checkpoint(path) as checkpoint:
        names = set(checkpoint.infos())
        missing = sorted(set(like) - names)
        unexpected = sorted(names - set(like))
        if missing or unexpected:
            raise CheckpointError(
                f"{path} does not match the model: missing {missing[:8]}, unexpected {unexpected[:8]}"
            )
        out: dict[str, torch.Tensor] = {}
        for name in like:
            tensor = numpy_to_torch(checkpoint[name])
            if tuple(tensor.shape) != tuple(like[name].shape):
                raise CheckpointError(
                    f"{path}: {name} has shape {tuple(tensor.shape)}, the model expects {tuple(like[name].shape)}"
                )
            out[name] = tensor.to(like[name].dtype).clone()
    return out


def load_training_state(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    restore_rng: bool = True,
) -> TrainingState:
    """Restore a checkpoint written by :func:`save_training_state` into ``model`` and ``optimizer``.

    ``path`` is a ``step-*`` directory or a checkpoint root (its ``latest`` is used). The
    model and optimizer must be set up the same way as for training (wrapped or sharded,
    optimizer built from the model's parameters); the world size may differ from the one
    that wrote the checkpoint. Each rank gets back its own RNG states when the world size
    matches (otherwise rank 0's states everywhere). Every rank must call this.
    """
    path = Path(path)
    if not (path / TRAINING_STATE_NAME).is_file():
        latest = latest_training_state(path)
        if latest is None:
            raise CheckpointError(f"no training state in {path} (no {TRAINING_STATE_NAME} and no {LATEST_NAME} file)")
        path = latest
    try:
        payload = torch.load(path / TRAINING_STATE_NAME, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for damaged or hostile files
        raise CheckpointError(f"cannot read {path / TRAINING_STATE_NAME}: {exc}") from None
    if not isinstance(payload, dict) or not {"step", "optimizer", "rng"} <= set(payload):
        raise CheckpointError(f"{path / TRAINING_STATE_NAME} is not a rembert training state")
    # Names, global shapes and dtypes (sharded DTensors report the full shape) without gathering anything.
    like = dict(unwrap_model(model).state_dict())
    weights: dict[str, Any] = _read_weights(path, like)
    if _distributed():
        set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, strict=True))
    else:
        set_model_state_dict(model, weights, options=StateDictOptions(strict=True))
    if optimizer is not None:
        options = StateDictOptions(full_state_dict=_distributed())
        set_optimizer_state_dict(model, optimizer, payload["optimizer"], options=options)
    if restore_rng:
        states = payload["rng"]
        rank = _rank()
        world_size = dist.get_world_size() if _distributed() else 1
        _set_rng_state(states[rank] if len(states) == world_size else states[0])
    barrier()
    return TrainingState(step=int(payload["step"]), directory=path, extra=json.loads(payload.get("extra_json", "{}")))
