"""The basic library integration: a configuration, a client, a controller, a handler.

It loads a configuration file, connects to the cluster, registers an event handler
and a ready callback, and runs the controller until Ctrl-C (SIGINT or SIGTERM), until
the configuration's ``auto_shutdown_sec`` (or ``--auto-shutdown``) passed, or until
``--exit-after-events`` events arrived. Each matched event is printed as one line::

    ADDED    v1/configmaps        default/web  uid=4b1c...  (existed before start)

Try it against faro's simulated API server, no cluster needed. In one terminal::

    faro sim --kubeconfig-out sim.kubeconfig

(HTTPS with a CA it generates: the kubeconfig carries the CA, which both kubectl and the
Python client use; ``faro sim --http`` serves plain HTTP, which the Python client accepts
too but kubectl does not.) In a second terminal::

    python examples/library_usage.py --kubeconfig sim.kubeconfig \\
        --config examples/configs/resource-centric.yaml

and in a third, change something the configuration watches::

    kubectl --kubeconfig sim.kubeconfig create configmap web --from-literal=color=blue
    kubectl --kubeconfig sim.kubeconfig create namespace team-a

Against a real cluster, drop ``--kubeconfig``: faro then uses the in-cluster service
account, ``$KUBECONFIG`` or ``~/.kube/config``. Exit status: 0 after a clean stop, 2 for
a bad configuration, 1 when the cluster cannot be used.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from faro import (
    ClientConfigError,
    ConfigError,
    Controller,
    FaroError,
    KubernetesClient,
    MatchedEvent,
    load_config,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "resource-centric.yaml"
_print_lock = threading.RLock()


def say(line: str) -> None:
    """Print one line; handlers run on several threads, and print() is not atomic."""
    with _print_lock:
        print(line, flush=True)


class EventPrinter:
    """A handler: prints every matched event; optionally stops the controller after N."""

    def __init__(self, controller: Controller, exit_after: int = 0) -> None:
        self._controller = controller
        self._exit_after = exit_after
        self._count = 0
        self._lock = threading.Lock()  # handlers run on several worker threads at once

    def on_matched(self, event: MatchedEvent) -> None:
        initial = "  (existed before start)" if event.is_initial else ""
        say(f"{event.event_type.value:<8} {event.gvr:<20} {event.key:<12} "
            f"uid={event.uid}{initial}")
        with self._lock:
            self._count += 1
            done = self._count == self._exit_after
        if done:
            say(f"-- {self._exit_after} events: stopping --")
            self._controller.stop()  # allowed from a handler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="configuration file (default: %(default)s)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, "
                        "$KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current-context)")
    parser.add_argument("--auto-shutdown", type=float, metavar="SECONDS",
                        help="stop after this many seconds (overrides auto_shutdown_sec)")
    parser.add_argument("--exit-after-events", type=int, default=0, metavar="N",
                        help="stop after N matched events (default: 0, never)")
    parser.add_argument("--log-level", default="WARNING",
                        help="level of faro's own log lines on stderr (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        if args.auto_shutdown is not None:
            config = config.with_overrides(auto_shutdown_sec=args.auto_shutdown)
    except ConfigError as error:
        print(f"library_usage: {error}", file=sys.stderr)
        return 2
    try:
        client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                   context=args.context)
    except ClientConfigError as error:
        print(f"library_usage: {error}", file=sys.stderr)
        return 1

    with client:
        controller = Controller(client, config)
        controller.add_event_handler(EventPrinter(controller, args.exit_after_events))
        controller.set_ready_callback(lambda: say(
            f"-- faro is ready: {sum(controller.get_active_informers())} informers --"))

        def on_signal(signum: int, frame: FrameType | None) -> None:
            say(f"-- {signal.Signals(signum).name}: stopping --")
            signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C ends the process at once
            # stop() waits for the handlers to finish: not inside a signal handler.
            threading.Thread(target=controller.stop, name="stopper").start()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            controller.run()  # blocks until stop() or auto_shutdown_sec
        except FaroError as error:  # the cluster unreachable, a resource it cannot serve...
            print(f"library_usage: cannot start: {error}", file=sys.stderr)
            controller.stop()
            return 1
        controller.stop()  # idempotent: waits until every thread has ended
    say("-- stopped --")
    return 0


if __name__ == "__main__":
    sys.exit(main())
