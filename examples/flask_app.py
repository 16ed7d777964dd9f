"""faro inside a Flask app: the controller runs on background threads beside the web server.

``create_app()`` builds the app and starts the faro controller (``controller.start()``
returns once the informers run; faro's threads do the rest). A handler keeps the last
``--max-events`` events in a ``deque`` behind a lock, and the app serves:

- ``GET /events`` (``?limit=N``): the most recent events, newest last, as JSON (each as
  a line of faro's JSON export: ``faro.event_record``);
- ``GET /healthz``: 200 while ``controller.is_ready()``, 503 otherwise.

The controller stops when the process exits, however it ends (faro's exit hook delivers
what is queued first, for at most the controller's ``exit_timeout``; the ``atexit``
registration below says so explicitly), and on Ctrl-C (SIGINT) or SIGTERM, which also stop
the server. Needs Flask: ``pip install flask``.

Try it against faro's simulated API server. In one terminal::

    faro sim --kubeconfig-out sim.kubeconfig

(HTTPS: the kubeconfig carries the CA, which the Python client and kubectl both use;
``faro sim --http`` works for this example too, not for kubectl.) In a second one::

    python examples/flask_app.py --kubeconfig sim.kubeconfig --port 5000

and in a third::

    kubectl --kubeconfig sim.kubeconfig create configmap web --from-literal=color=blue
    curl http://127.0.0.1:5000/events
    curl -i http://127.0.0.1:5000/healthz

It serves Flask's development server (``--port 0``: a free port, printed); it stops on
Ctrl-C or after ``--run-for`` seconds.

Under gunicorn (``pip install gunicorn``), ``wsgi()`` is the app factory; gunicorn calls it
in each worker, after the fork, so every worker runs a controller of its own::

    KUBECONFIG=sim.kubeconfig gunicorn --chdir examples -w 2 -b 127.0.0.1:5000 'flask_app:wsgi()'

Never with ``--preload``: the master would start the controller and the workers would get
dead copies (docs/embedding.md, "Pre-fork servers"). SIGTERM to the master stops the workers,
and each worker's controller stops at its exit. ``/events`` says which worker answered
(``pid``).

Django: start the controller in your app's ``AppConfig.ready()``, once per process::

    class WatchConfig(AppConfig):
        name = "watch"

        def ready(self) -> None:
            # `manage.py runserver` runs ready() in a watcher process and again in the
            # serving child (RUN_MAIN=true): start faro only in the child, or use --noreload.
            if "runserver" in sys.argv and os.environ.get("RUN_MAIN") != "true" \\
                    and "--noreload" not in sys.argv:
                return
            controller = Controller(KubernetesClient.from_environment(), load_config(...))
            controller.add_event_handler(...)
            controller.start()  # stopped when the process exits (docs/embedding.md)
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import threading
from collections import deque
from pathlib import Path
from types import FrameType
from typing import Any

try:
    from flask import Flask, jsonify, request
    from flask.typing import ResponseReturnValue
    from werkzeug.serving import make_server
except ImportError:
    print("flask_app: this example needs Flask: pip install flask", file=sys.stderr)
    sys.exit(1)

from faro import (
    ClientConfigError,
    Config,
    ConfigError,
    Controller,
    FaroError,
    KubernetesClient,
    MatchedEvent,
    event_record,
    load_config,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "resource-centric.yaml"


class RecentEvents:
    """A faro handler keeping the last ``size`` events; safe to read from any thread."""

    def __init__(self, size: int) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def on_matched(self, event: MatchedEvent) -> None:  # on faro's worker threads
        record = event_record(event)
        with self._lock:
            self._events.append(record)

    def last(self, limit: int) -> list[dict[str, Any]]:  # on the web server's threads
        with self._lock:
            events = list(self._events)
        return events[-limit:] if limit > 0 else []


def start_faro(client: KubernetesClient, config: Config, max_events: int
               ) -> tuple[Controller, RecentEvents]:
    """Start a controller on background threads; it is stopped at interpreter exit.

    faro's exit hook stops it whatever ends the process; the ``atexit`` registration is
    optional (harmless: the hook has stopped it by the time ``atexit`` runs).
    """
    controller = Controller(client, config, name="faro-flask")
    recent = RecentEvents(max_events)
    controller.add_event_handler(recent)  # before start(): also the existing objects
    controller.start()  # returns once the informers run; raises FaroError if it cannot
    atexit.register(controller.stop)  # optional; idempotent: harmless after any stop
    return controller, recent


def create_app(client: KubernetesClient, config: Config, max_events: int = 100) -> Flask:
    app = Flask(__name__)
    controller, recent = start_faro(client, config, max_events)
    app.extensions["faro"] = controller

    @app.get("/events")
    def events() -> ResponseReturnValue:
        limit = request.args.get("limit", default=max_events, type=int)
        return jsonify(events=recent.last(limit if limit is not None else max_events),
                       pid=os.getpid())

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        ready = controller.is_ready()
        return jsonify(ready=ready), 200 if ready else 503

    return app


def wsgi() -> Flask:
    """The app for a pre-fork WSGI server (``gunicorn 'flask_app:wsgi()'``), one per worker.

    The configuration is ``$FARO_CONFIG`` (default: the example's), the cluster the one faro
    finds (in-cluster, ``$KUBECONFIG``, ``~/.kube/config``). Raises what :func:`load_config`,
    :meth:`KubernetesClient.from_environment` and ``Controller.start`` raise: the worker
    fails to boot, and gunicorn says why.
    """
    config = load_config(os.environ.get("FARO_CONFIG") or DEFAULT_CONFIG)
    return create_app(KubernetesClient.from_environment(), config)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="configuration file (default: %(default)s)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, "
                        "$KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current-context)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on "
                        "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=5000,
                        help="port to serve on; 0: a free one (default: %(default)s)")
    parser.add_argument("--max-events", type=int, default=100,
                        help="how many recent events /events keeps (default: %(default)s)")
    parser.add_argument("--run-for", type=float, default=0, metavar="SECONDS",
                        help="stop after this many seconds (default: 0, never)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        client = KubernetesClient.from_environment(kubeconfig=args.kubeconfig,
                                                   context=args.context)
    except (ConfigError, ClientConfigError) as error:
        print(f"flask_app: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1

    with client:
        try:
            app = create_app(client, config, args.max_events)
        except FaroError as error:
            print(f"flask_app: cannot start faro: {error}", file=sys.stderr)
            return 1
        controller: Controller = app.extensions["faro"]
        server = make_server(args.host, args.port, app, threaded=True)

        def shut_down() -> None:  # server.shutdown() waits: never on the serving thread
            threading.Thread(target=server.shutdown, name="shutdown").start()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            print(f"-- {signal.Signals(signum).name}: stopping --", flush=True)
            signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
            shut_down()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        if args.run_for > 0:
            timer = threading.Timer(args.run_for, shut_down)
            timer.daemon = True
            timer.start()
        print(f"-- serving on http://{args.host}:{server.server_port} --", flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
            controller.stop()  # also registered with atexit: this makes it explicit
    print("-- stopped --", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
