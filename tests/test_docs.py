"""The documentation's code runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

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
    # docs/api.md is rendered by mkdocstrings: one `::: faro.NAME` block per public name.
    listed = re.findall(r"^::: faro\.([A-Za-z_]+)$", (ROOT / "docs" / "api.md").read_text(),
                        flags=re.MULTILINE)
    assert sorted(listed) == sorted(faro.__all__)
    assert len(listed) == len(set(listed)), "a name is listed twice"
    for name in faro.__all__:
        if name != "__version__":
            doc = getattr(faro, name).__doc__ or ""
            assert doc.strip(), f"faro.{name} has no docstring"


def test_the_site_shows_every_page_and_example() -> None:
    """mkdocs.yml's nav names every docs/*.md; docs/examples.md includes every example."""
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [page for item in nav for page in pages(item)]
        if isinstance(nav, dict):
            return [page for value in nav.values() for page in pages(value)]
        return []

    assert sorted(pages(site["nav"])) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    included = re.findall(r'^--8<-- "(examples/[^":]+)"$', (ROOT / "docs" / "examples.md")
                          .read_text(), flags=re.MULTILINE)
    examples = ROOT / "examples"
    shown = sorted(p.relative_to(ROOT).as_posix()
                   for p in [*examples.rglob("*.py"), *examples.glob("configs/*.yaml")]
                   if p.read_text().strip())  # an empty __init__.py shows nothing
    assert sorted(included) == shown
