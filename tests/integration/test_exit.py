"""A program using faro exits when its main code ends, as a Python library's user expects.

Each test runs a small program in a child process (``python -c ...``) against a
SimulatedCluster of this process (its kubeconfig path is the child's argument) and asserts
that the child exits within :data:`EXIT_BOUND` seconds of its main code ending, whether it
called ``stop()`` or not, returned or raised, or was interrupted in ``run()`` by Ctrl-C; and,
where events were still queued, that the interpreter-exit drain delivered them. The child
prints ``main done`` when its main code ends; the exit time is measured from that line.
Every wait is on a line or on the child's exit, with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import faro
from faro.testing import SimulatedCluster
from tests.integration.kube import LineReader

ROOT = Path(faro.__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STARTUP = 30.0  # seconds a fresh interpreter may take to import faro and start
EXIT_BOUND = 15.0  # seconds from the end of the child's main code to its exit
OBJECTS = 40  # ConfigMaps that exist before the child starts: its initial ADDED events

# The child's common part: a configuration watching the namespace "exit" with one worker,
# and a handler that takes 25 ms per event (so that events are still queued when main ends),
# prints each and, for the object named "stuck", never returns.
PRELUDE = """\
import logging, sys, threading, time
from faro import Config, Controller, KubernetesClient
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
client = KubernetesClient.from_environment(kubeconfig=sys.argv[1])
config = Config.from_dict({"resources": [{"gvr": "v1/configmaps",
                                          "namespace_names": ["exit"]}],
                           "workers": int(sys.argv[2])})
never = threading.Event()
stuck = threading.Event()  # set once the handler for "stuck" runs

said = threading.Lock()

def say(line):
    with said:  # handlers print on several threads
        print(line, flush=True)

def handler(event):
    if event.name == "stuck":
        say("stuck handler running")
        stuck.set()
        never.wait()
    time.sleep(0.025)  # the handler's own work, so that events queue up
    say(f"handled {event.event_type.value} {event.name}")
"""


class Child:
    """A child Python process running ``PRELUDE`` + ``code``; stdout lines read as they come."""

    def __init__(self, cluster: SimulatedCluster, code: str, *, workers: int = 1) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        self.reader = LineReader(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code), cluster.kubeconfig_path,
             str(workers)], env=env, cwd=ROOT)

    @classmethod
    def adopt(cls, reader: LineReader) -> Child:
        """A Child for a process started otherwise (a script file)."""
        child = cls.__new__(cls)
        child.reader = reader
        return child

    def line(self, text: str, timeout: float = STARTUP) -> float:
        """Wait for a stdout line containing ``text``; returns when it was read."""
        self.reader.wait_for(lambda line: text in line, timeout=timeout)
        return time.monotonic()

    def exit(self, since: float) -> tuple[int, list[str], str, float]:
        """Wait (at most EXIT_BOUND after ``since``) for the exit: (status, stdout lines,
        stderr, seconds from ``since`` to the exit)."""
        try:
            rest = self.reader.rest(timeout=max(0.0, since + EXIT_BOUND - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the child did not exit within {EXIT_BOUND:g} s of its main code "
                        f"ending; output: {self.reader.seen}")
        elapsed = time.monotonic() - since
        assert self.reader.process.stderr is not None
        stderr = self.reader.process.stderr.read()
        print(f"exit took {elapsed:.2f} s after main ended")
        return self.reader.process.returncode, self.reader.seen + rest, stderr, elapsed

    def close(self) -> None:
        self.reader.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.close()


@pytest.fixture
def populated(cluster: SimulatedCluster) -> SimulatedCluster:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "exit"}})
    for index in range(OBJECTS):
        cluster.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"cm-{index:02d}", "namespace": "exit"}})
    return cluster


def handled(lines: list[str]) -> set[str]:
    return {line.split()[-1] for line in lines if line.startswith("handled ADDED ")}


EVERY_OBJECT = {f"cm-{index:02d}" for index in range(OBJECTS)}


def test_a_script_that_returns_without_stop_exits_and_delivers_what_was_queued(
        populated: SimulatedCluster, children: list[Child]) -> None:
    child = Child(populated, """\
        controller = Controller(client, config)
        controller.add_event_handler(handler)
        controller.start()
        assert controller.wait_until_ready(20)
        say("main done")
    """)
    children.append(child)
    ended = child.line("main done")

    code, lines, stderr, _ = child.exit(ended)

    assert code == 0, stderr
    assert handled(lines) == EVERY_OBJECT  # the exit drain delivered the queued events
    assert "controller faro stopped" in stderr
    assert "Traceback" not in stderr


def test_a_script_whose_main_raises_exits_with_the_traceback(
        populated: SimulatedCluster, children: list[Child]) -> None:
    child = Child(populated, """\
        controller = Controller(client, config)
        controller.add_event_handler(handler)
        controller.start()
        assert controller.wait_until_ready(20)
        say("main done")
        raise RuntimeError("main failed")
    """)
    children.append(child)
    ended = child.line("main done")

    code, lines, stderr, _ = child.exit(ended)

    assert code == 1
    assert "RuntimeError: main failed" in stderr
    assert handled(lines) == EVERY_OBJECT


def test_the_exit_drain_is_bounded_by_exit_timeout_when_a_handler_never_returns(
        populated: SimulatedCluster, children: list[Child]) -> None:
    populated.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "stuck", "namespace": "exit"}})
    child = Child(populated, """\
        controller = Controller(client, config, exit_timeout=1.0)
        controller.add_event_handler(handler)
        controller.start()
        assert controller.wait_until_ready(20) and stuck.wait(20)
        say("main done")
    """, workers=2)
    children.append(child)
    ended = child.line("main done")

    code, _, stderr, elapsed = child.exit(ended)

    assert code == 0, stderr
    assert elapsed < 1.0 + 5.0  # the drain's second, plus the interpreter's exit
    assert "handler __main__.handler is still running for v1/configmaps exit/stuck" in stderr


def test_with_controller_whose_body_raises_exits_although_a_handler_never_returns(
        populated: SimulatedCluster, children: list[Child]) -> None:
    """Leaving ``with`` by an exception stops with the short exit drain (``exit_timeout``);
    the handler stuck on one object holds one worker, the other delivers the rest."""
    populated.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "stuck", "namespace": "exit"}})
    child = Child(populated, """\
        controller = Controller(client, config)
        controller.add_event_handler(handler)
        with controller:
            assert controller.wait_until_ready(20) and stuck.wait(20)
            say("main done")
            raise KeyboardInterrupt
    """, workers=2)
    children.append(child)
    ended = child.line("main done")

    code, _, stderr, _ = child.exit(ended)

    assert code == -signal.SIGINT  # how Python ends on an uncaught KeyboardInterrupt
    assert "KeyboardInterrupt" in stderr


RUN_UNTIL_INTERRUPTED = """\
        controller = Controller(client, config)
        controller.add_event_handler(handler)
        controller.set_ready_callback(lambda: say("ready"))
        try:
            controller.run()
        finally:
            say(f"main done: stopped={controller.stopped}")
"""
"""A child's main: run() until a signal ends it, then say whether the controller stopped."""


def test_keyboard_interrupt_in_run_stops_the_controller_and_is_raised_again(
        populated: SimulatedCluster, children: list[Child]) -> None:
    child = Child(populated, RUN_UNTIL_INTERRUPTED)
    children.append(child)
    child.line("ready")
    child.reader.process.send_signal(signal.SIGINT)
    ended = child.line("main done: stopped=True")

    code, lines, stderr, _ = child.exit(ended)

    assert code == -signal.SIGINT
    assert "KeyboardInterrupt" in stderr
    assert "controller faro stopped" in stderr
    assert handled(lines) == EVERY_OBJECT  # run() stopped it with the drain


def test_sigterm_made_to_raise_ends_run_as_ctrl_c_does(
        populated: SimulatedCluster, children: list[Child]) -> None:
    child = Child(populated, """\
        import signal
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))
""" + RUN_UNTIL_INTERRUPTED)
    children.append(child)
    child.line("ready")
    child.reader.process.send_signal(signal.SIGTERM)
    ended = child.line("main done: stopped=True")

    code, lines, stderr, _ = child.exit(ended)

    assert code == 3, stderr
    assert handled(lines) == EVERY_OBJECT


def test_the_flask_example_pattern_exits_without_an_explicit_stop(
        populated: SimulatedCluster, children: list[Child]) -> None:
    """``examples/flask_app.py``'s ``create_app`` registers ``controller.stop`` with
    ``atexit``; a program that ends without stopping the server or the controller exits."""
    pytest.importorskip("flask")
    child = Child(populated, f"""\
        sys.path.insert(0, {str(EXAMPLES)!r})
        import flask_app
        app = flask_app.create_app(client, config)
        assert app.extensions["faro"].wait_until_ready(20)
        say(f"GET /healthz: {{app.test_client().get('/healthz').status_code}}")
        say("main done")
    """)
    children.append(child)
    child.line("GET /healthz: 200")
    ended = child.line("main done")

    code, _, stderr, _ = child.exit(ended)

    assert code == 0, stderr
    assert "controller faro-flask stopped" in stderr


# --------------------------------------------------------- the patterns of docs/embedding.md

GUIDE = ROOT / "docs" / "embedding.md"


def guide_patterns() -> dict[str, str]:
    """The guide's programs by name (each block's first line is ``# exit pattern: NAME``)."""
    blocks = re.findall(r"```python\n# exit pattern: (.+?)\n(.*?)```", GUIDE.read_text(),
                        flags=re.DOTALL)
    return dict(blocks)


def test_the_embedding_guide_lists_the_patterns_tested_here() -> None:
    assert sorted(guide_patterns()) == sorted({pattern[0] for pattern in PATTERNS})


# name, the signal the test sends once the program is ready (or None), exit status, and a
# line it prints at the end
PATTERNS = [
    ("plain script", None, 0, "ready: the script's own work goes here"),
    ("run until Ctrl-C", signal.SIGINT, 0, "interrupted"),
    ("with", None, 0, "ready: the block's work goes here"),
    ("run in a thread", None, 0, "ready: the main thread's work goes here"),
]


def test_every_program_of_the_embedding_guide_exits_and_delivers_what_was_queued(
        populated: SimulatedCluster, tmp_path: Path, children: list[Child]) -> None:
    """One test for the guide's programs, run as written: each exits within EXIT_BOUND of
    its main code ending, and every existing object's ADDED event reached its handler. (Its
    handler and its ready callback print on different threads: a line may be cut in two by
    another one, so the output is read as a whole.)"""
    (tmp_path / "config.yaml").write_text(
        "resources:\n  - gvr: v1/configmaps\n    namespace_names: [exit]\nworkers: 1\n")
    env = {**os.environ, "KUBECONFIG": populated.kubeconfig_path, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    programs = guide_patterns()
    for name, signum, status, last in PATTERNS:
        script = tmp_path / "pattern.py"
        script.write_text(programs[name])
        reader = LineReader([sys.executable, str(script)], env=env, cwd=tmp_path)
        children.append(Child.adopt(reader))
        reader.wait_for(lambda line: "ready" in line, timeout=STARTUP)
        if signum is not None:
            reader.process.send_signal(signum)
        ended = time.monotonic()  # the main code ends now (or, signalled, begins to)
        code, lines, stderr, _ = children[-1].exit(ended)
        output = "\n".join(lines)

        assert code == status, f"{name}: {stderr}"
        assert set(re.findall(r"ADDED exit/(cm-\d\d)", output)) == EVERY_OBJECT, \
            f"{name}: {output}"
        assert last in output, f"{name}: {output}"
        assert "Traceback" not in stderr, f"{name}: {stderr}"
