"""The ``faro`` command: version, help, usage errors, and every command as a real process.

``faro run``, ``discover`` and ``demo`` run as subprocesses (``python -m faro``); the cluster
is a ``SimulatedCluster`` in this process, over plain HTTP (the Python client sends its token
over HTTP). Tests wait for output lines with deadlines, never with sleep.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

import faro
from faro.cli import _with_implied_run, main
from faro.gvr import GroupVersionResource
from faro.testing import SimulatedCluster
from tests.integration.helpers import crd, eventually
from tests.integration.kube import DEADLINE, LineReader, unique

ROOT = Path(faro.__file__).resolve().parent.parent
STARTUP = 30.0  # seconds a fresh interpreter may take to import and start serving


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_faro(*args: str, cwd: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m faro ARGS`` to completion (``prelude`` runs first, e.g. to hide a package)."""
    argv = ([sys.executable, "-c", f"{prelude}\nimport runpy; runpy.run_module('faro', "
             "run_name='__main__')", *args] if prelude else [sys.executable, "-m", "faro", *args])
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=cwd,
                          timeout=STARTUP, check=False)


class Sim:
    """A running ``faro sim`` process and what it announced."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.kubeconfig = tmp_path / "sim.kubeconfig"
        self.output = LineReader(
            [sys.executable, "-m", "faro", "sim", "--port", "0",
             "--kubeconfig-out", str(self.kubeconfig), *extra],
            env=_env(), cwd=tmp_path)
        line = self.output.wait_for(lambda text: "listening on" in text, timeout=STARTUP)
        self.url = line.rsplit(" ", 1)[1]
        self.output.wait_for(lambda text: text == "Press Ctrl-C to stop.")

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, list[str], str]:
        """Send ``signum``; returns (exit code, the rest of stdout, stderr)."""
        self.output.process.send_signal(signum)
        rest = self.output.rest(timeout=10)
        assert self.output.process.stderr is not None
        return self.output.process.returncode, rest, self.output.process.stderr.read()


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[list[Sim]]:
    """Collects the Sim processes a test starts and ends any still running."""
    started: list[Sim] = []
    yield started
    for sim in started:
        sim.output.close()


# ----------------------------------------------------------------------- version, help


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"faro {faro.__version__}\n"


def test_python_m_faro_is_the_same_command(tmp_path: Path) -> None:
    done = run_faro("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"faro {faro.__version__}\n")


# The Go original's flag package takes -help, -h and -version (one dash) as well as the two-dash
# forms, before or after a command, and before or after the flags of `faro run`.
COMMANDS = ["run", "validate", "discover", "sim", "demo"]


@pytest.mark.parametrize("flag", ["-version", "--version"])
@pytest.mark.parametrize("before", [[], *([c] for c in COMMANDS), ["-config=f"],
                                    ["--config", "f", "-log-level", "debug"]],
                         ids=["bare", *COMMANDS, "go-run-flag", "run-flags"])
def test_version_in_the_go_and_the_gnu_spelling(
    before: list[str], flag: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*before, flag])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"faro {faro.__version__}\n"


@pytest.mark.parametrize("flag", ["-help", "-h", "--help"])
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_in_the_go_and_the_gnu_spelling(
    command: str | None, flag: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, flag] if command else [flag])
    assert done.value.code == 0
    out = capsys.readouterr().out
    if command is None:
        assert out.startswith("usage: faro [-h] [--version] COMMAND")
        assert all(f" {c} " in " ".join(out.split()) for c in COMMANDS)
    else:
        assert out.startswith(f"usage: faro {command} [-h] [--version]")


def test_go_style_help_after_run_flags_is_the_help_of_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["-config=config.yaml", "-help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: faro run ")


FARO_SCRIPT = Path(sys.executable).with_name("faro")  # the console script pip installed


@pytest.mark.parametrize("args", [["-version"], ["--version"], ["sim", "-version"],
                                  ["-config=f", "-version"]])
def test_the_installed_faro_command_prints_its_version(args: list[str],
                                                        tmp_path: Path) -> None:
    assert FARO_SCRIPT.is_file(), f"no console script {FARO_SCRIPT}: pip install -e ."
    done = subprocess.run([str(FARO_SCRIPT), *args], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=STARTUP, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"faro {faro.__version__}\n", "")


@pytest.mark.parametrize(("args", "usage"), [
    (["-help"], "usage: faro [-h]"), (["-h"], "usage: faro [-h]"),
    (["--help"], "usage: faro [-h]"), (["validate", "-help"], "usage: faro validate "),
    (["-config=f", "-help"], "usage: faro run "),
])
def test_the_installed_faro_command_prints_help(args: list[str], usage: str,
                                                tmp_path: Path) -> None:
    assert FARO_SCRIPT.is_file(), f"no console script {FARO_SCRIPT}: pip install -e ."
    done = subprocess.run([str(FARO_SCRIPT), *args], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=STARTUP, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(usage)


def test_help_lists_the_sim_command_and_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["-h"])
    assert done.value.code == 0
    top = capsys.readouterr().out
    assert top.startswith("usage: faro")
    assert "sim" in top and "simulated Kubernetes API server" in top

    with pytest.raises(SystemExit):
        main(["sim", "-h"])
    sim_help = " ".join(capsys.readouterr().out.split())
    for option in ("--port", "--kubeconfig-out", "--http", "--token", "--history-size",
                   "--bookmark-interval"):
        assert option in sim_help
    assert "serves HTTPS" in sim_help
    assert "faro[sim]" in sim_help


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: faro")


@pytest.mark.parametrize(("args", "message"), [
    (["sim", "--port", "http"], "argument --port: invalid int value: 'http'"),
    (["sim", "--port", "70000"], "argument --port: must be between 0 and 65535"),
    (["sim", "--history-size", "0"], "argument --history-size: must be at least 1"),
    (["sim", "--bookmark-interval", "0"], "argument --bookmark-interval: must be positive"),
    (["sim", "--tls"], "unrecognized arguments: --tls"),
    (["nosuch"], "invalid choice: 'nosuch'"),
])
def test_bad_arguments_exit_2_with_usage(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: faro")
    assert message in err


# ------------------------------------------------------------------------------ faro sim


def _namespaces(kubeconfig: Path) -> list[str]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        return [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
    finally:
        api.close()


def test_sim_serves_https_with_a_kubeconfig_the_client_uses_and_stops_on_sigint(
    tmp_path: Path, sim_process: list[Sim],
) -> None:
    sim = Sim(tmp_path)
    sim_process.append(sim)

    assert sim.url.startswith("https://127.0.0.1:")
    cluster = yaml.safe_load(sim.kubeconfig.read_text())["clusters"][0]["cluster"]
    assert cluster["server"] == sim.url
    assert cluster["certificate-authority-data"]
    assert "default" in _namespaces(sim.kubeconfig)

    code, rest, err = sim.stop(signal.SIGINT)

    assert code == 0
    assert rest == ["Stopped."]
    assert err == ""


@pytest.mark.kubectl
def test_kubectl_accepts_the_kubeconfig_faro_sim_writes(
    tmp_path: Path, sim_process: list[Sim],
) -> None:
    sim = Sim(tmp_path)
    sim_process.append(sim)

    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(sim.kubeconfig), "--cache-dir", str(tmp_path / "cache"),
         "get", "namespace", "default", "-o", "name"],
        capture_output=True, text=True, timeout=60, check=False)

    assert (done.returncode, done.stdout) == (0, "namespace/default\n"), done.stderr
    assert sim.stop()[0] == 0


def test_sim_http_serves_plain_http_warns_about_kubectl_and_stops_on_sigterm(
    tmp_path: Path, sim_process: list[Sim],
) -> None:
    sim = Sim(tmp_path, "--http", "--token", "s3cret")
    sim_process.append(sim)

    assert sim.url.startswith("http://127.0.0.1:")
    kubeconfig = yaml.safe_load(sim.kubeconfig.read_text())
    assert kubeconfig["clusters"][0]["cluster"] == {"server": sim.url}
    assert kubeconfig["users"][0]["user"] == {"token": "s3cret"}
    assert "default" in _namespaces(sim.kubeconfig)

    code, rest, err = sim.stop(signal.SIGTERM)

    assert code == 0
    assert rest == ["Stopped."]
    warning, = err.splitlines()
    assert warning.startswith("faro sim: warning: serving plain HTTP")
    assert "kubectl" in warning


def test_sim_on_a_port_in_use_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = run_faro("sim", "--port", str(port), "--kubeconfig-out", "kc", cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"faro sim: error: cannot listen on 127.0.0.1:{port}: " \
        "Address already in use\n"
    assert not (tmp_path / "kc").exists()


def test_sim_with_an_unwritable_kubeconfig_path_exits_1_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")

    done = run_faro("sim", "--kubeconfig-out", "file/kc", cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("faro sim: error: cannot write the kubeconfig to file/kc: ")
    assert len(done.stderr.splitlines()) == 1


HIDE_CRYPTOGRAPHY = "import sys; sys.modules['cryptography'] = None"


def test_sim_without_cryptography_says_how_to_get_https_or_use_http(tmp_path: Path) -> None:
    done = run_faro("sim", "--kubeconfig-out", "kc", cwd=tmp_path, prelude=HIDE_CRYPTOGRAPHY)

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == ("faro sim: error: serving HTTPS needs the 'cryptography' package: "
                           "pip install 'faro[sim]', or use --http\n")
    assert not (tmp_path / "kc").exists()


def _blocked_signals(pid: int, tid: int) -> set[int]:
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigBlk:"))
               .split()[1], 16)
    return {signum for signum in range(1, 65) if mask >> (signum - 1) & 1}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sim_signals_reach_only_the_main_thread(tmp_path: Path, sim_process: list[Sim]) -> None:
    """A process signal goes to any thread that does not block it, and Python would then
    not wake a main thread waiting on a lock: Ctrl-C could leave `faro sim` running. Every
    server thread (connection threads too) blocks SIGINT and SIGTERM; the main thread not."""
    sim = Sim(tmp_path, "--http")
    sim_process.append(sim)
    pid = sim.output.process.pid
    with socket.create_connection(("127.0.0.1", int(sim.url.rsplit(":", 1)[1]))) as conn:
        conn.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 200")  # a connection thread is alive
        tasks = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        assert len(tasks) >= 3  # main, server loop, this connection
        stops = {signal.SIGINT.value, signal.SIGTERM.value}
        for tid in tasks:
            blocked = _blocked_signals(pid, tid)
            if tid == pid:
                assert not stops & blocked
            else:
                assert stops <= blocked, f"thread {tid} can take SIGINT/SIGTERM"
    assert sim.stop()[0] == 0


# ================================================================= faro run, validate, ...

STOP = 40.0  # `faro run` gives its controller 30 s to stop; the rest is interpreter exit
ERROR = "faro: error: "


@pytest.fixture(scope="module")
def cluster() -> Iterator[SimulatedCluster]:
    """An HTTP simulator in this process, shared by the module's tests (they use unique
    names, and the namespaces they create)."""
    with SimulatedCluster(tls=False) as sim:
        yield sim


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(ERROR)]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubeconfig_for(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def configmap(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}}


def new_namespace(cluster: SimulatedCluster, prefix: str) -> str:
    name = unique(prefix)
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def watch_config(tmp_path: Path, namespace: str, extra: str = "") -> Path:
    return write(tmp_path / "config.yaml", f"""\
        resources:
          - gvr: v1/configmaps
            namespace_names: [{namespace}]
        {extra}""")


# `faro run` with one more handler, added through main()'s documented `configure` hook in a
# subprocess (nothing of faro is patched): it prints each event on stdout and, when
# FARO_TEST_BLOCK is set, never returns, so that stop() has to wait for its worker; when
# FARO_TEST_STOP is set, it stops the controller.
HANDLER_PRELUDE = """\
import os, sys, threading
import faro.cli
release = threading.Event()
controllers = []
def handler(event):
    print(f"handled {event.event_type.value} {event.key}", flush=True)
    if os.environ.get("FARO_TEST_BLOCK"):
        release.wait()
    if os.environ.get("FARO_TEST_STOP"):
        controllers[0].stop()
def configure(controller):
    controllers.append(controller)
    controller.add_event_handler(handler)
sys.exit(faro.cli.main(sys.argv[1:], configure=configure))
"""


class FaroRun:
    """A running ``faro`` process, stdout and stderr merged, read line by line."""

    def __init__(self, cwd: Path, *args: str, prelude: str = "",
                 env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, "-c", prelude, *args] if prelude else \
            [sys.executable, "-m", "faro", *args]
        self.reader = LineReader(argv, env={**_env(), **(env or {})}, cwd=cwd,
                                 merge_stderr=True)

    @property
    def pid(self) -> int:
        return self.reader.process.pid

    def line(self, text: str, timeout: float = DEADLINE) -> str:
        """The first output line (already read or to come) containing ``text``."""
        for seen in self.reader.seen:
            if text in seen:
                return seen
        return self.reader.wait_for(lambda line: text in line, timeout=timeout)

    def ready(self) -> FaroRun:
        self.line("faro is ready", timeout=STARTUP)
        return self

    def signal(self, signum: int) -> None:
        self.reader.process.send_signal(signum)

    def finish(self, timeout: float = STOP) -> tuple[int, list[str]]:
        """Wait for the exit; returns (exit code, every output line)."""
        rest = self.reader.rest(timeout=timeout)
        return self.reader.process.returncode, self.reader.seen + rest


@pytest.fixture
def faro_runs() -> Iterator[list[FaroRun]]:
    """Collects the FaroRun processes a test starts and ends any still running."""
    started: list[FaroRun] = []
    yield started
    for run in started:
        run.reader.close()


# ------------------------------------------------------------------------ help, arguments


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["-h"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for command in ("run", "validate", "discover", "sim", "demo"):
        assert f" {command} " in text
    assert "-config=FILE" in text  # the Go-style form is documented


@pytest.mark.parametrize("command", ["run", "validate", "discover", "sim", "demo"])
def test_every_command_has_help_and_version(
    command: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "-h"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: faro {command}")
    with pytest.raises(SystemExit) as done:
        main([command, "--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"faro {faro.__version__}\n"


def test_run_help_lists_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "-h"])
    text = capsys.readouterr().out
    for flag in ("--config", "--output-dir", "--log-level", "--auto-shutdown", "--kubeconfig",
                 "--context", "--metrics-port", "--json-export", "--no-json-export", "--output"):
        assert flag in text


@pytest.mark.parametrize(("argv", "expected"), [
    (["--config", "f"], ["run", "--config", "f"]),
    (["-config=f", "-auto-shutdown=1"], ["run", "--config=f", "--auto-shutdown=1"]),
    (["-log-level", "debug", "-output-dir", "d", "-config", "f"],
     ["run", "--log-level", "debug", "--output-dir", "d", "--config", "f"]),
    (["run", "-config=f", "-kubeconfig", "k"], ["run", "--config=f", "--kubeconfig", "k"]),
    (["-config=f", "-output=stdout"], ["run", "--config=f", "--output=stdout"]),
    (["run", "--config", "-", "--", "-config"], ["run", "--config", "-", "--", "-config"]),
    (["-h"], ["-h"]),
    (["--version"], ["--version"]),
    (["-version"], ["--version"]),
    (["-help"], ["--help"]),
    (["validate", "-help"], ["validate", "--help"]),
    (["sim", "-version"], ["sim", "--version"]),
    (["-config=f", "-help"], ["run", "--config=f", "--help"]),
    (["run", "--config", "f", "--", "-help"], ["run", "--config", "f", "--", "-help"]),
    (["sim", "-port"], ["sim", "-port"]),
    (["validate", "-config"], ["validate", "-config"]),
    (["--bogus"], ["--bogus"]),
])
def test_bare_and_go_style_arguments_mean_faro_run(argv: list[str],
                                                    expected: list[str]) -> None:
    assert _with_implied_run(argv) == expected


@pytest.mark.parametrize(("args", "message"), [
    (["run"], "the following arguments are required: --config"),
    (["run", "--config", "{config}", "--bogus"], "unrecognized arguments: --bogus"),
    (["--config", "{config}", "--colour"], "unrecognized arguments: --colour"),
    (["--config", "{config}", "--conf", "x"], "unrecognized arguments: --conf x"),
    (["--config", "{config}", "--log-level", "loud"],
     "argument --log-level: unknown log level 'loud'"),
    (["-config={config}", "-auto-shutdown=-1"],
     "argument --auto-shutdown: must not be negative, got -1.0"),
    (["--config", "{config}", "--auto-shutdown", "soon"],
     "argument --auto-shutdown: invalid float value: 'soon'"),
    (["--config", "{config}", "--metrics-port", "70000"],
     "argument --metrics-port: must be between 0 and 65535, got 70000"),
    (["--config", "{config}", "--output-dir", ""], "argument --output-dir: must not be empty"),
    (["--config", "{config}", "--output", "stderr"],
     "argument --output: invalid choice: 'stderr' (choose from 'file', 'stdout')"),
    (["--config", "{config}", "--output", "stdout", "--no-json-export"],
     "argument --output: not allowed with --no-json-export"),
    (["demo", "--timeout", "0"], "argument --timeout: must be positive"),
])
def test_run_with_bad_arguments_exits_2_with_its_usage(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "config.yaml", "resources: [{gvr: v1/configmaps}]\n")
    with pytest.raises(SystemExit) as done:
        main([arg.replace("{config}", str(config)) for arg in args])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: faro {'demo' if args[0] == 'demo' else 'run'} ")
    assert message in err
    assert not (tmp_path / "output").exists()  # nothing was set up


# -------------------------------------------------------------------------------- validate

NAMESPACE_CENTRIC = """\
    output_dir: /var/faro
    json_export: true
    metrics: {enabled: true, port: 9090}
    namespaces:
      - name_selector: production
        resources:
          "v1/pods": {label_selector: "app=nginx"}
          "apps/v1/deployments": {}
      - name_selector: "team-.*"
        resources:
          "v1/configmaps": {name_selector: "config-.*"}
          "batch/v1/jobs": {field_selector: "status.successful=1"}
    """

RESOURCE_CENTRIC = """\
    auto_shutdown_sec: 60
    resources:
      - gvr: v1/configmaps
        namespace_names: [default, "team-.*"]
        label_selector: "app=web"
      - gvr: v1/configmaps
        label_selector: "app=web"
      - gvr: v1/namespaces
        scope: Cluster
        name_selector: "prod-.*"
      - gvr: v1/secrets
        namespace_names: [default]
        name_selector: db
    """


def test_validate_prints_the_plan_of_a_namespace_centric_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "ns.yaml", NAMESPACE_CENTRIC)

    assert main(["validate", str(path)]) == 0

    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0] == f"{path}: valid: 4 entries, 4 informers"
    assert "[1] v1/pods in namespace production" in lines
    assert "label selector (server-side): app=nginx" in lines
    assert "[2] apps/v1/deployments in namespace production" in lines
    # A pattern: one informer in all namespaces, filtered by faro.
    assert "[3] v1/configmaps in all namespaces, filtered by faro to namespaces matching " \
        "'team-.*'" in lines
    assert ("entry namespaces[1].resources[v1/configmaps]: only namespaces matching 'team-.*' "
            "(filtered by faro); names matching 'config-.*' (client-side)") in lines
    assert any(line.startswith("(A shared informer lists and watches all namespaces: where "
                               "the credentials may not, faro runs one informer per namespace")
               for line in lines)
    assert "field selector (server-side): status.successful=1" in lines
    assert "shared by" not in out
    assert "JSON export:    on: /var/faro/events-YYYYMMDD-HHMMSS.json (rotated at 100 MiB, " \
        "5 kept)" in lines
    assert "log file:       /var/faro/logs/faro-YYYYMMDD-HHMMSS.log (level info)" in lines
    assert "metrics:        http://0.0.0.0:9090/metrics (and /healthz, /readyz)" in lines
    assert "auto shutdown:  never (runs until SIGINT or SIGTERM)" in lines


def test_validate_shows_shared_informers_and_client_side_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "res.yaml", RESOURCE_CENTRIC)

    assert main(["validate", str(path)]) == 0

    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == f"{path}: valid: 5 entries, 3 informers"
    # One all-namespaces request serves the entry for every namespace and the two
    # single-namespace scopes with the same selector: faro filters those by namespace.
    start = lines.index("[1] v1/configmaps in all namespaces, shared by 3 entries")
    assert lines[start + 1:start + 5] == [
        "label selector (server-side): app=web",
        "entry resources[0]: only namespace default (filtered by faro)",
        "entry resources[0]: only namespaces matching 'team-.*' (filtered by faro)",
        "entry resources[1]",
    ]
    assert "[2] v1/namespaces cluster-wide (Cluster-scoped)" in lines
    assert "entry resources[2]: names matching 'prod-.*' (client-side); scope Cluster" in lines
    # An exact name is a server-side field selector.
    assert "[3] v1/secrets in namespace default" in lines
    assert "field selector (server-side): metadata.name=db" in lines
    assert "JSON export:    off" in lines
    assert "metrics:        off" in lines
    assert "auto shutdown:  after 60 s" in lines


def test_validate_shows_an_export_to_standard_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "stdout.yaml", """\
        json_export: true
        export: {output: stdout}
        resources: [{gvr: v1/configmaps}]
        """)

    assert main(["validate", str(path)]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert "JSON export:    on: standard output (the logs go to stderr)" in lines
    assert main(["validate", "-o", "json", str(path)]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["events_file"] is None
    assert settings["export"]["output"] == "stdout"


def test_validate_plans_a_cluster_scoped_resource_cluster_wide_as_the_controller_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # The controller ignores a namespace filter on a cluster-scoped resource (one cluster-wide
    # informer, a warning): validate must show that, not an informer in the namespace.
    path = write(tmp_path / "ns.yaml", """\
        namespaces:
          - name_selector: demo
            resources:
              v1/namespaces: {}
              v1/configmaps: {}
        """)

    assert main(["validate", str(path)]) == 0

    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    start = lines.index("[1] v1/namespaces cluster-wide (Cluster-scoped)")
    assert lines[start + 1] == (
        "entry namespaces[0].resources[v1/namespaces]: its namespace filter does not apply: "
        "the resource is cluster-scoped (watched cluster-wide, as the controller warns)")
    assert "[2] v1/configmaps in namespace demo" in lines


def test_validate_output_json_is_the_plan_for_programs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "res.yaml", RESOURCE_CENTRIC)

    assert main(["validate", "--output", "json", str(path)]) == 0

    plan = json.loads(capsys.readouterr().out)
    assert plan["valid"] is True
    assert [(i["gvr"], i["namespace"], i["label_selector"], i["field_selector"])
            for i in plan["informers"]] == [
        ("v1/configmaps", None, "app=web", None), ("v1/namespaces", None, None, None),
        ("v1/secrets", "default", None, "metadata.name=db")]
    shared = plan["informers"][0]["entries"]
    assert [(e["source"], e["namespace"], e["namespace_pattern"]) for e in shared] == [
        ("resources[0]", "default", None), ("resources[0]", None, "team-.*"),
        ("resources[1]", None, None)]
    assert plan["informers"][1]["cluster_scoped"] is True
    assert plan["informers"][1]["entries"][0]["name_pattern"] == "prod-.*"
    assert plan["settings"]["events_file"] is None
    assert plan["settings"]["metrics"]["url"] is None
    assert plan["config"]["auto_shutdown_sec"] == 60


def test_validate_an_empty_file_says_it_watches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", str(write(tmp_path / "empty.yaml", ""))]) == 0
    out = capsys.readouterr().out
    assert ": valid: 0 entries, 0 informers" in out
    assert "watches nothing" in out


@pytest.mark.parametrize(("text", "error"), [
    ("metrics: {port: 70000}\n", "metrics.port: must be between 0 and 65535, got 70000"),
    ("resources: [{gvr: v1/pods, namespace_names: [Prod]}]\n",
     "resources[0].namespace_names[0]: 'Prod' is not a valid namespace name"),
    ("namespaces: [\n", "invalid YAML"),
])
def test_validate_an_invalid_file_exits_2_with_one_line(
    text: str, error: str, tmp_path: Path,
) -> None:
    write(tmp_path / "config.yaml", text)

    done = run_faro("validate", "config.yaml", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"{ERROR}config.yaml: {error}")
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_validate_json_reports_an_invalid_file_on_stdout_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "config.yaml", "workers: 0\n")

    assert main(["validate", "-o", "json", str(path)]) == 2

    out, err = capsys.readouterr()
    document = json.loads(out)
    problem = {"path": "workers", "problem": "must be at least 1, got 0",
               "message": f"{path}: workers: must be at least 1, got 0"}
    assert document.pop("errors") == [problem]  # every problem: here the one
    assert document == {"source": str(path), "valid": False, "error": problem}
    assert err == f"{ERROR}{path}: workers: must be at least 1, got 0\n"


def test_validate_plan_prints_the_plan_as_plain_validate_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "res.yaml", RESOURCE_CENTRIC)
    assert main(["validate", str(path)]) == 0
    plain = capsys.readouterr().out

    assert main(["validate", "--plan", str(path)]) == 0
    assert capsys.readouterr().out == plain
    assert "[1] v1/configmaps in all namespaces, shared by 3 entries" in plain

    assert main(["validate", str(path), "--plan", "-o", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["informers"]) == 3

    with pytest.raises(SystemExit):
        main(["validate", "-h"])
    assert "--plan" in capsys.readouterr().out


# Three problems, in document order (each independent of the others).
SEVERAL_PROBLEMS = """\
    workers: 0
    metrics: {port: 70000}
    resources: [{gvr: v1/pods, namespace_names: [Prod]}]
    """
PROBLEMS = [("workers", "must be at least 1, got 0"),
            ("metrics.port", "must be between 0 and 65535, got 70000"),
            ("resources[0].namespace_names[0]", "'Prod' is not a valid namespace name")]


def test_validate_reports_every_problem_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "config.yaml", SEVERAL_PROBLEMS)

    assert main(["validate", str(path)]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    count, *lines = err.splitlines()
    assert count == f"{ERROR}{path}: 3 problems"
    assert len(lines) == len(PROBLEMS), err
    for line, (where, problem) in zip(lines, PROBLEMS, strict=True):
        assert line.startswith(f"{ERROR}{path}: {where}: {problem}"), err


def test_validate_json_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path / "config.yaml", SEVERAL_PROBLEMS)

    assert main(["validate", "-o", "json", str(path)]) == 2

    document = json.loads(capsys.readouterr().out)
    assert (document["source"], document["valid"]) == (str(path), False)
    errors = document["errors"]
    assert [(e["path"], e["problem"][:len(problem)]) for e, (_, problem)
            in zip(errors, PROBLEMS, strict=False)] == PROBLEMS
    assert len(errors) == len(PROBLEMS)
    assert all(e["message"] == f"{path}: {e['path']}: {e['problem']}" for e in errors)
    assert document["error"] == errors[0]  # the first, as before every problem was reported


def test_validate_a_missing_file_exits_2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == \
        f"{ERROR}{tmp_path / 'nope.yaml'}: cannot read the file: No such file or directory\n"


# ---------------------------------------------------------------------- run: failing early


def test_run_with_a_missing_config_file_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_faro("--config", "nope.yaml", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr == f"{ERROR}nope.yaml: cannot read the file: No such file or directory\n"
    assert done.stdout == ""
    assert not (tmp_path / "output").exists()


def test_run_with_an_invalid_config_exits_2_with_one_line(tmp_path: Path) -> None:
    write(tmp_path / "config.yaml", "metrics: {enabled: true, port: 70000}\n")

    done = run_faro("run", "--config", "config.yaml", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr == \
        f"{ERROR}config.yaml: metrics.port: must be between 0 and 65535, got 70000\n"
    assert not (tmp_path / "output").exists()


@pytest.mark.parametrize("command", ["run", "discover"])
def test_an_unreachable_cluster_exits_1_with_one_line(command: str, tmp_path: Path) -> None:
    port = closed_port()
    kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{port}")
    write(tmp_path / "config.yaml", "resources: [{gvr: v1/configmaps}]\n")
    args = ["--config", "config.yaml"] if command == "run" else []

    done = run_faro(command, *args, "--kubeconfig", "kc", cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert error_lines(done.stderr) == [
        f"{ERROR}cannot reach the Kubernetes API server at http://127.0.0.1:{port}: "
        "connection refused (from kubeconfig kc (context c))"]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    if command == "run":  # the error is in the log file as well
        [log] = (tmp_path / "output" / "logs").glob("faro-*.log")
        assert "connection refused" in log.read_text()


@pytest.mark.parametrize(("kubeconfig", "context", "problem"), [
    ("garbage", None, "kubeconfig kc: while parsing a flow node"),
    ("sim", "nosuch", "kubeconfig kc: context 'nosuch' not found; available contexts: c"),
    (None, None, "no usable Kubernetes configuration: kubeconfig kc: no such file"),
])
def test_run_with_a_bad_kubeconfig_exits_1_with_one_line(
    kubeconfig: str | None, context: str | None, problem: str, tmp_path: Path,
) -> None:
    if kubeconfig == "garbage":
        (tmp_path / "kc").write_text("clusters: [\n")
    elif kubeconfig == "sim":
        kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{closed_port()}")
    write(tmp_path / "config.yaml", "resources: [{gvr: v1/configmaps}]\n")
    extra = ["--context", context] if context else []

    done = run_faro("run", "--config", "config.yaml", "--kubeconfig", "kc", *extra,
                    cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    [line] = error_lines(done.stderr)
    assert line.startswith(ERROR + problem)
    assert "Traceback" not in done.stderr


def test_run_with_a_resource_the_cluster_does_not_serve_exits_2_with_a_suggestion(
    tmp_path: Path, cluster: SimulatedCluster,
) -> None:
    write(tmp_path / "config.yaml", "resources: [{gvr: v1/configmaps}, {gvr: v1/pod}]\n")

    done = run_faro("run", "--config", "config.yaml", "--kubeconfig", cluster.kubeconfig_path,
                    cwd=tmp_path)

    assert done.returncode == 2, done.stderr
    assert error_lines(done.stderr) == [f"{ERROR}config.yaml: resources[1]: the cluster does "
                                        "not serve v1/pod; did you mean v1/pods?"]
    assert "Traceback" not in done.stderr
    assert "faro is ready" not in done.stderr


def test_run_names_every_resource_the_cluster_does_not_serve(
    tmp_path: Path, cluster: SimulatedCluster,
) -> None:
    write(tmp_path / "config.yaml",
          "resources: [{gvr: v1/pod}, {gvr: v1/configmaps}, {gvr: apps/v1/deployment}]\n")

    done = run_faro("run", "--config", "config.yaml", "--kubeconfig", cluster.kubeconfig_path,
                    cwd=tmp_path)

    assert done.returncode == 2, done.stderr
    count, first, second = error_lines(done.stderr)
    assert count == f"{ERROR}config.yaml: 2 problems"
    assert first == (f"{ERROR}config.yaml: resources[0]: the cluster does not serve v1/pod; "
                     "did you mean v1/pods?")
    assert second.startswith(f"{ERROR}config.yaml: resources[2]: the cluster does not serve "
                             "apps/v1/deployment; did you mean apps/v1/deployments")


def test_run_with_the_metrics_port_in_use_exits_1_with_one_line(
    tmp_path: Path, cluster: SimulatedCluster,
) -> None:
    write(tmp_path / "config.yaml", "metrics: {bind_addr: 127.0.0.1}\n"
                                    "resources: [{gvr: v1/configmaps}]\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = run_faro("--config", "config.yaml", "--metrics-port", str(port),
                        "--kubeconfig", cluster.kubeconfig_path, cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    [line] = error_lines(done.stderr)
    assert line.startswith(f"{ERROR}cannot serve metrics on 127.0.0.1:{port}: ")
    assert "Address already in use" in line
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ run against a cluster


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_reports_events_and_stops_cleanly_on_a_signal(
    signum: signal.Signals, tmp_path: Path, cluster: SimulatedCluster,
    faro_runs: list[FaroRun],
) -> None:
    namespace = new_namespace(cluster, "cli-run")
    watch_config(tmp_path, namespace)
    run = FaroRun(tmp_path, "run", "--config", "config.yaml",
                  "--kubeconfig", cluster.kubeconfig_path)
    faro_runs.append(run)
    run.ready()

    created = cluster.create(configmap("web", namespace))
    other = unique("web")
    cluster.create(configmap(other, "default"))  # another namespace: not reported
    uid = created["metadata"]["uid"]
    event = run.line(f"CONFIG [ADDED] v1/configmaps {namespace}/web (UID: {uid})")
    run.signal(signum)
    code, lines = run.finish()

    assert code == 0, "\n".join(lines)
    assert " INFO faro.events: " in event
    assert any(f"received {signum.name}: stopping" in line for line in lines)
    assert lines[-1].endswith("INFO faro.cli: faro stopped")
    assert not any(f"default/{other}" in line for line in lines)
    assert not any("Traceback" in line for line in lines)
    [log] = (tmp_path / "output" / "logs").glob("faro-*.log")
    assert f"CONFIG [ADDED] v1/configmaps {namespace}/web" in log.read_text()


def test_a_second_signal_while_stopping_exits_at_once(
    tmp_path: Path, cluster: SimulatedCluster, faro_runs: list[FaroRun],
) -> None:
    """A handler that never returns makes stop() wait its 30 s for the worker; a second
    signal must not: it exits with 1 at once."""
    namespace = new_namespace(cluster, "cli-slow")
    watch_config(tmp_path, namespace)
    run = FaroRun(tmp_path, "--config", "config.yaml", "--kubeconfig", cluster.kubeconfig_path,
                  prelude=HANDLER_PRELUDE, env={"FARO_TEST_BLOCK": "1"})
    faro_runs.append(run)
    run.ready()
    cluster.create(configmap("stuck", namespace))
    run.line(f"handled ADDED {namespace}/stuck")  # the handler is now blocked

    run.signal(signal.SIGTERM)
    run.line("received SIGTERM: stopping")
    run.signal(signal.SIGINT)
    code, lines = run.finish(timeout=10)  # far less than the 30 s stop() would wait

    assert code == 1
    assert "received SIGINT again while stopping: exiting at once" in lines[-1]
    assert not any("faro stopped" in line for line in lines)


def test_run_ends_with_exit_0_when_a_handler_stops_the_controller(
    tmp_path: Path, cluster: SimulatedCluster, faro_runs: list[FaroRun],
) -> None:
    namespace = new_namespace(cluster, "cli-handler-stop")
    watch_config(tmp_path, namespace)
    run = FaroRun(tmp_path, "--config", "config.yaml", "--kubeconfig", cluster.kubeconfig_path,
                  prelude=HANDLER_PRELUDE, env={"FARO_TEST_STOP": "1"})
    faro_runs.append(run)
    run.ready()
    cluster.create(configmap("last", namespace))

    code, lines = run.finish()  # no signal, no auto shutdown: the handler's stop() ends it

    assert code == 0
    assert any("the controller was stopped (by a handler)" in line for line in lines)
    assert "faro stopped" in lines[-1]
    # The event whose handler called stop() was delivered: nothing was lost.
    assert not any("not delivered" in line for line in lines), lines


START_UP_STOP = 6.0  # seconds from a signal during start-up to the exit


@pytest.mark.parametrize(("stage", "signum"), [("discovery", signal.SIGTERM),
                                               ("first list", signal.SIGINT)])
def test_a_signal_during_start_up_stops_faro_without_waiting_for_the_start(
    stage: str, signum: signal.Signals, tmp_path: Path, faro_runs: list[FaroRun],
) -> None:
    """Start-up may wait long for the cluster: discovery for its read timeout (30 s), the
    namespace watcher for its first list (10 s). A signal then stops faro at once, exit 0."""
    with SimulatedCluster(tls=False) as sim:
        if stage == "discovery":
            sim.delay(60, path=r"^/apis$")  # the discovery of API groups: slow
            watch_config(tmp_path, "default")
            waiting = "reading the cluster's resources (discovery)"
        else:  # a namespace pattern needs the namespace watcher when the credentials may
            # not list configmaps cluster-wide (else one shared informer serves it): its
            # lists keep failing
            sim.fail_next(1_000_000, 403, path=r"^/api/v1/configmaps(\?|$)")
            sim.fail_next(1_000_000, path=r"^/api/v1/namespaces\?")
            watch_config(tmp_path, "team-.*")
            waiting = "waiting for the first list of v1/namespaces"
        run = FaroRun(tmp_path, "run", "--config", "config.yaml", "--kubeconfig",
                      sim.kubeconfig_path, "--log-level", "debug")
        faro_runs.append(run)
        run.line(waiting, timeout=STARTUP)
        run.signal(signum)
        signalled = time.monotonic()
        code, lines = run.finish(timeout=STOP)
        elapsed = time.monotonic() - signalled
        sim.clear_faults()

    assert code == 0, "\n".join(lines)
    assert elapsed < START_UP_STOP, "\n".join(lines)
    assert any(f"received {signum.name} while starting: stopping" in line for line in lines)
    assert "INFO faro.cli: faro stopped" in lines[-1]
    assert not any("faro is ready" in line or "Traceback" in line for line in lines)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_run_signals_reach_only_the_main_thread(
    tmp_path: Path, cluster: SimulatedCluster, faro_runs: list[FaroRun],
) -> None:
    namespace = new_namespace(cluster, "cli-mask")
    watch_config(tmp_path, namespace, "metrics: {enabled: true, port: 0, bind_addr: 127.0.0.1}")
    run = FaroRun(tmp_path, "--config", "config.yaml", "--kubeconfig", cluster.kubeconfig_path)
    faro_runs.append(run)
    run.ready()
    stops = {signal.SIGINT.value, signal.SIGTERM.value}
    # The ready line may come while the main thread is still in start(), which blocks the
    # signals only while it starts threads: they are pending then, and delivered after.
    eventually(lambda: not stops & _blocked_signals(run.pid, run.pid))

    tasks = [int(t.name) for t in Path(f"/proc/{run.pid}/task").iterdir()]
    assert len(tasks) >= 5  # main, informer, workers, manager, metrics...
    for tid in tasks:
        if tid == run.pid:
            continue
        try:
            blocked = _blocked_signals(run.pid, tid)
        except FileNotFoundError:  # a short-lived thread that ended since the listing
            continue
        assert stops <= blocked, f"thread {tid} can take SIGINT/SIGTERM"
    run.signal(signal.SIGTERM)
    assert run.finish()[0] == 0


@pytest.mark.parametrize("form", ["bare", "go"])
def test_bare_and_go_style_forms_run_and_auto_shutdown_exits_0(
    form: str, tmp_path: Path, cluster: SimulatedCluster,
) -> None:
    namespace = new_namespace(cluster, "cli-bare")
    watch_config(tmp_path, namespace)
    cluster.create(configmap("present", namespace))
    if form == "bare":  # --output-dir also puts the log and the JSON events there
        args = ["--config", "config.yaml", "--kubeconfig", cluster.kubeconfig_path,
                "--auto-shutdown", "2", "--output-dir", "elsewhere", "--json-export"]
        env = _env()
    else:  # as the Go original is run: one dash, '=' or a space, the cluster from KUBECONFIG
        args = ["-config=config.yaml", "-auto-shutdown=2", "-output-dir", "elsewhere"]
        env = {**_env(), "KUBECONFIG": cluster.kubeconfig_path}

    done = subprocess.run([sys.executable, "-m", "faro", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=STARTUP + STOP,
                          check=False)

    assert done.returncode == 0, done.stderr
    assert "faro is ready" in done.stderr
    # 2 s: the informer has listed long before (the ready line and the event need that).
    assert "auto shutdown after 2 s: stopping" in done.stderr
    assert not (tmp_path / "output").exists()
    [log] = (tmp_path / "elsewhere" / "logs").glob("faro-*.log")
    assert "faro stopped" in log.read_text()
    events = list((tmp_path / "elsewhere").glob("events-*.json"))
    if form == "bare":
        [path] = events
        assert f"writing matched events as JSON lines to {Path('elsewhere') / path.name}" \
            in done.stderr
        [line] = path.read_bytes().splitlines()
        assert json.loads(line)["name"] == "present"
    else:
        assert events == []  # json_export is off in the file


def test_log_level_warning_hides_the_event_lines(
    tmp_path: Path, cluster: SimulatedCluster, faro_runs: list[FaroRun],
) -> None:
    namespace = new_namespace(cluster, "cli-quiet")
    watch_config(tmp_path, namespace, "log_level: debug")  # the flag wins over the file
    run = FaroRun(tmp_path, "--config", "config.yaml", "--kubeconfig", cluster.kubeconfig_path,
                  "--log-level", "warning", prelude=HANDLER_PRELUDE)
    faro_runs.append(run)
    cluster.create(configmap("quiet", namespace))

    run.line(f"handled ADDED {namespace}/quiet", timeout=STARTUP)  # delivered, not logged
    run.signal(signal.SIGTERM)
    code, lines = run.finish()

    assert code == 0
    assert lines == [f"handled ADDED {namespace}/quiet"]  # no INFO line, no event line


# -------------------------------------------------------------------------------- discover


def test_discover_lists_watchable_resources_sorted_and_new_crds(
    tmp_path: Path, cluster: SimulatedCluster,
) -> None:
    done = run_faro("discover", "--kubeconfig", cluster.kubeconfig_path, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0] == ["GVR", "SCOPE", "KIND", "SHORTNAMES"]
    assert ["v1/configmaps", "Namespaced", "ConfigMap", "cm"] in rows
    assert ["v1/namespaces", "Cluster", "Namespace", "ns"] in rows
    assert ["apps/v1/deployments", "Namespaced", "Deployment", "deploy"] in rows
    gvrs = [GroupVersionResource.parse(row[0]) for row in rows[1:]]
    assert gvrs == sorted(gvrs, key=lambda g: (g.group, g.resource, g.version))
    assert all(g.group == "" for g in gvrs[:3])  # the core group first
    group = f"{unique('cli')}.example.com"
    assert not any(g.group == group for g in gvrs)

    cluster.create(crd(group=group, plural="gadgets", kind="Gadget", scope="Cluster"))
    done = run_faro("discover", "--kubeconfig", cluster.kubeconfig_path, "-o", "json",
                    cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    found = [r for r in json.loads(done.stdout) if r["group"] == group]
    assert found == [{"gvr": f"{group}/v1/gadgets", "group": group, "version": "v1",
                      "resource": "gadgets", "kind": "Gadget", "scope": "Cluster",
                      "short_names": [], "preferred": True, "verbs": found[0]["verbs"]}]
    assert {"list", "watch"} <= set(found[0]["verbs"])


# ------------------------------------------------------------------------------------ demo


@pytest.mark.parametrize("tls", [True, False], ids=["https", "http"])
def test_demo_runs_by_itself_and_says_where_its_files_are(tls: bool, tmp_path: Path) -> None:
    prelude = "" if tls else f"{HIDE_CRYPTOGRAPHY}\n"
    done = subprocess.run(
        [sys.executable, "-c", f"{prelude}import runpy; runpy.run_module('faro', "
         "run_name='__main__')", "demo", "--output-dir", "out"],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=STARTUP + 60,
        check=False)

    err = done.stderr
    scheme = "https" if tls else "http"
    assert f"demo: simulated Kubernetes API server at {scheme}://127.0.0.1:" in err
    assert ("(plain HTTP: install faro[sim] for HTTPS)" in err) is not tls
    for line in ("CONFIG [ADDED] v1/namespaces demo ", "CONFIG [ADDED] apps/v1/deployments "
                 "demo/web ", "CONFIG [UPDATED] apps/v1/deployments demo/web ",
                 "CONFIG [ADDED] v1/configmaps demo/settings ",
                 "CONFIG [UPDATED] v1/configmaps demo/settings ",
                 "CONFIG [DELETED] v1/configmaps demo/settings ",
                 "CONFIG [ADDED] v1/namespaces team-a ",
                 "CONFIG [ADDED] v1/configmaps team-a/settings "):
        assert err.count(line) == 1, (line, err)
    for filtered in ("demo/scratch ", "team-a/other ", "sandbox "):  # filtered out
        assert f"] v1/configmaps {filtered}" not in err and f"] v1/namespaces {filtered}" \
            not in err
    assert "faro is ready" in err
    out = done.stdout
    assert "faro demo: all 8 expected events arrived" in out, out + err
    [log] = (tmp_path / "out" / "logs").glob("faro-*.log")
    assert f"Log file:       {Path('out') / 'logs' / log.name}" in out
    assert (tmp_path / "out" / "faro-demo.yaml").is_file()
    # The JSON events file is written by the controller (json_export: true).
    json_lines = [line for line in out.splitlines() if line.startswith("JSON events:")]
    assert json_lines and "(8 events)" in json_lines[0], out
    path = tmp_path / json_lines[0].split()[2]
    assert path.is_file()
    assert len(path.read_bytes().splitlines()) == 8
    assert done.returncode == 0, out + err
