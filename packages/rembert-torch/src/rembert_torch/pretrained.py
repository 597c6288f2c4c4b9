"""The base of every RemBERT model: config, weight init, loading/saving, resizing, checkpointing.

Also the documentation of the forward arguments every model shares, written once
(:data:`FORWARD_ARGS`, added to each ``forward`` by :func:`document_forward`).

This module knows the model classes only by their attribute names (the backbone ``rembert``, the LM
head ``cls``, ``attn_implementation``), so that :mod:`rembert_torch.modeling` imports it and not the reverse.
"""

from __future__ import annotations

import inspect
import math
import os
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import torch
from torch import nn

from rembert_core import ConfigError, InputError, RemBertConfig, build_schema
from rembert_core.generation import GenerationConfig
from rembert_core.schema import Init
from rembert_torch.kernels import ATTN_IMPLEMENTATIONS, Linear, init_tensor

if TYPE_CHECKING:
    from rembert_torch.modeling import RemBertModel

__all__ = ["FORWARD_ARGS", "RemBertPreTrainedModel", "document_forward"]

Tensor = torch.Tensor

# -- the forward arguments, documented once -----------------------------------------------------

#: The forward arguments the models share, as ``name -> description`` (Google style, without the name).
FORWARD_ARGS: dict[str, str] = {
    "input_ids": "(batch, seq) token ids in [0, vocab_size). Exactly one of this and ``inputs_embeds``.",
    "attention_mask": "(batch, past + seq) 1 = attend, 0 = padding; or (batch, seq, past + seq).",
    "token_type_ids": "(batch, seq) segment ids in [0, type_vocab_size); default zeros.",
    "position_ids": "(batch, seq), (1, seq) or (seq,) in [0, max_position_embeddings); default past .. past + seq - 1.",
    "head_mask": "(heads,) or (layers, heads), 1 keeps a head, 0 masks it.",
    "inputs_embeds": "(batch, seq, input_embedding_size) instead of ``input_ids``.",
    "encoder_hidden_states": "(batch, enc_seq, hidden) for cross-attention (decoders with "
    "``add_cross_attention``); ignored by encoders, like the reference.",
    "encoder_attention_mask": "(batch, enc_seq) mask of ``encoder_hidden_states``.",
    "past_key_values": "per-layer (key, value[, cross_key, cross_value]) tensors of shape "
    "(batch, heads, past, head_dim) from a previous call, or a transformers ``Cache`` object.",
    "use_cache": "return ``past_key_values`` (decoders only; default ``config.use_cache``).",
    "output_attentions": "return attention probabilities of every layer.",
    "output_hidden_states": "return the ``num_hidden_layers + 1`` hidden states.",
    "return_dict": "return the output class named under *Returns* (default) or the reference's tuple.",
}

_Forward = TypeVar("_Forward", bound=Callable[..., Any])


def document_forward(returns: type) -> Callable[[_Forward], _Forward]:
    """Complete a ``forward`` docstring with ``Args:`` (from :data:`FORWARD_ARGS`), ``Returns:`` and ``Raises:``.

    The docstring holds the description and, last, an optional ``Args:`` section with the arguments
    documented differently (``labels``, other shapes). The completed ``Args:`` lists every parameter in
    signature order, each with its own entry if it has one, else the shared one; ``Returns:`` names
    ``returns``, the output class.
    """

    def decorate(forward: _Forward) -> _Forward:
        description, _, own_args = inspect.cleandoc(forward.__doc__ or "").partition("\nArgs:\n")
        own: dict[str, list[str]] = {}
        for line in own_args.splitlines():
            if not line.startswith("     "):  # "    name: text" or "    name (type): text" starts an entry
                name = line.split(":")[0].split(" (")[0].strip()
            own.setdefault(name, []).append(line)
        args: list[str] = []
        for name in [name for name in inspect.signature(forward).parameters if name != "self"]:
            if name not in own and name not in FORWARD_ARGS:
                raise TypeError(f"{forward.__qualname__}: argument {name!r} is documented nowhere")
            args += own.pop(name, []) or textwrap.wrap(
                FORWARD_ARGS[name], 116, initial_indent=f"    {name}: ", subsequent_indent=" " * 8
            )
        if own:
            raise TypeError(f"{forward.__qualname__} documents arguments it does not take: {sorted(own)}")
        returns_doc = f"    :class:`{returns.__name__}` (or its tuple, with ``return_dict=False``)."
        raises_doc = "    rembert_core.InputError: an input has the wrong type, dtype, shape or values."
        sections = ["Args:", *args, "", "Returns:", returns_doc, "", "Raises:", raises_doc]
        forward.__doc__ = "\n".join([description.rstrip(), "", *sections])
        return forward

    return decorate


# -- the base class ------------------------------------------------------------------------------


class RemBertPreTrainedModel(nn.Module):
    """Base of every RemBERT model: config, weight init, loading/saving, resizing, checkpointing.

    Example:
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertModel
        >>> config = tiny_config()
        >>> model = RemBertModel(config)
        >>> model.num_parameters() > 0
        True
    """

    config_class: ClassVar[type[RemBertConfig]] = RemBertConfig
    base_model_prefix: ClassVar[str] = "rembert"
    supports_gradient_checkpointing: ClassVar[bool] = True
    #: The core schema task this class implements (``rembert_core.TASKS``).
    task: ClassVar[str] = "base"
    #: The forward argument that holds the model's main input (transformers' name).
    main_input_name: ClassVar[str] = "input_ids"

    def __init__(self, config: RemBertConfig) -> None:
        super().__init__()
        if not isinstance(config, RemBertConfig):
            raise ConfigError(f"config must be a rembert_core.RemBertConfig, got {type(config).__name__}")
        config.validate()
        if config.add_cross_attention and not config.is_decoder:
            raise ConfigError(
                "add_cross_attention=True needs is_decoder=True (cross-attention layers are decoder layers)"
            )
        self.config = config
        #: ``generate``'s defaults (``generation_config.json``); ``None`` for classes that cannot generate.
        self.generation_config: GenerationConfig | None = (
            GenerationConfig.from_model_config(config) if self.can_generate() else None
        )

    @classmethod
    def can_generate(cls) -> bool:
        """Whether this class has ``generate`` (only ``RemBertForCausalLM``)."""
        return callable(getattr(cls, "generate", None))

    @property
    def vocab_size(self) -> int:
        """The vocabulary size (``config.vocab_size``; kept current by :meth:`resize_token_embeddings`)."""
        return int(self.config.vocab_size)

    # -- weights ---------------------------------------------------------------------------------

    def post_init(self) -> None:
        """Initialise every weight as the core schema says (called at the end of each model's ``__init__``).

        The modules are visited as the reference's ``self.apply(self._init_weights)`` visits them (children
        first, each module's own parameters in order), so one seed gives the reference's numbers.
        """
        if self.config.pruned_heads:  # a pruned checkpoint: the attention layers take its smaller shapes first
            self.prune_heads(self.config.pruned_heads)
        self.__dict__["_schema_inits"] = self._parameter_inits()  # read by _init_weights during apply
        try:
            self.apply(self._init_weights)
        finally:
            del self.__dict__["_schema_inits"]
        if self.supports_gradient_checkpointing and self.config.extra.get("gradient_checkpointing"):
            # transformers' legacy config key: honoured once, then dropped (it is not a model setting any more)
            self.gradient_checkpointing_enable()
            del self.config.extra["gradient_checkpointing"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise ``module``'s own parameters, each as its core schema spec's ``init`` says (the reference's
        normal(0, initializer_range), zero biases, zero padding row, LayerNorm ones/zeros; see
        :func:`rembert_torch.kernels.init_tensor`).

        Parameters the schema does not name (modules a subclass adds) keep the values their module gave them.
        """
        params = list(module.parameters(recurse=False))
        if not params:
            return
        inits = self.__dict__.get("_schema_inits") or self._parameter_inits()
        config = self.config
        for param in params:
            init = inits.get(id(param))
            if init is not None:
                init_tensor(param, init, initializer_range=config.initializer_range, pad_token_id=config.pad_token_id)

    def _parameter_inits(self) -> dict[int, Init]:
        """``id(parameter) -> Init`` of every parameter the core schema of this model names."""
        pooler = getattr(self.base_model, "pooler", None) is not None
        schema = build_schema(self.config, self.task, add_pooling_layer=pooler)
        return {id(param): schema[name].init for name, param in self.named_parameters() if name in schema}

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's parameters."""
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.parameters()).device

    def num_parameters(self, only_trainable: bool = False) -> int:
        """Number of parameters (only those with ``requires_grad`` when ``only_trainable``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    @property
    def base_model(self) -> RemBertModel:
        """The backbone (``self`` for :class:`RemBertModel`, ``self.rembert`` for heads)."""
        backbone = getattr(self, self.base_model_prefix, self)
        assert isinstance(backbone, RemBertPreTrainedModel) and backbone.task == "base"  # a RemBertModel
        return cast("RemBertModel", backbone)

    def get_input_embeddings(self) -> nn.Embedding:
        """The word embeddings, (vocab_size, input_embedding_size)."""
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the word embeddings (must be ``input_embedding_size`` wide)."""
        if not isinstance(value, nn.Embedding) or value.embedding_dim != self.config.input_embedding_size:
            raise InputError(f"input embeddings must be an nn.Embedding of width {self.config.input_embedding_size}")
        self.base_model.embeddings.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear | None:
        """The LM decoder (vocab_size x output_embedding_size) for LM heads, else None."""
        lm_head = getattr(self, "cls", None)  # the LM heads' RemBertOnlyMLMHead
        return cast("nn.Linear", lm_head.predictions.decoder) if lm_head is not None else None

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        """Replace the LM decoder (LM heads only)."""
        lm_head = getattr(self, "cls", None)
        if lm_head is None:
            raise InputError(f"{type(self).__name__} has no output embeddings")
        lm_head.predictions.decoder = new_embeddings

    @torch.no_grad()
    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """Resize the vocabulary: the input embeddings and (LM heads) the output decoder and its bias.

        The two have different widths (``input_embedding_size`` and
        ``output_embedding_size``) and are resized independently. Old rows are kept;
        new rows are drawn around the old rows' mean (``mean_resizing``, as the
        reference) or from normal(0, initializer_range); new decoder biases are the
        mean of the old ones (or zero). ``config.vocab_size`` is updated.

        Args:
            new_num_tokens: the new vocabulary size (None: keep it, only pad).
            pad_to_multiple_of: round the size up to a multiple of this.
            mean_resizing: initialise new rows from the old rows' statistics.

        Returns:
            The new input embeddings.

        Example:
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_torch import RemBertForMaskedLM
            >>> model = RemBertForMaskedLM(tiny_config())
            >>> model.resize_token_embeddings(309).weight.shape  # (vocab, input_embedding_size)
            torch.Size([309, 20])
            >>> model.get_output_embeddings().weight.shape  # (vocab, output_embedding_size)
            torch.Size([309, 36])
        """
        old = self.get_input_embeddings()
        size = old.num_embeddings if new_num_tokens is None else new_num_tokens
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InputError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        if pad_to_multiple_of is not None:
            if (
                isinstance(pad_to_multiple_of, bool)
                or not isinstance(pad_to_multiple_of, int)
                or pad_to_multiple_of < 1
            ):
                raise InputError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
            size = math.ceil(size / pad_to_multiple_of) * pad_to_multiple_of
        pad = self.config.pad_token_id
        if pad is not None and pad >= size:
            raise InputError(f"cannot resize to {size} tokens: pad_token_id {pad} would fall outside the vocabulary")
        new_embeddings = nn.Embedding(
            size, old.embedding_dim, padding_idx=old.padding_idx, device=old.weight.device, dtype=old.weight.dtype
        )
        new_embeddings.weight.copy_(self._resized_rows(old.weight, size, mean_resizing))
        if new_embeddings.padding_idx is not None and new_embeddings.padding_idx >= old.num_embeddings:
            new_embeddings.weight[new_embeddings.padding_idx].zero_()  # a new padding row starts at zero
        self.base_model.embeddings.word_embeddings = new_embeddings

        decoder = self.get_output_embeddings()
        if decoder is not None:
            new_decoder = Linear(  # the model's dense layer class (kernels.Linear), like the decoder it replaces
                decoder.in_features,
                size,
                bias=decoder.bias is not None,
                device=decoder.weight.device,
                dtype=decoder.weight.dtype,
            )
            new_decoder.weight.copy_(self._resized_rows(decoder.weight, size, mean_resizing))
            if decoder.bias is not None and new_decoder.bias is not None:
                n = min(size, decoder.out_features)
                new_decoder.bias.zero_()
                new_decoder.bias[:n] = decoder.bias[:n]
                if size > n and mean_resizing:
                    new_decoder.bias[n:] = decoder.bias.float().mean().to(decoder.bias.dtype)
            self.set_output_embeddings(new_decoder)
        self.config.vocab_size = size
        return new_embeddings

    def _resized_rows(self, weight: Tensor, size: int, mean_resizing: bool) -> Tensor:
        old_rows = weight.shape[0]
        n = min(size, old_rows)
        out = torch.empty(size, weight.shape[1], dtype=weight.dtype, device=weight.device)
        out[:n] = weight[:n]
        if size > n:
            added = size - n
            if mean_resizing:
                old = weight.float()
                mean = old.mean(dim=0)
                centred = old - mean
                cov = centred.T @ centred / old_rows
                try:
                    dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=1e-9 * cov)
                    new = dist.sample((added,))
                except (ValueError, RuntimeError):  # covariance not positive definite: use the mean
                    new = mean.expand(added, -1)
                out[n:] = new.to(weight.dtype)
            else:
                out[n:].normal_(mean=0.0, std=self.config.initializer_range)
        return out

    # -- pruning ---------------------------------------------------------------------------------

    @torch.no_grad()
    def prune_heads(self, heads_to_prune: dict[int, list[int]]) -> None:
        """Remove attention heads: ``{layer: [heads]}``, as transformers' ``prune_heads``.

        The query/key/value rows and the output projection's columns of those heads are dropped (self-attention
        only), ``config.pruned_heads`` records the union of what was pruned, and :meth:`from_pretrained` re-applies
        it before loading a pruned checkpoint (its tensors have the smaller shapes).

        Example:
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_torch import RemBertModel
            >>> model = RemBertModel(tiny_config())
            >>> model.prune_heads({0: [0]})
            >>> model.encoder.layer[0].attention.self.num_attention_heads, model.config.pruned_heads
            (5, {0: [0]})
        """
        layers = self.base_model.encoder.layer
        if not isinstance(heads_to_prune, dict):
            raise InputError(f"heads_to_prune must be a dict {{layer: [heads]}}, got {type(heads_to_prune).__name__}")
        for layer, heads in heads_to_prune.items():
            if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
                raise InputError(f"prune_heads: layer {layer!r} is not in [0, {len(layers)})")
            bad = [
                h
                for h in heads
                if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < self.config.num_attention_heads
            ]
            if bad:
                raise InputError(
                    f"prune_heads: layer {layer} heads {bad} are not in [0, {self.config.num_attention_heads})"
                )
        pruned = dict(self.config.pruned_heads)
        for layer, heads in heads_to_prune.items():
            pruned[layer] = sorted(set(pruned.get(layer, [])) | set(heads))
            _prune_attention(layers[layer].attention, set(heads))
        self.config.pruned_heads = pruned

    # -- attention kernel ------------------------------------------------------------------------

    def set_attn_implementation(self, attn_implementation: str) -> None:
        """Choose the attention kernel: ``"auto"`` (default), ``"sdpa"`` or ``"eager"`` (see RemBertSelfAttention)."""
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {attn_implementation!r}")
        for module in self.modules():
            if hasattr(module, "attn_implementation"):  # each RemBertSelfAttention
                module.attn_implementation = attn_implementation  # type: ignore[assignment]  # a str, not a tensor

    # -- gradient checkpointing ------------------------------------------------------------------

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each layer's activations in the backward pass (train mode only) to save memory.

        ``use_cache`` is turned off while training with checkpointing. Accepts (and
        ignores) ``gradient_checkpointing_kwargs`` for compatibility; the
        non-reentrant checkpoint is always used.
        """
        self.base_model.encoder.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        """Turn gradient checkpointing off."""
        self.base_model.encoder.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether gradient checkpointing is on."""
        return bool(self.base_model.encoder.gradient_checkpointing)

    # -- loading and saving ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str] | None,
        *,
        config: RemBertConfig | None = None,
        torch_dtype: torch.dtype | str | None = None,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        output_loading_info: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Load a checkpoint (config.json + safetensors, sharded index, pytorch_model.bin, ...) or a weights file.

        No random weights are allocated first (the model is built on the meta
        device); tensors are read one at a time. Missing, unexpected or mis-shaped
        tensors raise :class:`rembert_core.CheckpointError` listing them all; absent
        head/pooler weights are initialised and reported (logged, and returned with
        ``output_loading_info=True`` as ``(model, info)``). The model is returned in
        eval mode.

        Args:
            pretrained_model_name_or_path: a local directory or weights file, or a Hugging Face Hub id
                (resolved through ``rembert_core.io.hub`` and the Hub cache; needs ``huggingface_hub``). Any
                format a rembert plugin reads works: safetensors, ``pytorch_model.bin``, ``tf_model.h5``.
            config: use this config instead of the checkpoint's ``config.json``.
            torch_dtype: ``torch.float32`` (default), ``torch.bfloat16``, ``torch.float16``, their names, or
                ``"auto"`` (the checkpoint's dtype). ``dtype`` is an alias.
            device: where to put the weights (default CPU).
            output_loading_info: also return a dict with ``missing_keys``, ``unexpected_keys``,
                ``mismatched_keys``, ``error_msgs`` and the core ``report``.
            kwargs: config overrides (e.g. ``num_labels=5``); ``attn_implementation`` (``"auto"``, ``"sdpa"``,
                ``"eager"``); ``add_pooling_layer`` for :class:`RemBertModel`; ``local_files_only``,
                ``revision``, ``cache_dir``, ``token`` for Hub ids; ``ignore_mismatched_sizes=True`` to
                re-initialise tensors whose shape differs (e.g. a classifier with another ``num_labels``);
                ``device_map`` (a device, ``"auto"`` or ``{"": device}``: one device) and ``low_cpu_mem_usage``
                (always on) as in transformers; ``state_dict`` to take the weights from a dict of tensors instead
                of the checkpoint (``pretrained_model_name_or_path`` may then be ``None``, with ``config=``).
                ``generation_config.json`` next to the checkpoint becomes ``model.generation_config``;
                ``quantize="int8"`` for CPU serving (``rembert_torch.quantization.quantize``: int8 dense
                layers, inference only).

        Example:
            >>> import tempfile
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_torch import RemBertForMaskedLM
            >>> directory = tempfile.mkdtemp()
            >>> RemBertForMaskedLM(tiny_config()).save_pretrained(directory)
            >>> model = RemBertForMaskedLM.from_pretrained(directory, torch_dtype="bfloat16")  # or "google/rembert"
            >>> model.dtype, model.training
            (torch.bfloat16, False)
        """
        from rembert_torch.loading import load_pretrained

        mode = kwargs.pop("quantize", None)
        if mode is not None:
            from rembert_torch.quantization import QUANTIZE_MODES

            if mode not in QUANTIZE_MODES:
                raise ConfigError(f"quantize must be one of {QUANTIZE_MODES} or None, got {mode!r}")
        loaded = load_pretrained(
            cls,
            pretrained_model_name_or_path,  # None: the weights come from state_dict=
            config=config,
            torch_dtype=torch_dtype if torch_dtype is not None else dtype,
            device=device,
            output_loading_info=output_loading_info,
            **kwargs,
        )
        if mode is not None:
            from rembert_torch.quantization import quantize

            model = loaded[0] if output_loading_info else loaded
            quantize(model, mode, inplace=True)
        return loaded

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        max_shard_size: int | str | None = "5GB",
        safe_serialization: bool = True,
        state_dict: dict[str, Tensor] | None = None,
    ) -> None:
        """Write ``config.json`` (with ``architectures``) and the weights, loadable by transformers 4.57.

        Args:
            save_directory: directory to write into (created if needed).
            max_shard_size: split safetensors weights into shards of at most this size
                (bytes or ``"2GB"``); a single ``model.safetensors`` when they fit.
            safe_serialization: safetensors (default) or ``pytorch_model.bin``.
            state_dict: tensors to save instead of ``self.state_dict()``.

        Example:
            >>> import os, tempfile
            >>> from rembert_core.testing import tiny_config
            >>> from rembert_torch import RemBertModel
            >>> directory = tempfile.mkdtemp()
            >>> RemBertModel(tiny_config()).save_pretrained(directory, max_shard_size="200MB")
            >>> sorted(os.listdir(directory))
            ['config.json', 'model.safetensors']
        """
        from rembert_torch.loading import save_pretrained

        save_pretrained(
            self,
            save_directory,
            max_shard_size=max_shard_size,
            safe_serialization=safe_serialization,
            state_dict=state_dict,
        )

    # -- shared forward helpers ------------------------------------------------------------------

    def _resolve_flags(
        self, output_attentions: bool | None, output_hidden_states: bool | None, return_dict: bool | None
    ) -> tuple[bool, bool, bool]:
        config = self.config  # the call's flags win; else the config's, as in transformers
        oa = output_attentions if output_attentions is not None else bool(config.output_attentions)
        oh = output_hidden_states if output_hidden_states is not None else bool(config.output_hidden_states)
        rd = return_dict if return_dict is not None else bool(config.use_return_dict)
        return oa, oh, rd


def _prune_linear(layer: nn.Linear, index: Tensor, dim: int) -> nn.Linear:
    """A copy of ``layer`` keeping only ``index`` along ``dim`` of its weight (0: output rows, 1: input columns)."""
    weight = layer.weight.index_select(dim, index).clone().detach()
    bias = (
        None
        if layer.bias is None
        else (layer.bias.clone().detach() if dim == 1 else layer.bias[index].clone().detach())
    )
    out_f, in_f = weight.shape
    new = type(layer)(in_f, out_f, bias=bias is not None, device=weight.device, dtype=weight.dtype)
    new.weight.copy_(weight)
    if bias is not None and new.bias is not None:
        new.bias.copy_(bias)
    new.weight.requires_grad_(layer.weight.requires_grad)
    return new


def _prune_attention(attention: Any, heads: set[int]) -> None:
    """Drop ``heads`` (numbered as in the unpruned layer) from one RemBertAttention, as transformers does."""
    self_attn: Any = attention.self
    output: Any = attention.output
    done: set[int] = getattr(attention, "pruned_heads", set())
    heads = heads - done
    if not heads:
        return
    size = int(self_attn.attention_head_size)
    keep = [h for h in range(int(self_attn.num_attention_heads) + len(done)) if h not in done | heads]
    kept_now = [h - sum(1 for d in done if d < h) for h in keep]  # positions among the heads still there
    index = torch.tensor([p * size + i for p in kept_now for i in range(size)], dtype=torch.long, device="cpu")
    index = index.to(self_attn.query.weight.device)
    self_attn.query = _prune_linear(self_attn.query, index, 0)
    self_attn.key = _prune_linear(self_attn.key, index, 0)
    self_attn.value = _prune_linear(self_attn.value, index, 0)
    output.dense = _prune_linear(output.dense, index, 1)
    self_attn.num_attention_heads = int(self_attn.num_attention_heads) - len(heads)
    self_attn.all_head_size = size * self_attn.num_attention_heads
    self_attn._qkv = None  # the packed inference weight views the old tensors
    attention.pruned_heads = done | heads
