"""Text generation with RemBertForCausalLM and its key/value cache.

    python examples/causal_lm.py
    python examples/causal_lm.py --model path/to/decoder-checkpoint --prompt "Once upon a time" --max-new-tokens 30

RemBERT is an encoder, but with ``is_decoder=True`` its attention is causal and RemBertForCausalLM predicts the
next token, as in transformers. ``generate`` feeds the prompt once, then one token per step, reusing every
layer's keys and values from ``past_key_values`` instead of recomputing the whole prefix.

Without --model the example trains a tiny decoder for --steps steps on --lines lines of the shipped corpus,
then continues the first words of each line: greedily with the cache, greedily without it (the same tokens,
only slower), and by sampling (--temperature, --top-k, --top-p).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_model_flags, corpus_lines, load_tokenizer, tiny_config

from rembert_torch import RemBertForCausalLM


def train_tiny(tokenizer, lines: list[str], args: argparse.Namespace) -> RemBertForCausalLM:  # type: ignore[no-untyped-def]
    model = RemBertForCausalLM(tiny_config(tokenizer, args, is_decoder=True))
    batch = tokenizer(lines, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)  # no loss on padding
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model.train()
    bar = tqdm(range(args.steps), desc="training a tiny decoder", unit="step")
    for _ in bar:
        loss = model(**batch, labels=labels).loss  # labels are the inputs: the shift is inside
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser)
    parser.add_argument("--prompt", action="append", help="prompt (repeatable; default: starts of corpus lines)")
    parser.add_argument("--lines", type=int, default=2, help="corpus lines to train on (tiny model)")
    parser.add_argument("--steps", type=int, default=80, help="training steps (tiny model)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--top-p", type=float, default=0.95)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.model)
    if args.model:
        model = RemBertForCausalLM.from_pretrained(args.model, is_decoder=True)
        prompts = args.prompt or ["The"]
    else:
        lines = corpus_lines(args.lines)
        model = train_tiny(tokenizer, lines, args)
        prompts = args.prompt or [" ".join(line.split()[:3]) for line in lines]

    # Prompts end with [CLS] ... (no [SEP]: the continuation follows); left padding keeps the last token last.
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    ids = [row[row != tokenizer.sep_token_id] for row in batch["input_ids"]]
    masks = [m[r != tokenizer.sep_token_id] for m, r in zip(batch["attention_mask"], batch["input_ids"], strict=True)]
    input_ids, attention_mask = torch.stack(ids), torch.stack(masks)  # (batch, prompt_len)

    model.generate(input_ids, attention_mask, max_new_tokens=2)  # warm-up, so that the timings compare steps
    timings, outputs = {}, {}
    for use_cache in (True, False):
        start = time.perf_counter()
        outputs[use_cache] = model.generate(
            input_ids, attention_mask, max_new_tokens=args.max_new_tokens, use_cache=use_cache, eos_token_id=-1
        )
        timings[use_cache] = time.perf_counter() - start
    same = torch.equal(outputs[True], outputs[False])
    sampled = model.generate(
        input_ids,
        attention_mask,
        max_new_tokens=args.max_new_tokens,
        do_sample=True,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        generator=torch.Generator().manual_seed(args.seed),
        eos_token_id=-1,
    )
    prompt_len = input_ids.shape[1]
    for i, prompt in enumerate(prompts):
        greedy = tokenizer.decode(outputs[True][i, prompt_len:], skip_special_tokens=True)
        sample = tokenizer.decode(sampled[i, prompt_len:], skip_special_tokens=True)
        print(f"{prompt!r}\n  greedy:  {greedy!r}\n  sampled: {sample!r}")
    print(
        f"greedy with the cache {timings[True]:.3f} s, without {timings[False]:.3f} s; "
        f"same tokens: {'yes' if same else 'NO'}"
    )
    if not same:
        raise SystemExit("generation with and without the key/value cache gave different tokens")
    return same


if __name__ == "__main__":
    main()
