"""The release checks themselves: scripts/check_dists.py (run by ``nox -s build``) must fail a wheel that lacks
py.typed, its license or its entry point, or that leaks tests or absolute paths; scripts/versioning.py keeps
the packages in lockstep."""

from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str) -> ModuleType:
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


versioning = _script("versioning")
check_dists = _script("check_dists")
VERSION = versioning.read_version()
RANGE = versioning.compatible_range(VERSION)

# -- a well-formed wheel, then one defect at a time -------------------------------------------------


def _wheel_files(name: str) -> dict[str, str]:
    module = name.replace("-", "_")
    info = f"{module}-{VERSION}.dist-info"
    requires = "" if name == "rembert-core" else f"Requires-Dist: rembert-core{RANGE}\n"
    files = {
        f"{module}/__init__.py": '"""x"""\n',
        f"{module}/py.typed": "",
        f"{info}/METADATA": (
            f"Metadata-Version: 2.4\nName: {name}\nVersion: {VERSION}\nLicense-Expression: Apache-2.0\n"
            f"License-File: LICENSE\nRequires-Dist: numpy>=1.24\n{requires}"
            'Requires-Dist: tensorflow-cpu>=2.16.1; extra == "cpu"\n'
        ),
        f"{info}/licenses/LICENSE": "Apache License 2.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\n",
        f"{info}/RECORD": "",
    }
    if name == "rembert-core":
        files[f"{info}/entry_points.txt"] = "[console_scripts]\nrembert = rembert_core.cli:main\n"
        for extra in ("formats.py", "hookspecs.py", "plugins.py", "cli.py"):
            files[f"{module}/{extra}"] = ""
    else:
        plugin = name.removeprefix("rembert-")
        files[f"{info}/entry_points.txt"] = f"[rembert]\n{plugin} = {module}.plugin\n"
        files[f"{module}/plugin.py"] = ""
    return files


def _write_wheel(folder: Path, name: str, files: dict[str, str]) -> Path:
    path = folder / f"{name.replace('-', '_')}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def _problems(tmp_path: Path, name: str, edit: Callable[[dict[str, str]], None]) -> list[str]:
    files = _wheel_files(name)
    edit(files)
    return check_dists.check_wheel(_write_wheel(tmp_path, name, files), VERSION)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["rembert-core", "rembert-torch", "rembert-tf", "rembert-tokenizers"])
def test_a_well_formed_wheel_passes(tmp_path: Path, name: str) -> None:
    assert _problems(tmp_path, name, lambda files: None) == []


def _drop(suffix: str) -> Callable[[dict[str, str]], None]:
    def edit(files: dict[str, str]) -> None:
        (member,) = [m for m in files if m.endswith(suffix)]
        del files[member]

    return edit


def _add(member: str, text: str = "") -> Callable[[dict[str, str]], None]:
    return lambda files: files.__setitem__(member, text)


def _replace(old: str, new: str) -> Callable[[dict[str, str]], None]:
    def edit(files: dict[str, str]) -> None:
        for member, text in files.items():
            files[member] = text.replace(old, new)

    return edit


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        ("rembert-torch", _drop("/py.typed"), "missing rembert_torch/py.typed"),
        ("rembert-core", _drop("/py.typed"), "missing rembert_core/py.typed"),
        ("rembert-tf", _drop("licenses/LICENSE"), "missing the license file"),
        ("rembert-tf", _replace("License-File: LICENSE\n", ""), "no License-File"),
        ("rembert-tokenizers", _drop("entry_points.txt"), "missing entry point [rembert] tokenizers"),
        ("rembert-torch", _replace("torch = rembert_torch.plugin", "torch = rembert_torch.other"), "expected"),
        ("rembert-torch", _drop("/plugin.py"), "targets rembert_torch.plugin, not in the wheel"),
        ("rembert-core", _replace("rembert = rembert_core.cli:main", "remb = rembert_core.cli:main"), "console"),
        ("rembert-core", _drop("/formats.py"), "missing rembert_core/formats.py"),  # the built-in plugin
        ("rembert-torch", _add("rembert_torch/tests/test_x.py"), "tests, fixtures or caches leaked in"),
        ("rembert-tf", _add("tests/fixtures/model.safetensors"), "leaked in"),
        ("rembert-tf", _add("rembert_tf/__pycache__/x.cpython-311.pyc"), "leaked in"),
        ("rembert-tf", _add("/etc/rembert.cfg"), "absolute member name"),
        ("rembert-tf", _add("rembert_tf/../../evil.py"), "'..'"),
        ("rembert-tf", _add("conftest.py"), "file outside"),
        ("rembert-torch", _add("rembert_torch/paths.py", f"DATA = {str(ROOT)!r}\n"), "absolute path"),
        ("rembert-torch", _replace(f"rembert-core{RANGE}", "rembert-core>=0.0.1"), "Requires-Dist lacks"),
        ("rembert-tf", _replace('tensorflow-cpu>=2.16.1; extra == "cpu"', "tensorflow-cpu>=2.16.1"), "base req"),
        ("rembert-core", _replace("numpy>=1.24", "torch>=2.2"), "torch is a base requirement"),
        ("rembert-torch", _replace("License-Expression: Apache-2.0", "License-Expression: MIT"), "Apache-2.0"),
    ],
)
def test_a_defective_wheel_fails(
    tmp_path: Path, name: str, edit: Callable[[dict[str, str]], None], expected: str
) -> None:
    problems = _problems(tmp_path, name, edit)
    assert any(expected in p for p in problems), problems


def _write_sdist(folder: Path, name: str, members: dict[str, bytes]) -> Path:
    stem = f"{name.replace('-', '_')}-{VERSION}"
    path = folder / f"{stem}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member if member.startswith("/") else f"{stem}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_sdist_check(tmp_path: Path) -> None:
    good = {n: b"x" for n in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO", "src/rembert_tf/py.typed")}
    assert check_dists.check_sdist(_write_sdist(tmp_path, "rembert-tf", good), VERSION) == []
    del good["LICENSE"]
    good["/abs/x.py"] = b""
    good["src/rembert_tf/cfg.py"] = f"ROOT = {str(ROOT)!r}".encode()
    problems = check_dists.check_sdist(_write_sdist(tmp_path, "rembert-tf", good), VERSION)
    assert any("missing LICENSE" in p for p in problems), problems
    assert any("absolute member name" in p for p in problems), problems
    assert any("absolute path" in p for p in problems), problems


def test_folder_check_wants_one_wheel_and_sdist_of_each_package(tmp_path: Path) -> None:
    _write_wheel(tmp_path, "rembert-torch", _wheel_files("rembert-torch"))
    problems = check_dists.check_folder(tmp_path, VERSION)
    assert any("0 wheels of rembert-core" in p for p in problems), problems
    assert any("0 sdists of rembert-torch" in p for p in problems), problems
    assert not any("wheels of rembert-torch" in p for p in problems), problems


# -- versions --------------------------------------------------------------------------------------


def test_every_project_matches_the_version_file() -> None:
    assert versioning.mismatches(VERSION) == []


@pytest.mark.parametrize(
    ("version", "spec"), [("0.1.0", ">=0.1.0,<0.2"), ("0.9.3", ">=0.9.3,<0.10"), ("1.2.0rc1", ">=1.2.0rc1,<2")]
)
def test_compatible_range(version: str, spec: str) -> None:
    assert versioning.compatible_range(version) == spec


@pytest.mark.parametrize("version", ["0.1", "v0.1.0", "0.1.0.dev1", "0.1.0-rc1", ""])
def test_bad_versions_are_refused(version: str) -> None:
    with pytest.raises(ValueError, match="release version"):
        versioning.parse(version)


def test_setting_a_version_rewrites_the_version_and_sibling_ranges_only() -> None:
    text = (ROOT / "packages" / "rembert-tf" / "pyproject.toml").read_text(encoding="utf-8")
    bumped = versioning.render(text, "0.2.0")
    assert 'version = "0.2.0"' in bumped and 'name = "rembert-tf"' in bumped
    assert '"rembert-core>=0.2.0,<0.3"' in bumped and '"rembert-tokenizers>=0.2.0,<0.3"' in bumped
    assert versioning.render(bumped, VERSION) == text  # nothing else changed
