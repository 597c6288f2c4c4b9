"""Masked-LM training of RemBERT with DDP or FSDP2, launched by torchrun; resumable.

One machine, two processes on CPU (gloo) or two GPUs (nccl)::

    torchrun --standalone --nproc_per_node 2 examples/distributed/train_torch.py --strategy fsdp \\
        --checkpoint-dir runs/ckpt --output-dir runs/final

Run it again with the same ``--checkpoint-dir`` and it resumes from the newest checkpoint.
Plain ``python examples/distributed/train_torch.py`` trains in one process. The default
config is tiny (a few hundred thousand parameters) so that a run finishes in seconds on a
CPU; ``--model PATH`` continues from a real checkpoint (any format rembert-torch reads).

The data are synthetic sequences (arithmetic progressions over 64 word ids) with 15% of
the tokens masked, generated from ``--seed`` and the step number: every process builds the
same global batch of ``--global-batch-size`` rows and trains on its slice, so a run on N
processes sees exactly the batches of a one-process run, and a resumed run the batches of
an uninterrupted one. The loss is normalised by the number of masked tokens in the *global*
batch, so the gradient averaged over processes equals the one-process gradient even when
the processes' slices hold different numbers of masked tokens.

Per-step losses go to the progress bar (rank 0) and, with ``--log-json``, to a JSON-lines
file. ``--fail-at-step K`` kills the last rank with SIGKILL after step K (fault injection,
to exercise resuming).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from rembert_core import RemBertConfig
from rembert_torch import RemBertForMaskedLM
from rembert_torch.distributed import (
    all_reduce_mean,
    apply_ddp,
    apply_fsdp,
    init_distributed,
    latest_training_state,
    load_training_state,
    save_distributed,
    save_training_state,
)

#: The tiny default model: RemBERT's structure (decoupled input/output embeddings) at toy widths.
TINY = dict(
    vocab_size=256,
    hidden_size=64,
    num_attention_heads=4,
    num_hidden_layers=2,
    input_embedding_size=32,
    output_embedding_size=48,
    intermediate_size=128,
    max_position_embeddings=64,
    type_vocab_size=2,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
MASK_TOKEN_ID = 3  # the synthetic data's [MASK]; real checkpoints: use the tokenizer's mask_token_id
FIRST_WORD_ID = 5  # ids below are special


# FSDP2 warns that a unit's output is a view (in-place ops on it would skip its backward hook);
# this script never modifies model outputs in place.
warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor", category=UserWarning)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--strategy",
        choices=("auto", "none", "ddp", "fsdp"),
        default="auto",
        help="auto: ddp under torchrun with several processes, else none",
    )
    p.add_argument("--model", help="start from this checkpoint (directory, file or Hub id) instead of the tiny config")
    p.add_argument("--steps", type=int, default=50, help="optimizer steps in total (default 50)")
    p.add_argument("--global-batch-size", type=int, default=8, help="rows per step over all processes")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dropout", type=float, help="override hidden and attention dropout of the config")
    p.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (FSDP policy, autocast otherwise)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument(
        "--cpu-offload", action="store_true", help="FSDP on GPUs: sharded parameters and optimizer state in CPU memory"
    )
    p.add_argument("--checkpoint-dir", type=Path, help="resumable checkpoints; resumes from the newest one here")
    p.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (and at the end)")
    p.add_argument("--output-dir", type=Path, help="write the final model here as canonical safetensors")
    p.add_argument("--log-json", type=Path, help="append {'step', 'loss'} lines (rank 0)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--fail-at-step", type=int, help="fault injection: SIGKILL the last rank after this step")
    args = p.parse_args(argv)
    if args.steps < 1 or args.global_batch_size < 1 or args.seq_len < 2:
        p.error("--steps, --global-batch-size must be positive and --seq-len at least 2")
    return args


def global_batch(step: int, args: argparse.Namespace, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) of the global batch of ``step``: the same on every process and every run."""
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    rows, seq = args.global_batch_size, args.seq_len
    words = min(vocab_size - FIRST_WORD_ID, 64)  # a small alphabet: the loss falls visibly within a minute
    start = torch.randint(0, words, (rows, 1), generator=g)
    stride = torch.randint(1, 8, (rows, 1), generator=g)
    ids = (start + stride * torch.arange(seq)) % words + FIRST_WORD_ID  # (rows, seq)
    masked = torch.rand(rows, seq, generator=g) < 0.15
    masked[0, 1] = True  # never an empty global batch
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    inputs = torch.where(masked, torch.full_like(ids, MASK_TOKEN_ID), ids)
    return inputs, labels


def build_model(args: argparse.Namespace) -> RemBertForMaskedLM:
    overrides: dict[str, Any] = {}
    if args.dropout is not None:
        overrides = {"hidden_dropout_prob": args.dropout, "attention_probs_dropout_prob": args.dropout}
    torch.manual_seed(args.seed)  # the same initial weights on every process
    if args.model:
        model: RemBertForMaskedLM = RemBertForMaskedLM.from_pretrained(args.model, **overrides)
    else:
        model = RemBertForMaskedLM(RemBertConfig(**{**TINY, **overrides}))
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ctx = init_distributed(device=args.device)
    strategy = args.strategy
    if strategy == "auto":
        strategy = "ddp" if ctx.world_size > 1 else "none"
    if strategy != "none" and not ctx.distributed:
        sys.exit(f"--strategy {strategy} needs torchrun (no process group in a plain python run)")
    if args.global_batch_size % ctx.world_size:
        sys.exit(f"--global-batch-size {args.global_batch_size} is not divisible by {ctx.world_size} processes")
    per_rank = args.global_batch_size // ctx.world_size

    model = build_model(args).to(ctx.device).train()
    vocab_size = model.config.vocab_size
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    autocast = args.bf16
    wrapped: torch.nn.Module = model
    if strategy == "ddp":
        wrapped = apply_ddp(model)
    elif strategy == "fsdp":
        wrapped = apply_fsdp(model, param_dtype=torch.bfloat16 if args.bf16 else None, cpu_offload=args.cpu_offload)
        autocast = False  # the FSDP policy casts parameters and inputs
    # fused=True: one kernel per step over all (sharded) parameters; works with DDP and FSDP2 (docs/finetuning.md)
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=True)

    start = 0
    if args.checkpoint_dir is not None and latest_training_state(args.checkpoint_dir) is not None:
        state = load_training_state(args.checkpoint_dir, wrapped, optimizer)
        start = state.step
        if ctx.is_main:
            print(f"resumed from {state.directory} (step {start})", flush=True)

    log = args.log_json.open("a", encoding="utf-8") if args.log_json and ctx.is_main else None
    bar = tqdm(total=args.steps, initial=start, disable=not ctx.is_main, desc=f"{strategy} x{ctx.world_size}")
    began = time.perf_counter()
    for step in range(start + 1, args.steps + 1):
        inputs, labels = global_batch(step, args, vocab_size)
        n_masked = int((labels != -100).sum())  # over the global batch: every rank knows it
        rows = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
        local_inputs, local_labels = inputs[rows].to(ctx.device), labels[rows].to(ctx.device)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = wrapped(input_ids=local_inputs).logits  # (per_rank, seq, vocab)
        local_sum = F.cross_entropy(
            logits.float().reshape(-1, vocab_size), local_labels.reshape(-1), ignore_index=-100, reduction="sum"
        )
        # Gradients are averaged over ranks, so scale by the world size: the average is then d(sum/n_masked).
        loss = local_sum * (ctx.world_size / n_masked)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        global_loss = float(all_reduce_mean(loss))
        bar.update(1)
        bar.set_postfix(loss=f"{global_loss:.4f}")
        if log is not None:
            log.write(json.dumps({"step": step, "loss": global_loss}) + "\n")
            log.flush()
        if args.checkpoint_dir is not None and args.save_every and (step % args.save_every == 0 or step == args.steps):
            save_training_state(args.checkpoint_dir, wrapped, optimizer, step, extra={"strategy": strategy})
        if args.fail_at_step == step and ctx.rank == ctx.world_size - 1:
            bar.close()
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    if log is not None:
        log.close()
    if args.output_dir is not None:
        save_distributed(wrapped, args.output_dir)
    if ctx.is_main:
        elapsed = time.perf_counter() - began
        print(f"done: {args.steps - start} steps in {elapsed:.1f}s ({strategy}, {ctx.world_size} process(es))")
    if ctx.distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    status = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under FSDP the gloo process group outlives destroy_process_group(): DTensor's dispatch caches keep its
        # device mesh, so its worker threads still run while the interpreter shuts down. A worker that drops its
        # reference to a tensor of the last collective at that moment needs the GIL, and a thread that takes the
        # GIL during finalisation is ended from inside a C++ destructor: "terminate called without an active
        # exception", SIGABRT, and a failed run after every step and file was written (seen about once in 30
        # runs on a loaded 2-core machine; upstream: pytorch/pytorch#179291). Everything is saved and closed
        # here, so leave without finalising.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise SystemExit(status)
