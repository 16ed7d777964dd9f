"""The release artefacts: what ``python -m build`` makes of this source tree.

The sdist must carry everything needed to test, read and try faro from the unpacked source
(the tests, the documentation, the examples, the deployment files, the changelog); the wheel
must carry every module of the package, ``py.typed`` (faro is typed: PEP 561) and the ``faro``
command, and nothing else. ``make dist-check`` (run by CI) goes further: it installs the wheel
into a new virtual environment and runs ``faro --version`` and ``faro demo`` from it.

``build`` comes with the test extras; without it these tests are skipped, saying so. Building
in an isolated environment needs the package index (for setuptools), as installing does.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

import faro

try:
    import build  # noqa: F401 (only its presence is checked: it runs as python -m build)
except ImportError:
    pytest.skip("the 'build' package is not installed (it comes with faro[test]): "
                "the sdist and wheel cannot be built", allow_module_level=True)

ROOT = Path(faro.__file__).resolve().parent.parent
VERSION = faro.__version__

pytestmark = pytest.mark.timeout(300)

# What a checkout collects that is no part of the source: environments, caches, run output and
# earlier builds. A stale faro.egg-info/SOURCES.txt would even put files that MANIFEST.in no
# longer names into the sdist, so the build runs on a copy without them, as from a clean checkout.
_NOT_SOURCE = {".git", ".venv", ".tox", ".cluster", "build", "dist", "output", "faro-output",
               "faro-demo-output", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}


def _not_source(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == ROOT
    return {name for name in names
            if (top and name in _NOT_SOURCE) or name == "__pycache__"
            or name.endswith((".egg-info", ".pyc", ".pyo"))}


@dataclass(frozen=True)
class Artefacts:
    wheel: Path
    sdist: Path
    wheel_names: frozenset[str]
    sdist_names: frozenset[str]  # relative to the sdist's top directory, faro-<version>/


def _source_files(folder: str, suffix: str = "") -> set[str]:
    """The files under ``folder`` of the source tree, as paths relative to its root."""
    return {path.relative_to(ROOT).as_posix() for path in (ROOT / folder).rglob(f"*{suffix}")
            if path.is_file() and "__pycache__" not in path.parts
            and path.suffix not in {".pyc", ".pyo"}}


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Artefacts:
    """The sdist, and the wheel built from it (python -m build's default), from a clean copy."""
    source = tmp_path_factory.mktemp("source") / "faro"
    shutil.copytree(ROOT, source, ignore=_not_source, symlinks=True)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    [wheel] = out.glob("faro-*.whl")
    [sdist] = out.glob("faro-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = frozenset(archive.namelist())
    top = f"faro-{VERSION}"
    with tarfile.open(sdist) as archive:
        members = [member.name for member in archive.getmembers() if member.isfile()]
    assert all(PurePosixPath(name).parts[0] == top for name in members), members
    sdist_names = frozenset(PurePosixPath(*PurePosixPath(name).parts[1:]).as_posix()
                            for name in members)
    return Artefacts(wheel, sdist, wheel_names, sdist_names)


def test_the_artefacts_are_named_for_the_version(artefacts: Artefacts) -> None:
    assert artefacts.wheel.name == f"faro-{VERSION}-py3-none-any.whl"
    assert artefacts.sdist.name == f"faro-{VERSION}.tar.gz"


def test_the_wheel_carries_every_module_of_faro_and_py_typed(artefacts: Artefacts) -> None:
    package = _source_files("faro")
    assert "faro/py.typed" in package
    for subpackage in ("faro/testing", "faro/cli", "faro/cache", "faro/workqueue"):
        assert f"{subpackage}/__init__.py" in artefacts.wheel_names, subpackage
    missing = package - artefacts.wheel_names
    assert not missing, f"not in the wheel: {sorted(missing)}"


def test_the_wheel_carries_nothing_but_faro_and_its_metadata(artefacts: Artefacts) -> None:
    tops = {PurePosixPath(name).parts[0] for name in artefacts.wheel_names}
    assert tops == {"faro", f"faro-{VERSION}.dist-info"}
    assert not [name for name in artefacts.wheel_names
                if "__pycache__" in name or name.endswith((".pyc", ".pyo"))]


def test_the_wheel_declares_the_faro_command_and_its_metadata(artefacts: Artefacts) -> None:
    info = f"faro-{VERSION}.dist-info"
    with zipfile.ZipFile(artefacts.wheel) as archive:
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    assert "faro = faro.cli:main" in entry_points
    assert metadata["Name"] == "faro"
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["License-Expression"] == "Unlicense"
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
    assert f"{info}/licenses/LICENSE" in artefacts.wheel_names


def test_the_sdist_carries_the_tests_docs_examples_and_changelog(artefacts: Artefacts) -> None:
    for name in ("README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "setup.cfg",
                 "MANIFEST.in", "Makefile", "faro/py.typed", "tests/conftest.py",
                 "docs/api.md", "examples/README.md", "mkdocs.yml"):
        assert name in artefacts.sdist_names, name
    expected = (_source_files("faro") | _source_files("tests") | _source_files("docs")
                | _source_files("examples") | _source_files("deploy"))
    missing = expected - artefacts.sdist_names
    assert not missing, f"not in the sdist: {sorted(missing)}"
    assert not [name for name in artefacts.sdist_names
                if "__pycache__" in name or name.endswith((".pyc", ".pyo"))]
