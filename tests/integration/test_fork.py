"""A controller and fork(): what a pre-fork server's worker finds (docs/embedding.md).

The forking happens in a program of its own (``python -c``), not in pytest's process, whose
threads a fork would copy in an unknown state. The program starts a simulator and a
controller, forks, and reports as JSON lines what the child and then the parent saw.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

import faro

ROOT = Path(faro.__file__).resolve().parent.parent

PROGRAM = textwrap.dedent('''
    import os, sys, time, urllib.request
    import orjson
    from faro import Config, Controller, KubernetesClient
    from faro.testing import SimulatedCluster

    CONFIG = {"resources": [{"gvr": "v1/configmaps", "namespace_names": ["default"]}],
              "metrics": {"enabled": True, "port": 0, "bind_addr": "127.0.0.1"}}

    def say(**fields):
        sys.stdout.write(orjson.dumps(fields).decode() + "\\n")
        sys.stdout.flush()

    def readyz(controller):
        port = controller.metrics_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return answer.status

    cluster = SimulatedCluster().start()
    parent = Controller(KubernetesClient(cluster.api_client), Config.from_dict(CONFIG),
                        name="parent")
    parent.start()
    assert parent.wait_until_ready(10)
    port = parent.metrics_address[1]
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads are gone
        try:
            ready = parent.is_ready()
            try:
                parent.wait_until_ready(1)
                refused = ""
            except RuntimeError as error:
                refused = str(error)
            began = time.monotonic()
            stopped = parent.stop(5)
            # A controller of its own works: through a new client, to the parent's simulator.
            own = Controller(KubernetesClient.from_environment(cluster.kubeconfig_path),
                             Config.from_dict({**CONFIG, "metrics": {"enabled": False}}),
                             name="child")
            own.start()
            own_ready = own.wait_until_ready(10)
            informers = len(own.informers())
            own_stopped = own.stop(10)
            say(who="child", ready=ready, refused=refused, stopped=stopped,
                stop_took=time.monotonic() - began, own_ready=own_ready,
                informers=informers, own_stopped=own_stopped)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    # The child's stop() closed nothing of the parent's: its probes still answer.
    say(who="parent", ready=parent.is_ready(), readyz=readyz(parent),
        stopped=parent.stop(10))
    cluster.stop()
''')


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_is_told_to_start_its_own_controller_and_harms_nothing(
        tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    child, parent = (orjson.loads(line) for line in done.stdout.splitlines())
    assert child["who"] == "child" and parent["who"] == "parent"
    # The child is told, not left with a controller that looks alive and does nothing.
    assert child["ready"] is False
    assert "is a fork of it: the controller's threads do not run here" in child["refused"]
    assert "post_fork" in child["refused"] and "docs/embedding.md" in child["refused"]
    assert child["stopped"] is True and child["stop_took"] < 1.0
    assert "controller parent was started in process" in done.stderr  # the warning
    # A controller started in the child works.
    assert child["own_ready"] is True and child["informers"] == 1 and child["own_stopped"]
    # The parent's controller is untouched by all that.
    assert parent == {"who": "parent", "ready": True, "readyz": 200, "stopped": True}
