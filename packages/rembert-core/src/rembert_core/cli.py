"""The ``rembert`` command line.

``rembert backends``            the installed backends, tokenizers and plugins, with their status
``rembert inspect CHECKPOINT``  config summary, parameters per component, schema check, dtype, size

Exit codes: 0 success; 1 the command ran and found a problem (an invalid
checkpoint, a failed plugin with ``--strict``); 2 bad usage or unreadable input.
Errors are printed as one line on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rembert_core.errors import RemBertError

__all__ = ["main"]

from rembert_core.schema import ARCHITECTURES as ARCH_NAMES

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover


def cmd_backends(args: argparse.Namespace) -> int:
    import warnings

    from rembert_core.plugins import get_registry

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        registry = get_registry()
    if args.json:
        payload = {
            "backends": [b.describe() for b in registry.backends.values()],
            "tokenizers": [vars(t) for t in registry.tokenizers.values()],
            "plugins": [vars(p) for p in registry.plugins],
            "conflicts": registry.conflicts,
        }
        print(json.dumps(payload, indent=2))
    else:
        rows = []
        for plugin in registry.plugins:
            names = plugin.backends or ["-"]
            for name in names:
                backend = registry.backends.get(name)
                if name in registry.conflicts:
                    status = f"conflict ({', '.join(registry.conflicts[name])})"
                elif plugin.status == "failed":
                    status = f"failed: {plugin.error}"
                else:
                    status = plugin.status
                rows.append(
                    [
                        name,
                        (backend.version if backend else plugin.version) or "-",
                        plugin.distribution or f"(in code: {plugin.name})",
                        ",".join(backend.tasks) if backend else "-",
                        ",".join(backend.dtypes) if backend else "-",
                        status,
                    ]
                )
        if rows:
            print(_table(["backend", "version", "distribution", "tasks", "dtypes", "status"], rows))
        else:
            print("no rembert plugins installed (pip install rembert-torch or rembert-tf)")
        if registry.tokenizers:
            print()
            trows = [[t.name, t.kind, t.distribution or "-", t.import_path] for t in registry.tokenizers.values()]
            print(_table(["tokenizer", "kind", "distribution", "class"], trows))
    failed = [p for p in registry.plugins if p.status == "failed"]
    return EXIT_PROBLEM if (failed or registry.conflicts) and args.strict else EXIT_OK


def _inspect_payload(path: Path, task: str | None) -> dict[str, Any]:
    from rembert_core.errors import CheckpointError
    from rembert_core.schema import ARCHITECTURES, build_schema, check_layer_count, infer_task

    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    from rembert_core.loading import detect_format, read_config

    config = read_config(path if path.is_dir() else path.parent, {})

    from rembert_core.convert import orphan_staging
    from rembert_core.io.atomic import orphan_temp_files, pending_save

    base = path if path.is_dir() else path.parent
    detected = detect_format(path, recover=False)  # read-only: an interrupted save is reported, not finished
    with detected.format.open(detected.path) as weights:
        infos = weights.infos()
        check_layer_count(config, infos, str(detected.path))
        chosen = task or infer_task(config, infos)
        schema = build_schema(config, chosen)
        report = schema.validate({k: i.shape for k, i in infos.items()}, {k: i.dtype for k, i in infos.items()})
        dtypes = sorted({i.dtype for i in infos.values()})
        nbytes = sum(f.stat().st_size for f in weights.files)
        files = [str(f) for f in weights.files]
    return {
        "path": str(path),
        "format": detected.format.name,
        "ignored_formats": [f"{name} ({p.name})" for name, p in detected.ignored],
        "files": files,
        "task": chosen,
        "architecture": ARCHITECTURES[chosen],
        "config": {
            k: getattr(config, k)
            for k in (
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "input_embedding_size",
                "output_embedding_size",
                "intermediate_size",
                "hidden_act",
                "max_position_embeddings",
                "type_vocab_size",
                "is_decoder",
                "add_cross_attention",
                "num_labels",
            )
        },
        "parameters": schema.parameter_counts(),
        "total_parameters": sum(schema.parameter_counts().values()),
        "dtypes": dtypes,
        "size_bytes": nbytes,
        "valid": report.ok,
        "tensors": len(infos),
        "matched": len(report.matched),
        "newly_initialized": report.newly_initialized,
        "unused": report.unused,
        "errors": report.errors(),
        "interrupted_save": pending_save(base),
        "leftovers": [str(p) for p in [*orphan_temp_files(base), *orphan_staging(base)]],
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    payload = _inspect_payload(Path(args.checkpoint), args.task)
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        cfg = payload["config"]
        print(f"checkpoint   {payload['path']}")
        print(f"format       {payload['format']}")
        print(f"files        {', '.join(Path(f).name for f in payload['files'])}")
        if payload["ignored_formats"]:
            print(f"ignored      {', '.join(payload['ignored_formats'])} (lower precedence)")
        print(f"architecture {payload['architecture']} (task {payload['task']})")
        print(
            f"config       vocab {cfg['vocab_size']}, hidden {cfg['hidden_size']}, layers {cfg['num_hidden_layers']}, "
            f"heads {cfg['num_attention_heads']}, embeddings in/out {cfg['input_embedding_size']}/"
            f"{cfg['output_embedding_size']}, intermediate {cfg['intermediate_size']}, act {cfg['hidden_act']}"
        )
        print(f"dtype        {', '.join(payload['dtypes'])}")
        print(f"size         {_human_bytes(payload['size_bytes'])} in {payload['tensors']} tensors")
        rows = [[k, f"{v:,}"] for k, v in payload["parameters"].items()]
        rows.append(["total", f"{payload['total_parameters']:,}"])
        print(_table(["component", "parameters"], rows))
        if payload["newly_initialized"]:
            print(f"not in checkpoint (would be newly initialised): {', '.join(payload['newly_initialized'])}")
        if payload["unused"]:
            print(f"in checkpoint but unused by this task: {', '.join(payload['unused'])}")
        if payload["interrupted_save"]:
            print("pending      a save was interrupted after its commit point; the next load finishes it")
        for leftover in payload["leftovers"]:
            print(f"leftover     {leftover} (left by a killed save or convert; the next save there removes it)")
        if payload["valid"]:
            print(f"schema       valid ({payload['matched']} tensors matched)")
        else:
            print(f"schema       INVALID ({len(payload['errors'])} problems)")
            for line in payload["errors"]:
                print(f"  - {line}")
    return EXIT_OK if payload["valid"] else EXIT_PROBLEM


def _split(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def cmd_parity(args: argparse.Namespace) -> int:
    import os
    import warnings

    from tqdm import tqdm

    from rembert_core.config import RemBertConfig
    from rembert_core.errors import PluginError
    from rembert_core.loading import open_weights
    from rembert_core.parity import TOKENIZER_FIXTURES, default_config, run_parity, tokenizer_parity
    from rembert_core.plugins import get_backend, get_registry
    from rembert_core.schema import TASKS, infer_task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = get_registry()
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    reference = None
    if args.reference != "none":
        if args.reference in registry.backends:
            reference = registry.backends[args.reference]
        elif args.reference != "numpy":
            raise PluginError(f"reference backend {args.reference!r} is not installed")
    names = _split(args.backends) or [n for n in registry.backends]
    backends = [get_backend(n) for n in names]
    if not backends and reference is None:
        raise PluginError("no backends installed: pip install rembert-torch, rembert-tf or a backend plugin")
    tensors = None
    if args.checkpoint:
        config = RemBertConfig.from_pretrained(args.checkpoint)
        with open_weights(args.checkpoint) as weights:
            tensors = {k: weights[k] for k in weights}
        tasks = _split(args.tasks) or [infer_task(config, tensors)]
    else:
        config = default_config(args.config, layers=args.layers)
        tasks = _split(args.tasks) or list(TASKS)
    dtypes = _split(args.dtypes) or ["float32", "bfloat16"]
    total = len(tasks) * ((1 if reference else 0) + len(backends) * len(dtypes) + 1)
    with tqdm(total=total, desc="parity", unit="case", disable=args.no_progress or None, file=sys.stderr) as bar:

        def progress(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        report = run_parity(
            backends,
            tasks=tasks,
            dtypes=dtypes,
            config=config,
            tensors=tensors,
            reference=reference,
            batch=args.batch,
            seq_len=args.seq_len,
            seed=args.seed,
            progress=progress,
        )
    fixtures = args.tokenizer_fixtures or os.environ.get("REMBERT_TOKENIZER_FIXTURES")
    if fixtures is None and Path("tests/fixtures/sentencepiece").is_dir():
        fixtures = "tests/fixtures/sentencepiece"
    if not args.no_tokenizers and fixtures and {"sentencepiece", "fast"} <= set(registry.tokenizers):
        for model_name, corpus in TOKENIZER_FIXTURES:
            if (Path(fixtures) / model_name).is_file():
                report.tokenizers.append(tokenizer_parity(Path(fixtures) / model_name, Path(fixtures) / corpus))
    elif not args.no_tokenizers:
        report.skipped.append("tokenizers (rembert-tokenizers or its fixtures are not available)")
    print(report.render())
    if args.report:
        from rembert_core.io.atomic import atomic_write_bytes

        atomic_write_bytes(Path(args.report), report.to_json().encode("utf-8"))
        print(f"report written to {args.report}")
    return EXIT_OK if report.ok else EXIT_PROBLEM


def cmd_convert(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rembert_core.convert import convert_checkpoint

    with tqdm(desc="convert", unit="tensor", disable=args.no_progress or None, file=sys.stderr) as bar:

        def progress(name: str) -> None:
            bar.set_postfix_str(name[-60:])
            bar.update(1)

        result = convert_checkpoint(
            args.src,
            args.dst,
            dtype=args.dtype,
            max_shard_size=None if args.max_shard_size in ("0", "none") else args.max_shard_size,
            task=args.task,
            config_file=args.config,
            overwrite=args.overwrite,
            progress=progress,
        )
    print(
        f"converted {result.format} checkpoint ({ARCH_NAMES[result.task]}, {result.tensors} tensors) "
        f"to {result.destination} ({_human_bytes(result.bytes)} in {len(result.files)} files)"
    )
    if result.ignored_formats:
        print(f"also present but ignored (lower precedence): {', '.join(result.ignored_formats)}")
    if result.unused:
        print(f"not written (other heads): {', '.join(result.unused)}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from rembert_core import __version__
    from rembert_core.schema import TASKS

    parser = argparse.ArgumentParser(prog="rembert", description="RemBERT tools: backends, checkpoints, parity.")
    parser.add_argument("--version", action="version", version=f"rembert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("backends", help="list installed backends, tokenizers and plugins")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--strict", action="store_true", help="exit 1 if any plugin failed or conflicts")
    p.set_defaults(func=cmd_backends)

    p = sub.add_parser("inspect", help="summarise and validate a checkpoint")
    p.add_argument("checkpoint", help="checkpoint directory or weights file")
    p.add_argument("--task", choices=TASKS, help="check against this task (default: inferred)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("parity", help="compare every backend, head, output and gradient (exit 1 on any violation)")
    p.add_argument("checkpoint", nargs="?", help="checkpoint to use (default: the embedded seeded config)")
    p.add_argument("--backends", help="comma-separated backend names (default: all installed)")
    p.add_argument("--tasks", help=f"comma-separated tasks from {','.join(TASKS)} (default: all)")
    p.add_argument("--dtypes", help="comma-separated compute dtypes (default: float32,bfloat16)")
    p.add_argument("--reference", default="numpy", help="reference backend, run in float64 (default numpy; 'none')")
    p.add_argument("--config", default="tiny", choices=["tiny", "full"], help="embedded config (default tiny)")
    p.add_argument("--layers", type=int, help="number of layers of the embedded config")
    p.add_argument("--batch", type=int, default=3, help="batch size (default 3: full, padded, fully padded rows)")
    p.add_argument("--seq-len", type=int, default=8, help="sequence length (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
    p.add_argument("--report", help="write the JSON report to this file")
    p.add_argument("--tokenizer-fixtures", help="folder with the SentencePiece models and corpora")
    p.add_argument("--no-tokenizers", action="store_true", help="skip the slow-vs-fast tokenizer check")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("convert", help="convert any readable checkpoint to canonical safetensors")
    p.add_argument("src", help="checkpoint directory, weights file, or TensorFlow checkpoint prefix")
    p.add_argument("dst", help="output directory (created; must be empty unless --overwrite)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast every tensor (default: keep)")
    p.add_argument("--max-shard-size", default="2GB", help="largest shard, e.g. 2GB or 500MiB; 0 for one file")
    p.add_argument("--task", choices=TASKS, help="task schema to write (default: inferred)")
    p.add_argument("--config", help="RemBERT config.json when the source has none (original TF checkpoints)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RemBertError as exc:
        message = str(exc).replace("\n", " ")
        print(f"rembert {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # pragma: no cover
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
