"""Reading the files that secure a connection: a bearer token file and PEM certificates.

Shared by the server (:mod:`emdenoise.server.auth`) and the clients
(:mod:`emdenoise.client.security`), so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from emdenoise.errors import UserError

#: Longest token file read (a token is a line of text, not a document).
MAX_TOKEN_BYTES = 4096


def read_token(path: Path | str) -> str:
    """The token in ``path``: its first line, stripped.

    Parameters
    ----------
    path : Path or str
        A text file holding the token (e.g. ``openssl rand -hex 32 > token``).

    Returns
    -------
    str
        The token.

    Raises
    ------
    UserError
        The file cannot be read, is larger than :data:`MAX_TOKEN_BYTES`, or holds no token.
    """
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as error:
        raise UserError(f"cannot read the token file {path} ({error.strerror or error}); give a readable file.") from None
    if len(data) > MAX_TOKEN_BYTES:
        raise UserError(f"the token file {path} is larger than {MAX_TOKEN_BYTES} bytes; it should hold one line, the token.")
    try:
        lines = data.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"the token file {path} is not text; write the token as one line, e.g. 'openssl rand -hex 32 > {path}'.") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise UserError(f"the token file {path} is empty; write a token into it, e.g. 'openssl rand -hex 32 > {path}'.")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise UserError(f"the token in {path} has spaces or non-ASCII characters; use letters and digits, e.g. 'openssl rand -hex 32'.")
    return token


def read_pem(path: Path | str, what: str) -> bytes:
    """The bytes of the PEM file ``path`` (a ``what``: certificate, key, CA), or a UserError."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read the TLS {what} {path} ({error.strerror or error}); give a readable PEM file.") from None
    if b"-----BEGIN" not in data:
        raise UserError(f"the TLS {what} {path} is not a PEM file; give the file that starts with '-----BEGIN'.")
    return data


__all__ = ["MAX_TOKEN_BYTES", "read_pem", "read_token"]
