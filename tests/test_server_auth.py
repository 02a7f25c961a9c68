"""TLS and a bearer token on the real server (127.0.0.1): who gets in, and what the others read."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emdenoise.client import RemoteClient, connect
from emdenoise.client.security import open_channel, resolve
from emdenoise.errors import UserError
from emdenoise.server.subprocess_server import ServerProcess
from tls_helpers import make_credentials

MODEL = "ede-kernel-tem-5"


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return make_credentials(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secure_server(creds):
    process = ServerProcess("--tls-cert", str(creds["cert"]), "--tls-key", str(creds["key"]),
                            "--token-file", str(creds["token"]))
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in ("EMDENOISE_TOKEN", "EMDENOISE_TOKEN_FILE", "EMDENOISE_TLS_CA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EMDENOISE_CONFIG", str(tmp_path / "config"))


def cli(*args, env=None):
    environment = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "emdenoise", *args], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_right_token_over_tls_lists_and_denoises(secure_server, creds):
    with RemoteClient(secure_server.address, tls_ca=creds["cert"], token_file=creds["token"]) as client:
        assert MODEL in {card["id"] for card in client.list_models()}
        (result,) = list(client.denoise([np.full((16, 16), 5, np.uint16)], MODEL))
    assert result.shape == (16, 16)
    assert "TLS, token required" in "".join(secure_server.lines)


def test_token_from_environment_and_cli_flags(secure_server, creds):
    done = cli("models", "--server", secure_server.address, "--tls-ca", str(creds["cert"]),
               env={"EMDENOISE_TOKEN": creds["token"].read_text().strip()})
    assert done.returncode == 0, done.stderr
    assert MODEL in done.stdout
    done = cli("models", "--server", secure_server.address, "--tls-ca", str(creds["cert"]),
               "--token-file", str(creds["token"]))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("token_args, sentence", [
    ((), "this server needs a token"),
    (("--token-file", "WRONG"), "the server refused the token"),
])
def test_missing_or_wrong_token_is_unauthenticated_without_traceback(secure_server, creds, tmp_path, token_args, sentence):
    if token_args:
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-token\n")
        token_args = ("--token-file", str(wrong))
    done = cli("models", "--server", secure_server.address, "--tls-ca", str(creds["cert"]), *token_args)
    assert done.returncode == 2
    assert sentence in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_wrong_token_is_unauthenticated_for_every_rpc_including_health(secure_server, creds):
    channel = open_channel(secure_server.address, resolve(tls_ca=creds["cert"], token="nope"))
    with pytest.raises(grpc.RpcError) as caught:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with RemoteClient(secure_server.address, tls_ca=creds["cert"], token="nope") as client:
        with pytest.raises(UserError, match="refused the token"):
            list(client.denoise([np.ones((8, 8), np.uint16)], MODEL))
    channel.close()
    good = open_channel(secure_server.address, resolve(tls_ca=creds["cert"], token_file=creds["token"]))
    reply = health_pb2_grpc.HealthStub(good).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    good.close()


def test_plaintext_client_against_tls_server_says_so(secure_server, creds):
    done = cli("models", "--server", secure_server.address, "--token-file", str(creds["token"]))
    assert done.returncode == 2
    assert "probably uses TLS: pass --tls-ca" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_tls_client_against_plaintext_server_says_so(server, creds):
    with RemoteClient(server.address, tls_ca=creds["cert"]) as client:
        with pytest.raises(UserError, match="does not speak TLS"):
            client.list_models()


def test_saved_settings_for_an_address_are_used_by_connect(secure_server, creds):
    """EM Server Settings stores the CA and token *file* per address; workers only know host:port."""
    from emdenoise.client.profiles import save_settings

    path = save_settings(secure_server.address, tls_ca=str(creds["cert"]), token_file=str(creds["token"]))
    assert creds["token"].read_text().strip() not in path.read_text()
    assert (path.stat().st_mode & 0o077) == 0
    with connect(secure_server.address) as client:
        assert MODEL in {card["id"] for card in client.list_models()}


def test_non_loopback_bind_without_tls_and_token_is_refused():
    done = cli("serve", "--host", "0.0.0.0", "--port", "0", "--device", "cpu")
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without --tls-cert/--tls-key and --token-file" in done.stderr
    assert "Traceback" not in done.stderr


def test_non_loopback_bind_with_insecure_warns(creds):
    process = ServerProcess("--host", "0.0.0.0", "--insecure", "--token-file", str(creds["token"]))
    try:
        text = "".join(process.lines)
        assert "warning: bound to 0.0.0.0 without --tls-cert/--tls-key (--insecure)" in text
    finally:
        process.stop()
