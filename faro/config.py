"""faro's configuration: the YAML file, validated and normalised.

Two formats, as in the Go original, may be used alone or together in one file::

    namespaces:                       # namespace-centric
      - name_selector: "production"
        resources:
          "v1/pods": {label_selector: "app=nginx"}
    resources:                        # resource-centric
      - gvr: "v1/configmaps"
        namespace_names: ["default", "kube-system"]

:class:`Config` holds the file's settings as written and, in :attr:`Config.normalized`, the one
internal form the controller works from: a :class:`NormalizedConfig` per resource and namespace
scope. Everything is checked when a :class:`Config` is built (by :meth:`Config.from_yaml`,
:meth:`Config.from_dict`, :func:`load_config`, the constructor or :meth:`Config.with_overrides`):
every problem is found in one pass and one :class:`ConfigError` names the source and, for each
problem, the YAML path and what is wrong (:attr:`ConfigError.errors`).

``name_selector`` values (namespaces and object names) that are valid Kubernetes names are exact
names, filtered by the API server; anything else is a regular expression that must match the
whole name (:func:`re.fullmatch`). See ``docs/config.md``.

All the classes here are immutable and safe to share between threads.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, TypeVar

import yaml

from faro._names import is_dns1123_label, is_dns1123_subdomain
from faro._selectors import (
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from faro.errors import FaroError
from faro.gvr import GroupVersionResource

__all__ = [
    "CONFIG_KEYS",
    "EXPORT_KEYS",
    "LOG_LEVELS",
    "METRICS_KEYS",
    "NAMESPACE_KEYS",
    "RESOURCE_KEYS",
    "RESOURCE_RULE_KEYS",
    "SCOPES",
    "Config",
    "ConfigError",
    "ExportConfig",
    "MetricsConfig",
    "NamespaceConfig",
    "NormalizedConfig",
    "ResourceConfig",
    "ResourceRule",
    "load_config",
]


class ConfigError(FaroError, ValueError):
    """Invalid configuration.

    ``source`` names where it came from (a file name, ``"<dict>"`` or ``"<string>"``), ``path``
    is the YAML path of the offending value (``"namespaces[0].resources[v1/pods].label_selector"``,
    or ``""`` for the whole document) and ``problem`` says what is wrong.
    ``str(error)`` is ``"source: path: problem"`` without the empty parts.

    A configuration is checked whole, so one error may stand for several problems: ``errors``
    lists every problem, each a ConfigError of its own, in document order. The first is the
    error itself (``source``, ``path`` and ``problem`` describe it), so a single problem gives
    ``errors == (error,)``. With more, ``str(error)`` goes on with a line
    ``"  and N more problems:"`` and one line ``"  path: problem"`` per further problem.
    ``more`` (errors, each possibly standing for several) gives the further problems.
    """

    errors: tuple[ConfigError, ...]
    """Every problem, in document order; ``errors[0] is self``."""

    def __init__(self, source: str, path: str, problem: str,
                 more: Iterable[ConfigError] = ()) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        others = tuple(single for error in more for single in _singles(error))
        self.errors = (self, *others)
        lines = [_error_line(source, path, problem)]
        if others:
            lines.append(f"  and {len(others)} more problem{'s' if len(others) > 1 else ''}:")
            # The others' source is the first's (not repeated), unless it differs.
            lines.extend("  " + _error_line("" if other.source == source else other.source,
                                            other.path, other.problem) for other in others)
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.path, self.problem, self.errors[1:]))


def _error_line(source: str, path: str, problem: str) -> str:
    return ": ".join(part for part in (source, path, problem) if part)


def _singles(error: ConfigError) -> list[ConfigError]:
    """A ConfigError for each problem ``error`` stands for (itself when it is one)."""
    return [item if len(item.errors) == 1 else ConfigError(item.source, item.path, item.problem)
            for item in error.errors]


def _combined(errors: Sequence[ConfigError]) -> ConfigError:
    """One ConfigError for the problems of ``errors`` (each possibly standing for several)."""
    first, *more = (single for error in errors for single in _singles(error))
    return ConfigError(first.source, first.path, first.problem, more)


LOG_LEVELS: Final[tuple[str, ...]] = ("debug", "info", "warning", "error", "fatal")
"""Accepted ``log_level`` values (input is case-insensitive)."""

SCOPES: Final[tuple[str, ...]] = ("Namespaced", "Cluster")
"""Accepted ``scope`` values of a resource-centric entry, spelt canonically. Input is
case-insensitive (the Go original's files write ``scope: cluster``) and stored canonically."""


# ---------------------------------------------------------------------------------------------
# Settings as written
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The ``metrics:`` section: the Prometheus endpoint (validated by :class:`Config`)."""

    enabled: bool = False
    port: int = 8080
    path: str = "/metrics"
    bind_addr: str = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class ExportConfig:
    """The ``export:`` section: how the JSON event file (``json_export: true``) is written.

    ``max_bytes``: rotate the file when the next line would make it larger (0: never);
    ``backups``: rotated files kept (``events-....json.1`` is the newest); ``fsync``: also
    sync each line to disk (every line is always flushed to the OS, which survives a crash
    of faro but not of the machine).
    """

    max_bytes: int = 100 * 1024 * 1024
    backups: int = 5
    fsync: bool = False


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """The selectors under one resource key of a namespace-centric entry (all optional)."""

    label_selector: str | None = None
    field_selector: str | None = None
    name_selector: str | None = None


class _FrozenRules(Mapping[str, ResourceRule]):
    """A read-only, hashable mapping (file order kept) for :attr:`NamespaceConfig.resources`."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, ResourceRule]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> ResourceRule:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)


@dataclass(frozen=True, slots=True)
class NamespaceConfig:
    """One entry of ``namespaces:``: a namespace (exact name or pattern) and its resources.

    ``resources`` maps resource strings (``"v1/pods"``) to their :class:`ResourceRule`; a dict
    given here is copied into a read-only mapping.
    """

    name_selector: str
    resources: Mapping[str, ResourceRule]

    def __post_init__(self) -> None:
        if isinstance(self.resources, Mapping) and not isinstance(self.resources, _FrozenRules):
            object.__setattr__(self, "resources", _FrozenRules(self.resources))


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    """One entry of ``resources:``; also what the controller's ``add_resources`` takes.

    ``scope`` is ``"Namespaced"``, ``"Cluster"`` (in any case: :class:`Config` stores the
    canonical spelling) or None (unknown: the controller asks the API server). An empty
    ``namespace_names`` means every namespace (or a cluster-scoped resource); a list given here
    is stored as a tuple.
    """

    gvr: str
    scope: str | None = None
    namespace_names: tuple[str, ...] = ()
    name_selector: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.namespace_names, list):
            object.__setattr__(self, "namespace_names", tuple(self.namespace_names))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str = "resources[0]",
                  source: str = "<dict>") -> ResourceConfig:
        """Build an entry from a mapping in the resource-centric format (as in the file).

        Checks the keys (unknown or missing ``gvr``) and the shape of ``namespace_names``;
        :meth:`normalize` checks the values. Raises :class:`ConfigError` naming ``path`` (every
        problem: see :attr:`ConfigError.errors`).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(source, path, f"expected a mapping, got {_describe(data)}")
        problems = _Problems()
        fields = _resource_fields(data, path, problems)
        problems.raise_if_any(source)
        return cls(**fields)

    def normalize(self, path: str = "resources[0]",
                  source: str = "<dict>") -> tuple[NormalizedConfig, ...]:
        """Validate this entry and return its normalised forms, one per namespace scope.

        ``path`` and ``source`` name the entry in errors and in :attr:`NormalizedConfig.source`.
        ``scope`` may be written in any case; the normalised forms hold ``"Namespaced"`` or
        ``"Cluster"``. Raises :class:`ConfigError` (every problem of the entry).
        """
        problems = _Problems()
        normalized = _normalize_resource(_fields_of(self), path, problems)
        problems.raise_if_any(source)
        return normalized


# ---------------------------------------------------------------------------------------------
# The normalised form
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class NormalizedConfig:
    """One resource in one namespace scope, with its selectors in canonical form.

    * ``namespace``: an exact namespace; None for every namespace, a cluster-scoped resource,
      or when ``namespace_pattern`` is set.
    * ``namespace_pattern``: a regular expression that must match a whole namespace name.
    * ``label_selector`` / ``field_selector``: canonical selector text for the API server, None
      when empty. An exact object ``name_selector`` is included in ``field_selector`` as
      ``metadata.name=<name>``.
    * ``name_pattern``: a regular expression that must match a whole object name, applied by
      faro (the server cannot).
    * ``source``: the YAML path of the entry this came from; ignored by ``==`` and ``hash``.
    """

    gvr: GroupVersionResource
    scope: str | None = None
    namespace: str | None = None
    namespace_pattern: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    name_pattern: str | None = None
    source: str = field(default="", compare=False)

    def matches_namespace(self, namespace: str) -> bool:
        """Whether ``namespace`` is in scope: equal to ``namespace``, or fully matching
        ``namespace_pattern``; True when neither is set."""
        if self.namespace is not None:
            return namespace == self.namespace
        if self.namespace_pattern is not None:
            return _compile(self.namespace_pattern).fullmatch(namespace) is not None
        return True

    def matches_name(self, name: str) -> bool:
        """Whether an object named ``name`` fully matches ``name_pattern`` (True when None)."""
        if self.name_pattern is None:
            return True
        return _compile(self.name_pattern).fullmatch(name) is not None


# ---------------------------------------------------------------------------------------------
# Value checks. A check raises _Invalid(path, problem) for its one value; the checks of a
# configuration run under a _Problems, which records each problem and goes on with the next
# value, so that one pass finds every problem. The public entry points add the source.
# ---------------------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


class _Problems:
    """The problems found so far in one configuration, in the order found.

    Values that only make sense once another is valid (an entry's normalised form, the
    duplicates among entries) are built only while ``len(problems)`` has not grown, so that a
    problem is reported once, not again through what follows from it.
    """

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found: list[_Invalid] = []

    def __len__(self) -> int:
        return len(self.found)

    def add(self, path: str, problem: str) -> None:
        self.found.append(_Invalid(path, problem))

    @contextmanager
    def check(self) -> Iterator[None]:
        """Run the block; an _Invalid it raises is recorded, and the code after the block
        runs (the block's remaining assignments do not happen)."""
        try:
            yield
        except _Invalid as exc:
            self.found.append(exc)

    def errors(self, source: str) -> list[ConfigError]:
        return [ConfigError(source, found.path, found.problem) for found in self.found]

    def raise_if_any(self, source: str) -> None:
        if self.found:
            raise _combined(self.errors(source))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _closest(word: str, choices: tuple[str, ...]) -> str | None:
    """The one of ``choices`` ``word`` most likely misspells, or None."""
    candidates = [word, word.lower(), word.replace("-", "_").lower(),
                  re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", word).lower()]
    for candidate in candidates:
        for choice in choices:
            if candidate == choice.lower():
                return choice
    by_lower = {choice.lower(): choice for choice in choices}
    for candidate in candidates:
        close = difflib.get_close_matches(candidate, list(by_lower), n=1)
        if close:
            return by_lower[close[0]]
    return None


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    choice = _closest(word, choices)
    return f"; did you mean {choice!r}?" if choice is not None else ""


def _unknown_key(key: object, allowed: tuple[str, ...]) -> str:
    suggestion = _suggest(key, allowed) if isinstance(key, str) else ""
    shown = repr(key) if isinstance(key, str) else _describe(key)
    return f"unknown key {shown}{suggestion} (allowed keys: {', '.join(allowed)})"


def _known_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], path: str,
                problems: _Problems, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The entries of ``data`` with allowed keys; records each unknown key, and each
    ``required`` key that is missing unless an unknown key looks like its misspelling (the
    one problem is reported once)."""
    known: dict[str, Any] = {}
    meant: set[str] = set()
    for key, value in data.items():
        if isinstance(key, str) and key in allowed:
            known[key] = value
            continue
        problems.add(_join(path, str(key)), _unknown_key(key, allowed))
        if isinstance(key, str):
            meant.add(_closest(key, allowed) or "")
    for key in required:
        if key not in known and key not in meant:
            problems.add(path, f"missing required key {key!r}")
    return known


def _string(value: object, path: str, what: str = "a string") -> str:
    if isinstance(value, str):
        return value
    hint = " (quote it to make it a string)" if isinstance(value, bool | int | float) else ""
    raise _Invalid(path, f"expected {what}, got {_describe(value)}{hint}")


def _required_string(value: object, path: str, what: str = "a string") -> str:
    text = _string(value, path, what)
    if not text.strip():
        raise _Invalid(path, f"must not be empty (expected {what})")
    return text


def _optional_string(value: object, path: str, what: str = "a string") -> str | None:
    """None for a missing (None) or empty value, the text otherwise."""
    if value is None:
        return None
    return _string(value, path, what) or None


def _boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(path, f"expected true or false, got {_describe(value)}")
    return value


def _integer(value: object, path: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(path, f"expected an integer, got {_describe(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            raise _Invalid(path, f"must be between {minimum} and {maximum}, got {value}")
        if minimum == 0:
            raise _Invalid(path, f"must not be negative, got {value}")
        raise _Invalid(path, f"must be at least {minimum}, got {value}")
    return value


def _seconds(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(path, f"expected a number of seconds, got {_describe(value)}")
    if not math.isfinite(value):
        raise _Invalid(path, f"must be a finite number, got {value!r}")
    if value < 0:
        raise _Invalid(path, f"must not be negative, got {value!r}")
    return float(value)


def _log_level(value: object, path: str) -> str:
    level = _required_string(value, path, "a log level").lower()
    if level not in LOG_LEVELS:
        raise _Invalid(path, f"unknown log level {value!r}{_suggest(level, LOG_LEVELS)} "
                             f"(allowed: {', '.join(LOG_LEVELS)})")
    return level


PROBE_PATHS: Final[tuple[str, ...]] = ("/healthz", "/readyz")
"""The paths of the liveness and readiness probes, served beside ``metrics.path``."""


def _url_path(value: object, path: str) -> str:
    url_path = _required_string(value, path, "a URL path")
    if not url_path.startswith("/"):
        raise _Invalid(path, f"must start with '/', got {url_path!r}")
    if url_path in PROBE_PATHS:
        raise _Invalid(path, f"{url_path} is the health probe's path; choose another (default "
                             "/metrics)")
    return url_path


_Check = Callable[[object, str], object]

# Settings that are single values: each key's check (which returns the stored value).
_SCALARS: Final[dict[str, _Check]] = {
    "output_dir": lambda v, p: _required_string(v, p, "a directory"),
    "log_level": _log_level,
    "auto_shutdown_sec": _seconds,
    "json_export": _boolean,
    "workers": lambda v, p: _integer(v, p, 1),
    "max_retries": lambda v, p: _integer(v, p, 0),
    "unhealthy_after_sec": _seconds,
}
_METRICS_CHECKS: Final[dict[str, _Check]] = {
    "enabled": _boolean,
    "port": lambda v, p: _integer(v, p, 0, 65535),
    "path": _url_path,
    "bind_addr": lambda v, p: _required_string(v, p, "an address to listen on"),
}
_EXPORT_CHECKS: Final[dict[str, _Check]] = {
    "max_bytes": lambda v, p: _integer(v, p, 0),
    "backups": lambda v, p: _integer(v, p, 0),
    "fsync": _boolean,
}
# Top-level sections; null in a file means "empty" (the default).
_SECTIONS: Final[tuple[str, ...]] = ("metrics", "export", "namespaces", "resources")

_S = TypeVar("_S", MetricsConfig, ExportConfig)


def _section(value: object, path: str, cls: type[_S], checks: Mapping[str, _Check],
             problems: _Problems) -> _S | None:
    """``metrics`` or ``export``, given as its dataclass or as a mapping, checked; None when it
    is neither (reported: its settings are not looked at)."""
    if isinstance(value, cls):
        section = value
    elif isinstance(value, Mapping):
        section = cls(**_known_keys(value, _init_fields(cls), path, problems))
    else:
        problems.add(path, f"expected a mapping, got {_describe(value)}")
        return None
    for name, check in checks.items():
        with problems.check():
            check(getattr(section, name), _join(path, name))
    return section


# --- names and patterns ----------------------------------------------------------------------

_REGEX_SYNTAX: Final = frozenset(".^$*+?{}[]\\|()")


def _pattern(text: str, path: str, what: str) -> str:
    try:
        _compile(text)
    except re.error as exc:
        raise _Invalid(path, f"{text!r} is not a valid {what}, so it is read as a regular "
                             f"expression, and it is not a valid one: {exc}") from None
    return text


def _namespace_selector(value: object, path: str) -> tuple[str | None, str | None]:
    """(exact namespace, None) or (None, pattern) for a namespace name_selector."""
    text = _required_string(value, path, "a namespace name or regular expression")
    if is_dns1123_label(text):
        return text, None
    if not _REGEX_SYNTAX.intersection(text):
        raise _Invalid(path, f"{text!r} is not a valid namespace name (at most 63 lower-case "
                             "letters, digits and '-', starting and ending with a letter or "
                             "digit) and has no regular-expression syntax, so it could never "
                             "match a namespace")
    return None, _pattern(text, path, "namespace name")


def _object_selector(value: object, path: str) -> tuple[str | None, str | None]:
    """(exact name, None), (None, pattern), or (None, None) when not set."""
    text = _optional_string(value, path, "an object name or regular expression")
    if text is None:
        return None, None
    if is_dns1123_subdomain(text):
        return text, None
    return None, _pattern(text, path, "object name")


def _gvr(value: object, path: str) -> GroupVersionResource:
    text = _required_string(value, path, "a resource like v1/pods")
    try:
        return GroupVersionResource.parse(text)
    except ValueError as exc:
        raise _Invalid(path, str(exc)) from None


def _scope(value: object, path: str) -> str:
    """The canonical spelling (``Namespaced``, ``Cluster``) of a scope written in any case."""
    text = _string(value, path)
    for scope in SCOPES:
        if text.lower() == scope.lower():
            return scope
    raise _Invalid(path, f"unknown scope {text!r}{_suggest(text, SCOPES)} "
                         f"(allowed: {', '.join(SCOPES)})")


def _label_selector(value: object, path: str) -> str | None:
    text = _optional_string(value, path, "a label selector")
    if text is None:
        return None
    try:
        selector = parse_label_selector(text)
    except SelectorError as exc:
        raise _Invalid(path, f"invalid label selector {text!r}: {exc}") from None
    return str(LabelSelector(dict.fromkeys(selector.requirements))) or None


def _field_selector(value: object, path: str, name: str | None, name_path: str) -> str | None:
    """The canonical field selector, with ``metadata.name=<name>`` added for an exact name."""
    text = _optional_string(value, path, "a field selector")
    requirements: list[FieldRequirement] = []
    if text is not None:
        try:
            requirements = list(parse_field_selector(text).requirements)
        except SelectorError as exc:
            message = str(exc).removeprefix("invalid field selector: ")
            raise _Invalid(path, f"invalid field selector {text!r}: {message}") from None
    if name is not None:
        for req in requirements:
            if req.field == "metadata.name" and (req.op == "=") != (req.value == name):
                raise _Invalid(name_path, f"the name {name!r} contradicts the field selector "
                                          f"term {str(req)!r}, so nothing could match")
        requirements.append(FieldRequirement("metadata.name", "=", name))
    return str(FieldSelector(dict.fromkeys(requirements))) or None


def _selectors(label: object, fields: object, name: object, path: str,
               problems: _Problems) -> tuple[str | None, str | None, str | None] | None:
    """(label_selector, field_selector, name_pattern) of one entry; None after a problem."""
    mark = len(problems)
    name_path = _join(path, "name_selector")
    exact_name = name_pattern = label_text = field_text = None
    with problems.check():
        exact_name, name_pattern = _object_selector(name, name_path)
    with problems.check():
        label_text = _label_selector(label, _join(path, "label_selector"))
    with problems.check():
        field_text = _field_selector(fields, _join(path, "field_selector"), exact_name,
                                     name_path)
    if len(problems) > mark:
        return None
    return label_text, field_text, name_pattern


# --- entries -----------------------------------------------------------------------------------


def _entries(value: object, path: str, problems: _Problems) -> Sequence[object]:
    """The items of ``namespaces`` or ``resources`` (none when it is not a list: reported)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        problems.add(path, f"expected a list of entries, got {_describe(value)}")
        return ()
    return value


def _rule(value: object, path: str, problems: _Problems) -> ResourceRule | None:
    """The selectors under one resource key of a namespace entry; None when not a mapping."""
    if value is None:
        return ResourceRule()
    if isinstance(value, ResourceRule):
        return value
    if not isinstance(value, Mapping):
        problems.add(path, f"expected a mapping of selectors (or {{}}), got {_describe(value)}")
        return None
    return ResourceRule(**_known_keys(value, RESOURCE_RULE_KEYS, path, problems))


def _namespace_entry(item: object, path: str, problems: _Problems
                     ) -> tuple[NamespaceConfig, list[NormalizedConfig]] | None:
    """One entry of ``namespaces:`` (a NamespaceConfig or a mapping as in the file), checked:
    the entry and its normalised forms, or None when it has a problem (recorded)."""
    mark = len(problems)
    if isinstance(item, NamespaceConfig):
        fields: Mapping[str, Any] = {"name_selector": item.name_selector,
                                     "resources": item.resources}
    elif isinstance(item, Mapping):
        fields = _known_keys(item, NAMESPACE_KEYS, path, problems, required=NAMESPACE_KEYS)
    else:
        problems.add(path, f"expected a mapping, got {_describe(item)}")
        return None
    namespace = pattern = None
    if "name_selector" in fields:
        with problems.check():
            namespace, pattern = _namespace_selector(fields["name_selector"],
                                                     _join(path, "name_selector"))
    resources_path = _join(path, "resources")
    resources = fields.get("resources", {})
    if not isinstance(resources, Mapping):
        problems.add(resources_path, "expected a mapping from resources (like v1/pods) to their "
                                     f"selectors, got {_describe(resources)}")
        resources = {}
    elif not resources and "resources" in fields:
        problems.add(resources_path, 'must list at least one resource (like "v1/pods": {})')
    rules: dict[str, ResourceRule] = {}
    out: list[NormalizedConfig] = []
    for key, value in resources.items():
        rule_path = f"{resources_path}[{key}]"
        if not isinstance(key, str):
            problems.add(rule_path,
                         f"expected a resource like v1/pods as the key, got {_describe(key)}")
            continue
        with problems.check():
            gvr = _gvr(key, rule_path)
        rule = _rule(value, rule_path, problems)
        if rule is None:
            continue
        rules[key] = rule
        selectors = _selectors(rule.label_selector, rule.field_selector, rule.name_selector,
                               rule_path, problems)
        if selectors is not None and len(problems) == mark:
            label, field_selector, name_pattern = selectors
            out.append(NormalizedConfig(gvr, None, namespace, pattern, label, field_selector,
                                        name_pattern, rule_path))
    if len(problems) > mark:
        return None
    return NamespaceConfig(fields["name_selector"], rules), out


def _fields_of(entry: ResourceConfig) -> dict[str, Any]:
    return {key: getattr(entry, key) for key in RESOURCE_KEYS}


def _resource_fields(data: Mapping[Any, Any], path: str, problems: _Problems) -> dict[str, Any]:
    """A resource entry's fields from a mapping as in the file: unknown keys and a missing
    ``gvr`` recorded (and left out), ``namespace_names`` a tuple when it is a list."""
    fields = _known_keys(data, RESOURCE_KEYS, path, problems, required=("gvr",))
    names = fields.get("namespace_names")
    if names is None:
        fields["namespace_names"] = ()
    elif isinstance(names, list):
        fields["namespace_names"] = tuple(names)
    return fields


def _normalize_resource(fields: Mapping[str, Any], path: str,
                        problems: _Problems) -> tuple[NormalizedConfig, ...]:
    """Check one resource-centric entry's values (``fields`` by key; a missing ``gvr`` was
    reported already): its normalised forms, one per namespace scope, or () after a problem."""
    mark = len(problems)
    if "gvr" in fields:
        with problems.check():
            gvr = _gvr(fields["gvr"], _join(path, "gvr"))
    scope: str | None = None
    scope_known = True
    if fields.get("scope") is not None:
        scope_known = False
        with problems.check():
            scope = _scope(fields["scope"], _join(path, "scope"))
            scope_known = True
    names_path = _join(path, "namespace_names")
    names = fields.get("namespace_names", ())
    if not isinstance(names, tuple):
        hint = f' (write ["{names}"])' if isinstance(names, str) else ""
        problems.add(names_path,
                     f"expected a list of namespace names, got {_describe(names)}{hint}")
        names = ()
    elif scope_known and scope == "Cluster" and names:
        problems.add(names_path, "a Cluster-scoped resource has no namespaces: remove "
                                 "namespace_names, or the scope")
        names = ()  # its items need no fixing: they go
    scopes: list[tuple[str | None, str | None]] = []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(names):
        item_path = f"{names_path}[{i}]"
        with problems.check():
            text = _required_string(raw, item_path, "a namespace name or regular expression")
            if text in first_index:
                raise _Invalid(item_path,
                               f"duplicates {names_path}[{first_index[text]}] ({text!r})")
            first_index[text] = i
            scopes.append(_namespace_selector(text, item_path))
    selectors = _selectors(fields.get("label_selector"), fields.get("field_selector"),
                           fields.get("name_selector"), path, problems)
    if len(problems) > mark or selectors is None or "gvr" not in fields:
        return ()
    label, field_selector, name_pattern = selectors
    return tuple(NormalizedConfig(gvr, scope, namespace, pattern, label, field_selector,
                                  name_pattern, path)
                 for namespace, pattern in scopes or [(None, None)])


def _resource_entry(item: object, path: str, problems: _Problems
                    ) -> tuple[ResourceConfig, tuple[NormalizedConfig, ...]] | None:
    """One entry of ``resources:`` (a ResourceConfig or a mapping as in the file), checked:
    the entry (its scope spelt canonically) and its normalised forms, or None after a
    problem (recorded)."""
    mark = len(problems)
    if isinstance(item, ResourceConfig):
        fields = _fields_of(item)
    elif isinstance(item, Mapping):
        fields = _resource_fields(item, path, problems)
    else:
        problems.add(path, f"expected a mapping, got {_describe(item)}")
        return None
    normalized = _normalize_resource(fields, path, problems)
    if len(problems) > mark:
        return None
    entry = item if isinstance(item, ResourceConfig) else ResourceConfig(**fields)
    if entry.scope != normalized[0].scope:
        entry = dataclasses.replace(entry, scope=normalized[0].scope)
    return entry, normalized


def _check_duplicates(normalized: list[NormalizedConfig], problems: _Problems) -> None:
    first: dict[NormalizedConfig, NormalizedConfig] = {}
    for item in normalized:
        earlier = first.setdefault(item, item)
        if earlier is not item:
            problems.add(item.source, f"duplicates {earlier.source} (the same resource, "
                                      "namespace and selectors)")


def _check(config: Config, problems: _Problems) -> dict[str, Any]:
    """Check every setting of ``config``, recording each problem; the values to store."""
    out: dict[str, Any] = {}
    for name, check in _SCALARS.items():
        with problems.check():
            out[name] = check(getattr(config, name), name)
    out["metrics"] = _section(config.metrics, "metrics", MetricsConfig, _METRICS_CHECKS,
                              problems)
    out["export"] = _section(config.export, "export", ExportConfig, _EXPORT_CHECKS, problems)
    normalized: list[NormalizedConfig] = []
    namespaces: list[NamespaceConfig] = []
    for i, item in enumerate(_entries(config.namespaces, "namespaces", problems)):
        namespace_entry = _namespace_entry(item, f"namespaces[{i}]", problems)
        if namespace_entry is not None:
            namespaces.append(namespace_entry[0])
            normalized.extend(namespace_entry[1])
    resources: list[ResourceConfig] = []
    for i, item in enumerate(_entries(config.resources, "resources", problems)):
        resource_entry = _resource_entry(item, f"resources[{i}]", problems)
        if resource_entry is not None:
            resources.append(resource_entry[0])
            normalized.extend(resource_entry[1])
    _check_duplicates(normalized, problems)
    out.update(namespaces=tuple(namespaces), resources=tuple(resources),
               normalized=tuple(normalized))
    return out


def _document_order(data: Mapping[Any, Any]) -> dict[str, int]:
    """The position in ``data`` (a parsed document) of every path a problem may name.

    Only the structure the checks read is walked (never deeper, as an aliased or recursive
    document could be endless).
    """
    order: dict[str, int] = {}

    # Generators, so that each path is numbered as the walk reaches it (before its children).
    def keys(value: object, path: str, brackets: bool = False) -> Iterator[tuple[str, object]]:
        if isinstance(value, Mapping):
            for key, child in value.items():
                child_path = f"{path}[{key}]" if brackets else _join(path, str(key))
                order.setdefault(child_path, len(order))
                yield child_path, child

    def items(value: object, path: str) -> Iterator[tuple[str, object]]:
        if isinstance(value, list | tuple):
            for i, child in enumerate(value):
                child_path = f"{path}[{i}]"
                order.setdefault(child_path, len(order))
                yield child_path, child

    def walk(children: Iterator[tuple[str, object]]) -> None:
        for _ in children:
            pass

    for top, section in keys(data, ""):
        if top in ("metrics", "export"):
            walk(keys(section, top))
        elif top in ("namespaces", "resources"):
            for entry_path, entry in items(section, top):
                for key_path, value in keys(entry, entry_path):
                    if top == "namespaces" and key_path == f"{entry_path}.resources":
                        for rule_path, rule in keys(value, key_path, brackets=True):
                            walk(keys(rule, rule_path))
                    elif key_path == f"{entry_path}.namespace_names":
                        walk(items(value, key_path))
    return order


def _in_document_order(errors: list[ConfigError], data: Mapping[Any, Any]) -> ConfigError:
    """``errors`` (each standing for one problem) as one ConfigError, sorted by where in
    ``data`` each problem is (a problem about a mapping comes before those inside it)."""
    order = _document_order(data)

    def position(error: ConfigError) -> int:
        path = error.path
        while path:
            found = order.get(path)
            if found is not None:
                return found
            path = path[:max(path.rfind("."), path.rfind("["), 0)]
        return -1  # the whole document (or, which cannot be, a path not in it)

    return _combined(sorted(errors, key=position))


# ---------------------------------------------------------------------------------------------
# The configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """faro's settings, validated; :attr:`normalized` is computed from them.

    Build one with :func:`load_config`, :meth:`from_yaml`, :meth:`from_dict` or the constructor
    (which also accepts mappings, as in the file, for ``metrics`` and for the entries of
    ``namespaces`` and ``resources``, and lists for the latter). Invalid settings raise one
    :class:`ConfigError` listing every problem (:attr:`ConfigError.errors`). ``source`` names
    the origin in errors and is ignored by ``==``.
    """

    output_dir: str = "./output"
    log_level: str = "info"
    auto_shutdown_sec: float = 0
    json_export: bool = False
    workers: int = 3
    max_retries: int = 5
    unhealthy_after_sec: float = 60
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    namespaces: tuple[NamespaceConfig, ...] = ()
    resources: tuple[ResourceConfig, ...] = ()
    source: str = field(default="<dict>", compare=False)
    normalized: tuple[NormalizedConfig, ...] = field(default=(), init=False, repr=False,
                                                     compare=False)
    """Every entry's :class:`NormalizedConfig`, in file order: namespaces first, then
    resources."""

    def __post_init__(self) -> None:
        problems = _Problems()
        values = _check(self, problems)
        problems.raise_if_any(self.source)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Config:
        """Build a Config from a parsed document (a mapping of the file's keys).

        Unknown keys are errors; a null ``metrics``, ``namespaces`` or ``resources`` is the
        default. Raises :class:`ConfigError` listing every problem in document order.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(source, "", "expected a mapping of settings at the top of the "
                                          f"document, got {_describe(data)}")
        problems = _Problems()
        settings = {key: value
                    for key, value in _known_keys(data, CONFIG_KEYS, "", problems).items()
                    if not (value is None and key in _SECTIONS)}
        errors = problems.errors(source)
        try:
            config = cls(**settings, source=source)
        except ConfigError as exc:
            errors.extend(_singles(exc))
        if errors:
            raise _in_document_order(errors, data) from None
        return config

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>") -> Config:
        """Parse one YAML document (an empty one is the default Config).

        Raises :class:`ConfigError` for invalid YAML (with line and column), a repeated key in
        a mapping (these stop the reading: one problem), or invalid settings (every one).
        """
        try:
            data = yaml.load(text, Loader=_StrictLoader)
        except _DuplicateKeyError as exc:
            raise ConfigError(source, "", exc.describe()) from None
        except yaml.MarkedYAMLError as exc:
            raise ConfigError(source, "", _describe_yaml_error(exc)) from None
        except yaml.YAMLError as exc:
            raise ConfigError(source, "", f"invalid YAML: {exc}") from None
        except RecursionError:
            raise ConfigError(source, "", "invalid YAML: nested too deeply") from None
        return cls.from_dict({} if data is None else data, source=source)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with the given top-level settings replaced, validated again.

        For example ``config.with_overrides(workers=8)``, or for one metrics setting
        ``config.with_overrides(metrics=dataclasses.replace(config.metrics, port=9090))``.
        Raises :class:`ConfigError` for unknown settings and invalid values (all of them).
        """
        problems = _Problems()
        known = _known_keys(changes, CONFIG_KEYS, "", problems)
        errors = problems.errors(self.source)
        try:
            config = dataclasses.replace(self, **known)
        except ConfigError as exc:
            errors.extend(_singles(exc))
        if errors:
            raise _in_document_order(errors, changes) from None
        return config

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain dicts, lists and scalars; :meth:`from_dict` gives back an
        equal Config (YAML-safe, e.g. for ``yaml.safe_dump``)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _SCALARS}
        out["metrics"] = {name: getattr(self.metrics, name) for name in METRICS_KEYS}
        out["export"] = {name: getattr(self.export, name) for name in EXPORT_KEYS}
        out["namespaces"] = [
            {"name_selector": entry.name_selector,
             "resources": {key: _set_fields(rule, RESOURCE_RULE_KEYS)
                           for key, rule in entry.resources.items()}}
            for entry in self.namespaces]
        resources: list[dict[str, Any]] = []
        for entry in self.resources:
            item = _set_fields(entry, RESOURCE_KEYS)
            if entry.namespace_names:
                item["namespace_names"] = list(entry.namespace_names)
            else:
                item.pop("namespace_names", None)
            resources.append(item)
        out["resources"] = resources
        return {key: out[key] for key in CONFIG_KEYS}


def _set_fields(obj: object, keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: getattr(obj, key) for key in keys if getattr(obj, key) is not None}


def _init_fields(cls: type[Any], *, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in exclude)


# The keys each mapping of the file may hold: the dataclasses' fields, so that adding a setting
# is adding a field (and, for a top-level single value, its check in _SCALARS).
CONFIG_KEYS: Final[tuple[str, ...]] = _init_fields(Config, exclude=("source",))
METRICS_KEYS: Final[tuple[str, ...]] = _init_fields(MetricsConfig)
EXPORT_KEYS: Final[tuple[str, ...]] = _init_fields(ExportConfig)
NAMESPACE_KEYS: Final[tuple[str, ...]] = _init_fields(NamespaceConfig)
RESOURCE_RULE_KEYS: Final[tuple[str, ...]] = _init_fields(ResourceRule)
RESOURCE_KEYS: Final[tuple[str, ...]] = _init_fields(ResourceConfig)


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------


class _DuplicateKeyError(yaml.MarkedYAMLError):
    def __init__(self, key: Hashable, mark: yaml.Mark, first: yaml.Mark) -> None:
        super().__init__(problem=f"duplicate key {key!r}", problem_mark=mark)
        self.key = key
        self.mark = mark
        self.first = first

    def describe(self) -> str:
        return (f"line {self.mark.line + 1}, column {self.mark.column + 1}: duplicate key "
                f"{self.key!r} (first at line {self.first.line + 1}); a key may appear only "
                "once in a mapping")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode,
                          deep: bool = False) -> dict[Hashable, Any]:
        first: dict[Hashable, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports it
            if key in first:
                raise _DuplicateKeyError(key, key_node.start_mark, first[key])
            first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    text = exc.problem or exc.context or "malformed document"
    if exc.problem and exc.context:
        text += f" ({exc.context}"
        if exc.context_mark and exc.context_mark is not mark:
            text += f" at line {exc.context_mark.line + 1}"
        text += ")"
    return f"invalid YAML{where}: {text}"


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML configuration file at ``path``.

    Errors name the path as given. Raises :class:`ConfigError` (listing every problem of the
    settings, see :attr:`ConfigError.errors`), also when the file cannot be read or is not
    UTF-8.
    """
    source = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start}: {exc.reason})") \
            from None
    return Config.from_yaml(text, source=source)
