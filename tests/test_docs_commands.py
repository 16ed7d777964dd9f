"""Every command and program in README.md, docs/ and examples/README.md runs, as written.

Each fenced ``bash``/``sh`` and ``python`` block is either run here or listed in
:data:`NOT_RUN` with the reason it cannot be (a fragment of a larger program, a cluster with
nodes...); a new block that is neither fails the test that inventories them. A ``python``
block runs as a program of its own (``python block.py``, with :data:`PROGRAM_ARGS`).

How a block runs, as a user at a shell would run it:

* in a scratch directory holding what the docs assume is there (``config.yaml``,
  ``my-app.yaml``, ``my-config.yaml``, and the repository's ``examples/`` and ``deploy/``),
  with the virtual environment's ``bin`` first on ``PATH`` (``source .venv/bin/activate``, as
  the README says) and ``KUBECONFIG`` naming a simulated cluster: the user's cluster;
* a block written as a script (:data:`SCRIPTS`) runs whole through ``bash -e``;
* otherwise each command runs on its own and must exit 0. A command that runs until Ctrl-C
  (:data:`LONG_RUNNING`: ``faro run``, ``faro sim``, ``kubectl get -w``...) runs like one
  left open in another terminal: the next commands start once it printed what says it is
  up, and at the end of the document's session it gets SIGINT (faro and the examples must
  then exit 0).

The blocks of one document form one session, in order (the examples' README opens the
simulator in one terminal and uses it from the next).
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faro.testing import SimulatedCluster
from tests.integration.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                    ROOT / "examples" / "README.md"])
DEADLINE = 90.0

NOT_RUN: dict[tuple[str, str], str] = {
    ("README.md", "make test"):
        "it is the whole suite this test belongs to: .ci/run runs it on every change",
    ("docs/benchmarks.md", "make cluster-up"):
        "starts the real control plane and benchmarks against it: make bench runs the same "
        "benchmarks (real_sync, real_latency) whenever a cluster is up",
    ("docs/real-cluster.md", "make cluster-up"):
        "starts and stops the real control plane that make test-real itself starts and "
        "stops around the cluster tests (tests/cluster/test-real.sh)",
    ("docs/operator.md", "docker build"):
        "needs a container engine; the image's build is not part of the test machines",
    ("docs/operator.md", "kind load docker-image"):
        "needs kind, minikube or k3d and a built image",
    ("docs/operator.md", "docker tag"):
        "pushes to a container registry",
    ("docs/operator.md", "kubectl kustomize deploy/operator"):
        "waits for the operator's Deployment to roll out, which needs nodes that run the "
        "image; tests/test_deploy.py applies deploy/operator to both servers",
    ("docs/operator.md", "faro validate my-config.yaml"):
        "restarts the operator's Deployment (needs it running on nodes)",
    ("docs/operator.md", "kubectl -n faro-system exec"):
        "execs into the running operator pod",
    ("docs/operator.md", "kubectl -n faro-system port-forward"):
        "port-forwards to the running operator pod",
    ("docs/operator.md", "kubectl auth can-i"):
        "asks a cluster with the operator's RBAC applied (the simulator stores RBAC objects "
        "without authorizing); tests/test_deploy.py evaluates the same rules as RBAC's "
        "authorizer does",
    ("docs/operator.md", "kubectl kustomize deploy/sharded"):
        "applies the sharded variant, whose StatefulSets need nodes that run the image; "
        "tests/test_deploy.py builds deploy/sharded and applies it to both servers",
    ("docs/operator.md", "kubectl -n faro-system rollout restart statefulset"):
        "restarts the sharded variant's StatefulSets (needs them running on nodes)",
    ("docs/operator.md", "kubectl delete -k deploy/operator"):
        "removes the operator deployed by the blocks above",
    ("docs/operations.md", "kubectl -n monitoring create configmap faro-dashboard"):
        "needs a Grafana that loads dashboards from labelled ConfigMaps (kube-prometheus-stack); "
        "tests/test_deploy_monitoring.py checks the dashboard",
    ("docs/operations.md", "kubectl apply -f deploy/prometheus/faro-rules.yaml"):
        "needs the Prometheus Operator's CRDs; tests/test_deploy_monitoring.py checks the rules",
    ("docs/operations.md", "python3 -c 'import sys, yaml;"):
        "needs promtool; tests/test_deploy_monitoring.py runs the same promtool commands "
        "(skipped without promtool)",
}
"""Blocks not run here, by (document, the block's first command), with the reason."""

NOT_RUN.update({
    ("docs/benchmarks.md", "config = Config.from_dict("):
        "an excerpt of benchmarks/bench_controller.py, which make bench runs",
    ("docs/client.md", "discovery.resources()"): "continues the block above (its discovery)",
    ("docs/export.md", "from faro.export import EventExporter, event_record"):
        "exports an event a handler received; tests/unit/test_export.py runs the same calls",
    ("docs/informer.md", "clock = FakeClock()"):
        "an excerpt of tests/integration/test_informer_faults.py, which runs it against a failing "
        "server",
    ("docs/metrics.md", "host, port = controller.metrics_address"):
        "a line about a running controller (the blocks of docs/controller.md make one)",
    ("docs/simulator.md", "with cluster.hold_watches():"):
        "an excerpt of benchmarks/bench_informer.py (a 50,000-object burst)",
    ("docs/testing.md", '"""Tests for an inventory handler'):
        "a test module: tests/test_docs.py runs it with pytest",
})

PROGRAM_ARGS: dict[tuple[str, str], str] = {
    ("docs/cli.md", "import sys"): "run --config config.yaml",
}
"""Arguments a ``python`` block's program is run with, when its text says it takes some."""

SCRIPTS: frozenset[tuple[str, str]] = frozenset({
    ("docs/cli.md", "rm -f sim.kubeconfig"),
})
"""Blocks written as one script (background jobs, waits): run whole through ``bash -e``."""

_UNTIL_KILLED = r"^python block-\S+-runs\.py$"
"""Programs that install no signal handler and block in ``controller.run()``: they are
stopped as a supervisor stops a process (SIGTERM), since the text promises no Ctrl-C."""

LONG_RUNNING: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(r"^faro sim\b"), re.compile(r"Press Ctrl-C")),
    (re.compile(r"^faro (run )?-{1,2}config\b"), re.compile(r"faro is ready")),
    (re.compile(r"^kubectl .* get \S+ -w\b"), re.compile(r"^settings\b", re.M)),
    (re.compile(r"^python examples/library_usage\.py\b"), re.compile(r"faro is ready")),
    (re.compile(r"^tail -F\b"), re.compile(r'"eventType"')),
    # Programs that end with controller.run(): up once the ready callback printed.
    # Not anchored: the handler's print() on a worker thread may interleave with it.
    (re.compile(_UNTIL_KILLED), re.compile(r"ready")),
    (re.compile(r"^python block-cli\.md-\d+\.py run\b"), re.compile(r"faro is ready")),
)
"""Commands that run until Ctrl-C: (the command, what it prints once it is up)."""

CONFIG = """\
output_dir: ./output
json_export: true
resources:
  - gvr: v1/configmaps
    namespace_names: [default]
"""

APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {color: blue}
"""

AFTER_SESSION: dict[str, list[re.Pattern[str]]] = {
    # The example printed the ConfigMap the third block created.
    "examples/README.md": [re.compile(r"ADDED\s+v1/configmaps\s+default/web")],
}
"""What a document's session must have printed by its end (beyond every command's exit 0)."""


@dataclass
class Block:
    document: str
    text: str
    commands: list[str] = field(default_factory=list)
    language: str = "bash"

    @property
    def first(self) -> str:
        return self.commands[0] if self.commands else ""

    def ident(self) -> tuple[str, str]:
        for (doc, prefix) in (*NOT_RUN, *SCRIPTS):
            if doc == self.document and self.first.startswith(prefix):
                return doc, prefix
        return self.document, self.first


def _commands(text: str) -> list[str]:
    """The block's commands: continuation lines joined, comment-only lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def blocks(document: Path) -> list[Block]:
    """The document's shell and Python blocks, in order (a Python block is one command)."""
    name = document.relative_to(ROOT).as_posix()
    found = re.findall(r"^```(bash|sh|python)\n(.*?)^```", document.read_text(),
                       flags=re.DOTALL | re.MULTILINE)
    result = []
    for number, (language, text) in enumerate(found):
        if language != "python":
            result.append(Block(name, text, _commands(text)))
            continue
        block = Block(name, text, [text.strip().splitlines()[0]], "python")
        args = PROGRAM_ARGS.get(block.ident(), "")
        runs = "-runs" if "controller.run()" in text else ""  # blocks until stopped
        program = f"block-{document.name}-{number}{runs}.py"
        block.commands = [block.first, f"python {program} {args}".strip()]
        result.append(block)
    return result


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks(document)]
RUN_DOCUMENTS = sorted({b.document for b in ALL_BLOCKS if b.ident() not in NOT_RUN})


def test_every_shell_block_is_run_or_says_why_not() -> None:
    assert ALL_BLOCKS, "no shell blocks found: the pattern is broken"
    known = {b.ident() for b in ALL_BLOCKS}
    stale = sorted((set(NOT_RUN) | SCRIPTS) - known)
    assert not stale, f"NOT_RUN or SCRIPTS name blocks that no longer exist: {stale}"
    for block in ALL_BLOCKS:
        assert block.commands, f"{block.document}: an empty shell block"


class _Process:
    """One command left running, as in a terminal of its own: a pseudo-terminal is its output.

    A terminal, not a pipe: programs then write their lines as they make them (jq, Python),
    as the user sees them.
    """

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.output: list[str] = []
        self._lock = threading.Lock()
        controller, terminal = pty.openpty()
        try:
            self.popen = subprocess.Popen(
                ["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=terminal, stderr=terminal, start_new_session=True)
        finally:
            os.close(terminal)
        self._reader = threading.Thread(target=self._read, args=(controller,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    return
                if not chunk:
                    return
                with self._lock:
                    self.output.append(chunk.decode(errors="replace").replace("\r\n", "\n"))
        finally:
            os.close(fd)

    def text(self) -> str:
        with self._lock:
            return "".join(self.output)

    def interrupt(self, signum: int = signal.SIGINT) -> int:
        """Ctrl-C: SIGINT to the command's process group (we made it), then its exit status."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signum)
        try:
            code = self.popen.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            raise AssertionError(f"{self.command!r} did not end within 45 s of SIGINT:\n"
                                 f"{self.text()}") from None
        self._reader.join(10)
        return code


@pytest.fixture(scope="module")
def cluster() -> Iterator[SimulatedCluster]:
    pytest.importorskip("cryptography")
    with SimulatedCluster(tls=True) as sim:  # kubectl sends tokens only over HTTPS
        yield sim


def _workspace(tmp_path: Path, cluster: SimulatedCluster) -> tuple[Path, dict[str, str]]:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "my-config.yaml").write_text(CONFIG)
    (tmp_path / "my-app.yaml").write_text(APP)
    for name in ("examples", "deploy"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env["KUBECONFIG"] = str(cluster.kubeconfig_path)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("FARO_E2E_KUBECONFIG", None)
    return tmp_path, env


def _long_running(command: str) -> re.Pattern[str] | None:
    for pattern, ready in LONG_RUNNING:
        if pattern.search(command):
            return ready
    return None


def _needs(block: Block, tool: str) -> bool:
    return any(re.search(rf"(^|\| *){tool}\b", c) for c in block.commands)


def _prepare(document: str, cwd: Path, env: dict[str, str]) -> None:
    """What a document assumes happened before its commands (not a command it shows)."""
    if document == "docs/export.md":  # it reads the files of earlier runs in output/
        done = subprocess.run(
            ["faro", "run", "--config", "config.yaml", "--auto-shutdown", "1"], cwd=cwd,
            env=env, capture_output=True, text=True, timeout=DEADLINE, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert list(cwd.glob("output/events-*.json")), "faro wrote no events file"


@pytest.mark.parametrize("document", RUN_DOCUMENTS)
def test_the_commands_of(document: str, tmp_path: Path, cluster: SimulatedCluster) -> None:
    cwd, env = _workspace(tmp_path, cluster)
    session = [b for b in ALL_BLOCKS if b.document == document and b.ident() not in NOT_RUN]
    for tool in ("kubectl", "jq", "make"):
        if any(_needs(b, tool) for b in session) and not _have(tool):
            if tool == "kubectl" and os.environ.get("FARO_REQUIRE_KUBECTL") == "1":
                pytest.fail("kubectl is not on PATH (FARO_REQUIRE_KUBECTL=1)")
            pytest.skip(f"{tool} is not installed")
    cluster.apply(APP.replace("settings", "existing"))  # something to list and watch
    _prepare(document, cwd, env)
    background: list[_Process] = []
    try:
        for block in session:
            if block.ident() in SCRIPTS:
                _run(block.text, cwd, env, script=True)
                continue
            commands = block.commands
            if block.language == "python":
                commands = commands[1:]
                (cwd / commands[0].split()[1]).write_text(block.text)
            for command in commands:
                ready = _long_running(command.removesuffix("&").strip())
                if ready is None:
                    _run(command, cwd if not command.startswith("make ") else ROOT, env)
                    continue
                process = _Process(command.removesuffix("&").strip(), cwd, env)
                background.append(process)
                try:
                    eventually(lambda p=process, r=ready: bool(r.search(p.text()))
                               or p.popen.poll() is not None,
                               what=f"{command!r} to be up ({ready.pattern!r})",
                               timeout=DEADLINE)
                except AssertionError as error:
                    raise AssertionError(f"{error}; it printed:\n{process.text()}") from None
                assert process.popen.poll() is None, \
                    f"{command!r} ended early ({process.popen.returncode}):\n{process.text()}"
        for expected in AFTER_SESSION.get(document, []):
            eventually(lambda e=expected: any(e.search(p.text()) for p in background),
                       what=f"the session's output to show {expected.pattern!r}",
                       timeout=DEADLINE)
    finally:
        failures = []
        for process in reversed(background):  # every one, whatever happens to the others
            if re.match(_UNTIL_KILLED, process.command):
                try:
                    code = process.interrupt(signal.SIGTERM)
                except AssertionError as error:
                    failures.append(str(error))
                    continue
                if code != -signal.SIGTERM:
                    failures.append(f"{process.command!r} did not run until SIGTERM:\n"
                                    f"{process.text()[-3000:]}")
                continue
            try:
                code = process.interrupt()
            except AssertionError as error:
                failures.append(str(error))
                continue
            # faro and the examples handle Ctrl-C and exit 0; other tools (kubectl -w, a
            # tail -F pipeline) end as they end when interrupted.
            if code != 0 and process.command.startswith(("faro", "python ")):
                failures.append(f"{process.command!r} exited {code} on SIGINT:\n"
                                f"{process.text()[-3000:]}")
    assert not failures, "\n".join(failures)


def _have(tool: str) -> bool:
    return any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


def _run(command: str, cwd: Path, env: dict[str, str], *, script: bool = False) -> None:
    argv = ["bash", "-e", "-c", command] if script else ["bash", "-c", command]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=DEADLINE, check=False)
    assert done.returncode == 0, (f"{command!r} exited {done.returncode}:\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
