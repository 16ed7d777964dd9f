"""The checks of a configuration: every value validated, every entry normalised.

Contract: :func:`check_config` checks every setting of a :class:`~faro.config.Config` (the
single values, ``metrics``, ``export``, each ``namespaces`` and ``resources`` entry, given as
its dataclass or as a mapping as in the file) and returns the values to store: the settings
in canonical form (a log level in lower case, a scope spelt ``Namespaced`` or ``Cluster``,
``namespace_names`` a tuple) and ``normalized``, a :class:`~faro.config.NormalizedConfig`
per resource and namespace scope. It checks keys (unknown ones, with a suggestion for a
misspelling; missing required ones), types and ranges, log levels and URL paths, namespace and
object names (an exact Kubernetes name, else a regular expression that must compile),
resources (``v1/pods``), scopes, label and field selectors (parsed and written canonically,
an exact object name added as ``metadata.name=<name>``) and duplicate entries.

Every problem is collected, not just the first: the checks run under a :class:`Problems`,
which records each problem (a YAML path and what is wrong) and goes on with the next value;
a value that follows from another (an entry's normalised form, the duplicates among entries)
is built only when what it follows from is valid, so a problem is reported once.
:meth:`Problems.raise_if_any` then raises one :class:`~faro.config.ConfigError` for them all,
and :func:`in_document_order` orders the problems by where they are in the parsed document.
Pure: no I/O, nothing kept between calls. :mod:`faro.config` (the public types, the YAML and
loading) calls in here when a configuration or entry is built; this module imports those
types, and :mod:`faro.config` imports it only inside those calls, so there is no import cycle.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from faro._names import is_dns1123_label, is_dns1123_subdomain
from faro._regex import PatternError, UnsupportedPattern, compile_pattern
from faro._selectors import (
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from faro.config import (
    EXPORT_KEYS,
    EXPORT_OUTPUTS,
    LOG_LEVELS,
    METRICS_KEYS,
    NAMESPACE_KEYS,
    PENDING_KEYS,
    PROBE_PATHS,
    RESOURCE_KEYS,
    RESOURCE_RULE_KEYS,
    SCOPES,
    SHARD_KEYS,
    Config,
    ConfigError,
    ExportConfig,
    MetricsConfig,
    NamespaceConfig,
    NormalizedConfig,
    PendingConfig,
    ResourceConfig,
    ResourceRule,
    ShardConfig,
)
from faro.gvr import GroupVersionResource

# ---------------------------------------------------------------------------------------------
# Value checks. A check raises _Invalid(path, problem) for its one value; the checks of a
# configuration run under a Problems, which records each problem and goes on with the next
# value, so that one pass finds every problem. The callers in faro.config add the source.
# ---------------------------------------------------------------------------------------------


def _combined(errors: Sequence[ConfigError]) -> ConfigError:
    """One ConfigError for the problems of ``errors`` (each possibly standing for several)."""
    first, *more = errors
    # ConfigError flattens ``more`` into one error per problem.
    return ConfigError(first.source, first.path, first.problem, [*first.errors[1:], *more])


class _Invalid(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


class Problems:
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


def describe(value: object) -> str:
    """``value`` as a problem names it: ``"null"``, ``"the string 'x'"``, ``"a list"``..."""
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
    shown = repr(key) if isinstance(key, str) else describe(key)
    return f"unknown key {shown}{suggestion} (allowed keys: {', '.join(allowed)})"


def known_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], path: str,
                problems: Problems, required: tuple[str, ...] = ()) -> dict[str, Any]:
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
        if "\0" in value:  # no file name, URL, selector or Kubernetes name holds one
            raise _Invalid(path, f"must not contain a NUL character, got {value!r}")
        return value
    hint = " (quote it to make it a string)" if isinstance(value, bool | int | float) else ""
    raise _Invalid(path, f"expected {what}, got {describe(value)}{hint}")


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
        raise _Invalid(path, f"expected true or false, got {describe(value)}")
    return value


def _number_text(value: float) -> str:
    """``value`` as written, or its size when it is too long to print usefully."""
    if isinstance(value, int) and abs(value) >= 10**18:
        return f"a number of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    return repr(value) if isinstance(value, float) else str(value)


def _integer(value: object, path: str, minimum: int, maximum: int | None = None, *,
             cap: int | None = None) -> int:
    """An integer in ``minimum..maximum`` (a range, said as one) or ``minimum..cap``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(path, f"expected an integer, got {describe(value)}")
    got = _number_text(value)
    if value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            raise _Invalid(path, f"must be between {minimum} and {maximum}, got {got}")
        if minimum == 0:
            raise _Invalid(path, f"must not be negative, got {got}")
        raise _Invalid(path, f"must be at least {minimum}, got {got}")
    if cap is not None and value > cap:
        raise _Invalid(path, f"must be at most {cap:,}, got {got}")
    return value


def _seconds(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(path, f"expected a number of seconds, got {describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(path, f"must be a finite number, got {value!r}")
    if value < 0:
        raise _Invalid(path, f"must not be negative, got {_number_text(value)}")
    if value > SECONDS_MAX:  # exact for ints of any size: no float conversion
        raise _Invalid(path, f"must be at most {SECONDS_MAX:,} seconds, got "
                             f"{_number_text(value)}")
    return float(value)


def _log_level(value: object, path: str) -> str:
    level = _required_string(value, path, "a log level").lower()
    if level not in LOG_LEVELS:
        raise _Invalid(path, f"unknown log level {value!r}{_suggest(level, LOG_LEVELS)} "
                             f"(allowed: {', '.join(LOG_LEVELS)})")
    return level


def _export_output(value: object, path: str) -> str:
    output = _required_string(value, path, "where the event lines go")
    if output not in EXPORT_OUTPUTS:
        suggestion = _suggest(output.lower(), EXPORT_OUTPUTS)
        raise _Invalid(path, f"unknown output {value!r}{suggestion} "
                             f"(allowed: {', '.join(EXPORT_OUTPUTS)})")
    return output


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
WORKERS_MAX: Final = 1024
"""The most handler threads a configuration may ask for."""
RETRIES_MAX: Final = 1_000_000
"""The most retries of one event a configuration may ask for."""
BACKUPS_MAX: Final = 9_999
"""The most rotated export files kept."""
SECONDS_MAX: Final = 1_000_000_000
"""The longest duration a setting may give (about 31 years): longer is a mistake, and
larger values than the system's timers take would fail only at run time."""

_SCALARS: Final[dict[str, _Check]] = {
    "output_dir": lambda v, p: _required_string(v, p, "a directory"),
    "log_level": _log_level,
    "auto_shutdown_sec": _seconds,
    "json_export": _boolean,
    "workers": lambda v, p: _integer(v, p, 1, cap=WORKERS_MAX),
    "max_retries": lambda v, p: _integer(v, p, 0, cap=RETRIES_MAX),
    "unhealthy_after_sec": _seconds,
}
_METRICS_CHECKS: Final[dict[str, _Check]] = {
    "enabled": _boolean,
    "port": lambda v, p: _integer(v, p, 0, 65535),
    "path": _url_path,
    "bind_addr": lambda v, p: _required_string(v, p, "an address to listen on"),
}
def _count(value: object, path: str) -> int:
    """A number of events or bytes: an integer from 0 to 2**63 - 1."""
    return _integer(value, path, 0, cap=2**63 - 1)


_EXPORT_CHECKS: Final[dict[str, _Check]] = {
    "output": _export_output,
    "max_bytes": _count,
    "backups": lambda v, p: _integer(v, p, 0, cap=BACKUPS_MAX),
    "fsync": _boolean,
}
_PENDING_CHECKS: Final[dict[str, _Check]] = {
    "max_events": _count,
    "max_bytes": _count,
    "max_events_per_informer": _count,
    "max_bytes_per_informer": _count,
    "unready_after_sec": _seconds,
    "stuck_handler_sec": _seconds,
}
SHARDS_MAX: Final = 1024
"""The most shards a configuration may split the objects into."""
_SHARD_CHECKS: Final[dict[str, _Check]] = {
    "index": lambda v, p: _integer(v, p, 0, cap=SHARDS_MAX - 1),
    "count": lambda v, p: _integer(v, p, 1, cap=SHARDS_MAX),
}
_S = TypeVar("_S", MetricsConfig, ExportConfig, PendingConfig, ShardConfig)


def _section(value: object, path: str, cls: type[_S], keys: tuple[str, ...],
             checks: Mapping[str, _Check], problems: Problems) -> _S | None:
    """``metrics``, ``export`` or ``pending``, given as its dataclass or as a mapping, checked;
    None when it is neither (reported: its settings are not looked at)."""
    if isinstance(value, cls):
        section = value
    elif isinstance(value, Mapping):
        section = cls(**known_keys(value, keys, path, problems))
    else:
        problems.add(path, f"expected a mapping, got {describe(value)}")
        return None
    for name, check in checks.items():
        with problems.check():
            check(getattr(section, name), _join(path, name))
    return section


# --- names and patterns ----------------------------------------------------------------------

_REGEX_SYNTAX: Final = frozenset(".^$*+?{}[]\\|()")


def _pattern(text: str, path: str, what: str) -> str:
    """``text``, once RE2 has compiled it: patterns are matched in linear time, so that no
    object or namespace name can make matching take exponential time (and freeze faro)."""
    try:
        compile_pattern(text)
    except UnsupportedPattern as exc:
        raise _Invalid(path, f"{text!r} is not a valid {what}, so it is read as a regular "
                             f"expression, and it uses syntax that is not supported ({exc}) "
                             "because patterns must match in linear time (RE2 syntax: no "
                             "backreferences, lookahead or lookbehind)") from None
    except PatternError as exc:
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
               problems: Problems) -> tuple[str | None, str | None, str | None] | None:
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


def _entries(value: object, path: str, problems: Problems) -> Sequence[object]:
    """The items of ``namespaces`` or ``resources`` (none when it is not a list: reported)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        problems.add(path, f"expected a list of entries, got {describe(value)}")
        return ()
    return value


def _rule(value: object, path: str, problems: Problems) -> ResourceRule | None:
    """The selectors under one resource key of a namespace entry; None when not a mapping."""
    if value is None:
        return ResourceRule()
    if isinstance(value, ResourceRule):
        return value
    if not isinstance(value, Mapping):
        problems.add(path, f"expected a mapping of selectors (or {{}}), got {describe(value)}")
        return None
    return ResourceRule(**known_keys(value, RESOURCE_RULE_KEYS, path, problems))


def _namespace_entry(item: object, path: str, problems: Problems
                     ) -> tuple[NamespaceConfig, list[NormalizedConfig]] | None:
    """One entry of ``namespaces:`` (a NamespaceConfig or a mapping as in the file), checked:
    the entry and its normalised forms, or None when it has a problem (recorded)."""
    mark = len(problems)
    if isinstance(item, NamespaceConfig):
        fields: Mapping[str, Any] = {"name_selector": item.name_selector,
                                     "resources": item.resources}
    elif isinstance(item, Mapping):
        fields = known_keys(item, NAMESPACE_KEYS, path, problems, required=NAMESPACE_KEYS)
    else:
        problems.add(path, f"expected a mapping, got {describe(item)}")
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
                                     f"selectors, got {describe(resources)}")
        resources = {}
    elif not resources and "resources" in fields:
        problems.add(resources_path, 'must list at least one resource (like "v1/pods": {})')
    rules: dict[str, ResourceRule] = {}
    out: list[NormalizedConfig] = []
    for key, value in resources.items():
        rule_path = f"{resources_path}[{key}]"
        if not isinstance(key, str):
            problems.add(rule_path,
                         f"expected a resource like v1/pods as the key, got {describe(key)}")
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


def fields_of(entry: ResourceConfig) -> dict[str, Any]:
    return {key: getattr(entry, key) for key in RESOURCE_KEYS}


def resource_fields(data: Mapping[Any, Any], path: str, problems: Problems) -> dict[str, Any]:
    """A resource entry's fields from a mapping as in the file: unknown keys and a missing
    ``gvr`` recorded (and left out), ``namespace_names`` a tuple when it is a list."""
    fields = known_keys(data, RESOURCE_KEYS, path, problems, required=("gvr",))
    names = fields.get("namespace_names")
    if names is None:
        fields["namespace_names"] = ()
    elif isinstance(names, list):
        fields["namespace_names"] = tuple(names)
    return fields


def normalize_resource(fields: Mapping[str, Any], path: str,
                        problems: Problems) -> tuple[NormalizedConfig, ...]:
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
                     f"expected a list of namespace names, got {describe(names)}{hint}")
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


def _resource_entry(item: object, path: str, problems: Problems
                    ) -> tuple[ResourceConfig, tuple[NormalizedConfig, ...]] | None:
    """One entry of ``resources:`` (a ResourceConfig or a mapping as in the file), checked:
    the entry (its scope spelt canonically) and its normalised forms, or None after a
    problem (recorded)."""
    mark = len(problems)
    if isinstance(item, ResourceConfig):
        fields = fields_of(item)
    elif isinstance(item, Mapping):
        fields = resource_fields(item, path, problems)
    else:
        problems.add(path, f"expected a mapping, got {describe(item)}")
        return None
    normalized = normalize_resource(fields, path, problems)
    if len(problems) > mark:
        return None
    entry = item if isinstance(item, ResourceConfig) else ResourceConfig(**fields)
    if entry.scope != normalized[0].scope:
        entry = dataclasses.replace(entry, scope=normalized[0].scope)
    return entry, normalized


def _check_duplicates(normalized: list[NormalizedConfig], problems: Problems) -> None:
    first: dict[NormalizedConfig, NormalizedConfig] = {}
    for item in normalized:
        earlier = first.setdefault(item, item)
        if earlier is not item:
            problems.add(item.source, f"duplicates {earlier.source} (the same resource, "
                                      "namespace and selectors)")


def check_config(config: Config, problems: Problems) -> dict[str, Any]:
    """Check every setting of ``config``, recording each problem; the values to store."""
    out: dict[str, Any] = {}
    for name, check in _SCALARS.items():
        with problems.check():
            out[name] = check(getattr(config, name), name)
    out["metrics"] = _section(config.metrics, "metrics", MetricsConfig, METRICS_KEYS,
                              _METRICS_CHECKS, problems)
    out["export"] = _section(config.export, "export", ExportConfig, EXPORT_KEYS,
                             _EXPORT_CHECKS, problems)
    out["pending"] = _section(config.pending, "pending", PendingConfig, PENDING_KEYS,
                              _PENDING_CHECKS, problems)
    shard = out["shard"] = _section(config.shard, "shard", ShardConfig, SHARD_KEYS,
                                    _SHARD_CHECKS, problems)
    if shard is not None and isinstance(shard.index, int) and isinstance(shard.count, int) \
            and not isinstance(shard.index, bool) and 1 <= shard.count <= shard.index:
        problems.add("shard.index", f"must be less than shard.count ({shard.count}): shards "
                                    f"are numbered from 0, got {shard.index}")
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
        if top in ("metrics", "export", "pending", "shard"):
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


def in_document_order(errors: list[ConfigError], data: Mapping[Any, Any]) -> ConfigError:
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

