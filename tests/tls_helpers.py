"""A self-signed certificate and a token made at test time (no key is ever committed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def make_credentials(folder: Path) -> dict[str, Path]:
    """``cert``, ``key`` (self-signed for 127.0.0.1 and localhost, 1 day) and ``token`` in ``folder``.

    Uses the ``openssl`` command line (the ``cryptography`` package is not installed here).
    """
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key, token = folder / "cert.pem", folder / "key.pem", folder / "token"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    token.write_text("0123456789abcdef-test-token\n")
    return {"cert": cert, "key": key, "token": token}
