"""EM Server Settings with a TLS certificate and a token file, in Debian's real ImageJ."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_batch  # noqa: E402
from tls_helpers import make_credentials  # noqa: E402

from emdenoise.server.subprocess_server import ServerProcess

pytestmark = [pytest.mark.imagej, pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))]

MODEL = "ede-kernel-tem-5"


def test_server_settings_with_certificate_and_token_file_then_denoise(tmp_path):
    creds = make_credentials(tmp_path / "tls")
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    root, home, temp = installed_imagej(tmp_path)
    config = tmp_path / "config"
    env = imagej_env(home, temp, {"EMDENOISE_CONFIG": str(config), "OMP_NUM_THREADS": "1"})
    source = tmp_path / "frame.tif"
    tifffile.imwrite(source, np.random.default_rng(0).poisson(20, (2, 32, 32)).astype(np.uint16), imagej=True)
    with ServerProcess("--tls-cert", str(creds["cert"]), "--tls-key", str(creds["key"]),
                       "--token-file", str(creds["token"])) as server:
        macro = tmp_path / "lab.ijm"
        macro.write_text(f"""
print("--- wrong token");
run("EM Server Settings", "address={server.address} certificate=[{creds['cert']}] token=[{wrong}]");
print("--- right token");
run("EM Server Settings", "address={server.address} certificate=[{creds['cert']}] token=[{creds['token']}]");
open("{source}");
run("EM Denoise", "model={MODEL} server={server.address}");
print("title: " + getTitle());
print("--- end");
""")
        run = run_batch(macro, "", imagej_dir=root, env=env, timeout=120)
    out = run.output
    wrong_part = out.split("--- wrong token")[1].split("--- right token")[0]
    assert "EM Server Settings: error: the server refused the token" in wrong_part, out
    assert f"EM Server Settings: using {server.address} (" in out and ", TLS, token)" in out, out
    assert f"title: frame_denoised-{MODEL}.tif" in out, out
    saved = json.loads((config / "servers.json").read_text())[server.address]
    assert saved == {"tls_ca": str(creds["cert"].resolve()), "token_file": str(creds["token"].resolve())}
    assert creds["token"].read_text().strip() not in (config / "servers.json").read_text()
