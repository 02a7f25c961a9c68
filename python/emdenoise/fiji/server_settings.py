"""EM Server Settings, Python side: check a server address with its TLS and token files, then save them.

``python -m emdenoise.fiji.server_settings --server HOST:PORT [--tls-ca FILE] [--token-file FILE]``
lists the denoisers the server offers with those settings (one ``id, modality, default,
backend`` line each, as ``emdenoise.fiji.bridge models`` prints) and, when that works, saves
the two *paths* for the address (:mod:`emdenoise.client.profiles`), so every later EM command
that only knows ``host:port`` connects the same way. The token itself is never stored. A
failure prints one ``ERROR<TAB>sentence`` line and saves nothing.
"""

from __future__ import annotations

import argparse
import os
import sys


def check_and_save(server: str | None, tls_ca: str = "", token_file: str = "") -> list[dict]:
    """Denoiser cards of ``server`` reached with ``tls_ca``/``token_file``; saves them on success.

    Parameters
    ----------
    server : str or None
        ``host:port``; None for the embedded engine (nothing to save).
    tls_ca, token_file : str
        Paths, or empty.

    Returns
    -------
    list of dict
        The cards of the denoisers, sorted by id.

    Raises
    ------
    UserError
        The server cannot be reached, refuses the token, or a file is unusable.
    """
    from emdenoise.client import connect
    from emdenoise.client.profiles import save_settings

    if server is None:
        with connect(None) as client:
            cards = client.list_models()
    else:
        with connect(server, tls_ca=tls_ca or None, token_file=token_file or None) as client:
            cards = client.list_models()
        save_settings(server, tls_ca=tls_ca or None, token_file=token_file or None)
    return sorted((c for c in cards if c.get("task") == "denoise"), key=lambda c: c["id"])


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    parser = argparse.ArgumentParser(prog="emdenoise.fiji.server_settings")
    parser.add_argument("--server", default="")
    parser.add_argument("--tls-ca", default="")
    parser.add_argument("--token-file", default="")
    args = parser.parse_args(argv)
    from emdenoise.errors import UserError
    from emdenoise.fiji.clients import server_of

    try:
        cards = check_and_save(server_of(args.server), args.tls_ca.strip(), args.token_file.strip())
    except UserError as error:
        print(f"ERROR\t{error}")
        return 2
    for card in cards:
        default = "1" if card.get("default") else "0"
        print(f"{card['id']}\t{card.get('modality', '')}\t{default}\t{card.get('backend', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
