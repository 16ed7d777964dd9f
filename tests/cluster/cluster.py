"""Start and stop the real control plane faro's tests run against (``make cluster-up/-down``).

``up`` starts etcd, kube-apiserver and kube-controller-manager (built by ``build.sh`` into
``.cluster/bin``) on free 127.0.0.1 ports, with TLS from a CA made on the spot, RBAC, a
service-account issuer and signing key (TokenRequest works), and the controllers a watcher
notices: namespace, garbage collector, service account (+ token) and root-CA publisher. It waits
for ``/readyz``, then writes

* ``.cluster/kubeconfig``: cluster admin (a client certificate in ``system:masters``);
* ``.cluster/faro.kubeconfig``: the ``faro-operator`` ServiceAccount of ``deploy/operator``
  (applied with ``kubectl apply -k``), whose token, from the TokenRequest API, is in
  ``.cluster/faro.token`` (the kubeconfig names it as its ``tokenFile``);
* ``.cluster/cluster.json``: the addresses (etcd's client URL for tests that compact it).

``down`` stops exactly the processes ``up`` started (their pid files, checked against the
binary each was started from) and removes their data; the binaries stay. Both are idempotent:
``up`` on a running cluster that answers does nothing, on a broken one cleans it up first.
A start failure names the component and prints the tail of its log.

Only the standard library is needed for ``down`` and ``status``; ``up`` needs ``cryptography``
(in faro's ``test`` extra) and kubectl.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[2]
DIR = Path(os.environ.get("FARO_CLUSTER_DIR") or TOP / ".cluster")
BIN = TOP / ".cluster" / "bin"  # build.sh puts them there; FARO_CLUSTER_DIR moves the rest
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
START_DEADLINE = 120.0
STOP_DEADLINE = 20.0
OPERATOR_NAMESPACE = "faro-system"
OPERATOR_ACCOUNT = "faro-operator"
TOKEN_SECONDS = 48 * 3600
# A watch on these resources is served by etcd, not by the API server's watch cache, so that a
# compaction of etcd turns a watch from an older resourceVersion into 410 Gone at once (tests
# that force a relist watch them). Every other resource keeps the watch cache (and bookmarks).
UNCACHED_RESOURCES = ("podtemplates",)


class ClusterError(Exception):
    """A step of ``up`` or ``down`` failed; the message names the component."""


# --------------------------------------------------------------------------- processes


def _pid_file(name: str) -> Path:
    return DIR / f"{name}.pid"


def _log_file(name: str) -> Path:
    return DIR / "logs" / f"{name}.log"


def _running(name: str) -> int | None:
    """The pid of the component ``up`` started, if that process still runs that binary."""
    try:
        pid = int(_pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    # A recycled pid runs another program: never signal it.
    return pid if exe.removesuffix(" (deleted)") == str(BIN / name) else None


def _log_tail(name: str, lines: int = 30) -> str:
    try:
        text = _log_file(name).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _start(name: str, args: list[str]) -> int:
    binary = BIN / name
    if not binary.exists():
        raise ClusterError(f"{name}: {binary} is missing; run tests/cluster/build.sh "
                           "(make cluster-build) first")
    _log_file(name).parent.mkdir(parents=True, exist_ok=True)
    with open(_log_file(name), "ab") as log:
        process = subprocess.Popen([str(binary), *args], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=DIR)
    _pid_file(name).write_text(f"{process.pid}\n")
    return process.pid


def _stop(name: str) -> bool:
    """SIGTERM (then SIGKILL) the component's process; True if one was running."""
    pid = _running(name)
    if pid is None:
        _pid_file(name).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE
    while _running(name) == pid and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _running(name) == pid:
        os.kill(pid, signal.SIGKILL)
    _pid_file(name).unlink(missing_ok=True)
    return True


def _wait(name: str, check: Any, what: str) -> None:
    """Poll ``check()`` until true; fail naming ``name`` if its process died or time ran out."""
    deadline = time.monotonic() + START_DEADLINE
    while True:
        if _running(name) is None:
            raise ClusterError(f"{name} exited while starting; the end of "
                               f"{_log_file(name)}:\n{_log_tail(name)}")
        if check():
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{name}: {what} not within {START_DEADLINE:.0f} s; the end of "
                               f"{_log_file(name)}:\n{_log_tail(name)}")
        time.sleep(0.2)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --------------------------------------------------------------------------- certificates


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _make_pki(pki: Path) -> None:
    """CA, API server serving cert, admin client cert, service-account key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)

    def name(common: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def save_key(key: Any, path: Path) -> None:
        _write_private(path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("faro-test-cluster-ca")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (pki / "ca.crt").write_bytes(ca.public_bytes(pem))
    save_key(ca_key, pki / "ca.key")

    def leaf(subject: x509.Name, usage: Any, sans: list[x509.GeneralName] | None,
             stem: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        (pki / f"{stem}.crt").write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(pem))
        save_key(key, pki / f"{stem}.key")

    leaf(name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH,
         [x509.DNSName("localhost"), x509.DNSName("kubernetes"),
          x509.DNSName("kubernetes.default"), x509.DNSName("kubernetes.default.svc"),
          x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
          x509.IPAddress(ipaddress.ip_address("10.0.0.1"))], "apiserver")
    leaf(name("faro-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH, None, "admin")

    # Service-account tokens: one RSA pair both signs (API server, token controller) and verifies.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    save_key(sa_key, pki / "sa.key")
    (pki / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        pem, serialization.PublicFormat.SubjectPublicKeyInfo))


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(server: str, user_name: str, user: dict[str, str]) -> str:
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "faro-test", "cluster": {
            "server": server, "certificate-authority-data": _b64(DIR / "pki" / "ca.crt")}}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": user_name, "context": {"cluster": "faro-test", "user": user_name}}],
        "current-context": user_name,
    }
    return json.dumps(doc, indent=2) + "\n"


# --------------------------------------------------------------------------- up / down


def _etcd_ready(client_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def _admin_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(DIR / "pki" / "ca.crt"))
    context.load_cert_chain(str(DIR / "pki" / "admin.crt"), str(DIR / "pki" / "admin.key"))
    return context


def _apiserver_ready(server: str) -> bool:
    try:
        with urllib.request.urlopen(f"{server}/readyz", timeout=5,
                                    context=_admin_context()) as response:
            return response.status == 200
    except (OSError, ssl.SSLError):
        return False


def _get(server: str, path: str) -> Any:
    with urllib.request.urlopen(f"{server}{path}", timeout=10,
                                context=_admin_context()) as response:
        return json.loads(response.read())


def _exists(server: str, path: str) -> bool:
    try:
        _get(server, path)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise
    except OSError:
        return False
    return True


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    if shutil.which("kubectl") is None:
        raise ClusterError("kubectl not found on PATH (needed to apply deploy/operator)")
    done = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    return done.stdout


def _state() -> dict[str, Any] | None:
    try:
        return json.loads((DIR / "cluster.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def up() -> None:
    state = _state()
    if state and all(_running(name) for name in COMPONENTS) \
            and _apiserver_ready(state["server"]) and (DIR / "faro.kubeconfig").exists():
        print(f"cluster already up: {state['server']} (kubeconfig {DIR / 'kubeconfig'})")
        return
    if any(_running(name) for name in COMPONENTS) or state:
        print("a previous cluster is partly up or gone: cleaning it up first")
        down()

    began = time.monotonic()
    DIR.mkdir(parents=True, exist_ok=True)
    pki = DIR / "pki"
    _make_pki(pki)
    etcd_client, etcd_peer, secure_port = _free_ports(3)
    etcd_url = f"http://127.0.0.1:{etcd_client}"
    server = f"https://127.0.0.1:{secure_port}"
    state = {"server": server, "etcd": etcd_url, "kubeconfig": str(DIR / "kubeconfig"),
             "faro_kubeconfig": str(DIR / "faro.kubeconfig"),
             "uncached_resources": list(UNCACHED_RESOURCES)}
    (DIR / "cluster.json").write_text(json.dumps(state, indent=2) + "\n")
    try:
        _start("etcd", [
            "--name=faro-test", f"--data-dir={DIR / 'etcd-data'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=faro-test=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
        ])
        _wait("etcd", lambda: _etcd_ready(etcd_url), "healthy")

        _start("kube-apiserver", [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={secure_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            # Tests compact etcd themselves; the API server's own 5-minute compaction would
            # make their 410s depend on timing.
            "--etcd-compaction-interval=0",
            "--watch-cache-sizes=" + ",".join(f"{name}#0" for name in UNCACHED_RESOURCES),
            "--profiling=false",
            "--v=1",
        ])
        _wait("kube-apiserver", lambda: _apiserver_ready(server), "/readyz answering 200")

        admin = DIR / "kubeconfig"
        _write_private(admin, _kubeconfig(server, "faro-admin", {
            "client-certificate-data": _b64(pki / "admin.crt"),
            "client-key-data": _b64(pki / "admin.key")}).encode())

        _start("kube-controller-manager", [
            f"--kubeconfig={admin}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials=false",
            "--controllers=namespace-controller,garbage-collector-controller,"
            "serviceaccount-controller,serviceaccount-token-controller,"
            "root-ca-certificate-publisher-controller",
            "--v=1",
        ])
        _wait("kube-controller-manager",
              lambda: _exists(server, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
              and _exists(server, "/api/v1/namespaces/default/serviceaccounts/default"),
              "kube-root-ca.crt and the default ServiceAccount in namespace default")

        _kubectl(admin, "apply", "-k", str(TOP / "deploy" / "operator"))
        token = _kubectl(admin, "create", "token", OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE,
                         f"--duration={TOKEN_SECONDS}s").strip()
        _write_private(DIR / "faro.token", token.encode() + b"\n")
        _write_private(DIR / "faro.kubeconfig", _kubeconfig(server, OPERATOR_ACCOUNT, {
            "tokenFile": str(DIR / "faro.token")}).encode())
    except BaseException:
        print("cluster-up failed: stopping what it started", file=sys.stderr)
        for name in reversed(COMPONENTS):
            _stop(name)
        raise
    version = _get(server, "/version")["gitVersion"]
    print(f"cluster up in {time.monotonic() - began:.1f} s: kube-apiserver {version} at {server}")
    print(f"  admin kubeconfig:        {DIR / 'kubeconfig'}")
    print(f"  faro-operator kubeconfig: {DIR / 'faro.kubeconfig'}")
    print(f"  etcd:                    {etcd_url}")


def down() -> None:
    stopped = [name for name in reversed(COMPONENTS) if _stop(name)]
    for item in ("etcd-data", "pki", "logs"):
        shutil.rmtree(DIR / item, ignore_errors=True)
    for item in ("kubeconfig", "faro.kubeconfig", "faro.token", "cluster.json"):
        (DIR / item).unlink(missing_ok=True)
    print("cluster down" + (f": stopped {', '.join(stopped)}" if stopped else " (nothing ran)"))


def env() -> int:
    """Print the variables the tests read, as shell assignments (for eval)."""
    state = _state()
    if not state:
        print("cluster: error: no cluster is up (make cluster-up)", file=sys.stderr)
        return 1
    print(f"export FARO_E2E_KUBECONFIG={state['kubeconfig']}")
    print(f"export FARO_E2E_FARO_KUBECONFIG={state['faro_kubeconfig']}")
    print(f"export FARO_E2E_ETCD={state['etcd']}")
    return 0


def status() -> int:
    state = _state()
    running = {name: _running(name) for name in COMPONENTS}
    for name, pid in running.items():
        print(f"{name:24} {'pid ' + str(pid) if pid else 'not running'}")
    if state:
        ready = _apiserver_ready(state["server"])
        print(f"{'kube-apiserver /readyz':24} {'ok' if ready else 'not ready'} ({state['server']})")
        return 0 if ready and all(running.values()) else 1
    return 1


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ClusterError as error:
        print(f"cluster: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args()
    with _errors():
        if args.command == "up":
            up()
        elif args.command == "down":
            down()
        elif args.command == "env":
            return env()
        else:
            return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
