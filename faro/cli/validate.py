"""``faro validate``: check a configuration and print its informer plan, without a cluster.

The contract (docs/cli.md, "faro validate"): ``faro validate [--plan] FILE [-o text|json]``
loads FILE with :func:`faro.config.load_config`.

- Valid: exit 0; stdout is the plan (``--plan`` asks for it explicitly; it is also the
  default), as text (:func:`_plan_text`) or, with ``-o json``, one JSON document
  (:func:`_plan_document`): ``source``, ``valid: true``, ``informers``, ``settings``,
  ``config``.
- Invalid: exit 2; every problem the configuration has (``ConfigError.errors``, in
  document order; an error without that attribute is the only problem) is one
  ``faro: error: SOURCE: PATH: PROBLEM`` line on stderr, after a count line
  ``faro: error: SOURCE: N problems`` when there are several. With ``-o json``, stdout also
  gets ``{"source", "valid": false, "error": {first problem}, "errors": [every problem]}``,
  each problem as ``{"path", "problem", "message"}`` (:func:`_error_document`).

The module has four parts, kept apart so that the shared planner (``faro._plan``) can
replace this one by changing :func:`_offline_plan` only: the command (:func:`command`); the
offline planner (:func:`_plan`, :class:`_PlannedInformer`, :data:`_CLUSTER_SCOPED`: which
list/watch requests the configuration asks for); the plan as rendered
(:class:`PlannedInformer`, with the attributes of ``faro._plan.PlannedInformer``, and
:func:`_offline_plan`, which makes them from :func:`_plan`); and the rendering
(:func:`_plan_text`, :func:`_plan_document`, :func:`_settings`, :func:`_error_document`),
which reads nothing of the planner but those attributes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from faro.cli._process import EXIT_OK, config_problems, fail_config, problem_line

if TYPE_CHECKING:
    from faro._plan import PlannedInformer
    from faro.config import Config, ConfigError


# ----------------------------------------------------------------------------- command


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               version: str) -> None:
    validate = commands.add_parser(
        "validate", allow_abbrev=False,
        help="check a configuration and print the informers it asks for (no cluster needed)",
        description="Validate a configuration file and print its plan: the list/watch request "
        "of every informer (resource, namespace, server-side selectors), which entries share "
        "one, the client-side filters, and the settings. Exit 0 when valid, 2 when not (every "
        "problem on stderr, one line each).",
    )
    validate.add_argument("--version", action="version", version=version)
    validate.add_argument("file", metavar="FILE", help="the YAML configuration")
    validate.add_argument("--plan", action="store_true",
                          help="print the informer plan of a valid file (the default: the "
                          "flag only says so)")
    validate.add_argument("-o", "--output", choices=("text", "json"), default="text",
                          help="text for people (default) or json for programs")
    validate.set_defaults(command_parser=validate)


def command(args: argparse.Namespace) -> int:
    from faro.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as error:
        if args.output == "json":
            print(json.dumps(_error_document(error), indent=2))
        return fail_config(error)
    plan = _offline_plan(config)
    if args.output == "json":
        print(json.dumps(_plan_document(config, plan), indent=2))
    else:
        print("\n".join(_plan_text(config, plan)))
    return EXIT_OK


# ------------------------------------------------------------------------------ the plan


def _offline_plan(config: Config) -> list[PlannedInformer]:
    """The informers ``config`` asks for, as far as known without a cluster.

    The controller's own planner, with :data:`faro._plan.OFFLINE` (Kubernetes' own
    cluster-scoped resources; others as the entry declares) and unknown namespaces, so the
    two can never disagree.
    """
    from faro._plan import OFFLINE, plan_informers

    return list(plan_informers(config.normalized, OFFLINE, None).informers)


# ---------------------------------------------------------------------------- rendering


def _settings(config: Config) -> dict[str, Any]:
    output = config.output_dir
    metrics = config.metrics
    port = str(metrics.port) if metrics.port else "<a free port>"
    host = f"[{metrics.bind_addr}]" if ":" in metrics.bind_addr else metrics.bind_addr
    return {
        "output_dir": output,
        "log_file": os.path.join(output, "logs", "faro-YYYYMMDD-HHMMSS.log"),
        "log_level": config.log_level,
        "json_export": config.json_export,
        "events_file": os.path.join(output, "events-YYYYMMDD-HHMMSS.json")
        if config.json_export and config.export.output == "file" else None,
        "export": dataclasses.asdict(config.export),
        "pending": dataclasses.asdict(config.pending),
        "shard": dataclasses.asdict(config.shard),
        "metrics": dataclasses.asdict(metrics) | {
            "url": f"http://{host}:{port}{metrics.path}" if metrics.enabled else None},
        "auto_shutdown_sec": config.auto_shutdown_sec,
        "workers": config.workers,
        "max_retries": config.max_retries,
        "unhealthy_after_sec": config.unhealthy_after_sec,
    }


def _plan_document(config: Config, plan: Sequence[PlannedInformer]) -> dict[str, Any]:
    """The ``-o json`` document of a valid configuration."""
    return {
        "source": config.source,
        "valid": True,
        "informers": [{
            "gvr": str(i.key.gvr), "namespace": i.key.namespace,
            "namespace_pattern": i.key.namespace_pattern,
            "label_selector": i.key.label_selector, "field_selector": i.key.field_selector,
            "cluster_scoped": i.cluster_scoped,
            "entries": [{"source": e.source, "scope": e.scope, "namespace": e.namespace,
                         "namespace_pattern": e.namespace_pattern,
                         "name_pattern": e.name_pattern}
                        for e in (served.config for served in i.entries)],
        } for i in plan],
        "settings": _settings(config),
        "config": config.to_dict(),
    }


def _plan_text(config: Config, plan: Sequence[PlannedInformer]) -> list[str]:
    """The text output of a valid configuration, one line per item."""
    entries = len(config.normalized)
    lines = [f"{config.source}: valid: {entries} {_plural(entries, 'entry', 'entries')}, "
             f"{len(plan)} {_plural(len(plan), 'informer', 'informers')}"]
    if not plan:
        lines.append("It watches nothing (a program can add resources at runtime with "
                     "Controller.add_resources).")
    else:
        lines += ["", "Informers (one list and watch request each):"]
    for number, informer in enumerate(plan, 1):
        request = informer.key
        shared = f", shared by {len(informer.entries)} entries" \
            if len(informer.entries) > 1 else ""
        lines.append(f"  [{number}] {request.gvr} {informer.target}{shared}")
        if request.label_selector:
            lines.append(f"      label selector (server-side): {request.label_selector}")
        if request.field_selector:
            lines.append(f"      field selector (server-side): {request.field_selector}")
        for served in informer.entries:
            lines.append(f"      entry {served.config.source}" + (
                f": {'; '.join(served.notes)}" if served.notes else ""))
    if any(i.key.namespace is None and i.key.namespace_pattern is None and not i.cluster_scoped
           for i in plan):
        lines.append("  (Without a cluster faro knows the scope of Kubernetes' own resources "
                     "only: 'in all namespaces' is one cluster-wide informer if the resource "
                     "is cluster-scoped; 'scope: Cluster' in an entry says so.)")
    if any(i.shared for i in plan):
        lines.append("  (A shared informer lists and watches all namespaces: where the "
                     "credentials may not, faro runs one informer per namespace instead, "
                     "resolving patterns at runtime, and logs a warning.)")
    settings = _settings(config)
    export = config.export
    if config.json_export and export.output == "stdout":
        json_line = "on: standard output (the logs go to stderr)"
    elif config.json_export:
        rotation = (f"rotated at {_size(export.max_bytes)}, {export.backups} kept"
                    if export.max_bytes else "never rotated")
        json_line = f"on: {settings['events_file']} ({rotation})"
    else:
        json_line = "off"
    metrics_line = f"{settings['metrics']['url']} (and /healthz, /readyz)" \
        if config.metrics.enabled else "off"
    shutdown = f"after {config.auto_shutdown_sec:g} s" if config.auto_shutdown_sec else \
        "never (runs until SIGINT or SIGTERM)"
    lines += [
        "",
        "Settings:",
        f"  output dir:     {config.output_dir}",
        f"  log file:       {settings['log_file']} (level {config.log_level})",
        f"  JSON export:    {json_line}",
        f"  metrics:        {metrics_line}",
        f"  auto shutdown:  {shutdown}",
        f"  workers:        {config.workers} (a failing handler is retried up to "
        f"{config.max_retries} times per event)",
    ]
    return lines


def _error_document(error: ConfigError) -> dict[str, Any]:
    """The ``-o json`` document of an invalid configuration."""
    def document(problem: ConfigError) -> dict[str, str]:
        return {"path": problem.path, "problem": problem.problem,
                "message": problem_line(problem)}

    return {"source": error.source, "valid": False, "error": document(error),
            "errors": [document(problem) for problem in config_problems(error)]}


def _size(count: int) -> str:
    """``100 MiB``, ``1.5 KiB``, ``512 bytes``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= factor:
            return f"{count / factor:.4g} {unit}"
    return f"{count} bytes"


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many
