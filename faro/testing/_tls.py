"""Certificates for the simulated server's HTTPS mode.

A fresh CA and a server certificate for the listening address are made per
cluster, so clients verify TLS for real (the CA goes into the kubeconfig).
Needs the ``cryptography`` package (installed by ``faro[sim]``).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

# What Go's net/http (so kube-apiserver) answers to plain HTTP on an HTTPS port.
PLAIN_HTTP_ANSWER = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                     b"Client sent an HTTP request to an HTTPS server.\n")
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO", b"PATCH", b"DELET")


def make_certificates(host: str, directory: str) -> tuple[bytes, str, str]:
    """Write a server certificate and key for ``host`` into ``directory``.

    Returns (CA certificate PEM, certificate file, key file). Raises
    RuntimeError naming the missing package when ``cryptography`` is absent.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "SimulatedCluster(tls=True) needs the 'cryptography' package: "
            "pip install 'faro[sim]'"
        ) from error

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faro-sim-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faro-sim")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    cert_file = Path(directory) / "server.crt"
    key_file = Path(directory) / "server.key"
    cert_file.write_bytes(cert.public_bytes(pem))
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return ca_cert.public_bytes(pem), str(cert_file), str(key_file)


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2+, HTTP/1.1 offered through ALPN)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def answered_plain_http(conn: socket.socket) -> bool:
    """Answer a client that speaks plain HTTP to the HTTPS port, as Go's servers do.

    Peeks at the first bytes of ``conn`` (blocking until the client sends some).
    A TLS client's handshake is left unread and False returned. A plain HTTP
    request is read up to the end of its head and answered 400 "Client sent an
    HTTP request to an HTTPS server."; True is returned and the caller closes
    the connection.
    """
    try:
        start = conn.recv(5, socket.MSG_PEEK)
    except OSError:
        return False
    if not start.startswith(_HTTP_STARTS):
        return False
    head = b""
    with contextlib.suppress(OSError):
        conn.settimeout(5)
        # Reading the head first: closing with unread data would reset the connection
        # before the client reads the answer.
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = conn.recv(65536)
            if not chunk:
                break
            head += chunk
        conn.sendall(PLAIN_HTTP_ANSWER)
    return True
