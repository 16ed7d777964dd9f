"""The ``faro`` command: version, help, usage errors and ``faro sim`` as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

import faro
from faro.cli import main
from tests.sim.kube import LineReader

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
