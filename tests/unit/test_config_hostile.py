"""Hostile configuration input (issue 15, item 8): the loader raises only ConfigError.

Whatever the file or mapping holds (nesting thousands of levels deep, numbers too large for a
float, NUL bytes, keys that are not strings, alias bombs, bytes that are not UTF-8) and whatever
the path names (nothing, a directory), :func:`faro.config.load_config` and
:meth:`Config.from_dict` raise :class:`ConfigError` naming the problem (and the file), never
RecursionError, OverflowError, ValueError, TypeError, AttributeError or UnicodeDecodeError.
Each case runs under a time limit, so a case that would take exponential time fails instead of
hanging the run.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from faro.config import Config, ConfigError, load_config

DEPTH = 10_000
HUGE = 10**400
TIME_LIMIT = 10.0
POD = {"gvr": "v1/pods"}


class _TooSlow(Exception):
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Fail (with _TooSlow) a block that runs longer than ``seconds`` (POSIX main thread)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _TooSlow(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _config_error(call: Callable[[], object], *words: str) -> ConfigError:
    """The ConfigError ``call`` raises; its message holds every one of ``words``.

    Any other exception propagates (and fails the test with its traceback).
    """
    limit = sys.getrecursionlimit()
    with _time_limit(TIME_LIMIT), pytest.raises(ConfigError) as info:
        call()
    assert sys.getrecursionlimit() == limit
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return info.value


def _file(tmp_path: Path, content: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _load(tmp_path: Path, content: str | bytes, *words: str) -> ConfigError:
    path = _file(tmp_path, content)
    return _config_error(lambda: load_config(path), str(path), *words)


def _from_dict(data: Any, *words: str) -> ConfigError:
    return _config_error(lambda: Config.from_dict(data), "<dict>", *words)


def _nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _nested_map(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# ---------------------------------------------------------------------------------------------
# Deep nesting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "workers: " + "[" * DEPTH + "]" * DEPTH,
    "workers: " + "{a: " * DEPTH + "1" + "}" * DEPTH,
    "- " * DEPTH + "x",
    "resources: " + "[" * DEPTH + "]" * DEPTH,
    "metrics: " + "{a: " * DEPTH + "1" + "}" * DEPTH,
], ids=["flow-lists", "flow-maps", "block-lists", "resources-lists", "metrics-maps"])
def test_deeply_nested_file(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


@pytest.mark.parametrize("key", ["workers", "resources", "namespaces", "metrics", "unknown"])
@pytest.mark.parametrize("nested", [_nested_list, _nested_map], ids=["lists", "maps"])
def test_deeply_nested_dict(key: str, nested: Callable[[int], Any]) -> None:
    _from_dict({key: nested(DEPTH)}, key)


def test_deeply_nested_resource_entry() -> None:
    _from_dict({"resources": [{"gvr": "v1/pods", "label_selector": _nested_map(DEPTH)}]},
               "resources[0].label_selector")


def test_deeply_nested_namespace_rules() -> None:
    _from_dict({"namespaces": [{"name_selector": "default",
                                "resources": {"v1/pods": _nested_map(DEPTH)}}]},
               "namespaces[0]")


def test_deeply_nested_mapping_is_the_document() -> None:
    _from_dict(_nested_map(DEPTH), "unknown")


# ---------------------------------------------------------------------------------------------
# Huge and non-finite numbers
# ---------------------------------------------------------------------------------------------


NUMBER_SETTINGS = [
    ("workers: {}", "workers"),
    ("max_retries: {}", "max_retries"),
    ("auto_shutdown_sec: {}", "auto_shutdown_sec"),
    ("unhealthy_after_sec: {}", "unhealthy_after_sec"),
    ("metrics: {{port: {}}}", "metrics.port"),
    ("export: {{max_bytes: {}}}", "export.max_bytes"),
    ("export: {{backups: {}}}", "export.backups"),
    ("pending: {{max_events: {}}}", "pending.max_events"),
    ("pending: {{max_bytes_per_informer: {}}}", "pending.max_bytes_per_informer"),
    ("pending: {{unready_after_sec: {}}}", "pending.unready_after_sec"),
    ("pending: {{stuck_handler_sec: {}}}", "pending.stuck_handler_sec"),
]
NUMBERS = [str(HUGE), str(-HUGE), "1.0e+400", "-1.0e+400", ".nan", ".inf", "-.inf"]


@pytest.mark.parametrize(("template", "where"), NUMBER_SETTINGS,
                         ids=[where for _, where in NUMBER_SETTINGS])
@pytest.mark.parametrize("number", NUMBERS)
def test_huge_number_in_file(tmp_path: Path, template: str, where: str, number: str) -> None:
    _load(tmp_path, template.format(number), where)


def test_integer_too_long_to_read(tmp_path: Path) -> None:
    # Python refuses int() of more than 4,300 digits (ValueError) by default.
    _load(tmp_path, "workers: 1" + "0" * 5000)


DICT_SETTINGS = [
    (lambda v: {"workers": v}, "workers"),
    (lambda v: {"max_retries": v}, "max_retries"),
    (lambda v: {"auto_shutdown_sec": v}, "auto_shutdown_sec"),
    (lambda v: {"unhealthy_after_sec": v}, "unhealthy_after_sec"),
    (lambda v: {"metrics": {"port": v}}, "metrics.port"),
    (lambda v: {"export": {"max_bytes": v}}, "export.max_bytes"),
    (lambda v: {"pending": {"max_bytes": v}}, "pending.max_bytes"),
    (lambda v: {"pending": {"stuck_handler_sec": v}}, "pending.stuck_handler_sec"),
]


@pytest.mark.parametrize(("build", "where"), DICT_SETTINGS,
                         ids=[where for _, where in DICT_SETTINGS])
@pytest.mark.parametrize("number", [HUGE, -HUGE, 10**5000, float("inf"), float("-inf"),
                                    float("nan"), 1e308 * 10],
                         ids=["1e400", "-1e400", "1e5000", "inf", "-inf", "nan", "overflow"])
def test_huge_number_in_dict(build: Callable[[object], dict[str, Any]], where: str,
                             number: object) -> None:
    _from_dict(build(number), where)


# ---------------------------------------------------------------------------------------------
# NUL bytes
# ---------------------------------------------------------------------------------------------


NUL_FILES = [
    ('output_dir: "out\\0put"', "output_dir"),
    ('log_level: "in\\0fo"', "log_level"),
    ('metrics: {path: "/met\\0rics"}', "metrics.path"),
    ('metrics: {bind_addr: "0.0.0.0\\0"}', "metrics.bind_addr"),
    ('resources: [{gvr: "v1/po\\0ds"}]', "resources[0].gvr"),
    ('resources: [{gvr: v1/pods, name_selector: "a\\0b"}]', "resources[0].name_selector"),
    ('resources: [{gvr: v1/pods, name_selector: "a.*\\0"}]', "resources[0].name_selector"),
    ('resources: [{gvr: v1/pods, label_selector: "a\\0=b"}]', "resources[0].label_selector"),
    ('resources: [{gvr: v1/pods, label_selector: "a=b\\0"}]', "resources[0].label_selector"),
    ('resources: [{gvr: v1/pods, field_selector: "metadata.name=\\0"}]',
     "resources[0].field_selector"),
    ('resources: [{gvr: v1/pods, namespace_names: ["de\\0fault"]}]',
     "resources[0].namespace_names"),
    ('namespaces: [{name_selector: "de\\0fault", resources: {v1/pods: {}}}]',
     "namespaces[0].name_selector"),
    ('namespaces: [{name_selector: "team-.*\\0", resources: {v1/pods: {}}}]',
     "namespaces[0].name_selector"),
    ('namespaces: [{name_selector: default, resources: {v1/pods: {name_selector: "x\\0"}}}]',
     "namespaces[0].resources[v1/pods].name_selector"),
    ('"work\\0ers": 1', "work"),
]


@pytest.mark.parametrize(("text", "where"), NUL_FILES, ids=[where for _, where in NUL_FILES])
def test_nul_byte_in_file(tmp_path: Path, text: str, where: str) -> None:
    _load(tmp_path, text, where)


def test_nul_byte_in_output_dir_dict() -> None:
    _from_dict({"output_dir": "out\0put"}, "output_dir")


def test_nul_byte_in_output_dir_constructor() -> None:
    _config_error(lambda: Config(output_dir="out\0put"), "output_dir")


def test_nul_byte_in_the_config_path(tmp_path: Path) -> None:
    path = str(tmp_path / "config\0.yaml")
    _config_error(lambda: load_config(path), "config")


# ---------------------------------------------------------------------------------------------
# Keys that are not strings
# ---------------------------------------------------------------------------------------------


KEY_FILES = [
    ("1: 2", ""),
    ("null: 2", ""),
    ("true: 2", ""),
    ("1.5: 2", ""),
    ("? [a]\n: 1", ""),
    ("? {a: 1}\n: 1", ""),
    ("metrics:\n  ? [port]\n  : 1", ""),
    ("metrics: {1: 2}", "metrics"),
    ("export: {null: 2}", "export"),
    ("resources: [{1: v1/pods}]", "resources[0]"),
    ("resources: [{gvr: v1/pods, 2: x}]", "resources[0]"),
    ("namespaces: [{name_selector: default, resources: {1: {}}}]", "namespaces[0].resources"),
    ("namespaces: [{name_selector: default, resources: {v1/pods: {1: x}}}]",
     "namespaces[0].resources"),
    ("namespaces: [{name_selector: default, resources:\n    {? [v1/pods] : {}}}]", ""),
    ("namespaces: [{1: default}]", "namespaces[0]"),
]


@pytest.mark.parametrize(("text", "where"), KEY_FILES, ids=[text for text, _ in KEY_FILES])
def test_non_string_key_in_file(tmp_path: Path, text: str, where: str) -> None:
    _load(tmp_path, text, where)


KEY_DICTS: list[dict[Any, Any]] = [
    {1: 2},
    {None: 2},
    {(1, 2): 3},
    {frozenset(): 1},
    {b"workers": 1},
    {"metrics": {1: 2}},
    {"export": {(1,): 2}},
    {"resources": [{1: "v1/pods"}]},
    {"resources": [{**POD, 2: "x"}]},
    {"namespaces": [{"name_selector": "default", "resources": {1: {}}}]},
    {"namespaces": [{"name_selector": "default", "resources": {(1,): {}}}]},
    {"namespaces": [{"name_selector": "default", "resources": {"v1/pods": {1: "x"}}}]},
    {"namespaces": [{1: "default"}]},
]


@pytest.mark.parametrize("data", KEY_DICTS, ids=[repr(d) for d in KEY_DICTS])
def test_non_string_key_in_dict(data: dict[Any, Any]) -> None:
    _from_dict(data)


@pytest.mark.parametrize("data", [None, 1, "workers: 1", b"x", [1], (1,), 1.5, object()],
                         ids=["None", "int", "str", "bytes", "list", "tuple", "float",
                              "object"])
def test_document_not_a_mapping_dict(data: Any) -> None:
    _from_dict(data, "mapping")


@pytest.mark.parametrize("text", ["1", "[1, 2]", "just text", "!!binary aGVsbG8=", "- a\n- b"])
def test_document_not_a_mapping_file(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text, "mapping")


# ---------------------------------------------------------------------------------------------
# Anchors, aliases, tags
# ---------------------------------------------------------------------------------------------


def _laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for n in range(1, levels + 1):
        refs = ", ".join([f"*a{n - 1}"] * width)
        lines.append(f"a{n}: &a{n} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("tail", ["", "workers: *a9\n", "resources: *a9\n",
                                  "namespaces: *a9\n", "metrics: {port: *a9}\n",
                                  "resources: [{gvr: v1/pods, namespace_names: *a9}]\n"],
                         ids=["unknown-keys", "workers", "resources", "namespaces",
                              "metrics.port", "namespace_names"])
def test_billion_laughs(tmp_path: Path, tail: str) -> None:
    _load(tmp_path, _laughs() + tail)


def test_billion_laughs_in_mapping_keys(tmp_path: Path) -> None:
    lines = ["a0: &a0 {lol: 1}"]
    for n in range(1, 10):
        lines.append(f"a{n}: &a{n} {{" + ", ".join(f"k{i}: *a{n - 1}" for i in range(9)) + "}")
    _load(tmp_path, "\n".join(lines) + "\nmetrics: *a9\n")


def test_billion_laughs_dict() -> None:
    value: list[Any] = ["lol"]
    for _ in range(30):
        value = [value, value]
    for data in ({"a": value}, {"resources": value}, {"workers": value},
                 {"namespaces": [{"name_selector": "d", "resources": {"v1/pods": value}}]}):
        _from_dict(data)


@pytest.mark.parametrize("text", [
    "workers: &a [*a]",
    "resources: &a [*a]",
    "metrics: &a {port: *a}",
    "a: &a {b: *a}",
    "namespaces: &a [{name_selector: d, resources: {v1/pods: *a}}]",
], ids=["workers", "resources", "metrics", "unknown", "namespaces"])
def test_recursive_alias_in_file(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


def test_recursive_structure_dict() -> None:
    loop: list[Any] = []
    loop.append(loop)
    cycle: dict[str, Any] = {}
    cycle["a"] = cycle
    for data in ({"a": loop}, {"resources": loop}, {"workers": loop}, {"metrics": cycle},
                 {"a": cycle}):
        _from_dict(data)


@pytest.mark.parametrize("text", [
    "workers: !!python/object:os.system [echo]",
    "workers: !!python/name:os.system",
    "workers: !custom 1",
    "workers: !!timestamp 2001-12-14",
    "workers: !!binary aGVsbG8=",
    "workers: !!set {a, b}",
    "a: &x 1\na: *x",
    "<<: [1, 2]",
    "*undefined",
    "workers: *undefined",
], ids=["python-object", "python-name", "custom-tag", "timestamp", "binary", "set",
        "duplicate-via-alias", "merge-scalars", "undefined-alias",
        "undefined-alias-value"])
def test_tags_and_aliases(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


# ---------------------------------------------------------------------------------------------
# The file itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00\x00garbage",
    b"workers: \xc3\x28",
    b"\x80" * 100,
    b"workers: 1\n\xed\xa0\x80",
    bytes(range(256)),
], ids=["bom-garbage", "bad-continuation", "bare-continuations", "surrogate", "all-bytes"])
def test_not_utf8(tmp_path: Path, content: bytes) -> None:
    _load(tmp_path, content, "UTF-8")


@pytest.mark.parametrize("content", [
    b"workers: 1\x00",
    b"\x00\x00\x00",
    b"workers: \x07",
    b"workers: \x1b[31m1",
    "workers: \ufffe".encode(),
], ids=["nul", "nuls", "bell", "escape", "noncharacter"])
def test_control_characters(tmp_path: Path, content: bytes) -> None:
    _load(tmp_path, content)


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n", "---\n", "~\n"],
                         ids=["empty", "blank-lines", "comment", "document-marker", "null"])
def test_empty_file_is_the_default(tmp_path: Path, content: str) -> None:
    # Documented (Config.from_yaml): an empty document is the default Config.
    with _time_limit(TIME_LIMIT):
        assert load_config(_file(tmp_path, content)) == Config()


def test_several_documents(tmp_path: Path) -> None:
    _load(tmp_path, "workers: 1\n---\nworkers: 2\n")


def test_directory_as_path(tmp_path: Path) -> None:
    _config_error(lambda: load_config(tmp_path), str(tmp_path), "cannot read")


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    _config_error(lambda: load_config(path), str(path), "cannot read")


def test_missing_directory_in_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "config.yaml"
    _config_error(lambda: load_config(path), str(path), "cannot read")


def test_file_as_directory_in_path(tmp_path: Path) -> None:
    path = _file(tmp_path, "workers: 1") / "config.yaml"
    _config_error(lambda: load_config(path), str(path), "cannot read")


def test_empty_path() -> None:
    _config_error(lambda: load_config(""), "cannot read")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = _file(tmp_path, "workers: 1")
    path.chmod(0)
    try:
        _config_error(lambda: load_config(path), str(path), "cannot read")
    finally:
        path.chmod(0o600)


def test_dangling_symlink(tmp_path: Path) -> None:
    path = tmp_path / "link.yaml"
    path.symlink_to(tmp_path / "nowhere.yaml")
    _config_error(lambda: load_config(path), str(path), "cannot read")


def test_symlink_loop(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.symlink_to(path)
    _config_error(lambda: load_config(path), str(path), "cannot read")

