"""Opt-in int8 inference for CPU serving: dynamic quantisation of the dense layers.

:func:`quantize` replaces every dense layer (``nn.Linear`` and :class:`rembert_torch.kernels.Linear`, turned
into the plain ``nn.Linear`` it extends first, since ``quantize_dynamic`` matches exact types) by a dynamically
quantised one: int8 weights
(per output channel scale), activations quantised per call, int32 accumulation, float32 outputs. Embeddings,
layer norms, softmax, the losses, the embedding projection, the pooler and the heads' classifiers
(:data:`FLOAT32_LAYERS`) stay in float32. The measured speed and agreement with float32 (cosine,
and the ``("int8", ...)`` bounds of :mod:`rembert_core.tolerances`) are in docs/performance.md; float32 and
bfloat16 stay the exact paths.

It uses ``torch.ao.quantization.quantize_dynamic`` (oneDNN/fbgemm int8 GEMMs on x86 CPUs), which
installs with torch itself; torchao, its successor, is a separate package the project does not require.
A quantised model is for inference only: it cannot be trained, and its ``state_dict`` holds packed int8
weights, so save the float32 model and quantise after loading.
"""

from __future__ import annotations

import copy
import warnings
from typing import TypeVar

import torch
from torch import nn

from rembert_torch.kernels import Linear
from rembert_torch.layers import RemBertSelfAttention

__all__ = ["FLOAT32_LAYERS", "QUANTIZE_MODES", "quantize"]

#: The modes :func:`quantize` accepts.
QUANTIZE_MODES = ("int8",)

ModuleT = TypeVar("ModuleT", bound=nn.Module)

#: Dense layers left in float32 (names ending so): the pooler and the heads' small classifiers, whose
#: few FLOPs gain nothing from int8 but whose rounding would land directly on the outputs (measured: the
#: pooled output's worst cosine to float32 0.9988 with the pooler in int8, per-token hidden states 0.9990),
#: and the embedding projection (256 inputs: about 2 % of the encoder's FLOPs at 4 layers), whose rounding
#: every layer then carries (measured on the bench's real-text batch, 4 layers: worst cosine pooled 0.99906
#: -> 0.99934, per token 0.99905 -> 0.99936, for 4 % more time).
FLOAT32_LAYERS = ("embedding_hidden_mapping_in", "pooler.dense", "classifier", "qa_outputs")


def quantize(model: ModuleT, mode: str = "int8", *, inplace: bool = False) -> ModuleT:
    """``model`` with its dense layers dynamically quantised to int8 (a copy unless ``inplace``), in eval mode.

    Args:
        model: a float32 rembert-torch model on the CPU.
        mode: ``"int8"`` (the only mode).
        inplace: quantise ``model`` itself instead of a deep copy.

    Raises:
        ValueError: an unknown ``mode``, or a model that is not float32 on the CPU.

    Example:
        >>> import torch
        >>> from rembert_core.testing import tiny_config
        >>> from rembert_torch import RemBertForSequenceClassification
        >>> from rembert_torch.quantization import quantize
        >>> model = quantize(RemBertForSequenceClassification(tiny_config()))
        >>> type(model.rembert.encoder.layer[0].output.dense).__module__, model.training
        ('torch.ao.nn.quantized.dynamic.modules.linear', False)
        >>> model(torch.tensor([[5, 6, 7]])).logits.shape
        torch.Size([1, 3])
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize mode must be one of {QUANTIZE_MODES}, got {mode!r}")
    for name, param in model.named_parameters():
        if param.dtype != torch.float32 or param.device.type != "cpu":
            raise ValueError(
                f"int8 quantisation needs a float32 model on the CPU; {name} is {param.dtype} on {param.device}"
            )
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    for module in target.modules():
        if type(module) is Linear:  # quantize_dynamic swaps exact nn.Linear only; Linear adds no state to it
            module.__class__ = nn.Linear  # type: ignore[assignment]
        if isinstance(module, RemBertSelfAttention):
            module._qkv = None  # the packed float32 projections go with the float32 weights
    with warnings.catch_warnings():
        # torch.ao.quantization and its quantised tensors warn that they move to torchao (torch 2.13 still
        # ships and runs them); the conversion is the only place they warn, the quantised calls do not.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        spec = {
            name: per_channel_dynamic_qconfig
            for name, module in target.named_modules()
            if type(module) is nn.Linear and not name.endswith(FLOAT32_LAYERS)
        }
        quantize_dynamic(target, spec, dtype=torch.qint8, inplace=True)  # type: ignore[no-untyped-call]
    return target
