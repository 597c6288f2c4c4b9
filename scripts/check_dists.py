"""Check the built sdists and wheels in a folder before anyone installs or uploads them.

    python scripts/check_dists.py dist/

For each of the four packages there must be exactly one wheel and one sdist at the root ``VERSION``. A wheel
fails if it lacks ``py.typed``, its ``LICENSE`` (``.dist-info/licenses/LICENSE``, named in ``License-File``),
its entry point (``rembert`` group for the backend/tokenizer plugins; the ``rembert`` console script and the
built-in plugin module for rembert-core, which registers it in code), the requirement on a compatible
``rembert-core``; or if it carries tests, fixtures, caches, files outside its package and ``.dist-info``,
absolute or ``..`` member names, or the build machine's absolute paths inside a file. An sdist must build on
its own: ``pyproject.toml``, ``README.md``, ``LICENSE``, ``PKG-INFO`` and ``py.typed`` under one top folder.
Exit status 1 with one line per problem; ``nox -s build`` runs this after building.
"""

from __future__ import annotations

import configparser
import re
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))
from versioning import ROOT, compatible_range, read_version


@dataclass(frozen=True)
class Expected:
    """What one distribution must carry."""

    module: str
    #: Required entry points: group -> {name: value}.
    entry_points: dict[str, dict[str, str]]
    #: Files (relative to the module folder) that must be there beyond py.typed and __init__.py.
    files: tuple[str, ...] = ()
    #: Sibling distributions it requires at a compatible range.
    requires: tuple[str, ...] = ("rembert-core",)
    #: Distributions that must not be base requirements (the split: core and tokenizers need no framework;
    #: rembert-tf leaves the TensorFlow build to its extras).
    not_required: tuple[str, ...] = ("torch", "tensorflow", "tensorflow-cpu", "transformers")


EXPECTED = {
    "rembert-core": Expected(
        "rembert_core",
        {"console_scripts": {"rembert": "rembert_core.cli:main"}},
        # The built-in plugin: registered in code by rembert_core.plugins (not an entry point), so its module
        # and the hook specs it implements must be in the wheel.
        files=("formats.py", "hookspecs.py", "plugins.py", "cli.py"),
        requires=(),
    ),
    "rembert-torch": Expected(
        "rembert_torch",
        {"rembert": {"torch": "rembert_torch.plugin"}},
        files=("plugin.py",),
        not_required=("tensorflow", "tensorflow-cpu", "transformers"),
    ),
    "rembert-tf": Expected("rembert_tf", {"rembert": {"tf": "rembert_tf.plugin"}}, files=("plugin.py",)),
    "rembert-tokenizers": Expected(
        "rembert_tokenizers", {"rembert": {"tokenizers": "rembert_tokenizers.plugin"}}, files=("plugin.py",)
    ),
}

#: Path components that must never ship in a wheel.
FORBIDDEN_PARTS = frozenset({"tests", "test", "fixtures", "conftest.py", "__pycache__", ".pytest_cache"})
FORBIDDEN_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej")
#: Absolute paths of the build machine that must not appear inside shipped files: the checkout, the
#: interpreter's environment and the home directory.
LEAK_MARKERS = tuple(sorted({str(ROOT), sys.prefix, str(Path.home())} - {"/", ""}))


def _metadata(text: str) -> dict[str, list[str]]:
    message = HeaderParser().parsestr(text)
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return fields


def _requirement_name(requirement: str) -> str:
    """``tensorflow-cpu`` of ``tensorflow_cpu>=2.16.1; extra == "cpu"`` (normalised)."""
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _specifiers(requirement: str) -> set[str]:
    """``{">=0.1.0", "<0.2"}`` of ``rembert-core<0.2,>=0.1.0``."""
    spec = requirement.split(";")[0][len(re.split(r"[\s<>=!~]", requirement, maxsplit=1)[0]) :]
    return {s.strip() for s in spec.replace(" ", "").split(",") if s.strip()}


def _bad_name(name: str) -> str | None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute member name"
    if ".." in PurePosixPath(name).parts:
        return "member name with '..'"
    return None


def _leaks(name: str, data: bytes) -> Iterable[str]:
    for marker in LEAK_MARKERS:
        if marker.encode() in data:
            yield f"{name} contains the absolute path {marker!r}"


def check_wheel(path: Path, version: str) -> list[str]:
    """Problems of one wheel (empty if none)."""
    problems: list[str] = []
    dist_name, wheel_version = path.name.split("-")[:2]
    name = dist_name.replace("_", "-")
    expected = EXPECTED.get(name)
    if expected is None:
        return [f"{path.name}: not one of {sorted(EXPECTED)}"]
    if wheel_version != version:
        problems.append(f"version {wheel_version} is not VERSION {version}")
    info = f"{dist_name}-{wheel_version}.dist-info"
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        members = set(names)
        for member in names:
            why = _bad_name(member)
            if why:
                problems.append(f"{why}: {member}")
                continue
            parts = PurePosixPath(member).parts
            if parts[0] not in (expected.module, info):
                problems.append(f"file outside {expected.module}/ and {info}/: {member}")
            if FORBIDDEN_PARTS.intersection(parts) or member.endswith(FORBIDDEN_SUFFIXES):
                problems.append(f"tests, fixtures or caches leaked in: {member}")
            problems.extend(_leaks(member, archive.read(member)))
        for required in ("__init__.py", "py.typed", *expected.files):
            if f"{expected.module}/{required}" not in members:
                problems.append(f"missing {expected.module}/{required}")
        metadata_name = f"{info}/METADATA"
        if metadata_name not in members:
            return [*problems, f"missing {metadata_name}"]
        meta = _metadata(archive.read(metadata_name).decode("utf-8"))
        if f"{info}/licenses/LICENSE" not in members:
            problems.append(f"missing the license file {info}/licenses/LICENSE")
        if "LICENSE" not in meta.get("License-File", []):
            problems.append("METADATA names no License-File: LICENSE")
        if meta.get("License-Expression") != ["Apache-2.0"]:
            problems.append(f"License-Expression is {meta.get('License-Expression')}, not Apache-2.0")
        requires = meta.get("Requires-Dist", [])
        base_specs = {_requirement_name(r): _specifiers(r) for r in requires if "extra ==" not in r}
        for sibling in expected.requires:
            wanted = compatible_range(version)
            if base_specs.get(sibling) != set(wanted.split(",")):
                problems.append(f"Requires-Dist lacks {sibling}{wanted} (has {base_specs.get(sibling)})")
        base = {_requirement_name(r) for r in requires if "extra ==" not in r}
        for forbidden in expected.not_required:
            if forbidden in base:
                problems.append(f"{forbidden} is a base requirement (allowed only in an extra)")
        eps_name = f"{info}/entry_points.txt"
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        if eps_name in members:
            parser.read_string(archive.read(eps_name).decode("utf-8"))
        for group, wanted_eps in expected.entry_points.items():
            for ep_name, value in wanted_eps.items():
                found = parser.get(group, ep_name, fallback=None)
                if found is None:
                    problems.append(f"missing entry point [{group}] {ep_name} = {value}")
                elif found.strip() != value:
                    problems.append(f"entry point [{group}] {ep_name} = {found.strip()}, expected {value}")
                else:
                    target = value.split(":")[0].replace(".", "/")
                    if f"{target}.py" not in members and f"{target}/__init__.py" not in members:
                        problems.append(f"entry point [{group}] {ep_name} targets {value}, not in the wheel")
    return [f"{path.name}: {p}" for p in problems]


def check_sdist(path: Path, version: str) -> list[str]:
    """Problems of one sdist (empty if none)."""
    problems: list[str] = []
    stem = path.name.removesuffix(".tar.gz")
    dist_name, sdist_version = stem.rsplit("-", 1)
    name = dist_name.replace("_", "-")
    expected = EXPECTED.get(name)
    if expected is None:
        return [f"{path.name}: not one of {sorted(EXPECTED)}"]
    if sdist_version != version:
        problems.append(f"version {sdist_version} is not VERSION {version}")
    with tarfile.open(path) as archive:
        members = {m.name: m for m in archive.getmembers()}
        for member_name, member in members.items():
            why = _bad_name(member_name)
            if why:
                problems.append(f"{why}: {member_name}")
            elif PurePosixPath(member_name).parts[0] != stem:
                problems.append(f"member outside {stem}/: {member_name}")
            if member.issym() or member.islnk():
                problems.append(f"link in the sdist: {member_name}")
            if member.isfile() and member_name.endswith(FORBIDDEN_SUFFIXES):
                problems.append(f"caches leaked in: {member_name}")
            if member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    problems.extend(_leaks(member_name, handle.read()))
        for required in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO", f"src/{expected.module}/py.typed"):
            if f"{stem}/{required}" not in members:
                problems.append(f"missing {required}")
    return [f"{path.name}: {p}" for p in problems]


def check_folder(folder: Path, version: str | None = None) -> list[str]:
    """Problems of every distribution in ``folder``, plus any of the four packages missing a wheel or sdist."""
    version = version or read_version()
    problems: list[str] = []
    found: dict[str, list[str]] = {name: [] for name in EXPECTED}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".whl"):
            problems += check_wheel(path, version)
            kind = "wheel"
            name = path.name.split("-")[0].replace("_", "-")
        elif path.name.endswith(".tar.gz"):
            problems += check_sdist(path, version)
            kind = "sdist"
            name = path.name.removesuffix(".tar.gz").rsplit("-", 1)[0].replace("_", "-")
        else:
            continue
        if name in found:
            found[name].append(kind)
    for name, kinds in found.items():
        for kind in ("wheel", "sdist"):
            if kinds.count(kind) != 1:
                problems.append(f"{folder}: {kinds.count(kind)} {kind}s of {name} (expected 1 at {version})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check_folder(Path(argv[0]))
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {argv[0]}", file=sys.stderr)
        return 1
    print(f"{argv[0]}: {len(EXPECTED)} wheels and {len(EXPECTED)} sdists at {read_version()} look right")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
