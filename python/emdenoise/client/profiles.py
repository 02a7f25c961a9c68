"""Connection settings saved per server address (by EM Server Settings).

The Fiji commands hand only ``host:port`` to their Python workers; the CA file and the
token *file* chosen in EM Server Settings are kept here, in ``servers.json`` of the user's
config folder (``$EMDENOISE_CONFIG``, else the platform's), readable by the user alone.
The token itself is never stored: only the path of the file that holds it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CONFIG_ENV = "EMDENOISE_CONFIG"
KEYS = ("tls_ca", "token_file")


def config_dir() -> Path:
    """``$EMDENOISE_CONFIG``, else the platform's user config folder for emdenoise."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("emdenoise"))


def _path() -> Path:
    return config_dir() / "servers.json"


def _load() -> dict:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def saved_settings(address: str) -> dict[str, str]:
    """``{"tls_ca": ..., "token_file": ...}`` saved for ``address`` (only the keys set)."""
    entry = _load().get(address.strip(), {})
    if not isinstance(entry, dict):
        return {}
    return {key: str(entry[key]) for key in KEYS if entry.get(key)}


def save_settings(address: str, *, tls_ca: str | None = None, token_file: str | None = None) -> Path:
    """Remember the CA file and token file for ``address`` (empty values forget them).

    Returns
    -------
    Path
        The settings file, written atomically with mode 0600.
    """
    data = _load()
    entry = {key: str(Path(value).expanduser().resolve()) for key, value in (("tls_ca", tls_ca), ("token_file", token_file)) if value}
    if entry:
        data[address.strip()] = entry
    else:
        data.pop(address.strip(), None)
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".servers-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(temporary, _path())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return _path()


__all__ = ["CONFIG_ENV", "config_dir", "save_settings", "saved_settings"]
