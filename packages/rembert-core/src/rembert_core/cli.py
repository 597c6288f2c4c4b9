"""The ``rembert`` command line.

``rembert backends``            the installed backends, tokenizers and plugins, with their status
``rembert inspect CHECKPOINT``  config summary, parameters per component, schema check, dtype, size
``rembert parity [CHECKPOINT]`` every backend, head, output and gradient against each other and the references
``rembert convert SRC DST``     any readable checkpoint to canonical safetensors
``rembert pipeline TASK``       a task (fill-mask, ner, question-answering, ...) on texts, one JSON result per line

Exit codes: 0 success; 1 the command ran and found a problem (an invalid
checkpoint, a failed or unavailable plugin with ``--strict``, a parity
violation, no reference to compare with); 2 bad usage or unreadable input.
Errors are printed as one line on standard error.

No framework log noise: TensorFlow writes log lines straight to file descriptor 2 while it loads, before any
setting can reach them; the command loads it (whichever plugin imports it) with that descriptor pointed at a
temporary file, shown only if the import fails, and sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set) and
TensorFlow's Python logger to ERROR for what it would log later.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO

from rembert_core.errors import RemBertError

if TYPE_CHECKING:
    from rembert_core.backend import Backend
    from rembert_core.plugins import Registry

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


# -- no framework log noise ----------------------------------------------------------------------

#: Top-level modules that write to file descriptor 2 while they load (TensorFlow's absl/C++ start-up lines).
NOISY_MODULES = ("tensorflow",)
#: Python loggers of the frameworks, held at ERROR during a command.
FRAMEWORK_LOGGERS = ("tensorflow", "absl", "h5py")

_FD_LOCK = threading.RLock()


@contextlib.contextmanager
def _stderr_to_file() -> Iterator[BinaryIO]:
    """File descriptor 2 (what C and C++ libraries write to) pointed at a temporary file for the duration."""
    import tempfile

    with _FD_LOCK, tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's ``exec_module`` with file descriptor 2 captured; replays it only on failure."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _stderr_to_file() as capture:
            try:
                self.loader.exec_module(module)
            except BaseException:
                failed = True
                raise
            else:
                failed = False
            finally:
                capture.seek(0)
                text = capture.read()
                module.__loader__ = self.loader  # once loaded, the module looks as it always does
                if module.__spec__ is not None:
                    module.__spec__.loader = self.loader
        if failed and text:  # pragma: no cover - only when the framework's import itself fails
            sys.stderr.write(text.decode("utf-8", "replace"))


class _QuietImports(importlib.abc.MetaPathFinder):
    """Finds :data:`NOISY_MODULES` as usual and loads them through :class:`_QuietLoader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in NOISY_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


@contextlib.contextmanager
def quiet_frameworks() -> Iterator[None]:
    """Framework start-up and log lines kept off the terminal for the duration (see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read by TensorFlow when it loads: left set
    levels = {name: logging.getLogger(name).level for name in FRAMEWORK_LOGGERS}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    finder = _QuietImports()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def unavailable_reason(backend: Backend, *, load: bool = False) -> str | None:
    """Why ``backend`` cannot run, from the modules it declares (``Backend.requires``); None when it can.

    Without ``load`` only their presence is checked (``find_spec``: nothing is imported, so listing stays
    fast); with it they are imported, which also catches a broken install.
    """
    for module in backend.requires:
        try:
            found = module in sys.modules or importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"needs {module}, which is not installed"
    if load:
        for module in backend.requires:
            try:
                importlib.import_module(module)
            except Exception as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                return f"needs {module}, which cannot be imported ({type(exc).__name__}: {message})"
    return None


def _load_registry() -> tuple[Registry, list[str]]:
    """The plugin registry, and the warnings loading it gave (a failed plugin), as text."""
    import warnings

    from rembert_core.plugins import get_registry

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = get_registry()
    return registry, [str(w.message) for w in caught]


def cmd_backends(args: argparse.Namespace) -> int:
    registry, _ = _load_registry()
    # --strict imports each backend's declared modules (quietly): a broken install is found, not just a missing one.
    unavailable = {name: unavailable_reason(b, load=args.strict) for name, b in registry.backends.items()}
    if args.json:
        payload = {
            "backends": [
                {
                    **b.describe(),
                    "requires": list(b.requires),
                    "reference": b.reference,
                    "available": unavailable[name] is None,
                    "unavailable": unavailable[name],
                }
                for name, b in registry.backends.items()
            ],
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
                elif unavailable.get(name):
                    status = f"unavailable: {unavailable[name]}"
                elif backend is not None and backend.reference:
                    status = f"{plugin.status} (reference: {backend.reference})"
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
    missing = [name for name, why in unavailable.items() if why]
    return EXIT_PROBLEM if (failed or registry.conflicts or missing) and args.strict else EXIT_OK


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


NO_REFERENCE = (
    "no reference to compare with: install transformers 4.57 as a backend "
    "(pip install ./examples/rembert-reference) or the float64 NumPy backend (pip install ./examples/rembert-numpy); "
    "--allow-no-reference compares the backends with each other only"
)


def _choose_references(
    registry: Registry, choice: str, backends: dict[str, Backend]
) -> tuple[Backend | None, list[Backend], list[str]]:
    """(the exact float64 backend, the reference backends, names asked for but not installed) for ``--reference``."""
    from rembert_core.errors import PluginError

    if choice == "none":
        return None, [], []
    if choice == "auto":
        exact = registry.backends.get("numpy")
        exact = exact if exact is not None and "float64" in exact.dtypes else None
        return exact, [b for b in backends.values() if b.reference], []
    exact, refs, absent = None, [], []
    for name in _split(choice) or []:
        backend = registry.backends.get(name)
        if backend is None:
            absent.append(name)
        elif backend.reference:
            refs.append(backend)
        elif "float64" in backend.dtypes and exact is None:
            exact = backend
        else:
            raise PluginError(
                f"--reference {name}: the backend is neither a reference implementation nor able to run in float64"
            )
    return exact, refs, absent


def cmd_parity(args: argparse.Namespace) -> int:
    import os

    from rembert_core.errors import PluginError
    from rembert_core.parity import TOKENIZER_FIXTURES, ParityReport, default_config, run_parity, tokenizer_parity
    from rembert_core.plugins import get_backend
    from rembert_core.schema import TASKS, infer_task

    if args.checkpoint:
        from rembert_core.loading import plan_load

        with plan_load(args.checkpoint) as plan:  # "checkpoint not found" for a missing path; Hub ids too
            config = plan.config
            tensors = {key: plan.weights[key] for key in plan.weights}
        tasks = _split(args.tasks) or [infer_task(config, tensors)]
        source = f"checkpoint {args.checkpoint}"
    else:
        config = default_config(args.config, layers=args.layers)
        tasks = _split(args.tasks) or list(TASKS)
        tensors = None
        source = f"{args.config} config (embedded)"
    registry, _ = _load_registry()  # a plugin that failed is listed in the header, not warned about
    chosen = _split(args.backends)
    selected = {name: get_backend(name) for name in chosen} if chosen else dict(registry.backends)
    exact, references, absent = _choose_references(registry, args.reference, registry.backends)
    for ref in references:
        selected.setdefault(ref.name, ref)  # references take part whatever --backends says
    # Before anything runs: which backends can, and why the others cannot (said once, here).
    unavailable: dict[str, str] = {}
    for candidate in [*selected.values(), *([exact] if exact is not None else [])]:
        why = unavailable_reason(candidate, load=True)
        if why:
            unavailable[candidate.name] = why
    for failed in (p for p in registry.plugins if p.status == "failed"):
        unavailable[f"plugin {failed.name}"] = f"{failed.distribution or 'in code'}: {failed.error}"
    for name in registry.conflicts:
        unavailable[name] = f"registered by several distributions ({', '.join(registry.conflicts[name])})"
    for name in absent:
        unavailable[name] = "asked for with --reference, not installed"
    backends = [b for b in selected.values() if b.name not in unavailable]
    if exact is not None and exact.name in unavailable:
        exact = None
    usable_refs = {b.name: b.reference for b in backends if b.reference}
    dtypes = _split(args.dtypes) or ["float32", "bfloat16"]
    setup = {"source": source, "batch": args.batch, "seq_len": args.seq_len, "seed": args.seed}
    preview = ParityReport(
        config=config.to_dict(),
        backends=[b.name for b in sorted(backends, key=lambda b: not b.reference)],
        tasks=tasks,
        dtypes=dtypes,
        reference=f"{exact.name}:float64" if exact is not None else None,
        references=usable_refs,
        unavailable=unavailable,
        versions={b.name: f"{b.version or '?'} ({b.distribution})" if b.distribution else b.version for b in backends},
        setup=setup,
    )
    print("\n".join(preview.header()), flush=True)
    if not backends:
        raise PluginError("no backend can run: pip install rembert-torch, rembert-tf or a backend plugin")
    if exact is None and not usable_refs and not (args.allow_no_reference or args.reference == "none"):
        print(f"\nFAIL: {NO_REFERENCE}")
        return EXIT_PROBLEM
    from tqdm import tqdm

    with tqdm(desc="parity", unit="run", disable=args.no_progress or None, file=sys.stderr, leave=False) as bar:

        def progress(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        report = run_parity(
            backends,
            tasks=tasks,
            dtypes=dtypes,
            config=config,
            tensors=tensors,
            reference=exact,
            batch=args.batch,
            seq_len=args.seq_len,
            seed=args.seed,
            progress=progress,
        )
    report.unavailable = unavailable
    report.setup = {**report.setup, **setup}
    fixtures = args.tokenizer_fixtures or os.environ.get("REMBERT_TOKENIZER_FIXTURES")
    if fixtures is None and Path("tests/fixtures/sentencepiece").is_dir():
        fixtures = "tests/fixtures/sentencepiece"
    if not args.no_tokenizers and fixtures and {"sentencepiece", "fast"} <= set(registry.tokenizers):
        for model_name, corpus in TOKENIZER_FIXTURES:
            if (Path(fixtures) / model_name).is_file():
                report.tokenizers.append(tokenizer_parity(Path(fixtures) / model_name, Path(fixtures) / corpus))
    elif not args.no_tokenizers:
        report.skipped.append("tokenizers (rembert-tokenizers or its fixtures are not available)")
    print(report.summary(header=False))
    if args.verbose:
        print()
        print(report.render())
    if args.report:
        from rembert_core.io.atomic import atomic_write_bytes

        for target in args.report:
            html = Path(target).suffix.lower() in (".html", ".htm")
            text = report.to_html() if html else report.to_json()
            atomic_write_bytes(Path(target), text.encode("utf-8"))
        print(f"reports: {', '.join(args.report)}")
    requested_missing = [name for name in (chosen or []) if name in unavailable]
    return EXIT_OK if report.ok and not requested_missing else EXIT_PROBLEM


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


def _pipeline_value(text: str) -> Any:
    """An option value or input line: JSON when it parses as JSON (numbers, lists, objects, true/null), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pipeline_inputs(args: argparse.Namespace) -> Iterator[Any]:
    lines: Iterable[str] = args.texts if args.texts else (line.rstrip("\r\n") for line in sys.stdin)
    for line in lines:
        if not line.strip() and not args.texts:
            continue  # blank lines of stdin separate nothing
        item: Any = line
        if line.lstrip().startswith("{"):
            parsed = _pipeline_value(line)
            item = parsed if isinstance(parsed, dict) else line
        if args.question is not None and isinstance(item, str):
            item = {"question": args.question, "context": item}
        yield item


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def cmd_pipeline(args: argparse.Namespace) -> int:
    from rembert_core.errors import InputError
    from rembert_core.pipelines import pipeline

    options: dict[str, Any] = {}
    for pair in args.option or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--option takes KEY=VALUE, got {pair!r}")
        options[key.replace("-", "_")] = _pipeline_value(value)
    pipe = pipeline(
        args.task,
        model=args.model,
        tokenizer=args.tokenizer,
        backend=args.backend,
        dtype=args.dtype,
        batch_size=args.batch_size,
        progress=False,
        **options,
    )
    for result in pipe(_pipeline_inputs(args)):
        print(json.dumps(result, ensure_ascii=False, default=_json_default), flush=True)
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

    p = sub.add_parser(
        "parity",
        help="compare every backend, head, output and gradient with the references (exit 1 on any violation)",
        description="Every backend x head x dtype against transformers 4.57 (the rembert-reference plugin), the "
        "float64 NumPy run (the rembert-numpy plugin) and each other. Prints a summary: one line per pair of runs, "
        "the worst error per head as a fraction of its bound; --verbose or --report give every field.",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint to use (default: the embedded seeded config)")
    p.add_argument("--backends", help="comma-separated backend names (default: all installed)")
    p.add_argument("--tasks", help=f"comma-separated tasks from {','.join(TASKS)} (default: all)")
    p.add_argument("--dtypes", help="comma-separated compute dtypes (default: float32,bfloat16)")
    p.add_argument(
        "--reference",
        default="auto",
        help="references: 'auto' (default: every installed reference backend, such as transformers, and numpy "
        "run in float64), comma-separated names, or 'none' (compare the backends with each other only)",
    )
    p.add_argument(
        "--allow-no-reference",
        action="store_true",
        help="run even when no reference is installed (otherwise that is an error, exit 1)",
    )
    p.add_argument("--config", default="tiny", choices=["tiny", "full"], help="embedded config (default tiny)")
    p.add_argument("--layers", type=int, help="number of layers of the embedded config")
    p.add_argument("--batch", type=int, default=3, help="batch size (default 3: full, padded, fully padded rows)")
    p.add_argument("--seq-len", type=int, default=8, help="sequence length (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
    p.add_argument(
        "--report",
        action="append",
        metavar="FILE",
        help="write the full report: FILE.html (summary, figure, sortable table of every field) or JSON "
        "(any other name); repeat for both",
    )
    p.add_argument("--verbose", action="store_true", help="also print the table of every compared field")
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

    p = sub.add_parser(
        "pipeline",
        help="run a task (fill-mask, ner, question-answering, ...) on texts; one JSON result per line",
        description="Texts come from the arguments, else one per line of stdin (streamed). A line that is a JSON "
        'object is passed as one input: {"text": ..., "text_pair": ...} for text pairs, {"question": ..., '
        '"context": ...} for question answering. Task options: -o top_k=3 -o candidate_labels=a,b (values are '
        "read as JSON when they parse, else as text).",
    )
    p.add_argument(
        "task",
        help="fill-mask, text-classification, token-classification, question-answering, "
        "feature-extraction, text-generation, zero-shot-classification (or an alias)",
    )
    p.add_argument("texts", nargs="*", metavar="TEXT", help="inputs (default: the lines of stdin)")
    p.add_argument("--model", required=True, help="checkpoint directory or Hub id")
    p.add_argument("--backend", default="torch", help="backend that runs the model: torch (default), tf, numpy, ...")
    p.add_argument("--tokenizer", help="tokenizer directory (default: the checkpoint's)")
    p.add_argument("--dtype", default="float32", help="compute dtype (default float32)")
    p.add_argument("--batch-size", type=int, default=8, help="rows per forward pass (default 8)")
    p.add_argument("--question", help="question-answering: the question asked of every text (each TEXT a context)")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="a task option; repeat for more")
    p.set_defaults(func=cmd_pipeline)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse gives positionals that follow options to no one: `pipeline TASK --model M TEXT` keeps them
        if args.command != "pipeline" or any(item.startswith("-") and item != "-" for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.texts = [*args.texts, *extra]
    try:
        with quiet_frameworks():
            return int(args.func(args))
    except RemBertError as exc:
        message = str(exc).replace("\n", " ")
        print(f"rembert {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # pragma: no cover
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
