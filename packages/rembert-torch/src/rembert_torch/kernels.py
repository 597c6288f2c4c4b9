"""What the model code leaves out: the dense layers' fast path, packed QKV, the attention kernel, initial values.

None of the speed tricks changes a number beyond the parity tolerances, and each steps aside where it could:

* **oneDNN dense layers.** The model's dense layers are :class:`Linear`, an ``nn.Linear`` whose forward,
  at float32 CPU inference, runs as one oneDNN call (``torch.ops.mkldnn._linear_pointwise``: GEMM, bias
  and, through :func:`dense_act`, a GELU or ReLU as the GEMM's epilogue) instead of ``F.linear`` (MKL)
  followed by the activation. :data:`ONEDNN_INFERENCE` switches it off everywhere.
* **Packed QKV.** At inference the query, key and value projections run as one GEMM on a packed weight
  whose row blocks *are* the three parameters' storage (:func:`pack_qkv`).
* **The attention kernel.** ``scaled_dot_product_attention`` or the reference's explicit softmax, chosen
  by :func:`use_sdpa` from the module's ``attn_implementation`` (:data:`ATTN_IMPLEMENTATIONS`).

Every tensor starts as its core schema spec says (:class:`rembert_core.schema.Init`), through one function,
:func:`init_tensor`: when a model is built (``RemBertPreTrainedModel.post_init``) and, in
``rembert_torch.loading``, for the tensors a checkpoint lacks. The activations are in
:mod:`rembert_torch.layers`, as in rembert-tf.

Measured speed-ups: see docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rembert_core.schema import Init
from rembert_torch.validation import checking_values

Tensor = torch.Tensor

# -- dense layers at inference (float32 on CPU: one oneDNN call per layer) ----------------------

#: At float32 CPU inference, dense layers run as one oneDNN call (GEMM, bias and, where it is GELU or
#: ReLU, the activation as the GEMM's epilogue) instead of ``F.linear`` (MKL) followed by the activation:
#: oneDNN's GEMMs are faster at RemBERT's widths, and the epilogue saves a pass over the
#: (tokens, intermediate_size) activations (see docs/performance.md). Training, other dtypes and devices,
#: hooked or subclassed layers, CPU autocast and torch.compile always use ``nn.Linear``'s own forward.
#: Set to False to do so everywhere (read at every call: ``rembert_torch.kernels.ONEDNN_INFERENCE = False``).
ONEDNN_INFERENCE = True

#: Activations oneDNN computes exactly as ``layers.ACTIVATIONS`` does, as (post-op, algorithm); "none" is erf GELU.
_ONEDNN_EPILOGUES: dict[Callable[[Tensor], Tensor], tuple[str, str]] = {F.gelu: ("gelu", "none"), F.relu: ("relu", "")}


@functools.cache
def _onednn_linear() -> Callable[..., Tensor] | None:
    """``torch.ops.mkldnn._linear_pointwise`` if this torch build has it and it agrees with ``F.linear``; else None.

    The op is internal to PyTorch (torch.compile's CPU backend emits it), so it is checked once, on a
    small input against ``F.linear`` and ``F.gelu``, before any model uses it.
    """
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        gen = torch.Generator().manual_seed(0)
        x, weight, bias = (torch.randn(shape, generator=gen) for shape in ((2, 3, 16), (8, 16), (8,)))
        with torch.no_grad(), torch.autocast("cpu", enabled=False):  # the probe may first run under autocast
            fused, plain = op(x, weight, bias, "gelu", [], "none"), F.gelu(F.linear(x, weight, bias))
        agrees = fused.shape == plain.shape and torch.allclose(fused, plain, rtol=1e-5, atol=1e-5)
    except (AttributeError, RuntimeError, TypeError):
        return None
    return op if agrees else None


def _cpu_autocast() -> bool:
    """Whether ``torch.autocast("cpu")`` is on here."""
    try:
        return bool(torch.is_autocast_enabled("cpu"))
    except TypeError:  # PyTorch before 2.4 has no device argument
        return bool(torch.is_autocast_cpu_enabled())


def _linear_act(
    x: Tensor, weight: Tensor, bias: Tensor | None, activation: Callable[[Tensor], Tensor] | None = None
) -> Tensor:
    """``activation(F.linear(x, weight, bias))`` for inference; one oneDNN call for float32 on CPU.

    Callers make sure no gradient is needed (the oneDNN op has no backward).
    """
    if (
        ONEDNN_INFERENCE
        and x.dtype == weight.dtype == torch.float32
        and x.device.type == weight.device.type == "cpu"
        and weight.is_contiguous()
        and (bias is None or (bias.dtype == torch.float32 and bias.is_contiguous()))
        and not _cpu_autocast()  # autocast would run F.linear in its lower dtype: keep that
        and checking_values()
    ):
        op = _onednn_linear()
        if op is not None:
            post_op, algorithm = _ONEDNN_EPILOGUES.get(activation, ("none", "")) if activation else ("none", "")
            out = op(x, weight, bias, post_op, [], algorithm)  # (..., out_features)
            return out if activation is None or post_op != "none" else activation(out)
    out = F.linear(x, weight, bias)
    return out if activation is None else activation(out)


def _hooked(module: nn.Module) -> bool:
    """Whether ``module`` has forward (pre-)hooks of its own."""
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _customized(module: nn.Module) -> bool:
    """Whether ``module`` is not exactly a :class:`Linear`, or has forward hooks: ``nn.Linear``'s forward must run."""
    return type(module) is not Linear or _hooked(module)


def _inference_only(module: nn.Linear, x: Tensor) -> bool:
    """Whether ``module`` may skip ``nn.Linear``'s forward for ``x``: a plain :class:`Linear`, no hooks anywhere,
    no gradient flowing to it (the oneDNN op has no backward)."""
    hooked = (
        _customized(module) or nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks
    )
    grads = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in (module.weight, module.bias) if p is not None)
    )
    return not (hooked or grads)


class Linear(nn.Linear):
    """``nn.Linear`` whose inference forward is one oneDNN call at float32 on CPU (see :data:`ONEDNN_INFERENCE`).

    Same parameters, ``state_dict`` and numbers (within the parity tolerances) as ``nn.Linear``. Whenever a
    gradient flows, the module is subclassed or has forward hooks (its own or global), the input is not a
    contiguous float32 CPU tensor, CPU autocast is on, the model is being compiled or traced, or
    :data:`ONEDNN_INFERENCE` is off, it computes ``F.linear`` exactly as ``nn.Linear`` does. Tools that
    match layers by exact type (``torch.ao.quantization.quantize_dynamic(model, {nn.Linear})``) need this
    class in their set as well.
    """

    def forward(self, input: Tensor) -> Tensor:
        """(..., in_features) -> (..., out_features)."""
        if _inference_only(self, input):
            return _linear_act(input, self.weight, self.bias)
        return F.linear(input, self.weight, self.bias)


def dense_act(dense: nn.Module, x: Tensor, activation: Callable[[Tensor], Tensor]) -> Tensor:
    """``activation(dense(x))``, as one oneDNN call (GEMM + bias + activation epilogue) where ``dense`` is a
    :class:`Linear` that would take the oneDNN path; otherwise ``dense``'s own call (hooks see its output
    before the activation), then the activation."""
    if isinstance(dense, Linear) and _inference_only(dense, x):
        return _linear_act(x, dense.weight, dense.bias, activation)
    return activation(dense(x))


# -- packed query/key/value projections ---------------------------------------------------------


def can_pack_qkv(query: nn.Module, key: nn.Module, value: nn.Module, hidden_states: Tensor) -> bool:
    """Packed projections: no gradient to the projections, each a plain ``nn.Linear`` with a bias and no hooks,
    not while tracing/compiling."""
    linears = (query, key, value)
    if torch.is_grad_enabled() and any(p.requires_grad for lin in linears for p in lin.parameters()):
        return False
    if any(getattr(lin, "bias", None) is None or type(lin) is not nn.Linear or _hooked(lin) for lin in linears):
        return False
    return hidden_states.device.type != "meta" and checking_values()


def pack_qkv(
    query: nn.Linear, key: nn.Linear, value: nn.Linear, packed: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor]:
    """The query/key/value weight (3 * all_head_size, hidden) and bias (3 * all_head_size,), packed.

    ``packed`` (the result of the previous call) is returned as is while the three parameters still are
    its row blocks. The first call (and any call after the parameters were replaced, e.g. by ``.to(dtype)``
    or ``load_state_dict(assign=True)``) copies them into one buffer and points each parameter's ``.data``
    at its row block, so parameters, ``state_dict`` names and in-place updates (``load_state_dict``,
    optimizers) stay as they were and no weight is held twice.
    """
    linears = (query, key, value)
    if packed is not None:
        weight, bias = packed
        rows = weight.shape[0] // 3
        w_step, b_step = rows * weight.shape[1] * weight.element_size(), rows * bias.element_size()
        if all(
            lin.weight.dtype == weight.dtype
            and lin.weight.shape == (rows, weight.shape[1])
            and lin.weight.data_ptr() == weight.data_ptr() + i * w_step
            and lin.bias is not None
            and lin.bias.dtype == bias.dtype
            and lin.bias.data_ptr() == bias.data_ptr() + i * b_step
            for i, lin in enumerate(linears)
        ):
            return packed
    with torch.inference_mode(False), torch.no_grad():  # a normal tensor: parameters may train later
        weight = torch.cat([lin.weight for lin in linears])  # (3 * all_head_size, hidden)
        bias = torch.cat([lin.bias for lin in linears])  # (3 * all_head_size,)
        for lin, w, b in zip(linears, weight.chunk(3), bias.chunk(3), strict=True):
            lin.weight.data = w
            lin.bias.data = b
    return weight, bias


def packed_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``F.linear(x, weight, bias)`` with a packed weight, at inference (one oneDNN call for float32 on CPU)."""
    return _linear_act(x, weight, bias)


# -- attention kernel ---------------------------------------------------------------------------

#: Attention kernels a model can use (see :func:`use_sdpa`).
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "eager")


def _has_fully_masked_row(bias: Tensor | None) -> bool:
    """Whether an additive attention mask hides every key from some query (the SDPA backward differs there).

    While tracing/compiling it answers True (keep the eager kernel: no data-dependent branch).
    """
    if bias is None:
        return False
    if not checking_values():
        return True
    return bool((bias.amax(dim=-1) <= torch.finfo(bias.dtype).min).any())


def attention_kernel(
    attn_implementation: str,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    head_mask: Tensor | None,
    output_attentions: bool,
) -> str:
    """The attention kernel to run: ``"sdpa"``, ``"matmul"`` (matmul-softmax, softmax in float32) or ``"eager"``.

    ``"eager"`` is the reference's explicit softmax (in the inputs' dtype); attention probabilities or a head
    mask always take it, and so does ``attn_implementation="eager"``. ``"sdpa"`` forces SDPA. ``"auto"``
    picks from measurement (docs/performance.md, CPU, 18 heads of 64): in bfloat16/float16 on CPU,
    matmul-softmax when gradients flow (SDPA's CPU backward is 2-5x slower there) or the key length is at
    most :data:`MATMUL_MAX_KEYS` (SDPA's CPU flash kernel loses at short lengths); SDPA otherwise, and
    the float32 softmax instead of SDPA's fused backward when gradients flow and the mask hides every key
    from some query (the fused SDPA backward differs from the reference's softmax backward there).
    """
    if head_mask is not None or output_attentions or attn_implementation == "eager":
        return "eager"
    if attn_implementation == "sdpa":
        return "sdpa"
    grads_flow = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
    low_precision_cpu = query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16)
    if low_precision_cpu and (grads_flow or key.shape[-2] <= MATMUL_MAX_KEYS):
        return "matmul"
    if grads_flow and _has_fully_masked_row(attention_mask):
        return "matmul"
    return "sdpa"


#: Under ``attn_implementation="auto"``, CPU bfloat16/float16 inference runs matmul-softmax up to this key
#: length and SDPA beyond it (measured: 32 x 48 keys 2.8-4.2 ms vs 5.1 ms SDPA; 512 keys 11-19 ms vs 8.8 ms).
MATMUL_MAX_KEYS = 64


def use_sdpa(
    attn_implementation: str,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    head_mask: Tensor | None,
    output_attentions: bool,
) -> bool:
    """Whether :func:`attention_kernel` picks ``F.scaled_dot_product_attention``."""
    kernel = attention_kernel(attn_implementation, query, key, value, attention_mask, head_mask, output_attentions)
    return kernel == "sdpa"


def attend(query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None, dropout_p: float, kernel: str) -> Tensor:
    """Attention context (..., heads, seq, head_dim) with ``kernel`` ``"sdpa"``, ``"matmul"`` or ``"eager"``.

    ``"matmul"``: ``softmax(q k^T / sqrt(d) + bias)`` with the softmax in float32 whatever the inputs' dtype
    (as accurate as SDPA's, which accumulates in float32), then ``@ v``. ``bias`` is additive, broadcast
    to (..., heads, seq, kv_seq). ``"eager"``: the same with the softmax in the inputs' dtype (the reference's).
    """
    if kernel == "sdpa":
        return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p)
    scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(query.shape[-1])  # (..., seq, kv_seq)
    if bias is not None:
        scores = scores + bias
    if kernel == "eager":  # the reference's softmax, in the inputs' dtype
        probs = F.softmax(scores, dim=-1)
    else:
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    if dropout_p:
        probs = F.dropout(probs, dropout_p)
    return torch.matmul(probs, value)  # (..., heads, seq, head_dim)


# -- unpadded execution ------------------------------------------------------------------------

#: Unpadding is on (models gather the real tokens of a padded batch where the outputs they return allow
#: it; see :func:`plan_unpadding`). Set to False to run every batch padded (read at every call).
UNPAD = True

#: Unpad when real tokens are at most this share of the padded batch, except for pooled heads (below).
#: Measured (4 layers at full widths, masked-LM loss path, batch 8 x 128): the gather and the per-row
#: attention calls cost about 1 % (all tokens real: 1533 ms unpadded vs 1521 ms padded), the saving follows
#: the padding share (78 % real: 1201 vs 1337 ms), so a batch with under 5 % padding runs padded.
UNPAD_MAX_REAL_SHARE = 0.95


@dataclasses.dataclass(frozen=True)
class Unpadded:
    """Where a padded (batch, seq) batch's real tokens are once gathered into (tokens, ...), row after row.

    ``index``: (tokens,) flat positions ``row * seq + col`` of the real tokens, in row-major order;
    ``starts``: (batch,) token index of each row's first real token (rows of zero tokens point past their
    end); ``lengths``: real tokens per row (Python ints; rows of zero tokens included); ``runs``: consecutive
    rows of equal non-zero length as (first token, rows, length), each run one batched attention call.
    ``pool_only``: the caller reads only position 0 of each row after the last layer, so that layer computes
    its queries, attention output and feed-forward at those positions only (:meth:`first_only`).
    ``first_only``: the plan of such a layer: attention returns (batch, hidden), one query per row.
    """

    index: Tensor
    starts: Tensor
    lengths: tuple[int, ...]
    runs: tuple[tuple[int, int, int], ...]
    batch: int
    seq: int
    pool_only: bool = False
    first_only: bool = False

    def first_only_plan(self) -> Unpadded:
        """This plan for a last layer whose output is read at position 0 of each row only."""
        return dataclasses.replace(self, first_only=True)


def plan_unpadding(attention_mask: Tensor | None, *, pooled: bool = False) -> Unpadded | None:
    """The :class:`Unpadded` plan of a 0/1 ``attention_mask`` (batch, seq), or None to run the batch padded.

    None when :data:`UNPAD` is off, while compiling/tracing (data-dependent shapes), for a mask that is not
    2-D or not all 0/1, for a batch of one row (batch 1 keeps today's path), and, with ``pooled`` (a plan
    with ``pool_only``), when some row's position 0 is padding (the pooler reads position 0 of every row).
    Without ``pooled``, also for a batch whose real-token share is above :data:`UNPAD_MAX_REAL_SHARE`; a
    pooled head unpads whatever the share, since its last layer then computes one position per row
    (measured, batch 8 x 128 at 93 % real: 577 ms vs 738 ms padded; 2 x 512 at 95 %: 653 vs 820 ms; with
    no padding at all 2 x 64: 100 vs 98 ms).
    """
    if not UNPAD or attention_mask is None or attention_mask.dim() != 2 or not checking_values():
        return None
    batch, seq = attention_mask.shape
    if batch < 2 or not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        return None
    mask = attention_mask != 0
    lengths_t = mask.sum(dim=1)
    real = int(lengths_t.sum())
    if not real or (pooled and not bool(mask[:, 0].all())):
        return None
    if not pooled and real > UNPAD_MAX_REAL_SHARE * batch * seq:
        return None
    lengths = tuple(int(n) for n in lengths_t.tolist())
    runs: list[tuple[int, int, int]] = []
    start = 0
    for n in lengths:
        if n and runs and runs[-1][2] == n and runs[-1][0] + runs[-1][1] * n == start:
            first, rows, _ = runs[-1]
            runs[-1] = (first, rows + 1, n)
        elif n:
            runs.append((start, 1, n))
        start += n
    index = mask.reshape(-1).nonzero().squeeze(1)  # (tokens,) row-major
    starts = torch.cumsum(lengths_t, 0) - lengths_t  # (batch,)
    return Unpadded(index, starts, lengths, tuple(runs), batch, seq, pool_only=pooled)


def gather_tokens(x: Tensor, plan: Unpadded) -> Tensor:
    """(batch, seq, ...) -> (tokens, ...): the real tokens, row after row."""
    return x.reshape(plan.batch * plan.seq, *x.shape[2:]).index_select(0, plan.index)


def unpadded_attention(qkv: Tensor, plan: Unpadded, dropout_p: float, attn_implementation: str) -> Tensor:
    """Self-attention of each row over its own real tokens: (tokens, 3, heads, head_dim) -> (tokens, heads * dim).

    Each run of equal-length rows is one call on (rows, heads, length, head_dim) with no mask, so no
    padded key enters a softmax (the padded batch adds ``finfo.min`` to them: their weight is exactly 0).
    With ``plan.first_only`` only each row's first token queries: (batch, heads * dim).
    """
    _, _, heads, dim = qkv.shape
    parts = []
    for first, rows, length in plan.runs:
        block = qkv[first : first + rows * length].view(rows, length, 3, heads, dim)
        query, key, value = block.permute(2, 0, 3, 1, 4).unbind(0)  # each (rows, heads, length, head_dim)
        if plan.first_only:
            query = query[:, :, :1]  # (rows, heads, 1, head_dim)
        kernel = attention_kernel(attn_implementation, query, key, value, None, None, False)
        context = attend(query, key, value, None, dropout_p, kernel)  # (rows, heads, queries, head_dim)
        parts.append(context.transpose(1, 2).reshape(-1, heads * dim))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


# -- initial values -----------------------------------------------------------------------------


@torch.no_grad()
def init_tensor(tensor: Tensor, init: Init, *, initializer_range: float, pad_token_id: int | None) -> None:
    """Fill ``tensor`` in place with the initial values ``init`` names (the reference ``_init_weights``).

    ``NORMAL``: normal(0, ``initializer_range``); ``NORMAL_PADDED``: the same, then the ``pad_token_id`` row
    zeroed (when set); ``ZEROS``; ``ONES``. The one place a torch tensor gets its initial values, so a model
    built from a seed and a tensor a checkpoint lacks draw their numbers alike.

    Example:
        >>> import torch
        >>> from rembert_core.schema import Init
        >>> from rembert_torch.kernels import init_tensor
        >>> table = torch.empty(4, 3)
        >>> init_tensor(table, Init.NORMAL_PADDED, initializer_range=0.02, pad_token_id=0)
        >>> table[0].tolist()
        [0.0, 0.0, 0.0]
    """
    if init in (Init.NORMAL, Init.NORMAL_PADDED):
        tensor.normal_(mean=0.0, std=initializer_range)
        if init is Init.NORMAL_PADDED and pad_token_id is not None:
            tensor[pad_token_id].zero_()
    elif init is Init.ZEROS:
        tensor.zero_()
    else:
        tensor.fill_(1.0)
