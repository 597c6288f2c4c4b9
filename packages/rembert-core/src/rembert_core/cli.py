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
    from rembert_core.checkpoint import open_weights
    from rembert_core.config import RemBertConfig
    from rembert_core.errors import CheckpointError
    from rembert_core.schema import ARCHITECTURES, build_schema, infer_task

    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    config = RemBertConfig.from_pretrained(path if path.is_dir() else path.parent)
    with open_weights(path) as weights:
        infos = weights.infos()
        chosen = task or infer_task(config, infos)
        schema = build_schema(config, chosen)
        report = schema.validate({k: i.shape for k, i in infos.items()}, {k: i.dtype for k, i in infos.items()})
        dtypes = sorted({i.dtype for i in infos.values()})
        nbytes = sum(f.stat().st_size for f in weights.files)
        files = [str(f) for f in weights.files]
    return {
        "path": str(path),
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
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    payload = _inspect_payload(Path(args.checkpoint), args.task)
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        cfg = payload["config"]
        print(f"checkpoint   {payload['path']}")
        print(f"files        {', '.join(Path(f).name for f in payload['files'])}")
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
        if payload["valid"]:
            print(f"schema       valid ({payload['matched']} tensors matched)")
        else:
            print(f"schema       INVALID ({len(payload['errors'])} problems)")
            for line in payload["errors"]:
                print(f"  - {line}")
    return EXIT_OK if payload["valid"] else EXIT_PROBLEM


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
