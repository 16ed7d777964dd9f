"""``faro discover``: the resources a cluster serves that faro can watch.

The contract (docs/cli.md, "faro discover"): every resource served with both ``list`` and
``watch`` (subresources left out), every served version, as the ``group/version/resource``
strings a configuration uses, sorted by group (the core group first), resource and version;
a table (``GVR SCOPE KIND SHORTNAMES``) or, with ``-o json``, a list of ``{gvr, group,
version, resource, kind, scope, short_names, preferred, verbs}`` on stdout. A group version
the server fails to describe is left out with a ``faro: warning:`` line; no usable
kubeconfig, or a cluster that cannot be reached, is one ``faro: error:`` line and exit 1.
"""

from __future__ import annotations

import argparse
import json

from faro.cli._cluster import add_cluster_flags, cannot_reach
from faro.cli._process import (
    EXIT_FAILURE,
    EXIT_OK,
    console_warnings,
    fail,
    signals_to_main_thread,
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               version: str) -> None:
    discover = commands.add_parser(
        "discover", allow_abbrev=False,
        help="list the resources a cluster serves that faro can watch",
        description="List every resource the cluster serves with both list and watch (what an "
        "informer needs), every served version, as the group/version/resource strings a "
        "configuration uses, with scope, kind and short names. Exit 1 when the cluster "
        "cannot be reached.",
    )
    discover.add_argument("--version", action="version", version=version)
    add_cluster_flags(discover)
    discover.add_argument("-o", "--output", choices=("text", "json"), default="text",
                          help="a table (default) or json")
    discover.set_defaults(command_parser=discover)


def command(args: argparse.Namespace) -> int:
    from faro.client import ClientConfigError, KubernetesClient
    from faro.discovery import DiscoveryError

    with console_warnings():
        try:
            client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                       context=args.context)
        except ClientConfigError as error:
            return fail(str(error), EXIT_FAILURE)
        try:
            with signals_to_main_thread():  # discovery fetches on a thread pool
                resources = client.discovery.resources()
        except DiscoveryError as error:
            return fail(cannot_reach(error, client), EXIT_FAILURE)
        finally:
            client.close()
    ordered = sorted(resources, key=lambda r: (r.gvr.group, r.gvr.resource, r.gvr.version))
    if args.output == "json":
        print(json.dumps([{
            "gvr": str(r.gvr), "group": r.gvr.group, "version": r.gvr.version,
            "resource": r.gvr.resource, "kind": r.kind, "scope": r.scope,
            "short_names": list(r.short_names), "preferred": r.preferred,
            "verbs": sorted(r.verbs)} for r in ordered], indent=2))
        return EXIT_OK
    rows = [("GVR", "SCOPE", "KIND", "SHORTNAMES")]
    rows += [(str(r.gvr), r.scope, r.kind, ",".join(r.short_names)) for r in ordered]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("   ".join([*cells, row[3]]).rstrip())
    return EXIT_OK
