"""docs/differences.md states only what a test shows.

Every table row (after a table's header and separator) and every bullet item must cite at
least one test as ``tests/path.py::test_name`` (or ``tests/path.py::Class::test_name``) in
backticks, and every test cited anywhere in the document must exist: the file is there and
defines that test, at module level or in a class. A parametrized test is cited by its name,
without the ``[id]``. Failures name the document's line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import faro

ROOT = Path(faro.__file__).resolve().parent.parent
DOC = ROOT / "docs" / "differences.md"
NAME = "docs/differences.md"

# A citation, as written in backticks; a trailing "[...]" is caught to be reported.
CITATION = re.compile(r"`(tests/[\w./-]+\.py)::((?:\w+::)?\w+)(\[[^`]*\])?`")
BULLET = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+")
SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


@dataclass(frozen=True)
class Item:
    """A table row or a bullet item: its first line (1-based), its kind and its text."""

    line: int
    kind: str
    text: str


def items_of(text: str) -> list[Item]:
    """The table rows (not headers or separators) and bullet items of a Markdown text; a
    bullet's text runs on over its indented continuation lines. Code blocks are skipped."""
    lines = text.splitlines()
    found: list[Item] = []
    in_code = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_code = not in_code
            i += 1
            continue
        if in_code:
            i += 1
            continue
        if line.lstrip().startswith("|"):
            # A table: a header row, a separator, then the rows.
            start = i
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                i += 1
            table = lines[start:i]
            body = 2 if len(table) > 1 and SEPARATOR.match(table[1]) else 0
            found.extend(Item(start + n + 1, "table row", row)
                         for n, row in enumerate(table) if n >= body)
            continue
        bullet = BULLET.match(line)
        if bullet:
            indent = len(bullet.group(1))
            start = i
            i += 1
            while (i < len(lines) and lines[i].strip() and not BULLET.match(lines[i])
                   and not lines[i].lstrip().startswith(("|", "#", "```"))
                   and len(lines[i]) - len(lines[i].lstrip()) > indent):
                i += 1
            found.append(Item(start + 1, "bullet", " ".join(
                part.strip() for part in lines[start:i])))
            continue
        i += 1
    return found


@dataclass(frozen=True)
class Citation:
    line: int
    path: str
    test: str
    brackets: str | None

    def __str__(self) -> str:
        return f"`{self.path}::{self.test}{self.brackets or ''}`"


def citations_of(text: str) -> list[Citation]:
    """Every test citation in the text, with its line (1-based)."""
    return [Citation(number, match.group(1), match.group(2), match.group(3))
            for number, line in enumerate(text.splitlines(), start=1)
            for match in CITATION.finditer(line)]


@cache
def defined_tests(path: Path) -> frozenset[str]:
    """The tests a file defines: ``name`` for a module-level test function and, for a test
    method, both ``Class::name`` and ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names |= {f"{node.name}::{member.name}", member.name}
    return frozenset(name for name in names if name.rsplit("::", 1)[-1].startswith("test"))


def uncited(text: str, name: str) -> list[str]:
    """A problem line for each table row or bullet of ``text`` that cites no test."""
    return [f"{name}:{item.line}: this {item.kind} cites no test "
            f"(end it with `tests/path.py::test_name`): {item.text[:100]}"
            for item in items_of(text) if not CITATION.search(item.text)]


def unresolved(text: str, name: str, root: Path) -> list[str]:
    """A problem line for each citation of ``text`` that names no existing test."""
    problems = []
    for citation in citations_of(text):
        where = f"{name}:{citation.line}: {citation}"
        file = root / citation.path
        if citation.brackets:
            problems.append(f"{where}: cite a parametrized test by its name, without "
                            f"{citation.brackets}")
        elif not citation.test.rsplit("::", 1)[-1].startswith("test"):
            problems.append(f"{where}: {citation.test} is not a test name (test_...)")
        elif not file.is_file():
            problems.append(f"{where}: there is no file {citation.path}")
        elif citation.test not in defined_tests(file):
            problems.append(f"{where}: {citation.path} defines no test {citation.test}")
    return problems


# ------------------------------------------------------------------------------ the document


def test_every_table_row_and_bullet_of_the_differences_cites_a_test() -> None:
    text = DOC.read_text(encoding="utf-8")
    kinds = {item.kind for item in items_of(text)}
    assert kinds == {"table row", "bullet"}, f"{NAME}: found only {kinds or 'nothing'}"
    problems = uncited(text, NAME)
    assert not problems, "\n".join(problems)


def test_every_test_the_differences_cite_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert citations_of(text), f"{NAME} cites no test"
    problems = unresolved(text, NAME, ROOT)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- the checker


SAMPLE = """\
# Title

Prose is not checked: `tests/nowhere.py::test_prose` is, as every citation is.

| Go | faro |
| --- | --- |
| a | b. Shown by `tests/sample.py::test_module_level` |
| c | d, cited nowhere |

- A bullet that runs on
  and cites `tests/sample.py::TestGroup::test_in_class` on its second line.
- A bullet citing `tests/sample.py::test_in_class` by its bare name.
- A bullet that cites nothing.
  - A nested bullet citing `tests/sample.py::test_parametrized[one]`.
- `tests/sample.py::test_missing` and `tests/other.py::test_x` and `tests/sample.py::helper`.

```text
- not a bullet: inside a code block
```
"""

SAMPLE_TESTS = """\
import pytest

def helper():
    pass

def test_module_level():
    pass

@pytest.mark.parametrize("x", [1])
def test_parametrized(x):
    pass

class TestGroup:
    def test_in_class(self):
        pass
"""


def test_the_checker_finds_rows_and_bullets_and_names_their_lines(tmp_path: Path) -> None:
    items = items_of(SAMPLE)
    assert [(item.line, item.kind) for item in items] == [
        (7, "table row"), (8, "table row"), (10, "bullet"), (12, "bullet"), (13, "bullet"),
        (14, "bullet"), (15, "bullet")]
    assert items[2].text == ("- A bullet that runs on and cites "
                             "`tests/sample.py::TestGroup::test_in_class` on its second line.")
    assert uncited(SAMPLE, "sample.md") == [
        "sample.md:8: this table row cites no test (end it with `tests/path.py::test_name`): "
        "| c | d, cited nowhere |",
        "sample.md:13: this bullet cites no test (end it with `tests/path.py::test_name`): "
        "- A bullet that cites nothing.",
    ]

    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "sample.py").write_text(SAMPLE_TESTS, encoding="utf-8")
    assert unresolved(SAMPLE, "sample.md", tmp_path) == [
        "sample.md:3: `tests/nowhere.py::test_prose`: there is no file tests/nowhere.py",
        "sample.md:14: `tests/sample.py::test_parametrized[one]`: cite a parametrized test by "
        "its name, without [one]",
        "sample.md:15: `tests/sample.py::test_missing`: tests/sample.py defines no test "
        "test_missing",
        "sample.md:15: `tests/other.py::test_x`: there is no file tests/other.py",
        "sample.md:15: `tests/sample.py::helper`: helper is not a test name (test_...)",
    ]
