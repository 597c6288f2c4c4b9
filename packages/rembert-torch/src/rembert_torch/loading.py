"""Reading and writing RemBERT checkpoints for PyTorch through ``rembert_core``.

Loading builds the model on the meta device (no random weights are allocated),
runs the core loading plan (:func:`rembert_core.loading.plan_load`: Hub id, interrupted
save, format, headers and config, each once; the schema match from headers alone), then
installs one tensor at a time (safetensors through a private memory map of the file
opened by the plan; ``pytorch_model.bin`` through
``torch.load(weights_only=True, mmap=True)``, which never unpickles code) and
installs it as the parameter, cast to the requested dtype. Head or pooler
tensors the checkpoint lacks are initialised as the reference does and reported.
Peak memory stays near one copy of the weights.

Saving writes ``config.json`` (with ``architectures`` and ``dtype``) and the
weights as safetensors with ``{"format": "pt"}`` metadata via
:func:`rembert_core.save_safetensors`, readable by transformers 4.57 and rembert-tf.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rembert_core import CheckpointError, ConfigError, InputError, RemBertConfig, build_schema
from rembert_core.config import CONFIG_NAME
from rembert_core.formats import PT_WEIGHTS_INDEX_NAME, PT_WEIGHTS_NAME, PYTORCH
from rembert_core.generation import GENERATION_CONFIG_NAME, GenerationConfig
from rembert_core.io.dtypes import COMPUTE_DTYPES, by_name
from rembert_core.loading import HUB_ARGUMENTS, IGNORED_LOADING_ARGUMENTS, LoadPlan, plan_load
from rembert_core.schema import BACKBONE_PREFIX, CheckpointSchema
from rembert_core.serialization import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    SafetensorsCheckpoint,
    TensorInfo,
    TensorSource,
    read_weight_map,
    save_safetensors,
    save_transaction,
)
from rembert_torch.kernels import init_tensor

if TYPE_CHECKING:
    from rembert_torch.pretrained import RemBertPreTrainedModel

__all__ = [
    "DTYPES",
    "TorchBinSource",
    "load_pretrained",
    "numpy_to_torch",
    "open_torch_bin",
    "resolve_dtype",
    "save_pretrained",
    "schema_for",
    "set_tensors",
    "torch_to_numpy",
]

logger = logging.getLogger(__name__)

#: Compute dtypes by name (core's table of names).
DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in COMPUTE_DTYPES}


# -- NumPy <-> torch ---------------------------------------------------------------------------


def numpy_to_torch(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor with ``array``'s values and dtype (``ml_dtypes.bfloat16`` becomes ``torch.bfloat16``)."""
    array = np.asarray(array)
    if array.dtype.name == "bfloat16":
        bits = np.ascontiguousarray(array).view(np.int16)
        return _from_numpy(bits).view(torch.bfloat16)
    return _from_numpy(array)


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    if array.flags.writeable and array.flags.c_contiguous:
        return torch.from_numpy(array)
    return torch.from_numpy(np.array(array, copy=True, order="C"))


def torch_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy array of ``tensor`` (detached, on CPU); ``torch.bfloat16`` becomes ``ml_dtypes.bfloat16``."""
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


# -- dtype -------------------------------------------------------------------------------------


def resolve_dtype(value: torch.dtype | str | None, *, auto: str | None = None) -> torch.dtype:
    """The torch dtype for ``value``: a dtype, a name (``"bfloat16"``, ``"torch.float16"``), None (float32) or "auto".

    ``"auto"`` picks ``auto`` (the checkpoint's dtype), else float32.
    """
    if value is None:
        return torch.float32
    if isinstance(value, torch.dtype):
        if value not in DTYPES.values():
            raise ConfigError(f"torch_dtype {value} is not supported; choose one of {sorted(DTYPES)}")
        return value
    if isinstance(value, str):
        name = value.removeprefix("torch.")
        if name == "auto":
            name = auto or "float32"
        aliases = {"float": "float32", "half": "float16", "double": "float64", "bf16": "bfloat16", "fp16": "float16"}
        name = aliases.get(name, name)
        if name in DTYPES:
            return DTYPES[name]
    raise ConfigError(f"torch_dtype {value!r} is not supported; choose one of {sorted(DTYPES)} or 'auto'")


# -- schema and tensor installation ------------------------------------------------------------


def schema_for(model: RemBertPreTrainedModel) -> CheckpointSchema:
    """The core schema of ``model`` (its task, with or without pooler)."""
    return build_schema(model.config, model.task, add_pooling_layer=model.base_model.pooler is not None)


def _set_parameter(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_path, _, attr = name.rpartition(".")
    module = model.get_submodule(module_path) if module_path else model
    old = module._parameters.get(attr)
    if old is None and attr not in module._parameters:
        raise CheckpointError(f"the model has no parameter {name}")
    module._parameters[attr] = nn.Parameter(tensor, requires_grad=True if old is None else old.requires_grad)


def set_tensors(
    model: RemBertPreTrainedModel,
    tensors: Iterator[tuple[str, Any]],
    schema: CheckpointSchema,
    *,
    dtype: torch.dtype,
    device: torch.device,
    initialize: list[str] | None = None,
    alias: bool = False,
) -> None:
    """Install ``(schema name, array or tensor)`` pairs as the model's parameters, cast to ``dtype`` on ``device``.

    Tensors named in ``initialize`` are allocated and initialised instead, as a new model's are
    (:func:`rembert_torch.kernels.init_tensor`, from each spec's ``init``). With
    ``alias``, given torch tensors already of the right dtype and device become the parameters as they
    are (used for safetensors' private, copy-on-write file mappings); otherwise they are copied.
    """
    for name, value in tensors:
        tensor = value if isinstance(value, torch.Tensor) else numpy_to_torch(value)
        tensor = tensor.to(device=device, dtype=dtype)
        shares = tensor.data_ptr() == getattr(value, "data_ptr", lambda: -1)()
        if (shares and not alias) or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)  # never alias the caller's/mmap'd storage
        _set_parameter(model, name, tensor)
    config = model.config
    for name in initialize or []:  # as the constructor would: rembert_torch.kernels.init_tensor
        tensor = torch.empty(schema[name].shape, dtype=dtype, device=device)
        init_tensor(
            tensor, schema[name].init, initializer_range=config.initializer_range, pad_token_id=config.pad_token_id
        )
        _set_parameter(model, name, tensor)


# -- reading -----------------------------------------------------------------------------------


def _torch_dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _safetensors_code(dtype: torch.dtype) -> str:
    name = _torch_dtype_name(dtype)
    row = by_name(name)
    return row.code if row else name


#: Bytes read through one mapping of a ``pytorch_model.bin`` before it is mapped afresh (see TorchBinSource).
REMAP_BYTES = 256 * 2**20


class TorchBinSource(TensorSource):
    """``pytorch_model.bin`` (or its shard index) as a core :class:`~rembert_core.serialization.TensorSource`.

    Files are read with ``torch.load(weights_only=True, mmap=True)``: only tensors
    and plain containers are unpickled, never code, and tensor data stays on disk
    until used. Names are the reference ``state_dict`` keys, which are canonical.

    Example:
        >>> with open_torch_bin("ckpt/pytorch_model.bin") as source:  # doctest: +SKIP
        ...     source.infos()["embeddings.word_embeddings.weight"].shape
    """

    format = "pytorch"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        files = [path]
        if path.name.endswith(".json"):  # shard paths checked: inside the directory, existing, no duplicates
            files = sorted(set(read_weight_map(path).values()))
        self._files = files
        self._tensors: dict[str, torch.Tensor] = {}
        self._info: dict[str, TensorInfo] = {}
        self._read_since_map: dict[Path, int] = {}
        self.metadata: dict[str, str] = {}
        for file in files:
            for key, value in _torch_load(file).items():
                if key in self._tensors:
                    raise CheckpointError(f"tensor {key!r} appears in more than one file of {path}")
                self._tensors[key] = value
                self._info[key] = TensorInfo(key, tuple(value.shape), _safetensors_code(value.dtype), file)

    @property
    def files(self) -> list[Path]:
        """The files this source reads from."""
        return list(self._files)

    def infos(self) -> dict[str, TensorInfo]:
        """Shape and dtype of every tensor (from the memory-mapped tensors, no data read)."""
        return dict(self._info)

    def tensor(self, name: str) -> torch.Tensor:
        """One tensor as a torch tensor (memory-mapped, read-only use)."""
        return self._tensors[name]

    def __getitem__(self, name: str) -> np.ndarray:
        """One tensor as a NumPy copy, for streaming readers such as ``rembert convert``.

        Pages of the file mapping that were read stay resident while the mapping lives, so after
        :data:`REMAP_BYTES` of reads the file is mapped afresh (unpickling only its small index) and
        the old mapping released: peak memory stays near one tensor plus that budget, not the file.
        """
        info = self._info[name]
        if self._read_since_map.get(info.file, 0) > REMAP_BYTES:
            self._tensors.update(_torch_load(info.file))  # the old mapping goes with its last reference
            self._read_since_map[info.file] = 0
        self._read_since_map[info.file] = self._read_since_map.get(info.file, 0) + info.nbytes
        return torch_to_numpy(self._tensors[name].clone())

    def close(self) -> None:
        """Drop the references to the memory-mapped tensors."""
        self._tensors.clear()


def _torch_load(file: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {file}") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for bad or unsafe files
        raise CheckpointError(
            f"cannot load {file} with torch.load(weights_only=True): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{file} does not contain a state dict of tensors")
    for key, value in loaded.items():
        _check_storage(value, str(key), file)
    return {str(k): v for k, v in loaded.items()}


def _check_storage(tensor: torch.Tensor, key: str, file: Path) -> None:
    """Refuse a tensor whose elements overlap in its storage (stride 0, or a storage smaller than it).

    Such a tensor is a few bytes on disk that becomes ``numel`` elements in memory on the first copy:
    a 230 KB file could claim a 2**21-row vocabulary and allocate gigabytes. Real checkpoints hold
    each element once.
    """
    numel = tensor.numel()
    if numel <= 1:
        return
    needed = numel * tensor.element_size()
    held = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    overlapping = any(stride == 0 and size > 1 for stride, size in zip(tensor.stride(), tensor.shape, strict=True))
    if overlapping or held < needed:
        raise CheckpointError(
            f"{file}: tensor {key!r} of shape {tuple(tensor.shape)} claims {needed} bytes but its storage holds "
            f"{max(held, 0)} (overlapping elements): refused"
        )


def open_torch_bin(path: str | os.PathLike[str]) -> TorchBinSource:
    """Opener of the ``pytorch`` checkpoint format (registered by :mod:`rembert_torch.plugin`)."""
    return TorchBinSource(path)


def load_pretrained(
    cls: type[RemBertPreTrainedModel],
    path: str | os.PathLike[str] | None,
    *,
    config: RemBertConfig | None = None,
    torch_dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    output_loading_info: bool = False,
    **kwargs: Any,
) -> Any:
    """Implementation of :meth:`RemBertPreTrainedModel.from_pretrained` (see there)."""
    if torch.get_default_device().type == "meta":
        raise InputError(
            f"{cls.__name__}.from_pretrained was called under `with torch.device('meta')`: loading puts real "
            "weights in memory and cannot run there; call it outside the meta context (or build an empty model "
            f"with {cls.__name__}(config) inside it)"
        )
    state_dict = kwargs.pop("state_dict", None)
    model_kwargs = {k: kwargs.pop(k) for k in ("add_pooling_layer",) if k in kwargs}
    if model_kwargs and cls.task != "base":
        raise ConfigError(f"add_pooling_layer is an argument of RemBertModel, not of {cls.__name__}")
    attn_implementation = kwargs.pop("attn_implementation", None)
    ignore_mismatched_sizes = bool(kwargs.pop("ignore_mismatched_sizes", False))
    kwargs.pop("low_cpu_mem_usage", None)  # accepted for transformers compatibility: loading is always low-memory
    device_map = kwargs.pop("device_map", None)
    if isinstance(device_map, dict) and set(device_map) == {""}:
        device_map = device_map[""]  # transformers' {"": device}: the whole model on one device
    if isinstance(device_map, int) and not isinstance(device_map, bool):
        device_map = torch.device("cuda", device_map)
    if device_map == "auto":  # one device here: the accelerator if there is one, else the CPU
        device_map = "cuda" if torch.cuda.is_available() else "cpu"
    if device is None and isinstance(device_map, str | torch.device):
        device = device_map
    elif device_map is not None and not isinstance(device_map, str | torch.device):
        raise ConfigError(
            f"device_map must be a device (e.g. 'cpu', 'cuda:0'), 'auto' or {{'': device}}, got {device_map!r} "
            "(rembert puts a model on one device; it does not split layers across devices)"
        )
    target_device = torch.device(device) if device is not None else torch.device("cpu")
    if state_dict is not None or path is None:
        return _load_state_dict(
            cls,
            path,
            state_dict,
            config=config,
            torch_dtype=torch_dtype,
            device=target_device,
            output_loading_info=output_loading_info,
            model_kwargs=model_kwargs,
            overrides=kwargs,
            attn_implementation=attn_implementation,
        )
    with plan_load(path, config=config, overrides=kwargs, formats=(PYTORCH,)) as plan:
        with torch.device("meta"):
            model = cls(plan.config, **model_kwargs)
        schema = schema_for(model)
        if list(model.state_dict()) != list(schema):  # the module tree and the core schema agree name for name
            raise CheckpointError(f"internal error: {cls.__name__} parameters do not match the core schema")
        plan.match(schema, ignore_mismatched_sizes=ignore_mismatched_sizes)
        dtype = resolve_dtype(torch_dtype, auto=plan.checkpoint_dtype())
        set_tensors(
            model,
            _tensors(plan),
            schema,
            dtype=dtype,
            device=target_device,
            initialize=[name for name, _ in plan.to_initialize()],
            alias=isinstance(plan.weights, SafetensorsCheckpoint),
        )
    plan.log(logger, cls.__name__)
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    load_generation_config(model, plan.directory)
    model.eval()
    if output_loading_info:
        return model, plan.loading_info()
    return model


def load_generation_config(model: RemBertPreTrainedModel, directory: Path) -> None:
    """Read ``generation_config.json`` next to the checkpoint's ``config.json`` (models that generate)."""
    if model.can_generate() and (directory / GENERATION_CONFIG_NAME).is_file():
        model.generation_config = GenerationConfig.from_pretrained(directory)


def _load_state_dict(
    cls: type[RemBertPreTrainedModel],
    path: str | os.PathLike[str] | None,
    state_dict: Mapping[str, torch.Tensor] | None,
    *,
    config: RemBertConfig | None,
    torch_dtype: torch.dtype | str | None,
    device: torch.device,
    output_loading_info: bool,
    model_kwargs: dict[str, Any],
    overrides: dict[str, Any],
    attn_implementation: str | None,
) -> Any:
    """``from_pretrained(path or None, config=..., state_dict=...)``: the weights come from ``state_dict``.

    The config is ``config`` or ``path``'s ``config.json``; keys are the reference's ``state_dict`` names (with
    or without the ``rembert.`` prefix of the heads). Tensors the task needs that ``state_dict`` lacks are
    initialised and reported (``missing_keys``, one warning) as transformers does; unknown keys are reported as
    ``unexpected_keys``; a tensor of another shape is an error naming it.
    """
    if state_dict is None:
        raise InputError("from_pretrained(None, ...) needs state_dict= (and config=): there is no checkpoint to read")
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise InputError("state_dict must be a mapping of tensor names to torch tensors")
    for name in IGNORED_LOADING_ARGUMENTS:
        overrides.pop(name, None)
    hub = {k: overrides.pop(k) for k in HUB_ARGUMENTS if k in overrides}
    subfolder = overrides.pop("subfolder", None) or ""
    if config is None:
        if path is None:
            raise InputError("from_pretrained(None, state_dict=...) needs config=: nothing else says the model's sizes")
        config = RemBertConfig.from_pretrained(path, subfolder=subfolder, **hub)
    config = config.copy(**overrides) if overrides else config.copy()
    dtype = resolve_dtype(torch_dtype, auto=_state_dict_dtype(state_dict))
    model = cls(config, **model_kwargs)
    expected = model.state_dict()
    prefix = BACKBONE_PREFIX
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        name = key
        if name not in expected and name.startswith(prefix) and name[len(prefix) :] in expected:
            name = name[len(prefix) :]  # a head checkpoint loaded into RemBertModel
        elif name not in expected and prefix + name in expected:
            name = prefix + name  # a RemBertModel state dict loaded into a head class
        renamed[name] = tensor
    mismatched = [
        f"{k}: state_dict {tuple(t.shape)} vs model {tuple(expected[k].shape)}"
        for k, t in renamed.items()
        if k in expected and tuple(t.shape) != tuple(expected[k].shape)
    ]
    if mismatched:
        raise CheckpointError("state_dict tensors with the wrong shape:\n  " + "\n  ".join(mismatched))
    result = model.load_state_dict(renamed, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing:
        logger.warning(
            "Some weights of %s were not initialized from the state_dict and are newly initialized: %s\n"
            "You should probably TRAIN this model on a down-stream task to be able to use it for predictions "
            "and inference.",
            cls.__name__,
            missing,
        )
    if unexpected:
        logger.warning(
            "Some weights of the state_dict were not used when initializing %s: %s", cls.__name__, unexpected
        )
    model.to(device=device, dtype=dtype)
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    if path is not None and (Path(path) / subfolder).is_dir():
        load_generation_config(model, Path(path) / subfolder)
    model.eval()
    if output_loading_info:
        info = {"missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": [], "error_msgs": []}
        return model, info
    return model


def _state_dict_dtype(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The dtype name of a state dict's floating tensors (``torch_dtype="auto"``)."""
    for tensor in state_dict.values():
        if tensor.is_floating_point():
            return _torch_dtype_name(tensor.dtype)
    return None


def _tensors(plan: LoadPlan) -> Iterator[tuple[str, Any]]:
    """``(schema name, tensor or array)`` of every matched tensor, read the cheapest way the format allows.

    safetensors: a private (copy-on-write) memory map of the file the plan opened, so parameters are
    paged in on first use instead of copied now, as in the reference (our own saves replace files by
    rename, so a model never sees its file change underneath it); ``pytorch_model.bin``: its
    memory-mapped tensors; any other format: one NumPy array at a time.
    """
    weights = plan.weights
    for name, key in plan.matched():
        if isinstance(weights, TorchBinSource):
            yield name, weights.tensor(key)
        elif isinstance(weights, SafetensorsCheckpoint):
            yield name, numpy_to_torch(weights.mapped(key))
        else:
            yield name, weights[key]


# -- writing -----------------------------------------------------------------------------------


def save_pretrained(
    model: RemBertPreTrainedModel,
    directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str | None = "5GB",
    safe_serialization: bool = True,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Implementation of :meth:`RemBertPreTrainedModel.save_pretrained` (see there)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"cannot save checkpoint: {directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    state = dict(state_dict if state_dict is not None else model.state_dict())
    for name, tensor in state.items():
        if tensor.device.type == "meta":
            raise CheckpointError(f"cannot save {name}: it is on the meta device (never loaded)")
    config = model.config.copy(architectures=[_architecture(model)])
    config.dtype = _torch_dtype_name(model.dtype)
    # config.json and the weights replace the previous ones together (a save killed at any point
    # leaves the previous complete checkpoint or the new one, never a new config with old weights).
    with save_transaction(directory) as save:
        save.write_bytes(CONFIG_NAME, config.to_json_string().encode("utf-8"))
        generation = model.generation_config
        if model.can_generate() and generation is not None:  # transformers writes it for models that generate
            save.write_bytes(GENERATION_CONFIG_NAME, generation.to_json_string().encode("utf-8"))
        if safe_serialization:
            save_safetensors(
                {name: torch_to_numpy(t) for name, t in state.items()},
                directory,
                max_shard_size=max_shard_size,
                metadata={"format": "pt"},
                transaction=save,
            )
            save.remove(PT_WEIGHTS_NAME)
            save.remove(PT_WEIGHTS_INDEX_NAME)
        else:
            torch.save({name: t.detach().cpu().contiguous() for name, t in state.items()}, save.path(PT_WEIGHTS_NAME))
            save.remove(SAFE_WEIGHTS_NAME)  # it would take precedence over the new file
            index = directory / SAFE_WEIGHTS_INDEX_NAME
            if index.is_file():
                for shard in _index_shards(index):
                    save.remove(shard)
                save.remove(SAFE_WEIGHTS_INDEX_NAME)


def _index_shards(index: Path) -> set[str]:
    """The shard file names an index lists (those of its own directory), or none if it is unreadable."""
    try:
        shards = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()
    except (OSError, ValueError, AttributeError):
        return set()
    return {str(s) for s in shards if str(s) == Path(str(s)).name}


def _architecture(model: RemBertPreTrainedModel) -> str:
    """The model's class name, looking through the classes torch creates around it (FSDP2's ``FSDP<name>``)."""
    for cls in type(model).__mro__:
        if not cls.__module__.startswith("torch."):
            return cls.__name__
    return type(model).__name__  # pragma: no cover - every RemBERT class is defined outside torch
