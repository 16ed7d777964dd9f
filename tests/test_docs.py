"""The documentation's code runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import faro

ROOT = Path(faro.__file__).resolve().parent.parent


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)


def test_the_testing_guide_test_module_passes(tmp_path: Path) -> None:
    [module] = [block for block in python_blocks(ROOT / "docs" / "testing.md")
                if "def test_" in block]
    (tmp_path / "test_inventory.py").write_text(module)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--rootdir", str(tmp_path), str(tmp_path / "test_inventory.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout


def test_the_api_reference_lists_exactly_the_public_names() -> None:
    listed = re.findall(r"^### `([A-Za-z_]+)`", (ROOT / "docs" / "api.md").read_text(),
                        flags=re.MULTILINE)
    assert sorted(listed) == sorted(faro.__all__)
    for name in faro.__all__:
        if name != "__version__":
            doc = getattr(faro, name).__doc__ or ""
            assert doc.strip(), f"faro.{name} has no docstring"
