"""Certificates and TLS clients for the TLS/AUTH integration tests.

Certificates are made at test time with the real `openssl req`; clients are
Python's ssl module, `openssl s_client` and swaks.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from sluice_harness import HOSTNAME, SmtpClient, listen_spec, scaled


def openssl_bin() -> str:
    found = shutil.which("openssl") or "/usr/bin/openssl"
    if not os.access(found, os.X_OK):
        pytest.fail("openssl is missing (tools/deps.sh installs it)", pytrace=False)
    return found


def make_cert(directory: Path, name: str = "server", cn: str = HOSTNAME) -> tuple:
    """A self-signed RSA certificate for `cn`; returns (cert_path, key_path)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    subprocess.run(
        [openssl_bin(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def client_context() -> ssl.SSLContext:
    """No verification: the certificates are self-signed test ones."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_cn(sock: ssl.SSLSocket) -> str:
    der = sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run([openssl_bin(), "x509", "-noout", "-subject"], input=pem.encode(),
                         capture_output=True, check=True, timeout=30).stdout.decode()
    return out.strip().split("CN", 1)[1].lstrip(" =")


def starttls(c: SmtpClient) -> None:
    """STARTTLS on a raw client (after EHLO); wraps its socket."""
    r = c.cmd("STARTTLS")
    assert r.first == "220 2.0.0 Ready to start TLS", r
    assert not c.buf, f"bytes after the 220: {bytes(c.buf)!r}"
    c.sock = client_context().wrap_socket(c.sock, server_hostname=HOSTNAME)


def implicit_client(host: str, port: int, timeout: float = 10.0) -> SmtpClient:
    """A raw client on an implicit-TLS listener (TLS from the first byte)."""
    c = SmtpClient.__new__(SmtpClient)
    c.host, c.port, c.timeout = host, port, scaled(timeout)
    raw = socket.create_connection((host, port), timeout=c.timeout)
    c.sock = client_context().wrap_socket(raw, server_hostname=HOSTNAME)
    c.sock.settimeout(c.timeout)
    c.buf = bytearray()
    c.eof = False
    return c


def plain_auth(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def tls_args(cert: Path, key: Path) -> list:
    return ["--tls-cert", str(cert), "--tls-key", str(key)]


def tls_listen_arg(port: int, host: str = "127.0.0.1") -> list:
    return ["--listen-tls", listen_spec(host, port)]
