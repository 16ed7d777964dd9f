"""``faro run``: watch what a configuration names until a signal, auto-shutdown or a stop.

The contract (docs/cli.md, "faro run"): load the configuration (a bad one exits 2), apply
the flags over it (flags win; a bad value is a usage error naming the flag, exit 2), set
up logging (console and ``{output_dir}/logs/``), connect to the cluster (no usable
kubeconfig: exit 1), start the controller (a resource the cluster does not serve: exit 2;
the cluster unreachable, the metrics port taken, the event file not writable: exit 1), log
``faro is ready: N informers`` on ``faro.cli`` once every informer has listed, then run
until the first SIGINT/SIGTERM, ``auto_shutdown_sec`` or a handler's ``stop()``, and stop
within :data:`~faro.cli._process.STOP_TIMEOUT` (exit 0; 1 when threads are left, or at
once on a second signal). With ``--output stdout`` the JSON event lines go to standard
output and nothing else does (the logs are on stderr); when its reader closes it (``faro run
--output stdout | head``), faro stops (exit 1). A signal during the start (which may wait
long for the cluster) is acted on at once: the start runs on a thread of its own
(:class:`Starting`) and is abandoned if it still waits for the API server once the
controller stopped. ``configure`` (see :func:`faro.cli.main`) gets the controller after it
is built and before it starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import select
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faro import __version__
from faro.cli._cluster import add_cluster_flags, cannot_reach
from faro.cli._process import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    STOP_TIMEOUT,
    Shutdown,
    Starting,
    config_error_lines,
    exit_at_once,
    fail,
    fail_all,
    fail_config,
    logger,
    setup_logging,
    tune_gc,
    unexpected,
)
from faro.config import EXPORT_OUTPUTS

if TYPE_CHECKING:
    from faro.client import KubernetesClient
    from faro.config import Config
    from faro.controller import Controller
    from faro.leaderelection import LeaderElectionConfig
    from faro.logs import LoggingSetup

Configure = Callable[["Controller"], object]
"""A hook given the controller of ``faro run`` before it starts (see :func:`faro.cli.main`)."""

# The flags of `faro run` that may be written Go-style, with one dash (docs/cli.md).
GO_FLAGS = frozenset({"config", "output-dir", "log-level", "auto-shutdown", "kubeconfig",
                      "context", "metrics-port", "json-export", "no-json-export", "output"})


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
               version: str) -> None:
    run = commands.add_parser(
        "run", allow_abbrev=False,
        help="watch the resources a configuration names, until SIGINT/SIGTERM",
        description="Load the configuration, connect to the cluster, start the informers and "
        "log every matched event (logger faro.events) until SIGINT or SIGTERM (a second one "
        "during the stop exits at once) or auto-shutdown. Flags override the file's settings. "
        "'faro is ready' is logged once every informer has listed.",
        epilog="Exit codes: 0 stopped cleanly, 1 runtime failure (cluster unreachable, no "
        "usable kubeconfig, metrics port taken, stop timed out), 2 usage or configuration "
        "error (also a resource the cluster does not serve).",
    )
    run.add_argument("--version", action="version", version=version)
    run.add_argument("--config", required=True, metavar="FILE",
                     help="the YAML configuration (docs/config.md)")
    run.add_argument("--output-dir", metavar="DIR",
                     help="directory for the log file and the JSON events (overrides output_dir)")
    run.add_argument("--log-level", metavar="LEVEL",
                     help="debug, info, warning, error or fatal (overrides log_level)")
    run.add_argument("--auto-shutdown", type=float, metavar="SECONDS",
                     help="stop after this many seconds, exit 0; 0 runs until a signal "
                     "(overrides auto_shutdown_sec)")
    run.add_argument("--json-export", action=argparse.BooleanOptionalAction, default=None,
                     help="write every matched event to {output_dir}/events-*.json, or not "
                     "(overrides json_export)")
    run.add_argument("--output", choices=EXPORT_OUTPUTS, metavar="{file,stdout}",
                     help="where the JSON event lines go: the event file in the output dir "
                     "(file), or standard output, for a log collector, with the logs on stderr "
                     "(stdout); implies --json-export (overrides export.output and "
                     "json_export)")
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve Prometheus metrics and /healthz, /readyz on this port "
                     "(0: a free one); enables metrics (overrides metrics.port and "
                     "metrics.enabled)")
    sharding = run.add_argument_group(
        "sharding", "Split the objects across processes by a stable hash of namespace/name; "
        "each process caches and delivers one shard's (docs/operations.md).")
    sharding.add_argument("--shards", type=int, metavar="N",
                          help="the number of shards (overrides shard.count)")
    sharding.add_argument("--shard-index", type=int, metavar="I",
                          help="the shard this process serves, from 0 to N-1 (overrides "
                          "shard.index)")
    election = run.add_argument_group(
        "leader election", "Run several replicas: only the one holding a coordination.k8s.io "
        "Lease delivers events; the others keep warm caches and take over when it goes "
        "(docs/operations.md). The flags are kube-controller-manager's.")
    election.add_argument("--leader-elect", action="store_true",
                          help="compete for the Lease; deliver only while holding it")
    election.add_argument("--leader-elect-resource-name", metavar="NAME", default="faro",
                          help="the Lease's name (default: faro)")
    election.add_argument("--leader-elect-resource-namespace", metavar="NAMESPACE",
                          help="the Lease's namespace (default: $POD_NAMESPACE, else the "
                          "in-cluster service account's namespace, else default)")
    election.add_argument("--leader-elect-lease-duration", type=float, metavar="SECONDS",
                          default=15.0, help="how long standbys wait before taking the Lease "
                          "of a leader that stopped renewing it (default: 15)")
    election.add_argument("--leader-elect-renew-deadline", type=float, metavar="SECONDS",
                          default=10.0, help="how long the leader tries to renew before it "
                          "stops delivering (default: 10)")
    election.add_argument("--leader-elect-retry-period", type=float, metavar="SECONDS",
                          default=2.0, help="time between attempts to acquire or renew "
                          "(default: 2)")
    add_cluster_flags(run)
    run.set_defaults(command_parser=run)


def command(parser: argparse.ArgumentParser, args: argparse.Namespace,
            configure: Configure | None) -> int:
    from faro.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return fail_config(error)
    config = _with_flags(parser, config, args)
    election = _leader_election(parser, args)
    try:
        logs = setup_logging(config)
    except OSError as error:
        return fail(f"cannot write the log file under {config.output_dir}: "
                    f"{error.strerror or error}", EXIT_FAILURE)
    shutdown = Shutdown()
    shutdown.install()
    try:
        return _serve(config, args, logs, shutdown, configure, election)
    except Exception as error:
        return unexpected(error, logs)
    finally:
        shutdown.restore()
        logs.close()


_FLAG_OF = {"output_dir": "--output-dir", "log_level": "--log-level",
            "auto_shutdown_sec": "--auto-shutdown", "json_export": "--json-export",
            "metrics": "--metrics-port", "export": "--output",
            "shard": "--shards/--shard-index"}


def _with_flags(parser: argparse.ArgumentParser, config: Config,
                args: argparse.Namespace) -> Config:
    """The configuration with the command line's overrides (flags win); bad values exit 2."""
    from faro.config import ConfigError

    changes: dict[str, Any] = {
        "output_dir": args.output_dir, "log_level": args.log_level,
        "auto_shutdown_sec": args.auto_shutdown, "json_export": args.json_export}
    if args.metrics_port is not None:
        changes["metrics"] = dataclasses.replace(config.metrics, enabled=True,
                                                 port=args.metrics_port)
    if args.shards is not None or args.shard_index is not None:
        shard = config.shard
        changes["shard"] = dataclasses.replace(
            shard, count=shard.count if args.shards is None else args.shards,
            index=shard.index if args.shard_index is None else args.shard_index)
    if args.output is not None:
        if args.json_export is False:
            parser.error("argument --output: not allowed with --no-json-export (--output says "
                         "where the JSON event lines go)")
        changes["json_export"] = True
        changes["export"] = dataclasses.replace(config.export, output=args.output)
    for key, value in changes.items():
        if value is None:
            continue
        try:
            config = config.with_overrides(**{key: value})
        except ConfigError as error:
            flag = {"shard.index": "--shard-index", "shard.count": "--shards"}.get(
                error.path, _FLAG_OF[key])
            parser.error(f"argument {flag}: {error.problem}")
    return config


def _leader_election(parser: argparse.ArgumentParser, args: argparse.Namespace
                     ) -> LeaderElectionConfig | None:
    """The ``--leader-elect*`` flags as a configuration (None without ``--leader-elect``);
    inconsistent timings are a usage error naming the flag."""
    from faro.client import SERVICE_ACCOUNT_DIR
    from faro.leaderelection import LeaderElectionConfig

    if not args.leader_elect:
        return None
    namespace = args.leader_elect_resource_namespace or os.environ.get("POD_NAMESPACE", "")
    if not namespace:
        try:
            namespace = (Path(SERVICE_ACCOUNT_DIR) / "namespace").read_text().strip()
        except OSError:
            namespace = "default"
    try:
        return LeaderElectionConfig(
            namespace=namespace, name=args.leader_elect_resource_name,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period)
    except ValueError as error:
        field = str(error).split(" ", 1)[0]
        flag = {"namespace": "--leader-elect-resource-namespace",
                "name": "--leader-elect-resource-name"}.get(
                    field, f"--leader-elect-{field.replace('_', '-')}")
        parser.error(f"argument {flag}: {error}")


def _serve(config: Config, args: argparse.Namespace, logs: LoggingSetup,
           shutdown: Shutdown, configure: Configure | None,
           election: LeaderElectionConfig | None) -> int:
    from faro.client import ClientConfigError, KubernetesClient
    from faro.controller import Controller

    logger.info("faro %s starting: config %s, output dir %s, log file %s", __version__,
                config.source, config.output_dir, logs.log_file)
    try:
        client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                   context=args.context)
    except ClientConfigError as error:
        return fail(str(error), EXIT_FAILURE)
    try:
        logger.info("cluster: %s at %s", client.source, client.api_client.configuration.host)
        controller = Controller(client, config, leader_election=election)
        if election is not None:
            logger.info("leader election: lease %s/%s as %s (a standby until it holds it)",
                        election.namespace, election.name, election.identity)
        try:
            if configure is not None:
                configure(controller)
            controller.set_ready_callback(lambda: announce_ready(controller))
            tune_gc()
            starting = Starting(controller.start)
            if not starting.wait(shutdown):  # a signal while starting
                return _stop(controller, shutdown, f"{shutdown.reason} while starting",
                             starting)
            failed = _started(controller, client, starting)
            if failed is not None:
                return failed
            to_stdout = config.json_export and config.export.output == "stdout"
            if shutdown.wait(config.auto_shutdown_sec, until=lambda: controller.stopped or (
                    to_stdout and stdout_closed())):
                reason = shutdown.reason
            elif controller.stopped:
                reason = "the controller was stopped (by a handler)"
            elif to_stdout and stdout_closed():
                _stop(controller, shutdown, "standard output was closed by its reader: the "
                      "event lines cannot be written")
                return EXIT_FAILURE
            else:
                reason = f"auto shutdown after {config.auto_shutdown_sec:g} s"
            return _stop(controller, shutdown, reason)
        except BaseException:  # a bug: stop the controller before it is reported
            shutdown.stopping = True
            if not controller.stop(timeout=STOP_TIMEOUT):
                exit_at_once("faro did not stop after an unexpected error")
            raise
    finally:
        client.close()


def announce_ready(controller: Controller) -> None:
    """Log ``faro is ready: N informers`` (what scripts and tests wait for)."""
    active = controller.get_active_informers()
    address = controller.metrics_address
    metrics = f", metrics on port {address[1]}" if address else ""
    logger.info("faro is ready: %d informers%s", active.config_driven + active.dynamic, metrics)


def _started(controller: Controller, client: KubernetesClient, starting: Starting
             ) -> int | None:
    """How the start ended: None when the controller runs, else the exit code (after one
    error line)."""
    import urllib3

    from faro.config import ConfigError
    from faro.discovery import DiscoveryError
    from faro.errors import ApiStatusError, FaroError

    try:
        starting.result()
    except ConfigError as error:  # one line per problem
        messages, code = config_error_lines(error), EXIT_USAGE
    except (DiscoveryError, ApiStatusError, urllib3.exceptions.HTTPError) as error:
        messages, code = [cannot_reach(error, client)], EXIT_FAILURE
    except OSError as error:  # with a file name: the JSON event file; else the network
        messages = [f"cannot create {error.filename}: {error.strerror}" if error.filename
                    else cannot_reach(error, client)]
        code = EXIT_FAILURE
    except FaroError as error:  # the metrics server could not start, and the like
        messages, code = [str(error)], EXIT_FAILURE
    else:
        if controller.events_file is not None:
            logger.info("writing matched events as JSON lines to %s", controller.events_file)
        elif controller.config.json_export and controller.config.export.output == "stdout":
            logger.info("writing matched events as JSON lines to standard output (the logs go "
                        "to stderr)")
        return None
    controller.stop(timeout=5)  # what start() left (nothing, usually): before the error line
    return fail_all(messages, code)


def stdout_closed() -> bool:
    """Whether standard output is a pipe or socket whose reader has gone (``poll`` reports
    an error or a hang-up on it; never for a file or a terminal, nor where ``poll`` is
    missing)."""
    if not hasattr(select, "poll"):
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


START_ABANDON = 1.0
"""Seconds a start interrupted by a signal gets to return once the controller stopped; one
still waiting for the API server then (discovery, ...) is abandoned: faro exits at once."""


def _stop(controller: Controller, shutdown: Shutdown, reason: str,
          starting: Starting | None = None) -> int:
    shutdown.stopping = True  # from here a signal exits at once
    logger.info("%s: stopping (waiting up to %g s; a second SIGINT or SIGTERM exits at once)",
                reason, STOP_TIMEOUT)
    if not controller.stop(timeout=STOP_TIMEOUT):
        # A handler still runs: the exit would not wait for its (daemon) thread, but this
        # says so, and the exit code says it did not stop cleanly.
        exit_at_once(f"faro did not stop within {STOP_TIMEOUT:g} s (see above); exiting "
                     "with threads still running")
    if starting is not None and not starting.ended(START_ABANDON):
        # Its request (and the threads discovery fans out to) could hold the exit up for
        # their read timeout: everything faro started is stopped, so exit now.
        exit_at_once("faro stopped (its start was still waiting for the API server)",
                     EXIT_OK, logging.INFO)
    logger.info("faro stopped")
    return EXIT_OK
