"""The cluster the fidelity tests talk to, and a small kubectl driver.

The kubectl and official-client tests run against the simulator (HTTPS, since
client-go sends a kubeconfig's bearer token only over TLS) or, when
``FARO_E2E_KUBECONFIG`` names a kubeconfig, unchanged against that real
cluster. Either way a test only gets a kubeconfig path: it creates its own
uniquely named namespace (or cluster-scoped objects with unique names), cleans
up after itself and never assumes an empty cluster.

``Kubectl`` runs the real binary with nothing but ``--kubeconfig`` (and a
``--cache-dir`` under the test's temporary directory, so nothing is written to
``~/.kube``). ``LineReader`` follows a long-running command such as
``kubectl get -w``: its stdout is read on a thread into a queue, and tests wait
for an expected line with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson

from faro.testing import SimulatedCluster
from tests.integration import helpers

E2E_ENV = "FARO_E2E_KUBECONFIG"
T = TypeVar("T")


def real_cluster() -> str | None:
    """The kubeconfig of the configured real cluster, or None (use the simulator)."""
    return os.environ.get(E2E_ENV, "").strip() or None


# A real cluster's controllers (namespace deletion, CRD establishment) take longer
# than the simulator's; one deadline covers both.
DEADLINE = 60.0 if real_cluster() else 10.0


@contextlib.contextmanager
def target_kubeconfig(**sim_options: Any) -> Iterator[str]:
    """Yield the kubeconfig to test against: the real cluster's, or a TLS simulator's.

    ``sim_options`` go to :class:`SimulatedCluster` and are ignored for a real cluster.
    """
    path = real_cluster()
    if path:
        yield path
        return
    with SimulatedCluster(tls=True, **sim_options) as sim:
        yield sim.kubeconfig_path


def eventually(predicate: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``predicate`` until it returns something true (returned); fail naming ``what``.

    :func:`tests.integration.helpers.eventually` with this module's deadline (longer on a
    real cluster).
    """
    return helpers.eventually(predicate, timeout, 0.02, what=what)  # type: ignore[no-any-return]


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against a real cluster) uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


class Kubectl:
    """Runs ``kubectl --kubeconfig K --cache-dir C ...`` and captures its output."""

    def __init__(self, kubeconfig: str, cache_dir: Path) -> None:
        self.base = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", str(cache_dir)]

    def run(self, *args: str, stdin: str | None = None,
            timeout: float = DEADLINE + 30) -> subprocess.CompletedProcess[str]:
        """Run to completion; the exit code is the caller's to check."""
        return subprocess.run([*self.base, *args], input=stdin, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run, assert exit 0 and return stdout."""
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, (
            f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    def json(self, *args: str) -> Any:
        """``kubectl ARGS -o json``, decoded."""
        return orjson.loads(self.ok(*args, "-o", "json"))

    def apply(self, manifest: str, *extra: str) -> list[str]:
        """``kubectl apply -f -``; returns its output lines."""
        return self.ok("apply", *extra, "-f", "-", stdin=manifest).splitlines()

    def follow(self, *args: str) -> LineReader:
        """Start a long-running kubectl command (e.g. ``get -w``)."""
        return LineReader([*self.base, *args])


class LineReader:
    """A subprocess whose stdout lines are read on a thread and awaited with a deadline."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, merge_stderr: bool = False,
                 read_stderr: bool = False) -> None:
        """Start ``argv``; with ``merge_stderr`` its stderr lines are read as output too; with
        ``read_stderr`` they are read on a thread of their own (:meth:`wait_for_stderr`,
        :attr:`stderr_seen`), so that a process that logs a lot never blocks on stderr."""
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True, env=env, cwd=cwd)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(self.process.stdout, self.lines),
                                        daemon=True)
        self._thread.start()
        self.stderr_lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_seen: list[str] = []
        self._stderr_thread: threading.Thread | None = None
        if read_stderr and not merge_stderr:
            self._stderr_thread = threading.Thread(
                target=self._read, args=(self.process.stderr, self.stderr_lines), daemon=True)
            self._stderr_thread.start()

    @staticmethod
    def _read(stream: Any, lines: queue.Queue[str | None]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)  # end of output

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """The first unread line satisfying ``predicate``; fails after ``timeout`` or at EOF."""
        return self._wait(self.lines, self.seen, predicate, timeout)

    def wait_for_stderr(self, predicate: Callable[[str], bool],
                        timeout: float = DEADLINE) -> str:
        """:meth:`wait_for` for stderr (``read_stderr=True``): the first unread stderr line
        satisfying ``predicate``."""
        assert self._stderr_thread is not None, "made without read_stderr=True"
        return self._wait(self.stderr_lines, self.stderr_seen, predicate, timeout)

    def _wait(self, lines: queue.Queue[str | None], seen: list[str],
              predicate: Callable[[str], bool], timeout: float) -> str:
        end = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no expected line within {timeout}s; seen: {seen}") from None
            if line is None:
                lines.put(None)  # the end stays the end for the next wait
                raise AssertionError(f"output ended before the expected line; seen: "
                                     f"{seen}, stderr: {self._stderr()}")
            seen.append(line)
            if predicate(line):
                return line

    def rest(self, timeout: float = DEADLINE) -> list[str]:
        """Every line still to come, once the process has ended (within ``timeout``)."""
        self.process.wait(timeout=timeout)
        return self._rest(self._thread, self.lines, timeout)

    def stderr_rest(self, timeout: float = DEADLINE) -> list[str]:
        """:meth:`rest` for stderr (``read_stderr=True``)."""
        assert self._stderr_thread is not None, "made without read_stderr=True"
        self.process.wait(timeout=timeout)
        return self._rest(self._stderr_thread, self.stderr_lines, timeout)

    @staticmethod
    def _rest(thread: threading.Thread, lines: queue.Queue[str | None],
              timeout: float) -> list[str]:
        thread.join(timeout=timeout)
        rest = []
        while (line := lines.get_nowait()) is not None:
            rest.append(line)
        lines.put(None)
        return rest

    def _stderr(self) -> str:
        if self._stderr_thread is not None:
            return "\n".join(self.stderr_seen)
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def close(self) -> None:
        """Terminate the process (if still running) and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._thread.join(timeout=5)
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
