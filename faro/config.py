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
:meth:`Config.from_dict`, :func:`load_config`, the constructor or :meth:`Config.with_overrides`);
any problem raises :class:`ConfigError` naming the source, the YAML path and the problem.

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
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, TypeVar

import yaml

from faro._selectors import (
    _DNS1123_LABEL_FMT,
    _DNS1123_SUBDOMAIN_RE,
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
    """

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        super().__init__(": ".join(part for part in (source, path, problem) if part))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.path, self.problem))


LOG_LEVELS: Final[tuple[str, ...]] = ("debug", "info", "warning", "error", "fatal")
"""Accepted ``log_level`` values (input is case-insensitive)."""

SCOPES: Final[tuple[str, ...]] = ("Namespaced", "Cluster")
"""Accepted ``scope`` values of a resource-centric entry."""


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

    ``scope`` is ``"Namespaced"``, ``"Cluster"`` or None (unknown: the controller asks the API
    server). An empty ``namespace_names`` means every namespace (or a cluster-scoped resource);
    a list given here is stored as a tuple.
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
        :meth:`normalize` checks the values. Raises :class:`ConfigError` naming ``path``.
        """
        try:
            return _resource_from_raw(_mapping(data, path), path)
        except _Invalid as exc:
            raise ConfigError(source, exc.path, exc.problem) from None

    def normalize(self, path: str = "resources[0]",
                  source: str = "<dict>") -> tuple[NormalizedConfig, ...]:
        """Validate this entry and return its normalised forms, one per namespace scope.

        ``path`` and ``source`` name the entry in errors and in :attr:`NormalizedConfig.source`.
        Raises :class:`ConfigError`.
        """
        try:
            return _normalize_resource(self, path)
        except _Invalid as exc:
            raise ConfigError(source, exc.path, exc.problem) from None


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
# Value checks. They raise _Invalid(path, problem); the public entry points add the source.
# ---------------------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


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


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    candidates = [word, word.lower(), word.replace("-", "_").lower(),
                  re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", word).lower()]
    for candidate in candidates:
        for choice in choices:
            if candidate == choice.lower():
                return f"; did you mean {choice!r}?"
    by_lower = {choice.lower(): choice for choice in choices}
    for candidate in candidates:
        close = difflib.get_close_matches(candidate, list(by_lower), n=1)
        if close:
            return f"; did you mean {by_lower[close[0]]!r}?"
    return ""


def _unknown_key(key: object, allowed: tuple[str, ...]) -> str:
    suggestion = _suggest(key, allowed) if isinstance(key, str) else ""
    shown = repr(key) if isinstance(key, str) else _describe(key)
    return f"unknown key {shown}{suggestion} (allowed keys: {', '.join(allowed)})"


def _check_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in data:
        if not isinstance(key, str) or key not in allowed:
            raise _Invalid(_join(path, str(key)), _unknown_key(key, allowed))


def _mapping(value: object, path: str, what: str = "a mapping") -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"expected {what}, got {_describe(value)}")
    return value


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

# Top-level settings that are single values: each key's check (which returns the stored value).
_SCALARS: Final[dict[str, Callable[[object, str], object]]] = {
    "output_dir": lambda v, p: _required_string(v, p, "a directory"),
    "log_level": _log_level,
    "auto_shutdown_sec": _seconds,
    "json_export": _boolean,
    "workers": lambda v, p: _integer(v, p, 1),
    "max_retries": lambda v, p: _integer(v, p, 0),
    "unhealthy_after_sec": _seconds,
}
# Top-level sections; null in a file means "empty" (the default).
_SECTIONS: Final[tuple[str, ...]] = ("metrics", "export", "namespaces", "resources")


def _check_metrics(metrics: MetricsConfig, path: str) -> None:
    _boolean(metrics.enabled, _join(path, "enabled"))
    _integer(metrics.port, _join(path, "port"), 0, 65535)
    url_path = _required_string(metrics.path, _join(path, "path"), "a URL path")
    if not url_path.startswith("/"):
        raise _Invalid(_join(path, "path"), f"must start with '/', got {url_path!r}")
    if url_path in PROBE_PATHS:
        raise _Invalid(_join(path, "path"), f"{url_path} is the health probe's path; choose "
                                            "another (default /metrics)")
    _required_string(metrics.bind_addr, _join(path, "bind_addr"), "an address to listen on")


def _check_export(export: ExportConfig, path: str) -> None:
    _integer(export.max_bytes, _join(path, "max_bytes"), 0)
    _integer(export.backups, _join(path, "backups"), 0)
    _boolean(export.fsync, _join(path, "fsync"))


# --- names and patterns ----------------------------------------------------------------------

_DNS1123_LABEL: Final = re.compile(_DNS1123_LABEL_FMT)
_REGEX_SYNTAX: Final = frozenset(".^$*+?{}[]\\|()")


def _is_namespace_name(text: str) -> bool:
    return len(text) <= 63 and _DNS1123_LABEL.fullmatch(text) is not None


def _is_object_name(text: str) -> bool:
    return len(text) <= 253 and _DNS1123_SUBDOMAIN_RE.fullmatch(text) is not None


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
    if _is_namespace_name(text):
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
    if _is_object_name(text):
        return text, None
    return None, _pattern(text, path, "object name")


def _gvr(value: object, path: str) -> GroupVersionResource:
    text = _required_string(value, path, "a resource like v1/pods")
    try:
        return GroupVersionResource.parse(text)
    except ValueError as exc:
        raise _Invalid(path, str(exc)) from None


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


def _selectors(label: object, fields: object, name: object,
               path: str) -> tuple[str | None, str | None, str | None]:
    """(label_selector, field_selector, name_pattern) of one entry."""
    name_path = _join(path, "name_selector")
    exact_name, name_pattern = _object_selector(name, name_path)
    return (_label_selector(label, _join(path, "label_selector")),
            _field_selector(fields, _join(path, "field_selector"), exact_name, name_path),
            name_pattern)


# --- normalisation ---------------------------------------------------------------------------


def _normalize_namespace(entry: object, path: str) -> list[NormalizedConfig]:
    if not isinstance(entry, NamespaceConfig):
        raise _Invalid(path, f"expected a mapping, got {_describe(entry)}")
    namespace, pattern = _namespace_selector(entry.name_selector, _join(path, "name_selector"))
    resources = _mapping(entry.resources, _join(path, "resources"),
                         "a mapping from resources (like v1/pods) to their selectors")
    if not resources:
        raise _Invalid(_join(path, "resources"),
                       'must list at least one resource (like "v1/pods": {})')
    out: list[NormalizedConfig] = []
    for key, rule in resources.items():
        rule_path = f"{path}.resources[{key}]"
        gvr = _gvr(key, rule_path)
        if not isinstance(rule, ResourceRule):
            raise _Invalid(rule_path, f"expected a mapping of selectors, got {_describe(rule)}")
        label, fields, name_pattern = _selectors(rule.label_selector, rule.field_selector,
                                                 rule.name_selector, rule_path)
        out.append(NormalizedConfig(gvr, None, namespace, pattern, label, fields, name_pattern,
                                    rule_path))
    return out


def _normalize_resource(entry: ResourceConfig, path: str) -> tuple[NormalizedConfig, ...]:
    gvr = _gvr(entry.gvr, _join(path, "gvr"))
    scope = entry.scope
    if scope is not None:
        scope_path = _join(path, "scope")
        if _string(scope, scope_path) not in SCOPES:
            raise _Invalid(scope_path, f"unknown scope {scope!r}{_suggest(scope, SCOPES)} "
                                       f"(allowed: {', '.join(SCOPES)})")
    names_path = _join(path, "namespace_names")
    names = entry.namespace_names
    if not isinstance(names, tuple):
        hint = f' (write ["{names}"])' if isinstance(names, str) else ""
        raise _Invalid(names_path,
                       f"expected a list of namespace names, got {_describe(names)}{hint}")
    if scope == "Cluster" and names:
        raise _Invalid(names_path, "a Cluster-scoped resource has no namespaces: remove "
                                   "namespace_names, or the scope")
    scopes: list[tuple[str | None, str | None]] = []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(names):
        item_path = f"{names_path}[{i}]"
        text = _required_string(raw, item_path, "a namespace name or regular expression")
        if text in first_index:
            raise _Invalid(item_path, f"duplicates {names_path}[{first_index[text]}] ({text!r})")
        first_index[text] = i
        scopes.append(_namespace_selector(text, item_path))
    label, fields, name_pattern = _selectors(entry.label_selector, entry.field_selector,
                                             entry.name_selector, path)
    return tuple(NormalizedConfig(gvr, scope, namespace, pattern, label, fields, name_pattern, path)
                 for namespace, pattern in scopes or [(None, None)])


def _check_duplicates(normalized: list[NormalizedConfig]) -> None:
    first: dict[NormalizedConfig, NormalizedConfig] = {}
    for item in normalized:
        earlier = first.setdefault(item, item)
        if earlier is not item:
            raise _Invalid(item.source, f"duplicates {earlier.source} (the same resource, "
                                        "namespace and selectors)")


# --- raw (YAML/dict) entries to dataclasses ---------------------------------------------------


def _metrics_from_raw(raw: object, path: str) -> MetricsConfig:
    data = _mapping(raw, path)
    _check_keys(data, METRICS_KEYS, path)
    return MetricsConfig(**data)


def _export_from_raw(raw: object, path: str) -> ExportConfig:
    data = _mapping(raw, path)
    _check_keys(data, EXPORT_KEYS, path)
    return ExportConfig(**data)


def _rule_from_raw(raw: object, path: str) -> ResourceRule:
    if raw is None:
        return ResourceRule()
    if isinstance(raw, ResourceRule):
        return raw
    data = _mapping(raw, path, "a mapping of selectors (or {})")
    _check_keys(data, RESOURCE_RULE_KEYS, path)
    return ResourceRule(**data)


def _namespace_from_raw(raw: Mapping[Any, Any], path: str) -> NamespaceConfig:
    _check_keys(raw, NAMESPACE_KEYS, path)
    for key in NAMESPACE_KEYS:
        if key not in raw:
            raise _Invalid(path, f"missing required key {key!r}")
    resources_path = _join(path, "resources")
    resources = _mapping(raw["resources"], resources_path,
                         "a mapping from resources (like v1/pods) to their selectors")
    rules: dict[str, ResourceRule] = {}
    for key, value in resources.items():
        if not isinstance(key, str):
            raise _Invalid(f"{resources_path}[{key}]",
                           f"expected a resource like v1/pods as the key, got {_describe(key)}")
        rules[key] = _rule_from_raw(value, f"{resources_path}[{key}]")
    return NamespaceConfig(raw["name_selector"], rules)


def _resource_from_raw(raw: Mapping[Any, Any], path: str) -> ResourceConfig:
    _check_keys(raw, RESOURCE_KEYS, path)
    if "gvr" not in raw:
        raise _Invalid(path, "missing required key 'gvr'")
    data = dict(raw)
    names = data.pop("namespace_names", None)
    if names is None:
        names = ()
    elif isinstance(names, list):
        names = tuple(names)
    return ResourceConfig(namespace_names=names, **data)


_E = TypeVar("_E", NamespaceConfig, ResourceConfig)


def _entries(value: object, path: str, kind: type[_E],
             from_raw: Callable[[Mapping[Any, Any], str], _E]) -> tuple[_E, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise _Invalid(path, f"expected a list of entries, got {_describe(value)}")
    out: list[_E] = []
    for i, item in enumerate(value):
        item_path = f"{path}[{i}]"
        if isinstance(item, kind):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(from_raw(item, item_path))
        else:
            raise _Invalid(item_path, f"expected a mapping, got {_describe(item)}")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# The configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """faro's settings, validated; :attr:`normalized` is computed from them.

    Build one with :func:`load_config`, :meth:`from_yaml`, :meth:`from_dict` or the constructor
    (which also accepts mappings, as in the file, for ``metrics`` and for the entries of
    ``namespaces`` and ``resources``, and lists for the latter). Invalid settings raise
    :class:`ConfigError`. ``source`` names the origin in errors and is ignored by ``==``.
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
        try:
            for name, check in _SCALARS.items():
                object.__setattr__(self, name, check(getattr(self, name), name))
            metrics: object = self.metrics
            if not isinstance(metrics, MetricsConfig):
                metrics = _metrics_from_raw(metrics, "metrics")
            _check_metrics(metrics, "metrics")
            export: object = self.export
            if not isinstance(export, ExportConfig):
                export = _export_from_raw(export, "export")
            _check_export(export, "export")
            namespaces = _entries(self.namespaces, "namespaces", NamespaceConfig,
                                  _namespace_from_raw)
            resources = _entries(self.resources, "resources", ResourceConfig,
                                 _resource_from_raw)
            normalized: list[NormalizedConfig] = []
            for i, namespace in enumerate(namespaces):
                normalized.extend(_normalize_namespace(namespace, f"namespaces[{i}]"))
            for i, resource in enumerate(resources):
                normalized.extend(_normalize_resource(resource, f"resources[{i}]"))
            _check_duplicates(normalized)
        except _Invalid as exc:
            raise ConfigError(self.source, exc.path, exc.problem) from None
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "export", export)
        object.__setattr__(self, "namespaces", namespaces)
        object.__setattr__(self, "resources", resources)
        object.__setattr__(self, "normalized", tuple(normalized))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Config:
        """Build a Config from a parsed document (a mapping of the file's keys).

        Unknown keys are errors; a null ``metrics``, ``namespaces`` or ``resources`` is the
        default. Raises :class:`ConfigError`.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(source, "", "expected a mapping of settings at the top of the "
                                          f"document, got {_describe(data)}")
        try:
            _check_keys(data, CONFIG_KEYS, "")
        except _Invalid as exc:
            raise ConfigError(source, exc.path, exc.problem) from None
        settings = {key: value for key, value in data.items()
                    if not (value is None and key in _SECTIONS)}
        return cls(**settings, source=source)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>") -> Config:
        """Parse one YAML document (an empty one is the default Config).

        Raises :class:`ConfigError` for invalid YAML (with line and column), a repeated key in
        a mapping, or invalid settings.
        """
        try:
            data = yaml.load(text, Loader=_StrictLoader)
        except _DuplicateKeyError as exc:
            raise ConfigError(source, "", exc.describe()) from None
        except yaml.MarkedYAMLError as exc:
            raise ConfigError(source, "", _describe_yaml_error(exc)) from None
        except yaml.YAMLError as exc:
            raise ConfigError(source, "", f"invalid YAML: {exc}") from None
        return cls.from_dict({} if data is None else data, source=source)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with the given top-level settings replaced, validated again.

        For example ``config.with_overrides(workers=8)``, or for one metrics setting
        ``config.with_overrides(metrics=dataclasses.replace(config.metrics, port=9090))``.
        Raises :class:`ConfigError` for an unknown setting or an invalid value.
        """
        for key in changes:
            if key not in CONFIG_KEYS:
                raise ConfigError(self.source, key, _unknown_key(key, CONFIG_KEYS))
        return dataclasses.replace(self, **changes)

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

    Errors name the path as given. Raises :class:`ConfigError`, also when the file cannot be
    read or is not UTF-8.
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
