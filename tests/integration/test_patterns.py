"""A catastrophic ``name_selector`` pattern cannot freeze faro: patterns match in linear time.

With a backtracking matcher (Python's ``re``), ``(a+)+$`` against ``aaaa…ab`` takes time doubling
with each ``a`` and holds the GIL throughout, so one ConfigMap named by anyone who can create
objects stops every thread of the process, /healthz included. faro matches user patterns with
RE2 (``faro._regex``), like the Go original's ``regexp``.

The controller runs in a child process (``python -c``) against a SimulatedCluster of this
process, so that a frozen controller fails this test within its deadlines instead of hanging
the suite; the child prints each delivered object's name and its metrics address, and is
killed at the end.
"""

from __future__ import annotations

import os
import queue
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import faro
from faro.testing import SimulatedCluster
from tests.integration.helpers import configmap
from tests.integration.kube import LineReader

ROOT = Path(faro.__file__).resolve().parent.parent
STARTUP = 30.0  # seconds a fresh interpreter may take to import faro and start
HEALTHZ_BOUND = 2.0  # seconds /healthz may take to answer while the evil name is matched
DELIVERY_BOUND = 10.0  # seconds the matching object may take to be delivered
NAMESPACE = "patterns"
PATTERN = "(a+)+$"
EVIL = "a" * 40 + "b"  # a valid object name; 2**40 steps for a backtracking matcher
GOOD = "a" * 40  # matches the pattern

CHILD = """\
import sys, threading
from faro import Config, Controller, KubernetesClient
client = KubernetesClient.from_environment(kubeconfig=sys.argv[1])
config = Config.from_dict({
    "resources": [{"gvr": "v1/configmaps", "namespace_names": [sys.argv[2]],
                   "name_selector": sys.argv[3]}],
    "metrics": {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"},
    "workers": 1,
})
controller = Controller(client, config)
controller.add_event_handler(
    lambda event: print(f"delivered {event.event_type.value} {event.name}", flush=True))
controller.start()
assert controller.wait_until_ready(20)
host, port = controller.metrics_address
print(f"serving http://{host}:{port}", flush=True)
threading.Event().wait()  # until killed
"""


@pytest.fixture
def child(cluster: SimulatedCluster) -> Iterator[LineReader]:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    reader = LineReader([sys.executable, "-c", textwrap.dedent(CHILD), cluster.kubeconfig_path,
                         NAMESPACE, PATTERN], env=env, cwd=ROOT)
    yield reader
    # Killed outright: a controller frozen in a backtracking match would not act on SIGTERM.
    if reader.process.poll() is None:
        reader.process.kill()
    reader.process.wait(timeout=10)


def healthz(base: str) -> float:
    """Seconds /healthz took to answer 200; fails when it takes longer than HEALTHZ_BOUND."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=HEALTHZ_BOUND) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:  # the timeout: nothing answered
        pytest.fail(f"/healthz did not answer within {HEALTHZ_BOUND:g} s ({error!r}): the "
                    f"pattern {PATTERN!r} froze the controller on the name {EVIL!r}")
    elapsed = time.monotonic() - start
    assert status == 200
    return elapsed


def test_a_catastrophic_pattern_and_name_do_not_freeze_the_controller(
        cluster: SimulatedCluster, child: LineReader) -> None:
    line = child.wait_for(lambda text: text.startswith("serving "), timeout=STARTUP)
    base = line.split()[1]
    timings = [healthz(base)]

    # The evil name first, then the matching one: the informer hands them to the name filter in
    # this order, so once GOOD is delivered, EVIL has been matched (and filtered).
    cluster.create(configmap(EVIL, NAMESPACE))
    cluster.create(configmap(GOOD, NAMESPACE))
    # /healthz keeps answering while the names are matched and until GOOD arrives.
    end = time.monotonic() + DELIVERY_BOUND
    delivered: list[str] = []
    while f"delivered ADDED {GOOD}" not in delivered:
        timings.append(healthz(base))
        remaining = end - time.monotonic()
        assert remaining > 0, f"{GOOD!r} not delivered within {DELIVERY_BOUND:g} s; " \
                              f"output: {child.seen}"
        try:
            text = child.lines.get(timeout=min(0.05, remaining))
        except queue.Empty:
            continue
        assert text is not None, f"the child ended; output: {child.seen}"
        child.seen.append(text)
        delivered.append(text)
    timings.append(healthz(base))  # after EVIL was certainly matched

    assert delivered == [f"delivered ADDED {GOOD}"]  # EVIL was filtered, not delivered
    with urllib.request.urlopen(f"{base}/metrics", timeout=HEALTHZ_BOUND) as response:
        metrics = response.read().decode()
    assert 'faro_events_filtered_total{gvr="v1/configmaps"} 1.0' in metrics
    print(f"/healthz answered {len(timings)} times under {PATTERN!r} and {EVIL!r}: "
          f"max {max(timings) * 1000:.1f} ms")
