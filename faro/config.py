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
problem, the YAML path and what is wrong (:attr:`ConfigError.errors`). The checks themselves
are in :mod:`faro._config_checks`; this module holds the public types, :class:`Config` and
the loading, and imports the checks only when it runs them (they import the types).

``name_selector`` values (namespaces and object names) that are valid Kubernetes names are exact
names, filtered by the API server; anything else is a regular expression that must match the
whole name, in RE2 syntax and matched in linear time (:mod:`faro._regex`). See
``docs/config.md``.

All the classes here are immutable and safe to share between threads.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from faro._regex import Pattern, compile_pattern
from faro.errors import FaroError
from faro.gvr import GroupVersionResource

__all__ = [
    "CONFIG_KEYS",
    "EXPORT_KEYS",
    "EXPORT_OUTPUTS",
    "LOG_LEVELS",
    "METRICS_KEYS",
    "NAMESPACE_KEYS",
    "PENDING_KEYS",
    "RESOURCE_KEYS",
    "RESOURCE_RULE_KEYS",
    "SCOPES",
    "SHARD_KEYS",
    "Config",
    "ConfigError",
    "ExportConfig",
    "MetricsConfig",
    "NamespaceConfig",
    "NormalizedConfig",
    "PendingConfig",
    "ResourceConfig",
    "ResourceRule",
    "ShardConfig",
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
        """Where the configuration came from: a file name, ``"<dict>"`` or ``"<string>"``."""
        self.path = path
        """The YAML path of the offending value, or ``""`` for the whole document."""
        self.problem = problem
        """What is wrong with the value at ``path``."""
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


LOG_LEVELS: Final[tuple[str, ...]] = ("debug", "info", "warning", "error", "fatal")
"""Accepted ``log_level`` values (input is case-insensitive)."""

EXPORT_OUTPUTS: Final[tuple[str, ...]] = ("file", "stdout")
"""Accepted ``export.output`` values: where the JSON event lines of ``json_export: true`` go."""

SCOPES: Final[tuple[str, ...]] = ("Namespaced", "Cluster")
"""Accepted ``scope`` values of a resource-centric entry, spelt canonically. Input is
case-insensitive (the Go original's files write ``scope: cluster``) and stored canonically."""

PROBE_PATHS: Final[tuple[str, ...]] = ("/healthz", "/readyz")
"""The paths of the liveness and readiness probes, served beside ``metrics.path``."""

# Top-level sections; null in a file means "empty" (the default).
_SECTIONS: Final[tuple[str, ...]] = ("metrics", "export", "pending", "shard", "namespaces",
                                     "resources")


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
    """The ``export:`` section: where and how the JSON event lines (``json_export: true``) are
    written.

    ``output``: ``file`` (the event file in ``output_dir``) or ``stdout`` (standard output,
    for a log collector; the other settings are the file's and do not apply to it);
    ``max_bytes``: rotate the file when the next line would make it larger (0: never);
    ``backups``: rotated files kept (``events-....json.1`` is the newest); ``fsync``: also
    sync each line to disk (every line is always flushed to the OS, which survives a crash
    of faro but not of the machine).
    """

    output: str = "file"
    max_bytes: int = 100 * 1024 * 1024
    backups: int = 5
    fsync: bool = False


@dataclass(frozen=True, slots=True)
class PendingConfig:
    """The ``pending:`` section: the bound on events received and not yet delivered.

    An informer whose next event would go beyond a bound waits (it stops reading its
    watch, so TCP pushes back to the API server) until the handlers have made room;
    nothing is dropped. ``max_events`` and ``max_bytes`` bound every informer's pending
    events together, ``max_events_per_informer`` and ``max_bytes_per_informer`` each
    informer's (0 turns a bound off). Bytes are the size of the events' objects as JSON;
    faro's memory for them is about 4.5 times that, so the defaults hold about 250 MiB.
    An informer with nothing pending always gets one event through, however large.
    ``unready_after_sec``: readiness turns false while an informer has been held back this
    long; ``stuck_handler_sec``: a handler (or middleware) call running this long is logged
    as stuck (0: never).
    """

    max_events: int = 100_000
    max_bytes: int = 56 * 1024 * 1024
    max_events_per_informer: int = 50_000
    max_bytes_per_informer: int = 28 * 1024 * 1024
    unready_after_sec: float = 60
    stuck_handler_sec: float = 60


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """The ``shard:`` section: which share of the objects this process watches.

    With ``count`` > 1, an object belongs to shard ``crc32("namespace/name") % count`` (the
    IEEE CRC-32 of its key as UTF-8, ``name`` alone for a cluster-scoped object; stable across
    processes, versions and languages), and a process serving shard ``index`` caches and
    delivers only the objects of that shard. ``count: 1`` (the default) is everything.
    """

    index: int = 0
    count: int = 1


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
    """The resource, as ``group/version/resource`` (``v1/pods`` for the core group)."""
    scope: str | None = None
    """``"Namespaced"``, ``"Cluster"`` or None (unknown: the controller asks the API server)."""
    namespace_names: tuple[str, ...] = ()
    """Namespaces, each an exact name or a full-match regular expression; empty: every
    namespace (or a cluster-scoped resource)."""
    name_selector: str | None = None
    """The objects' name: an exact name (filtered by the server) or a full-match regular
    expression."""
    label_selector: str | None = None
    """A Kubernetes label selector, applied by the server."""
    field_selector: str | None = None
    """A Kubernetes field selector, applied by the server."""

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
        from faro import _config_checks as checks

        if not isinstance(data, Mapping):
            raise ConfigError(source, path, f"expected a mapping, got {checks.describe(data)}")
        problems = checks.Problems()
        fields = checks.resource_fields(data, path, problems)
        problems.raise_if_any(source)
        return cls(**fields)

    def normalize(self, path: str = "resources[0]",
                  source: str = "<dict>") -> tuple[NormalizedConfig, ...]:
        """Validate this entry and return its normalised forms, one per namespace scope.

        ``path`` and ``source`` name the entry in errors and in :attr:`NormalizedConfig.source`.
        ``scope`` may be written in any case; the normalised forms hold ``"Namespaced"`` or
        ``"Cluster"``. Raises :class:`ConfigError` (every problem of the entry).
        """
        from faro import _config_checks as checks

        problems = checks.Problems()
        normalized = checks.normalize_resource(checks.fields_of(self), path, problems)
        problems.raise_if_any(source)
        return normalized


# ---------------------------------------------------------------------------------------------
# The normalised form
# ---------------------------------------------------------------------------------------------


def _compile(pattern: str) -> Pattern:
    # Linear-time (RE2) and cached; the checks have already rejected what RE2 cannot match.
    return compile_pattern(pattern)


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
    """Directory for log files and the JSON event files."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning``, ``error`` or ``fatal`` (stored in lower case)."""
    auto_shutdown_sec: float = 0
    """Stop after this many seconds of running; 0 runs until stopped."""
    json_export: bool = False
    """Write every matched event as one JSON line (docs/export.md)."""
    workers: int = 3
    """Worker threads that call the event handlers (1 to 1024)."""
    max_retries: int = 5
    """Retries of a failing handler for one event before that event is given up for it."""
    unhealthy_after_sec: float = 60
    """Readiness turns false once an informer has been unhealthy this long."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """The Prometheus endpoint and health probes (``metrics:``)."""
    export: ExportConfig = field(default_factory=ExportConfig)
    """How the JSON events are written: file rotation, or standard output (``export:``)."""
    pending: PendingConfig = field(default_factory=PendingConfig)
    """The bound on events received and not yet delivered (``pending:``)."""
    shard: ShardConfig = field(default_factory=ShardConfig)
    """Which share of the objects this process watches (``shard:``)."""
    namespaces: tuple[NamespaceConfig, ...] = ()
    """The namespace-centric entries (``namespaces:``), in file order."""
    resources: tuple[ResourceConfig, ...] = ()
    """The resource-centric entries (``resources:``), in file order."""
    source: str = field(default="<dict>", compare=False)
    """Where the settings came from (a file name, ``"<dict>"``, ``"<string>"``), named in
    errors; ignored by ``==``."""
    normalized: tuple[NormalizedConfig, ...] = field(default=(), init=False, repr=False,
                                                     compare=False)
    """Every entry's :class:`NormalizedConfig`, in file order: namespaces first, then
    resources."""

    def __post_init__(self) -> None:
        from faro import _config_checks as checks

        problems = checks.Problems()
        values = checks.check_config(self, problems)
        problems.raise_if_any(self.source)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Config:
        """Build a Config from a parsed document (a mapping of the file's keys).

        Unknown keys are errors; a null ``metrics``, ``namespaces`` or ``resources`` is the
        default. Raises :class:`ConfigError` listing every problem in document order.
        """
        from faro import _config_checks as checks

        if not isinstance(data, Mapping):
            raise ConfigError(source, "", "expected a mapping of settings at the top of the "
                                          f"document, got {checks.describe(data)}")
        problems = checks.Problems()
        settings = {key: value
                    for key, value in checks.known_keys(data, CONFIG_KEYS, "", problems).items()
                    if not (value is None and key in _SECTIONS)}
        errors = problems.errors(source)
        try:
            config = cls(**settings, source=source)
        except ConfigError as exc:
            errors.extend(_singles(exc))
        if errors:
            raise checks.in_document_order(errors, data) from None
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
        except ValueError as exc:  # an integer of more digits than Python converts
            raise ConfigError(source, "", f"invalid YAML: {exc}") from None
        return cls.from_dict({} if data is None else data, source=source)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with the given top-level settings replaced, validated again.

        For example ``config.with_overrides(workers=8)``, or for one metrics setting
        ``config.with_overrides(metrics=dataclasses.replace(config.metrics, port=9090))``.
        Raises :class:`ConfigError` for unknown settings and invalid values (all of them).
        """
        from faro import _config_checks as checks

        problems = checks.Problems()
        known = checks.known_keys(changes, CONFIG_KEYS, "", problems)
        errors = problems.errors(self.source)
        try:
            config = dataclasses.replace(self, **known)
        except ConfigError as exc:
            errors.extend(_singles(exc))
        if errors:
            raise checks.in_document_order(errors, changes) from None
        return config

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain dicts, lists and scalars; :meth:`from_dict` gives back an
        equal Config (YAML-safe, e.g. for ``yaml.safe_dump``)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in CONFIG_KEYS
                               if name not in _SECTIONS}
        out["metrics"] = {name: getattr(self.metrics, name) for name in METRICS_KEYS}
        out["export"] = {name: getattr(self.export, name) for name in EXPORT_KEYS}
        out["pending"] = {name: getattr(self.pending, name) for name in PENDING_KEYS}
        out["shard"] = {name: getattr(self.shard, name) for name in SHARD_KEYS}
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
# is adding a field (and, for a top-level single value, its check in faro._config_checks).
CONFIG_KEYS: Final[tuple[str, ...]] = _init_fields(Config, exclude=("source",))
METRICS_KEYS: Final[tuple[str, ...]] = _init_fields(MetricsConfig)
EXPORT_KEYS: Final[tuple[str, ...]] = _init_fields(ExportConfig)
PENDING_KEYS: Final[tuple[str, ...]] = _init_fields(PendingConfig)
SHARD_KEYS: Final[tuple[str, ...]] = _init_fields(ShardConfig)
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
    except ValueError as exc:  # a NUL in the path; UnicodeDecodeError is handled below
        if isinstance(exc, UnicodeDecodeError):
            raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start}: {exc.reason})") \
                from None
        raise ConfigError(source, "", f"cannot read the file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start}: {exc.reason})") \
            from None
    return Config.from_yaml(text, source=source)
