"""Resolving ``from_pretrained`` names: a local path, or a Hugging Face Hub id through ``huggingface_hub``.

``huggingface_hub`` is optional (``pip install rembert-core[hub]``); without it
only local paths work, and a Hub id gets a message saying what to install.
Downloads go through the Hub's own cache, so files fetched by ``transformers``
are reused, and ``local_files_only=True`` (or ``HF_HUB_OFFLINE=1``) never
touches the network.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from rembert_core.errors import CheckpointError

__all__ = ["HUB_FILE_PATTERNS", "resolve_checkpoint"]

#: Files fetched from a Hub repository: configs, tokenizer files and every weight format.
HUB_FILE_PATTERNS = (
    "*.json",
    "*.safetensors",
    "pytorch_model*.bin",
    "tf_model.h5",
    "*.model",
    "*.txt",
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_checkpoint(
    name_or_path: str | os.PathLike[str],
    *,
    local_files_only: bool = False,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
) -> Path:
    """The local directory (or file) that ``name_or_path`` names.

    An existing path is returned as is. Otherwise ``name_or_path`` is taken as a
    Hub repository id (``"google/rembert"``) and resolved through the
    ``huggingface_hub`` cache, downloading unless ``local_files_only``.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    if path.parent.is_dir() and any(path.parent.glob(glob.escape(path.name) + ".*")):
        return path  # a TensorFlow checkpoint prefix (model.ckpt-N exists as model.ckpt-N.index, ...)
    name = str(name_or_path)
    if os.path.isabs(name) or name.startswith((".", "~")) or not _HUB_ID.match(name) or name.count("/") > 1:
        raise CheckpointError(f"checkpoint not found: {name}")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise CheckpointError(
            f"{name!r} is not a local path, and loading from the Hugging Face Hub needs huggingface_hub: "
            "pip install rembert-core[hub]"
        ) from None
    env_offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    offline = local_files_only or env_offline
    try:
        folder = snapshot_download(
            repo_id=name,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=offline,
            allow_patterns=list(HUB_FILE_PATTERNS),
            token=token,
        )
    except LocalEntryNotFoundError:
        if offline:
            why = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1 is set"
            reason = f"it is not in the local Hugging Face cache and downloading is off ({why})"
        else:  # huggingface_hub raises this when the Hub cannot be reached and the cache has no copy
            reason = "the Hugging Face Hub could not be reached (no network?) and it is not in the local cache"
        raise CheckpointError(
            f"cannot load {name!r}: {reason}; fetch it first with `huggingface-cli download {name}` on a machine "
            "with network access, or pass a local path"
        ) from None
    except Exception as exc:  # network errors, unknown repos, gated repos...
        kind = type(exc).__name__
        if kind in ("RepositoryNotFoundError", "GatedRepoError"):
            raise CheckpointError(
                f"cannot load {name!r}: no such repository on the Hugging Face Hub, or it is private or gated "
                f"(pass token= with access to it) ({kind})"
            ) from None
        if kind == "RevisionNotFoundError":
            raise CheckpointError(f"cannot load {name!r}: revision {revision!r} does not exist ({kind})") from None
        raise CheckpointError(f"cannot fetch {name!r} from the Hugging Face Hub: {kind}: {exc}") from None
    return Path(folder)
